//! How far a load from the spool got, recorded on the target itself: the hash
//! `ferry:migrate:loading` in database 0, one field per snapshot (named by its replication
//! ID, as a cluster source's shard streams are), valued `offset at keys`: the snapshot's
//! stream offset, the spooled snapshot's byte where the next key starts, and the keys
//! before it.
//!
//! It goes on the target's one connection after the keys it counts, so a target that
//! keeps a prefix of its writes (a restart with AOF or RDB) keeps a marker that never
//! claims more than it holds: a resumed load starts at `at` and writes again, by RESTORE
//! … REPLACE, any key the target took after the marker. The field is removed in the
//! batch that writes the stream marker at the load's end ([`super::marker`]).

use super::marker::{hash_fields, HashReply, MarkerError, DB};
use super::MarkerCommands;
use crate::server::client::Client;

pub const KEY: &str = "ferry:migrate:loading";

/// A load's position in the spooled snapshot of `replid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loading {
    pub replid: String,
    pub offset: i64,
    /// Keys starting before this byte are on the target.
    pub at: u64,
    pub keys: u64,
}

/// Appends the write of `loading` (framing), leaving database [`DB`] selected.
pub fn push_write(batch: &mut impl MarkerCommands, loading: &Loading) {
    let db = DB.to_string();
    let value = format!("{} {} {}", loading.offset, loading.at, loading.keys);
    batch.push_framing(&["SELECT", db.as_str()]);
    batch.push_framing(&["HSET", KEY, loading.replid.as_str(), value.as_str()]);
}

/// Appends the removal of snapshot `replid`'s position (its load is complete), leaving
/// database [`DB`] selected.
pub fn push_delete(batch: &mut impl MarkerCommands, replid: &str) {
    let db = DB.to_string();
    batch.push_framing(&["SELECT", db.as_str()]);
    batch.push_framing(&["HDEL", KEY, replid]);
}

/// The position of snapshot `replid`'s load, if the target has one. Leaves database
/// [`DB`] selected.
pub async fn read(client: &mut Client, replid: &str) -> Result<Option<Loading>, MarkerError> {
    client.call_ok(&["SELECT", &DB.to_string()]).await?;
    let reply = client.call(&["HGETALL", KEY]).await?;
    let fields = hash_fields(&reply).map_err(|error| {
        MarkerError::Foreign(match error {
            HashReply::Error(message) => message,
            HashReply::NotAHash(what) => format!("HGETALL {KEY} answered {what}"),
            HashReply::NotText => format!("{KEY} holds a field that is not text"),
        })
    })?;
    let Some((_, value)) = fields.iter().find(|(field, _)| field == replid) else {
        return Ok(None);
    };
    parse(replid, value).map(Some)
}

fn parse(replid: &str, value: &str) -> Result<Loading, MarkerError> {
    let bad = || MarkerError::Foreign(format!("{KEY} holds {value:?}, not \"offset at keys\""));
    let mut words = value.split(' ');
    let mut next = || words.next().ok_or_else(bad);
    let offset = next()?.parse().map_err(|_| bad())?;
    let at = next()?.parse().map_err(|_| bad())?;
    let keys = next()?.parse().map_err(|_| bad())?;
    Ok(Loading {
        replid: replid.to_owned(),
        offset,
        at,
        keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::writer::pipe::Batch;

    #[test]
    fn the_position_is_one_field_named_by_the_snapshot() {
        let loading = Loading {
            replid: "r1".into(),
            offset: 7,
            at: 4096,
            keys: 12,
        };
        let mut batch = Batch::default();
        push_write(&mut batch, &loading);
        assert_eq!(
            String::from_utf8_lossy(&batch.payload).replace("\r\n", " "),
            "*2 $6 SELECT $1 0 *4 $4 HSET $21 ferry:migrate:loading $2 r1 $9 7 4096 12 "
        );
        assert_eq!(batch.framing, 2);
        assert_eq!(parse("r1", "7 4096 12").unwrap(), loading);
        let error = parse("r1", "7 x").unwrap_err().to_string();
        assert!(error.contains("not \"offset at keys\""), "{error}");
    }
}
