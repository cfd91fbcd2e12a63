//! Reads keys' values and expiries from the source: `DUMP key` and `PEXPIRETIME key`
//! (`PTTL` before Redis 7.0), pipelined for a batch of keys.
//!
//! DUMP and the expiry are two commands, so a change between them can pair a value with
//! another moment's expiry; that change is notified, and the key is read again after it.

use super::conn::{refused, SourceConn};
use super::dirty::DbKey;
use crate::sinks::writer::client::ClientError;
use bytes::Bytes;
use ferry_repl::resp::Frame;

/// A key as read from the source.
#[derive(Debug)]
pub enum Fetched {
    Value {
        db: u64,
        key: Bytes,
        payload: Bytes,
        /// Absolute, in ms since the epoch (source clock).
        expire_at_ms: Option<i64>,
    },
    /// The key does not exist (any more).
    Gone { db: u64, key: Bytes },
}

/// How the source tells a key's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryRead {
    /// `PEXPIRETIME`: absolute, by the source's clock (Redis 7.0+, Valkey).
    Absolute,
    /// `PTTL`: relative, made absolute with ferry's clock.
    Relative,
}

impl ExpiryRead {
    pub fn for_source(product: &str, series: (u32, u32)) -> Self {
        if product == "valkey" || series.0 >= 7 {
            ExpiryRead::Absolute
        } else {
            ExpiryRead::Relative
        }
    }

    fn command(self) -> &'static str {
        match self {
            ExpiryRead::Absolute => "PEXPIRETIME",
            ExpiryRead::Relative => "PTTL",
        }
    }
}

/// Reads `keys` (any databases) with one round trip.
pub async fn fetch(
    conn: &mut SourceConn,
    keys: Vec<DbKey>,
    expiry: ExpiryRead,
) -> Result<Vec<Fetched>, ClientError> {
    // For each key: whether a SELECT reply comes before its two replies.
    let mut selects = Vec::with_capacity(keys.len());
    let mut count = 0;
    for (db, key) in &keys {
        let selected = conn.select(*db);
        conn.push(&[b"DUMP".as_slice(), key]);
        conn.push(&[expiry.command().as_bytes(), key]);
        selects.push(selected);
        count += 2 + usize::from(selected);
    }
    let sent_at = unix_ms();
    let mut replies = conn.replies(count).await?.into_iter();
    let mut out = Vec::with_capacity(keys.len());
    for ((db, key), selected) in keys.into_iter().zip(selects) {
        if selected {
            let reply = replies.next().unwrap_or(Frame::Null);
            if let Some(error) = refused("SELECT", &reply) {
                return Err(error);
            }
        }
        let dump = replies.next().unwrap_or(Frame::Null);
        let ttl = replies.next().unwrap_or(Frame::Null);
        if let Some(error) = refused("DUMP", &dump) {
            return Err(error);
        }
        if let Some(error) = refused(expiry.command(), &ttl) {
            return Err(error);
        }
        let payload = match dump {
            Frame::Bulk(payload) => payload,
            Frame::NullBulk | Frame::Null => {
                out.push(Fetched::Gone { db, key });
                continue;
            }
            other => {
                return Err(ClientError::Protocol(format!(
                    "DUMP answered {}",
                    other.describe()
                )))
            }
        };
        let expire_at_ms = match (ttl, expiry) {
            (Frame::Integer(-2), _) => {
                // Gone between the two reads; its deletion is notified.
                out.push(Fetched::Gone { db, key });
                continue;
            }
            (Frame::Integer(n), _) if n < 0 => None,
            (Frame::Integer(at), ExpiryRead::Absolute) => Some(at),
            (Frame::Integer(ttl), ExpiryRead::Relative) => Some(sent_at.saturating_add(ttl)),
            (other, _) => {
                return Err(ClientError::Protocol(format!(
                    "{} answered {}",
                    expiry.command(),
                    other.describe()
                )))
            }
        };
        out.push(Fetched::Value {
            db,
            key,
            payload,
            expire_at_ms,
        });
    }
    Ok(out)
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The code of every function library on the source (`FUNCTION LIST WITHCODE`), or the
/// server's refusal.
pub async fn function_libraries(
    conn: &mut SourceConn,
) -> Result<Result<Vec<Bytes>, String>, ClientError> {
    conn.push(&["FUNCTION", "LIST", "WITHCODE"]);
    let reply = conn.replies(1).await?.pop().unwrap_or(Frame::Null);
    if let Some(error) = refused("FUNCTION LIST", &reply) {
        return Ok(Err(error.to_string()));
    }
    let Frame::Array(libraries) = reply else {
        return Err(ClientError::Protocol(format!(
            "FUNCTION LIST answered {}",
            reply.describe()
        )));
    };
    Ok(Ok(libraries.into_iter().filter_map(library_code).collect()))
}

/// `library_code` of one library's description (flat `[name, value, …]` in RESP2).
fn library_code(library: Frame) -> Option<Bytes> {
    let Frame::Array(fields) = library else {
        return None;
    };
    let mut fields = fields.into_iter();
    while let Some(name) = fields.next() {
        let value = fields.next()?;
        if matches!(&name, Frame::Bulk(n) | Frame::Simple(n) if n.as_ref() == b"library_code") {
            if let Frame::Bulk(code) = value {
                return Some(code);
            }
        }
    }
    None
}
