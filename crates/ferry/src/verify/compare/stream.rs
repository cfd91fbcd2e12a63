//! Streams: XLEN; XINFO STREAM metadata; entries in XRANGE windows side by side; then per
//! consumer group its XINFO GROUPS state, its PEL (XPENDING, extended form, in windows)
//! and its consumers. Idle and seen times are clock readings and are not compared;
//! neither are consumers without pending entries and an unknown entries-read, which
//! Redis does not always replicate (see the testkit's `forget_unreplicated_group_state`).
//! A group's entries-read is compared only where the source replicates it
//! ([`Abilities::group_counters_replicated`](crate::verify::endpoint::Abilities)); from an
//! older Redis a difference there is a note, not a difference: the source's own replicas
//! show the same.

use super::{Findings, Pair, CHUNK};
use crate::verify::endpoint::Endpoint;
use crate::verify::error::VerifyError;
use crate::verify::reply;
use crate::verify::report::{excerpt, printable, DiffKind};
use redis::Value;
use std::collections::BTreeMap;

/// The note for a stream whose group counters differ on a source that does not
/// replicate them.
pub const ENTRIES_READ_NOT_REPLICATED: &str = "stream group entries-read (and so lag) \
     differs; the source (Redis before 7.4) does not replicate it to replicas either";

pub fn compare(pair: &mut Pair, key: &[u8], findings: &mut Findings) -> Result<(), VerifyError> {
    let xlen = redis::cmd("XLEN").arg(key).clone();
    let source_len: i64 = pair.source.query(&xlen)?;
    let target_len: i64 = pair.target.query(&xlen)?;
    if source_len != target_len {
        findings.push(
            DiffKind::Value,
            format!("length {source_len} vs {target_len}"),
        );
        return Ok(());
    }
    metadata(pair, key, findings)?;
    entries(pair, key, findings)?;
    if !findings.full() {
        groups(pair, key, findings)?;
    }
    Ok(())
}

fn metadata(pair: &mut Pair, key: &[u8], findings: &mut Findings) -> Result<(), VerifyError> {
    let info = redis::cmd("XINFO").arg("STREAM").arg(key).clone();
    let a: Value = pair.source.query(&info)?;
    let b: Value = pair.target.query(&info)?;
    let a = reply::fields(&a).ok_or_else(|| pair.source.reply_error("XINFO STREAM"))?;
    let b = reply::fields(&b).ok_or_else(|| pair.target.reply_error("XINFO STREAM"))?;
    // The last three are reported by Redis 7.0+ and Valkey only: compared where both do.
    for name in [
        "last-generated-id",
        "entries-added",
        "max-deleted-entry-id",
        "recorded-first-entry-id",
    ] {
        let x = reply::field(&a, name).and_then(reply::text);
        let y = reply::field(&b, name).and_then(reply::text);
        if let (Some(x), Some(y)) = (x, y) {
            if x != y {
                findings.push(DiffKind::Value, format!("{name} {x} vs {y}"));
            }
        }
    }
    Ok(())
}

fn entries(pair: &mut Pair, key: &[u8], findings: &mut Findings) -> Result<(), VerifyError> {
    let mut start = "-".to_owned();
    loop {
        let range = redis::cmd("XRANGE")
            .arg(key)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(CHUNK)
            .clone();
        let a: Vec<Value> = pair.source.query(&range)?;
        let b: Vec<Value> = pair.target.query(&range)?;
        if let Some(at) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
            let id = |v: &[Value]| {
                v.get(at)
                    .and_then(entry_id)
                    .unwrap_or_else(|| "nothing".into())
            };
            findings.push(
                DiffKind::Value,
                format!("entry {} vs {} (or its fields differ)", id(&a), id(&b)),
            );
            return Ok(());
        }
        match a.last().and_then(entry_id).and_then(|id| successor(&id)) {
            Some(next) if a.len() == CHUNK => start = next,
            _ => return Ok(()),
        }
    }
}

fn entry_id(entry: &Value) -> Option<String> {
    reply::items(entry)?.first().and_then(reply::text)
}

/// The smallest ID after `id` ("ms-seq"): an inclusive XRANGE start that works on Redis
/// 6.0 too, which lacks the exclusive "(" form.
fn successor(id: &str) -> Option<String> {
    let (ms, seq) = id.split_once('-')?;
    let (ms, seq): (u64, u64) = (ms.parse().ok()?, seq.parse().ok()?);
    match seq.checked_add(1) {
        Some(seq) => Some(format!("{ms}-{seq}")),
        None => Some(format!("{}-0", ms.checked_add(1)?)),
    }
}

struct GroupState {
    last_delivered_id: Option<String>,
    pending: Option<i64>,
    entries_read: Option<i64>,
}

fn group_states(
    endpoint: &mut Endpoint,
    key: &[u8],
) -> Result<BTreeMap<Vec<u8>, GroupState>, VerifyError> {
    let reply: Value = endpoint.query(redis::cmd("XINFO").arg("GROUPS").arg(key))?;
    let mut groups = BTreeMap::new();
    for group in reply::items(&reply).unwrap_or_default() {
        let fields = reply::fields(group).ok_or_else(|| endpoint.reply_error("XINFO GROUPS"))?;
        let name = reply::field(&fields, "name")
            .and_then(reply::bytes)
            .ok_or_else(|| endpoint.reply_error("XINFO GROUPS"))?;
        groups.insert(
            name,
            GroupState {
                last_delivered_id: reply::field(&fields, "last-delivered-id").and_then(reply::text),
                pending: reply::field(&fields, "pending").and_then(reply::int),
                entries_read: reply::field(&fields, "entries-read").and_then(reply::int),
            },
        );
    }
    Ok(groups)
}

fn groups(pair: &mut Pair, key: &[u8], findings: &mut Findings) -> Result<(), VerifyError> {
    let a = group_states(&mut pair.source, key)?;
    let b = group_states(&mut pair.target, key)?;
    for name in a.keys().filter(|n| !b.contains_key(*n)) {
        findings.push(
            DiffKind::Value,
            format!("group {} not on the target", excerpt(name)),
        );
    }
    for name in b.keys().filter(|n| !a.contains_key(*n)) {
        findings.push(
            DiffKind::Value,
            format!("group {} only on the target", excerpt(name)),
        );
    }
    for (name, x) in &a {
        let Some(y) = b.get(name) else { continue };
        let group = excerpt(name);
        if x.last_delivered_id != y.last_delivered_id {
            findings.push(
                DiffKind::Value,
                format!(
                    "group {group} last-delivered-id {} vs {}",
                    x.last_delivered_id.as_deref().unwrap_or("?"),
                    y.last_delivered_id.as_deref().unwrap_or("?")
                ),
            );
        }
        if x.pending != y.pending {
            findings.push(
                DiffKind::Value,
                format!(
                    "group {group} pending {} vs {}",
                    x.pending.unwrap_or(-1),
                    y.pending.unwrap_or(-1)
                ),
            );
        }
        if let (Some(r), Some(s)) = (x.entries_read, y.entries_read) {
            if r != s && pair.source.abilities.group_counters_replicated {
                findings.push(
                    DiffKind::Value,
                    format!("group {group} entries-read {r} vs {s}"),
                );
            } else if r != s {
                findings.note = Some(ENTRIES_READ_NOT_REPLICATED);
            }
        }
        pending_entries(pair, key, name, findings)?;
        consumers(pair, key, name, findings)?;
        if findings.full() {
            return Ok(());
        }
    }
    Ok(())
}

/// The PEL side by side: (id, consumer, delivery count) of each entry.
fn pending_entries(
    pair: &mut Pair,
    key: &[u8],
    group: &[u8],
    findings: &mut Findings,
) -> Result<(), VerifyError> {
    let mut start = "-".to_owned();
    loop {
        let xpending = redis::cmd("XPENDING")
            .arg(key)
            .arg(group)
            .arg(&start)
            .arg("+")
            .arg(CHUNK)
            .clone();
        let a = pel_window(&mut pair.source, &xpending)?;
        let b = pel_window(&mut pair.target, &xpending)?;
        if let Some(at) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
            let show = |v: &[(String, Vec<u8>, i64)]| {
                v.get(at)
                    .map_or("nothing".to_owned(), |(id, consumer, count)| {
                        format!("{id} consumer {} delivered {count}", excerpt(consumer))
                    })
            };
            findings.push(
                DiffKind::Value,
                format!(
                    "group {} pending entry: {} vs {}",
                    excerpt(group),
                    show(&a),
                    show(&b)
                ),
            );
            return Ok(());
        }
        match a.last().and_then(|(id, _, _)| successor(id)) {
            Some(next) if a.len() == CHUNK => start = next,
            _ => return Ok(()),
        }
    }
}

fn pel_window(
    endpoint: &mut Endpoint,
    xpending: &redis::Cmd,
) -> Result<Vec<(String, Vec<u8>, i64)>, VerifyError> {
    let reply: Vec<Value> = endpoint.query(xpending)?;
    reply
        .iter()
        .map(|entry| match reply::items(entry) {
            // [id, consumer, idle ms, delivery count]; idle time is a clock reading.
            Some([id, consumer, _idle, count]) => Some((
                reply::text(id)?,
                reply::bytes(consumer)?,
                reply::int(count)?,
            )),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| endpoint.reply_error("XPENDING"))
}

/// Consumers that own pending entries, with their counts.
fn consumers(
    pair: &mut Pair,
    key: &[u8],
    group: &[u8],
    findings: &mut Findings,
) -> Result<(), VerifyError> {
    let a = consumer_counts(&mut pair.source, key, group)?;
    let b = consumer_counts(&mut pair.target, key, group)?;
    if a != b {
        let show = |m: &BTreeMap<Vec<u8>, i64>| {
            m.iter()
                .map(|(n, c)| format!("{}={c}", printable(n)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        findings.push(
            DiffKind::Value,
            format!(
                "group {} consumers [{}] vs [{}]",
                excerpt(group),
                show(&a),
                show(&b)
            ),
        );
    }
    Ok(())
}

fn consumer_counts(
    endpoint: &mut Endpoint,
    key: &[u8],
    group: &[u8],
) -> Result<BTreeMap<Vec<u8>, i64>, VerifyError> {
    let reply: Value = endpoint.query(redis::cmd("XINFO").arg("CONSUMERS").arg(key).arg(group))?;
    let mut counts = BTreeMap::new();
    for consumer in reply::items(&reply).unwrap_or_default() {
        let fields =
            reply::fields(consumer).ok_or_else(|| endpoint.reply_error("XINFO CONSUMERS"))?;
        let name = reply::field(&fields, "name").and_then(reply::bytes);
        let pending = reply::field(&fields, "pending")
            .and_then(reply::int)
            .unwrap_or(0);
        if let (Some(name), true) = (name, pending > 0) {
            counts.insert(name, pending);
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::successor;

    #[test]
    fn successor_steps_the_sequence_then_the_time() {
        assert_eq!(successor("5-1").as_deref(), Some("5-2"));
        assert_eq!(
            successor(&format!("5-{}", u64::MAX)).as_deref(),
            Some("6-0")
        );
        assert_eq!(successor("junk"), None);
    }
}
