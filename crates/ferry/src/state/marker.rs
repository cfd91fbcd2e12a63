//! ferry's record, on the target itself, of what it has applied there: the hash
//! `ferry:migrate:applied` in database 0 with the fields `replid`, `offset` and `db` (the
//! source's replication ID, the stream offset applied, the database the stream had
//! selected there).
//!
//! The marker is written inside the same MULTI … EXEC as each batch of replicated commands
//! ([`crate::sinks::applier`]), and after the last RESTORE of a full sync. A
//! target that keeps a prefix of what it ran (AOF, RDB, a restart that lost recent writes)
//! therefore keeps data and marker in agreement: on resume the marker, not ferry's state
//! file, says where the target's data ends. `ferry verify` ignores the key; `cutover`
//! removes it with [`delete`].
//!
//! A cluster source has one stream per shard, each written over its own connection: its
//! marker on a standalone target is one field per shard stream in the hash
//! [`SHARDS_KEY`] ([`push_shard_write`], [`read_shards`]), written the same way. A cluster
//! target keeps a marker per slot instead (`cluster::markers`).

use super::MarkerCommands;
use crate::server::client::{one_line, Client, ClientError};
use ferry_repl::resp::Frame;

/// The marker's key name: ferry's namespace, saying what it is.
pub const KEY: &str = "ferry:migrate:applied";
/// The database the marker lives in.
pub const DB: u64 = 0;

/// What the target holds: every command of the source's stream `replid` up to `offset`,
/// with database `db` selected at that point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub replid: String,
    pub offset: i64,
    pub db: u64,
}

/// The marker of a cluster source's shard streams on a standalone target.
pub const SHARDS_KEY: &str = "ferry:migrate:applied:shards";

/// True for ferry's marker keys' names: [`KEY`], [`SHARDS_KEY`], a cluster target's
/// per-slot markers (`ferry:migrate:applied:{tag}`) and a spooled load's position
/// ([`super::loading_marker::KEY`]), all in database [`DB`].
pub fn is_marker(key: &[u8]) -> bool {
    key == KEY.as_bytes()
        || key == super::loading_marker::KEY.as_bytes()
        || key.starts_with(b"ferry:migrate:applied:")
}

/// Where one shard stream of a cluster source is on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardApplied {
    /// The replication ID the stream had at `offset` (a failover changes it).
    pub replid: String,
    pub offset: i64,
}

/// Appends the write of shard stream `stream`'s marker (framing), selecting database
/// [`DB`] around it when `selected` differs.
pub fn push_shard_write(
    batch: &mut impl MarkerCommands,
    stream: &str,
    applied: &ShardApplied,
    selected: u64,
) {
    let mut on = selected;
    push_select(batch, DB, &mut on);
    let value = format!("{} {}", applied.replid, applied.offset);
    batch.push_framing(&["HSET", SHARDS_KEY, stream, value.as_str()]);
    push_select(batch, selected, &mut on);
}

/// Every shard stream's marker, by stream name. Leaves database [`DB`] selected.
pub async fn read_shards(
    client: &mut Client,
) -> Result<std::collections::HashMap<String, ShardApplied>, MarkerError> {
    client.call_ok(&["SELECT", &DB.to_string()]).await?;
    let reply = client.call(&["HGETALL", SHARDS_KEY]).await?;
    let fields = match hash_fields(&reply) {
        Ok(fields) => fields,
        Err(HashReply::Error(message)) => return Err(MarkerError::Foreign(message)),
        Err(HashReply::NotAHash(what)) => {
            return Err(MarkerError::Foreign(format!(
                "HGETALL {SHARDS_KEY} answered {what}"
            )))
        }
        Err(HashReply::NotText) => {
            return Err(MarkerError::Foreign(format!(
                "{SHARDS_KEY} holds a field that is not text"
            )))
        }
    };
    let mut shards = std::collections::HashMap::new();
    for (stream, value) in fields {
        let parsed = value
            .split_once(' ')
            .and_then(|(replid, offset)| Some((replid, offset.parse::<i64>().ok()?)));
        let Some((replid, offset)) = parsed else {
            return Err(MarkerError::Foreign(format!(
                "{SHARDS_KEY} holds {value:?} for {stream}, not \"replid offset\""
            )));
        };
        shards.insert(
            stream,
            ShardApplied {
                replid: replid.to_owned(),
                offset,
            },
        );
    }
    Ok(shards)
}

/// Appends the commands that write `applied` to `batch`, framing replies all of them (not
/// counted as commands applied). The connection has `selected` selected before and after:
/// the marker's database is selected around the write when it differs. `stale_in` are
/// databases a SWAPDB in this batch may have carried an earlier marker into; it is
/// removed from them first.
pub fn push_write(
    batch: &mut impl MarkerCommands,
    applied: &Applied,
    selected: u64,
    stale_in: &[u64],
) {
    let mut on = selected;
    for &db in stale_in.iter().filter(|&&db| db != DB) {
        push_select(batch, db, &mut on);
        batch.push_framing(&["DEL", KEY]);
    }
    push_select(batch, DB, &mut on);
    let offset = applied.offset.to_string();
    let db = applied.db.to_string();
    batch.push_framing(&[
        "HSET",
        KEY,
        "replid",
        applied.replid.as_str(),
        "offset",
        offset.as_str(),
        "db",
        db.as_str(),
    ]);
    push_select(batch, selected, &mut on);
}

/// Appends the removal of the marker (the full sync that replaces the target's data
/// starts with it). Leaves the marker's database selected.
pub fn push_delete(batch: &mut impl MarkerCommands) {
    let db = DB.to_string();
    batch.push_framing(&["SELECT", db.as_str()]);
    batch.push_framing(&["DEL", KEY]);
}

fn push_select(batch: &mut impl MarkerCommands, db: u64, on: &mut u64) {
    if *on != db {
        let number = db.to_string();
        batch.push_framing(&["SELECT", number.as_str()]);
        *on = db;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot read ferry's marker {KEY} (db {DB}): {0}")]
    Foreign(String),
}

/// Reads the marker; `None` when the target has none. Leaves database [`DB`] selected.
pub async fn read(client: &mut Client) -> Result<Option<Applied>, MarkerError> {
    client.call_ok(&["SELECT", &DB.to_string()]).await?;
    let reply = client
        .call(&["HMGET", KEY, "replid", "offset", "db"])
        .await?;
    let fields = match reply {
        Frame::Array(fields) => fields,
        Frame::Error(message) | Frame::BulkError(message) => {
            return Err(MarkerError::Foreign(one_line(&message)))
        }
        other => {
            return Err(MarkerError::Foreign(format!(
                "HMGET answered {}",
                other.describe()
            )))
        }
    };
    let text = |frame: &Frame| match frame {
        Frame::Bulk(bytes) | Frame::Simple(bytes) => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
        _ => None,
    };
    let values: Vec<Option<String>> = fields.iter().map(text).collect();
    match values.as_slice() {
        [None, None, None] => Ok(None),
        [Some(replid), Some(offset), Some(db)] => parse(replid, offset, db).map(Some),
        _ => Err(MarkerError::Foreign(
            "it lacks some of the fields replid, offset, db".into(),
        )),
    }
}

fn parse(replid: &str, offset: &str, db: &str) -> Result<Applied, MarkerError> {
    let offset = offset
        .parse::<i64>()
        .map_err(|_| MarkerError::Foreign(format!("offset {offset:?} is not a number")))?;
    let db = db
        .parse::<u64>()
        .map_err(|_| MarkerError::Foreign(format!("db {db:?} is not a database number")))?;
    Ok(Applied {
        replid: replid.to_owned(),
        offset,
        db,
    })
}

/// Why an `HGETALL` reply is not a hash of text fields.
pub(super) enum HashReply {
    /// An error reply, made one line.
    Error(String),
    /// Something else than a hash: what it was.
    NotAHash(String),
    /// A field or value that is not text.
    NotText,
}

/// An `HGETALL` reply (RESP2 flat array or RESP3 map) as (field, value) text pairs: what
/// both markers' readers take apart.
pub(super) fn hash_fields(reply: &Frame) -> Result<Vec<(String, String)>, HashReply> {
    let items: Vec<&Frame> = match reply {
        Frame::Array(items) => items.iter().collect(),
        Frame::Map(pairs) => pairs.iter().flat_map(|(k, v)| [k, v]).collect(),
        Frame::Error(message) | Frame::BulkError(message) => {
            return Err(HashReply::Error(one_line(message)))
        }
        other => return Err(HashReply::NotAHash(other.describe())),
    };
    let text = |frame: &Frame| match frame {
        Frame::Bulk(bytes) | Frame::Simple(bytes) => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
        _ => None,
    };
    items
        .chunks(2)
        .map(|pair| {
            match (
                pair.first().and_then(|f| text(f)),
                pair.get(1).and_then(|f| text(f)),
            ) {
                (Some(field), Some(value)) => Ok((field, value)),
                _ => Err(HashReply::NotText),
            }
        })
        .collect()
}

/// Removes the marker (cutover: the target is on its own from then on). Returns whether
/// there was one. Leaves database [`DB`] selected.
pub async fn delete(client: &mut Client) -> Result<bool, ClientError> {
    client.call_ok(&["SELECT", &DB.to_string()]).await?;
    match client.call_ok(&["DEL", KEY]).await? {
        Frame::Integer(removed) => Ok(removed > 0),
        other => Err(ClientError::Protocol(format!(
            "DEL answered {}",
            other.describe()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::writer::pipe::Batch;

    fn text(batch: &Batch) -> String {
        String::from_utf8_lossy(&batch.payload).replace("\r\n", " ")
    }

    fn applied(db: u64) -> Applied {
        Applied {
            replid: "r".into(),
            offset: 42,
            db,
        }
    }

    #[test]
    fn the_write_selects_the_marker_db_and_back() {
        let mut batch = Batch::default();
        push_write(&mut batch, &applied(3), 3, &[]);
        assert_eq!(
            text(&batch),
            "*2 $6 SELECT $1 0 \
             *8 $4 HSET $21 ferry:migrate:applied $6 replid $1 r $6 offset $2 42 $2 db $1 3 \
             *2 $6 SELECT $1 3 "
        );
        assert_eq!((batch.replies, batch.framing), (3, 3));

        let mut batch = Batch::default();
        push_write(&mut batch, &applied(0), 0, &[]);
        assert!(text(&batch).starts_with("*8 $4 HSET"), "{}", text(&batch));
        assert_eq!(batch.replies, 1);
    }

    #[test]
    fn a_marker_swapped_away_is_removed_first() {
        let mut batch = Batch::default();
        push_write(&mut batch, &applied(0), 0, &[5, 0]);
        assert_eq!(
            text(&batch),
            "*2 $6 SELECT $1 5 *2 $3 DEL $21 ferry:migrate:applied \
             *2 $6 SELECT $1 0 \
             *8 $4 HSET $21 ferry:migrate:applied $6 replid $1 r $6 offset $2 42 $2 db $1 0 "
        );
    }

    #[test]
    fn malformed_fields_are_named() {
        assert_eq!(parse("r", "7", "2").unwrap(), applied(2).with_offset(7));
        let err = parse("r", "x", "2").unwrap_err().to_string();
        assert!(err.contains("offset \"x\" is not a number"), "{err}");
        assert!(is_marker(b"ferry:migrate:applied"));
        assert!(is_marker(b"ferry:migrate:applied:shards"));
        assert!(is_marker(b"ferry:migrate:applied:{12}"));
        assert!(is_marker(b"ferry:migrate:loading"));
        assert!(!is_marker(b"ferry:migrate:appliedx"));
        assert!(!is_marker(b"user:ferry:migrate:applied"));
    }

    #[test]
    fn a_shard_marker_is_one_field_of_the_shards_hash() {
        let mut batch = Batch::default();
        let applied = ShardApplied {
            replid: "r".into(),
            offset: 9,
        };
        push_shard_write(&mut batch, "origin1", &applied, 0);
        assert_eq!(
            text(&batch),
            "*4 $4 HSET $28 ferry:migrate:applied:shards $7 origin1 $3 r 9 "
        );
        assert_eq!(batch.framing, 1);
    }

    impl Applied {
        fn with_offset(mut self, offset: i64) -> Self {
            self.offset = offset;
            self
        }
    }
}
