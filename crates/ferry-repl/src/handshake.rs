//! Opening the connection and the replica handshake, in the order a Redis replica uses:
//! PING, AUTH, REPLCONF listening-port, REPLCONF capa eof capa psync2, REPLCONF version
//! (if set, as Valkey replicas send it), then PSYNC.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::error::{one_line, redact, ReplError};
use crate::link::Link;
use crate::options::{ConnectOptions, RetryPolicy};
use crate::resp::{command, Frame};
use crate::stream::BoxedStream;

/// Length of a replication ID (40 hex characters).
pub(crate) const REPLID_LEN: usize = 40;

/// The primary's answer to PSYNC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsyncOutcome {
    /// A snapshot follows; the command stream after it starts at `offset`.
    FullResync {
        /// The primary's replication ID; save it to resume later.
        replid: String,
        /// The replication offset the snapshot corresponds to.
        offset: i64,
    },
    /// The stream resumes right after the offset that was asked for. `replid` is the
    /// primary's current ID (it changes after a failover); save it for the next resume.
    Continue {
        /// The primary's current replication ID.
        replid: String,
    },
}

/// Extra time the upgrade gets beyond `connect_timeout` before it is cut off: an upgrade
/// bounds its handshake itself, with a message that says more than ours.
const UPGRADE_GRACE: Duration = Duration::from_secs(1);

/// Connects by `deadline`, trying every address the name resolves to, then applies the
/// upgrade (TLS), which gets a second more (its own timeout words the failure better).
pub(crate) async fn open(
    address: &str,
    options: &ConnectOptions,
    deadline: tokio::time::Instant,
) -> Result<Link, ReplError> {
    let connect_error = |cause| ReplError::Connect {
        address: address.to_owned(),
        cause,
    };
    let attempt = async {
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address found");
        for socket_address in tokio::net::lookup_host(address).await? {
            match TcpStream::connect(socket_address).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    };
    let stream = tokio::time::timeout_at(deadline, attempt)
        .await
        .map_err(|_| {
            connect_error(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection within {:?}", options.connect_timeout),
            ))
        })?
        .map_err(connect_error)?;
    // ACKs are tiny and must not wait for Nagle.
    stream.set_nodelay(true).map_err(connect_error)?;
    let stream: BoxedStream = match &options.upgrade {
        None => Box::new(stream),
        Some(upgrade) => {
            let limit = options.connect_timeout + UPGRADE_GRACE;
            tokio::time::timeout_at(deadline + UPGRADE_GRACE, upgrade.upgrade(stream))
                .await
                .map_err(|_| {
                    connect_error(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no TLS handshake within {limit:?}"),
                    ))
                })?
                .map_err(connect_error)?
        }
    };
    Ok(Link::new(
        stream,
        options.read_timeout,
        options.limits.clone(),
    ))
}

/// Everything before PSYNC.
pub(crate) async fn handshake(link: &mut Link, options: &ConnectOptions) -> Result<(), ReplError> {
    // PING first so that a dead or foreign server is found before we send credentials.
    // An authentication error is expected when the primary needs a password.
    let pong = request(link, &[b"PING".as_slice()], "waiting for the PING reply").await?;
    if let Some(text) = error_text(&pong) {
        if !is_auth_error(&text) && !is_transient(&text) {
            return Err(ReplError::ServerError(text));
        }
    } else if !matches!(pong, Frame::Simple(_)) {
        return Err(unexpected(link, &pong, "PING"));
    }

    if let Some(password) = &options.password {
        let secret = password.expose();
        let mut auth: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(user) = &options.username {
            auth.push(user.as_bytes());
        }
        auth.push(secret.as_bytes());
        let reply = request(link, &auth, "waiting for the AUTH reply").await?;
        if let Some(text) = error_text(&reply) {
            return Err(ReplError::Auth(redact(text, secret)));
        }
    }

    let port = options.listening_port.to_string();
    let mut replconfs: Vec<Vec<&[u8]>> = vec![
        vec![b"REPLCONF", b"listening-port", port.as_bytes()],
        vec![b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"],
    ];
    if let Some(version) = &options.announce_version {
        replconfs.push(vec![b"REPLCONF", b"version", version.as_bytes()]);
    }
    for args in &replconfs {
        let reply = request(link, args.as_slice(), "waiting for the REPLCONF reply").await?;
        // Old servers do not know every REPLCONF option; only missing credentials matter.
        if let Some(text) = error_text(&reply) {
            if is_auth_error(&text) {
                return Err(ReplError::Auth(text));
            }
        }
    }
    Ok(())
}

/// Sends PSYNC and interprets the reply, retrying while the primary is loading or has no
/// link to its own primary. `offset` is the last offset already applied; the wire carries
/// the next one wanted (`offset + 1`), as Redis replicas send it.
pub(crate) async fn psync(
    link: &mut Link,
    replid: Option<&str>,
    offset: i64,
    retry: &RetryPolicy,
) -> Result<PsyncOutcome, ReplError> {
    let (id, next_offset) = match replid {
        Some(id) => (id.to_owned(), offset.saturating_add(1).to_string()),
        None => ("?".to_owned(), "-1".to_owned()),
    };
    let mut attempt = 0;
    loop {
        let args = [b"PSYNC".as_slice(), id.as_bytes(), next_offset.as_bytes()];
        let reply = request(link, &args, "waiting for the PSYNC reply").await?;
        match interpret_psync_reply(&reply, replid) {
            PsyncReply::Outcome(outcome) => return Ok(outcome),
            PsyncReply::TryLater(text) => {
                attempt += 1;
                if attempt >= retry.max_attempts {
                    return Err(ReplError::ServerError(format!(
                        "{text} (still after {attempt} PSYNC attempts)"
                    )));
                }
                tokio::time::sleep(retry.delay_before(attempt)).await;
            }
            PsyncReply::Refused(error) => return Err(error),
            PsyncReply::Malformed(what) => {
                return Err(ReplError::protocol(
                    format!("{what} in the PSYNC reply"),
                    link.position(),
                ))
            }
            PsyncReply::Violation(what) => return Err(ReplError::protocol(what, link.position())),
        }
    }
}

#[derive(Debug)]
pub(crate) enum PsyncReply {
    Outcome(PsyncOutcome),
    TryLater(String),
    Refused(ReplError),
    Malformed(String),
    /// A well-formed reply that cannot answer what was asked.
    Violation(String),
}

pub(crate) fn interpret_psync_reply(reply: &Frame, asked_replid: Option<&str>) -> PsyncReply {
    if let Some(text) = error_text(reply) {
        return if is_transient(&text) {
            PsyncReply::TryLater(text)
        } else if is_auth_error(&text) {
            PsyncReply::Refused(ReplError::Auth(text))
        } else {
            PsyncReply::Refused(ReplError::ServerError(text))
        };
    }
    let Frame::Simple(line) = reply else {
        return PsyncReply::Malformed(format!("unexpected {}", reply.describe()));
    };
    let text = String::from_utf8_lossy(line);
    let mut words = text.split(' ');
    match words.next() {
        Some("FULLRESYNC") => {
            let replid = words.next().filter(|id| is_replid(id));
            let offset = words.next().and_then(|o| o.parse::<i64>().ok());
            match (replid, offset, words.next()) {
                (Some(replid), Some(offset), None) => {
                    PsyncReply::Outcome(PsyncOutcome::FullResync {
                        replid: replid.to_owned(),
                        offset,
                    })
                }
                _ => PsyncReply::Malformed(format!("bad +FULLRESYNC line {:?}", one_line(line))),
            }
        }
        // After `PSYNC ? -1` there is no offset to continue from: accepting would leave the
        // replica "in sync" with nothing it was sent (Redis and Valkey replicas never send
        // `?` with a cached primary, so their primaries never answer it so).
        Some("CONTINUE") if asked_replid.is_none() => PsyncReply::Violation(format!(
            "the primary answered {:?} to PSYNC ? -1, a request for a full copy: there is \
             nothing to continue from",
            format!("+{}", one_line(line))
        )),
        Some("CONTINUE") => {
            // A different ID is the primary's own after a failover (it continues the one
            // asked for as its previous ID), as Redis and Valkey replicas take it.
            // Without psync2 a primary sends no ID: the one we asked with still holds.
            let replid = match words.next() {
                Some(id) if is_replid(id) => Some(id),
                Some(_) => None,
                None => asked_replid,
            };
            match replid {
                Some(replid) => PsyncReply::Outcome(PsyncOutcome::Continue {
                    replid: replid.to_owned(),
                }),
                None => PsyncReply::Malformed(format!("bad +CONTINUE line {:?}", one_line(line))),
            }
        }
        _ => PsyncReply::Malformed(format!("unexpected reply +{}", one_line(line))),
    }
}

fn is_replid(text: &str) -> bool {
    text.len() == REPLID_LEN && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Sends a command and reads its reply (keep-alive newlines skipped).
async fn request(
    link: &mut Link,
    args: &[&[u8]],
    during: &'static str,
) -> Result<Frame, ReplError> {
    link.send(&command(args), "sending a handshake command")
        .await?;
    link.read_reply(during).await
}

/// The text of an error reply, made safe to show.
fn error_text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Error(text) | Frame::BulkError(text) => Some(one_line(text)),
        _ => None,
    }
}

/// Errors that mean "not allowed": missing or wrong credentials, or an ACL user lacking
/// a permission. Older servers said "operation not permitted" instead of NOAUTH.
fn is_auth_error(text: &str) -> bool {
    [
        "NOAUTH",
        "NOPERM",
        "WRONGPASS",
        "ERR operation not permitted",
    ]
    .iter()
    .any(|prefix| text.starts_with(prefix))
}

/// Errors after which the same request succeeds later.
fn is_transient(text: &str) -> bool {
    text.starts_with("NOMASTERLINK") || text.starts_with("LOADING")
}

fn unexpected(link: &Link, reply: &Frame, to: &str) -> ReplError {
    ReplError::protocol(
        format!("unexpected {} in reply to {to}", reply.describe()),
        link.position(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn simple(text: &str) -> Frame {
        Frame::Simple(Bytes::copy_from_slice(text.as_bytes()))
    }

    const ID: &str = "0123456789abcdef0123456789abcdef01234567";
    const OTHER: &str = "ffffffffffffffffffffffffffffffffffffffff";

    fn outcome(reply: &Frame, asked: Option<&str>) -> Option<PsyncOutcome> {
        match interpret_psync_reply(reply, asked) {
            PsyncReply::Outcome(outcome) => Some(outcome),
            _ => None,
        }
    }

    #[test]
    fn fullresync_gives_id_and_offset() {
        assert_eq!(
            outcome(&simple(&format!("FULLRESYNC {ID} 12345")), None),
            Some(PsyncOutcome::FullResync {
                replid: ID.into(),
                offset: 12345
            })
        );
        for bad in [
            "FULLRESYNC short 1".to_owned(),
            format!("FULLRESYNC {ID}"),
            format!("FULLRESYNC {ID} x"),
            format!("FULLRESYNC {ID} 1 extra"),
        ] {
            assert!(
                matches!(
                    interpret_psync_reply(&simple(&bad), None),
                    PsyncReply::Malformed(_)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn continue_keeps_or_replaces_the_id() {
        assert_eq!(
            outcome(&simple(&format!("CONTINUE {OTHER}")), Some(ID)),
            Some(PsyncOutcome::Continue {
                replid: OTHER.into()
            })
        );
        assert_eq!(
            outcome(&simple("CONTINUE"), Some(ID)),
            Some(PsyncOutcome::Continue { replid: ID.into() })
        );
        for nothing_asked in ["CONTINUE".to_owned(), format!("CONTINUE {ID}")] {
            assert!(
                matches!(
                    interpret_psync_reply(&simple(&nothing_asked), None),
                    PsyncReply::Violation(_)
                ),
                "{nothing_asked}"
            );
        }
    }

    #[test]
    fn errors_are_classified() {
        let error = |text: &'static str| Frame::Error(Bytes::from_static(text.as_bytes()));
        assert!(matches!(
            interpret_psync_reply(
                &error("LOADING Redis is loading the dataset in memory"),
                None
            ),
            PsyncReply::TryLater(_)
        ));
        assert!(matches!(
            interpret_psync_reply(
                &error("NOMASTERLINK Can't SYNC while not connected with my master"),
                None
            ),
            PsyncReply::TryLater(_)
        ));
        assert!(matches!(
            interpret_psync_reply(&error("NOAUTH Authentication required."), None),
            PsyncReply::Refused(ReplError::Auth(_))
        ));
        assert!(matches!(
            interpret_psync_reply(&error("ERR unknown command"), None),
            PsyncReply::Refused(ReplError::ServerError(_))
        ));
        assert!(matches!(
            interpret_psync_reply(&Frame::Integer(1), None),
            PsyncReply::Malformed(_)
        ));
    }
}
