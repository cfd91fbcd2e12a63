//! What a checkpoint records of the source, and what a resumed run compares it with: the
//! source's clock, its process, its forks.

use super::conn::{refused, SourceConn};
use crate::server::client::{parse_info, ClientError};
use ferry_repl::resp::Frame;

/// The source at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFacts {
    /// `TIME`, in ms since the epoch.
    pub time_ms: i64,
    pub run_id: String,
    /// `total_forks` (Redis 6.2+, Valkey); `None` when not reported, or while a fork
    /// runs (its writes leave idle times alone from before the count to after it).
    pub forks: Option<u64>,
}

/// Reads the source's clock, `run_id` and forks in one round trip.
pub async fn read(conn: &mut SourceConn) -> Result<SourceFacts, ClientError> {
    let commands = [
        ["TIME", ""],
        ["INFO", "server"],
        ["INFO", "stats"],
        ["INFO", "persistence"],
    ];
    for [name, section] in commands {
        match section {
            "" => conn.push(&[name]),
            section => conn.push(&[name, section]),
        }
    }
    let replies = conn.replies(commands.len()).await?;
    let mut texts = Vec::new();
    for (reply, [name, _]) in replies.iter().zip(commands) {
        if let Some(error) = refused(name, reply) {
            return Err(error);
        }
        texts.push(reply);
    }
    let time_ms = parse_time(texts[0])?;
    let info = |reply: &Frame| match reply {
        Frame::Bulk(text) | Frame::Verbatim { text, .. } => Ok(parse_info(text)),
        other => Err(ClientError::Protocol(format!(
            "INFO answered {}",
            other.describe()
        ))),
    };
    let field = |fields: &[(String, String)], name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let server = info(texts[1])?;
    let stats = info(texts[2])?;
    let persistence = info(texts[3])?;
    let run_id = field(&server, "run_id")
        .ok_or_else(|| ClientError::Protocol("INFO server has no run_id".into()))?;
    let forking = persistence
        .iter()
        .any(|(key, value)| key.ends_with("_in_progress") && value == "1");
    let forks = field(&stats, "total_forks")
        .and_then(|count| count.parse().ok())
        .filter(|_| !forking);
    Ok(SourceFacts {
        time_ms,
        run_id,
        forks,
    })
}

/// `TIME`'s `[seconds, microseconds]`, in ms.
fn parse_time(reply: &Frame) -> Result<i64, ClientError> {
    let bad = || ClientError::Protocol(format!("TIME answered {}", reply.describe()));
    let Frame::Array(parts) = reply else {
        return Err(bad());
    };
    let number = |part: Option<&Frame>| match part {
        Some(Frame::Bulk(text)) => std::str::from_utf8(text).ok()?.parse::<i64>().ok(),
        _ => None,
    };
    let (Some(seconds), Some(micros)) = (number(parts.first()), number(parts.get(1))) else {
        return Err(bad());
    };
    Ok(seconds * 1000 + micros / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn time_is_read_in_ms() {
        let reply = Frame::Array(vec![
            Frame::Bulk(Bytes::from_static(b"1765118000")),
            Frame::Bulk(Bytes::from_static(b"123456")),
        ]);
        assert_eq!(parse_time(&reply).unwrap(), 1_765_118_000_123);
        assert!(parse_time(&Frame::Integer(3)).is_err());
    }
}
