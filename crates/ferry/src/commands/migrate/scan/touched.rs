//! Pipelined questions about many keys that read no value: how long each has been left
//! alone (`OBJECT IDLETIME`, which does not touch the key), and whether it exists.

use super::conn::{refused, SourceConn};
use crate::server::client::ClientError;
use bytes::Bytes;
use ferry_repl::resp::Frame;

/// What `OBJECT IDLETIME` said of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Seconds since the key was last written or read.
    Seconds(u64),
    /// The key is gone.
    Gone,
}

/// Why idle times cannot be had.
#[derive(Debug)]
pub enum IdleError {
    /// The source refused (under an LFU `maxmemory-policy` it tracks no idle time).
    Refused(String),
    Failed(ClientError),
}

/// The idle time of each of `keys` in `db`, in order.
pub async fn idle_times(
    conn: &mut SourceConn,
    db: u64,
    keys: &[Bytes],
) -> Result<Vec<Idle>, IdleError> {
    let replies = ask(conn, db, keys, &[b"OBJECT", b"IDLETIME"])
        .await
        .map_err(IdleError::Failed)?;
    replies
        .into_iter()
        .map(|reply| match reply {
            Frame::Integer(seconds) => Ok(Idle::Seconds(seconds.max(0) as u64)),
            Frame::Null | Frame::NullBulk => Ok(Idle::Gone),
            Frame::Error(message) | Frame::BulkError(message) => Err(IdleError::Refused(
                crate::server::client::one_line(&message),
            )),
            other => Err(IdleError::Failed(ClientError::Protocol(format!(
                "OBJECT IDLETIME answered {}",
                other.describe()
            )))),
        })
        .collect()
}

/// Whether each of `keys` exists in `db`, in order.
pub async fn exist(
    conn: &mut SourceConn,
    db: u64,
    keys: &[Bytes],
) -> Result<Vec<bool>, ClientError> {
    let replies = ask(conn, db, keys, &[b"EXISTS"]).await?;
    replies
        .into_iter()
        .map(|reply| {
            if let Some(error) = refused("EXISTS", &reply) {
                return Err(error);
            }
            match reply {
                Frame::Integer(count) => Ok(count > 0),
                other => Err(ClientError::Protocol(format!(
                    "EXISTS answered {}",
                    other.describe()
                ))),
            }
        })
        .collect()
}

/// `command key` for every key, pipelined; the replies in order, errors included.
async fn ask(
    conn: &mut SourceConn,
    db: u64,
    keys: &[Bytes],
    command: &[&[u8]],
) -> Result<Vec<Frame>, ClientError> {
    let selected = conn.select(db);
    let mut args = command.to_vec();
    for key in keys {
        args.truncate(command.len());
        args.push(key);
        conn.push(&args);
    }
    let mut replies = conn.replies(keys.len() + usize::from(selected)).await?;
    if selected {
        let select = replies.remove(0);
        if let Some(error) = refused("SELECT", &select) {
            return Err(error);
        }
    }
    Ok(replies)
}
