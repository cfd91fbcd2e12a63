//! ferry's resume markers on a cluster target: one hash per slot,
//! `ferry:migrate:applied:{tag}` (the tag puts it in that slot), with one field per source
//! stream (a standalone source, or each shard of a cluster source) holding the stream
//! offset applied to that slot.
//!
//! Why per slot: a transaction on a cluster runs within one slot, so the marker can be
//! atomic with the data only there. Every batch of the stream reaches each slot it
//! touches as one `MULTI … HSET marker … EXEC` ([`crate::sinks::writer::cluster::split`]). After a crash, a
//! resumed run reads the markers ([`read_all`]) and leaves out, slot by slot, what the
//! target already holds: a command whose end offset is at or below its slot's marker was
//! applied with it, one above it was not (see [`Applied`]). A replayed `INCR` or `XADD`
//! therefore runs once.
//!
//! Commands for every node (FLUSHALL, FUNCTION, SCRIPT) carry no marker and are sent again
//! on a replay: FLUSHALL and FLUSHDB come out the same, and they delete the markers
//! written before them, so what followed them is applied again too. On a cluster with
//! several databases a FLUSHDB of another database than the markers' leaves them, and
//! with them no way to tell what of its database came after it: a replay that meets one
//! stops (see `SplitError::FlushDbInReplay`).

use super::marker::{hash_fields, HashReply};
use super::MarkerCommands;
use crate::server::client::{parse_scan, Client, ClientError};
use crate::server::cluster::slot::{key_slot, tag_for_slot};
use crate::server::cluster::topology::SlotMap;
use crate::url::ServerUrl;
use bytes::Bytes;
use ferry_repl::resp::Frame;
use std::collections::HashMap;
use std::time::Duration;

/// The database the markers are in, whatever databases a cluster has.
pub const DB: u64 = 0;

/// What every per-slot marker key starts with; the rest is `{tag}`.
pub const PREFIX: &str = "ferry:migrate:applied:";

/// The marker key of `slot`.
pub fn key(slot: u16) -> String {
    format!("{PREFIX}{{{}}}", tag_for_slot(slot))
}

/// True for a per-slot marker key's name.
pub fn is_slot_marker(key: &[u8]) -> bool {
    key.starts_with(PREFIX.as_bytes())
}

/// Appends the write of `stream`'s marker for `slot` (framing: not a command applied).
pub fn push_write(batch: &mut impl MarkerCommands, slot: u16, stream: &str, offset: i64) {
    let offset = offset.to_string();
    batch.push_framing(&["HSET", key(slot).as_str(), stream, offset.as_str()]);
}

/// One stream's markers: the offset applied to each slot it wrote to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub by_slot: HashMap<u16, i64>,
}

impl Applied {
    /// Whether the commands for `slot` of the unit ending at `offset` are on the target.
    pub fn holds(&self, slot: u16, offset: i64) -> bool {
        self.by_slot.get(&slot).is_some_and(|&at| offset <= at)
    }

    /// The highest offset any slot holds: past it, nothing is left out.
    pub fn highest(&self) -> Option<i64> {
        self.by_slot.values().copied().max()
    }
}

/// Every stream's markers on the cluster, by stream name.
pub type AllApplied = HashMap<String, Applied>;

/// Reads every marker from every primary of `map` (connecting with `url`'s credentials
/// and TLS). A slot's marker is taken from the node serving the slot.
pub async fn read_all(
    url: &ServerUrl,
    map: &SlotMap,
    connect_timeout: Duration,
) -> Result<AllApplied, ClientError> {
    let mut all = AllApplied::new();
    for (index, node) in map.nodes.iter().enumerate() {
        let mut node_url = url.clone();
        node_url.host = node.host.clone();
        node_url.port = node.port;
        let mut client = Client::connect(&node_url, connect_timeout).await?;
        for key in scan_markers(&mut client).await? {
            let slot = key_slot(&key);
            if map.owner(slot) != Some(index) {
                continue;
            }
            let fields = client.call_ok(&[&b"HGETALL"[..], &key[..]]).await?;
            for (stream, offset) in pairs(&fields)? {
                all.entry(stream).or_default().by_slot.insert(slot, offset);
            }
        }
    }
    Ok(all)
}

/// The marker keys on the node behind `client`.
async fn scan_markers(client: &mut Client) -> Result<Vec<Bytes>, ClientError> {
    let pattern = format!("{PREFIX}*");
    let mut cursor = Bytes::from_static(b"0");
    let mut keys = Vec::new();
    loop {
        let reply = client
            .call_ok(&[
                &b"SCAN"[..],
                &cursor,
                b"MATCH",
                pattern.as_bytes(),
                b"COUNT",
                b"1000",
            ])
            .await?;
        let (next, found) = parse_scan(reply)?;
        keys.extend(found);
        if next.as_ref() == b"0" {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// `HGETALL`'s reply as (stream, offset) pairs; a value that is no offset is an error.
fn pairs(reply: &Frame) -> Result<Vec<(String, i64)>, ClientError> {
    let fields = hash_fields(reply).map_err(|why| match why {
        HashReply::NotText => {
            ClientError::Protocol("a ferry marker holds a field that is not text".into())
        }
        HashReply::NotAHash(what) | HashReply::Error(what) => {
            ClientError::Protocol(format!("HGETALL answered {what}"))
        }
    })?;
    fields
        .into_iter()
        .map(|(stream, offset)| {
            let offset = offset.parse::<i64>().map_err(|_| {
                ClientError::Protocol(format!(
                    "a ferry marker ({PREFIX}…) holds {offset:?} for {stream}, not an offset"
                ))
            })?;
            Ok((stream, offset))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn each_slot_has_its_own_marker_key_in_that_slot() {
        for slot in [0, 1, 5460, 16383] {
            let key = key(slot);
            assert!(key.starts_with(PREFIX), "{key}");
            assert_eq!(key_slot(key.as_bytes()), slot);
            assert!(is_slot_marker(key.as_bytes()));
        }
        assert!(!is_slot_marker(b"ferry:migrate:applied"));
    }

    #[test]
    fn a_unit_is_held_when_its_end_is_at_or_below_the_slot_marker() {
        let applied = Applied {
            by_slot: HashMap::from([(7, 100)]),
        };
        assert!(applied.holds(7, 90) && applied.holds(7, 100));
        assert!(!applied.holds(7, 101));
        assert!(!applied.holds(8, 1));
        assert_eq!(applied.highest(), Some(100));
    }

    #[test]
    fn marker_fields_parse_or_name_what_is_wrong() {
        let bulk = |t: &str| Frame::Bulk(Bytes::copy_from_slice(t.as_bytes()));
        let reply = Frame::Array(vec![bulk("r1"), bulk("42"), bulk("r2"), bulk("7")]);
        assert_eq!(
            pairs(&reply).unwrap(),
            [("r1".to_string(), 42), ("r2".to_string(), 7)]
        );
        let error = pairs(&Frame::Array(vec![bulk("r1"), bulk("x")])).unwrap_err();
        assert!(error.to_string().contains("\"x\" for r1"), "{error}");
    }
}
