//! Reads keys' values and expiries from the source: `DUMP key` and `PEXPIRETIME key`
//! (`PTTL` before Redis 7.0), pipelined for a batch of keys.
//!
//! DUMP and the expiry are two commands, so a change between them can pair a value with
//! another moment's expiry; that change is notified, and the key is read again after it.

use super::conn::{refused, SourceConn};
use super::dirty::DbKey;
use crate::server::client::ClientError;
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

/// A batch of keys requested in one write; their values are read one at a time with
/// [`Request::next`], so that only one value is held here however big the batch is.
pub struct Request {
    /// Each key, and whether a SELECT reply comes before its two replies.
    keys: std::vec::IntoIter<(DbKey, bool)>,
    expiry: ExpiryRead,
    sent_at: i64,
}

impl Request {
    /// Requests `keys` (any databases): DUMP and the expiry of each, pipelined.
    pub async fn send(
        conn: &mut SourceConn,
        keys: Vec<DbKey>,
        expiry: ExpiryRead,
    ) -> Result<Request, ClientError> {
        let mut planned = Vec::with_capacity(keys.len());
        for (db, key) in keys {
            let selected = conn.select(db);
            conn.push(&[b"DUMP".as_slice(), &key]);
            conn.push(&[expiry.command().as_bytes(), &key]);
            planned.push(((db, key), selected));
        }
        conn.send().await?;
        Ok(Request {
            keys: planned.into_iter(),
            expiry,
            sent_at: unix_ms(),
        })
    }

    /// The next key's value, `None` after the last. Every reply must be read before the
    /// connection is used again.
    pub async fn next(&mut self, conn: &mut SourceConn) -> Result<Option<Fetched>, ClientError> {
        let Some(((db, key), selected)) = self.keys.next() else {
            return Ok(None);
        };
        if selected {
            let reply = conn.read().await?;
            if let Some(error) = refused("SELECT", &reply) {
                return Err(error);
            }
        }
        let dump = conn.read().await?;
        let ttl = conn.read().await?;
        let expiry = self.expiry;
        if let Some(error) = refused("DUMP", &dump) {
            return Err(error);
        }
        if let Some(error) = refused(expiry.command(), &ttl) {
            return Err(error);
        }
        let payload = match dump {
            Frame::Bulk(payload) => payload,
            Frame::NullBulk | Frame::Null => return Ok(Some(Fetched::Gone { db, key })),
            other => {
                return Err(ClientError::Protocol(format!(
                    "DUMP answered {}",
                    other.describe()
                )))
            }
        };
        let expire_at_ms = match (ttl, expiry) {
            // Gone between the two reads; its deletion is notified.
            (Frame::Integer(-2), _) => return Ok(Some(Fetched::Gone { db, key })),
            (Frame::Integer(n), _) if n < 0 => None,
            (Frame::Integer(at), ExpiryRead::Absolute) => Some(at),
            (Frame::Integer(ttl), ExpiryRead::Relative) => Some(self.sent_at.saturating_add(ttl)),
            (other, _) => {
                return Err(ClientError::Protocol(format!(
                    "{} answered {}",
                    expiry.command(),
                    other.describe()
                )))
            }
        };
        Ok(Some(Fetched::Value {
            db,
            key,
            payload,
            expire_at_ms,
        }))
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What the source answered `FUNCTION LIST WITHCODE`.
pub enum FunctionLibraries {
    /// The code of every library.
    Listed(Vec<Bytes>),
    /// An error reply (an ACL, a managed service): the libraries are not copied.
    Refused(ClientError),
}

/// The code of every function library on the source, or the server's refusal; the error
/// is a connection that failed.
pub async fn function_libraries(conn: &mut SourceConn) -> Result<FunctionLibraries, ClientError> {
    conn.push(&["FUNCTION", "LIST", "WITHCODE"]);
    let reply = conn.replies(1).await?.pop().unwrap_or(Frame::Null);
    if let Some(error) = refused("FUNCTION LIST", &reply) {
        return Ok(FunctionLibraries::Refused(error));
    }
    let Frame::Array(libraries) = reply else {
        return Err(ClientError::Protocol(format!(
            "FUNCTION LIST answered {}",
            reply.describe()
        )));
    };
    Ok(FunctionLibraries::Listed(
        libraries.into_iter().filter_map(library_code).collect(),
    ))
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
