//! The primary a group of sentinels watches, found as Sentinel's client guidelines say:
//! ask each sentinel in turn (`SENTINEL GET-MASTER-ADDR-BY-NAME`, a short timeout each),
//! then check that the address named answers `ROLE` as a master (a failover may be half
//! done). Every reconnect asks again: the primary of a minute ago may be a replica now.

use crate::server::client::{one_line, Client, ClientError};
use crate::url::ServerUrl;
use ferry_repl::resp::Frame;
use std::time::Duration;

/// The longest one sentinel may take to connect or to answer: a dead one must not hold
/// up the others.
const PER_SENTINEL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SentinelError {
    /// No sentinel gave an address. `tried` lists each sentinel with its reason.
    #[error("no sentinel named the primary of {master_name:?} (tried {tried})")]
    NoAnswer { master_name: String, tried: String },
    #[error(
        "the sentinels of {master_name:?} name {address} as its primary, but it answers ROLE \
         with {role:?} (a failover is under way?)"
    )]
    NotPrimary {
        master_name: String,
        address: String,
        role: String,
    },
    #[error("the sentinels of {master_name:?} name {address} as its primary: {cause}")]
    PrimaryUnreachable {
        master_name: String,
        address: String,
        #[source]
        cause: ClientError,
    },
}

/// `url` pointed at the primary its sentinels name now; any other URL unchanged.
pub async fn locate(
    url: &ServerUrl,
    connect_timeout: Duration,
) -> Result<ServerUrl, SentinelError> {
    let Some(sentinels) = &url.sentinel else {
        return Ok(url.clone());
    };
    let master_name = sentinels.master_name.clone();
    let mut tried = Vec::new();
    let mut named = None;
    for index in 0..sentinels.nodes.len() {
        let node = sentinels.node_url(index);
        match ask(&node, &master_name, connect_timeout.min(PER_SENTINEL)).await {
            Ok(address) => {
                named = Some(address);
                break;
            }
            Err(reason) => tried.push(format!("{}: {reason}", node.address())),
        }
    }
    let Some((host, port)) = named else {
        return Err(SentinelError::NoAnswer {
            master_name,
            tried: tried.join("; "),
        });
    };
    let mut primary = url.clone();
    primary.host = host;
    primary.port = port;
    let address = primary.address();
    let role = role_of(&primary, connect_timeout).await.map_err(|cause| {
        SentinelError::PrimaryUnreachable {
            master_name: master_name.clone(),
            address: address.clone(),
            cause,
        }
    })?;
    if role != "master" {
        return Err(SentinelError::NotPrimary {
            master_name,
            address,
            role,
        });
    }
    Ok(primary)
}

/// Why one sentinel gave no address, in a few words.
#[derive(Debug, thiserror::Error)]
enum AskError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("it does not monitor that name")]
    Unknown,
    #[error("it answered {0}")]
    Refused(String),
    #[error("it sent an address ferry cannot read")]
    Malformed,
}

async fn ask(
    sentinel: &ServerUrl,
    master_name: &str,
    timeout: Duration,
) -> Result<(String, u16), AskError> {
    let mut client = Client::connect(sentinel, timeout).await?;
    let reply = client
        .call_with_timeout(
            &[
                "SENTINEL".as_bytes(),
                b"GET-MASTER-ADDR-BY-NAME",
                master_name.as_bytes(),
            ],
            timeout,
        )
        .await?;
    address_reply(reply)
}

/// `[host, port]`; the port comes as a bulk string from Redis and Valkey, as an integer
/// in some versions' RESP3 replies.
fn address_reply(reply: Frame) -> Result<(String, u16), AskError> {
    let items = match reply {
        Frame::Array(items) => items,
        Frame::NullArray | Frame::NullBulk | Frame::Null => return Err(AskError::Unknown),
        Frame::Error(text) | Frame::BulkError(text) => {
            return Err(AskError::Refused(one_line(&text)))
        }
        _ => return Err(AskError::Malformed),
    };
    let text = |frame: &Frame| match frame {
        Frame::Bulk(bytes) | Frame::Simple(bytes) => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
        Frame::Integer(number) => Some(number.to_string()),
        _ => None,
    };
    match items.as_slice() {
        [host, port] => {
            let host = text(host).filter(|h| !h.is_empty());
            let port = text(port).and_then(|p| p.parse::<u16>().ok());
            match (host, port) {
                (Some(host), Some(port)) if port != 0 => Ok((host, port)),
                _ => Err(AskError::Malformed),
            }
        }
        _ => Err(AskError::Malformed),
    }
}

/// The first element of `ROLE`: `master`, `slave` (a replica) or `sentinel`.
async fn role_of(url: &ServerUrl, connect_timeout: Duration) -> Result<String, ClientError> {
    let mut client = Client::connect(url, connect_timeout).await?;
    let reply = client.call_ok(&["ROLE"]).await?;
    match reply {
        Frame::Array(items) => match items.first() {
            Some(Frame::Bulk(role)) | Some(Frame::Simple(role)) => {
                Ok(String::from_utf8_lossy(role).into_owned())
            }
            _ => Err(ClientError::Protocol("ROLE gave no role".into())),
        },
        _ => Err(ClientError::Protocol("ROLE did not answer an array".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn bulk(text: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn an_address_reply_gives_host_and_port() {
        let reply = Frame::Array(vec![bulk("10.0.0.5"), bulk("6380")]);
        assert_eq!(address_reply(reply).unwrap(), ("10.0.0.5".into(), 6380));
        let reply = Frame::Array(vec![bulk("h"), Frame::Integer(7000)]);
        assert_eq!(address_reply(reply).unwrap(), ("h".into(), 7000));
    }

    #[test]
    fn other_replies_say_why() {
        assert!(matches!(
            address_reply(Frame::NullArray),
            Err(AskError::Unknown)
        ));
        let refused = address_reply(Frame::Error(Bytes::from_static(b"NOAUTH needed")));
        assert_eq!(
            refused.unwrap_err().to_string(),
            "it answered NOAUTH needed"
        );
        for malformed in [
            Frame::Array(vec![bulk("h")]),
            Frame::Array(vec![bulk("h"), bulk("port")]),
            Frame::Array(vec![bulk(""), bulk("1")]),
            Frame::Integer(3),
        ] {
            assert!(matches!(address_reply(malformed), Err(AskError::Malformed)));
        }
    }
}
