//! The slot map over a blocking redis-rs connection, for the commands that read a
//! cluster without writing to it (verify, assess): redis-rs replies turned into the RESP
//! frames the shared parsers in [`super::topology`] read.

use super::malformed::MalformedReply;
use super::topology::{parse_cluster_shards, parse_cluster_slots, SlotMap};
use bytes::Bytes;
use ferry_repl::resp::Frame;
use redis::{Connection, ErrorKind, RedisError, Value};

/// Why the slot map could not be read; each names the command.
#[derive(Debug, thiserror::Error)]
pub enum PrimariesError {
    #[error("{command}: {source}")]
    Query {
        command: &'static str,
        #[source]
        source: RedisError,
    },
    #[error("{command}: {source}")]
    Malformed {
        command: &'static str,
        #[source]
        source: MalformedReply,
    },
    #[error("CLUSTER SHARDS: no primary serves a slot")]
    NoPrimary,
}

/// The primaries and their slots as the node behind `con` sees them: `CLUSTER SHARDS`,
/// or `CLUSTER SLOTS` where that is refused (before Redis 7.0, or by an ACL).
pub fn primaries(
    con: &mut Connection,
    asked_host: &str,
    tls: bool,
) -> Result<SlotMap, PrimariesError> {
    let malformed = |command| move |source| PrimariesError::Malformed { command, source };
    let map = match redis::cmd("CLUSTER").arg("SHARDS").query::<Value>(con) {
        Ok(reply) => parse_cluster_shards(&frame(&reply), asked_host, tls)
            .map_err(malformed("CLUSTER SHARDS"))?,
        Err(e) if matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension) => {
            let reply: Value = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query(con)
                .map_err(|source| PrimariesError::Query {
                    command: "CLUSTER SLOTS",
                    source,
                })?;
            parse_cluster_slots(&frame(&reply), asked_host).map_err(malformed("CLUSTER SLOTS"))?
        }
        Err(source) => {
            return Err(PrimariesError::Query {
                command: "CLUSTER SHARDS",
                source,
            })
        }
    };
    if map.nodes.is_empty() {
        return Err(PrimariesError::NoPrimary);
    }
    Ok(map)
}

/// A redis-rs reply as the RESP frame the shared topology parsers read.
pub fn frame(value: &Value) -> Frame {
    let text = |text: &str| Bytes::copy_from_slice(text.as_bytes());
    match value {
        Value::Nil => Frame::Null,
        Value::Int(n) => Frame::Integer(*n),
        Value::BulkString(bytes) => Frame::Bulk(Bytes::copy_from_slice(bytes)),
        Value::SimpleString(s) => Frame::Simple(text(s)),
        Value::Okay => Frame::Simple(text("OK")),
        Value::VerbatimString { text: s, .. } => Frame::Bulk(text(s)),
        Value::Array(items) | Value::Set(items) | Value::Push { data: items, .. } => {
            Frame::Array(items.iter().map(frame).collect())
        }
        Value::Map(pairs) => Frame::Map(pairs.iter().map(|(k, v)| (frame(k), frame(v))).collect()),
        Value::Double(d) => Frame::Double(text(&d.to_string())),
        Value::Boolean(b) => Frame::Boolean(*b),
        Value::Attribute { data, .. } => frame(data),
        Value::ServerError(error) => Frame::Error(text(&error.to_string())),
        _ => Frame::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_become_frames_for_the_shared_parsers() {
        let reply = Value::Array(vec![Value::Map(vec![(
            Value::SimpleString("slots".into()),
            Value::Array(vec![Value::Int(0), Value::Int(5)]),
        )])]);
        let expected = Frame::Array(vec![Frame::Map(vec![(
            Frame::Simple(Bytes::from_static(b"slots")),
            Frame::Array(vec![Frame::Integer(0), Frame::Integer(5)]),
        )])]);
        assert_eq!(frame(&reply), expected);
        assert_eq!(
            frame(&Value::BulkString(b"x".to_vec())),
            Frame::Bulk(Bytes::from_static(b"x"))
        );
    }
}
