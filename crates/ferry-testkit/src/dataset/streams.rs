//! Streams with many listpack nodes, deletions, trimming, two consumer groups, pending
//! entries of two consumers, acknowledgements and a claim. IDs are explicit: the data must
//! not depend on the clock.

use anyhow::{Context, Result};
use redis::{Connection, Value};

use super::{expire_far, send};
use crate::rng::Rng;
use crate::ServerKind;

const MAIN: &str = "stream:main";
const BASE_MS: u64 = 1_700_000_000_000;

pub(super) fn streams(con: &mut Connection, rng: &mut Rng, kind: ServerKind) -> Result<()> {
    let mut pipe = redis::pipe();
    let mut ids = Vec::new();
    for i in 0..1500u64 {
        let id = format!("{}-{}", BASE_MS + i / 3, i % 3);
        let mut xadd = redis::cmd("XADD");
        xadd.arg(MAIN).arg(&id);
        // Field sets change over time, so entries both match and differ from their node's
        // master entry.
        match i {
            0..=499 => {
                xadd.arg("temp")
                    .arg(rng.below(40))
                    .arg("hum")
                    .arg(rng.below(100));
            }
            500..=999 => {
                let note_len = 1 + rng.below(30) as usize;
                xadd.arg("temp")
                    .arg(rng.below(40))
                    .arg("hum")
                    .arg(rng.below(100))
                    .arg("note")
                    .arg(rng.text(note_len, b"note "));
            }
            _ => {
                xadd.arg("event").arg(format!("e{}", rng.below(10)));
                if i % 7 == 0 {
                    xadd.arg("payload").arg(rng.bytes(40));
                }
            }
        }
        pipe.add_command(xadd).ignore();
        ids.push(id);
    }
    for id in ids.iter().skip(5).step_by(37) {
        pipe.cmd("XDEL").arg(MAIN).arg(id).ignore();
    }
    pipe.cmd("XTRIM").arg(MAIN).arg("MAXLEN").arg(1400).ignore();
    pipe.cmd("XGROUP")
        .arg("CREATE")
        .arg(MAIN)
        .arg("g1")
        .arg("0")
        .ignore();
    pipe.cmd("XGROUP")
        .arg("CREATE")
        .arg(MAIN)
        .arg("g2")
        .arg(&ids[1200])
        .ignore();
    for (group, consumer, count) in [("g1", "alice", 30), ("g1", "bob", 20), ("g2", "carol", 5)] {
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(MAIN)
            .arg(">")
            .ignore();
    }
    if kind.is_redis7_or_later() {
        // A consumer that never read anything.
        pipe.cmd("XGROUP")
            .arg("CREATECONSUMER")
            .arg(MAIN)
            .arg("g2")
            .arg("dave")
            .ignore();
    }
    send(con, &pipe, "stream:main")?;

    let alice = pending_ids(con, "g1", "alice")?;
    let mut pipe = redis::pipe();
    pipe.cmd("XACK")
        .arg(MAIN)
        .arg("g1")
        .arg(&alice[..10])
        .ignore();
    // Claimed by bob: moves between consumers and bumps its delivery count.
    pipe.cmd("XCLAIM")
        .arg(MAIN)
        .arg("g1")
        .arg("bob")
        .arg(0)
        .arg(&alice[10])
        .ignore();

    // Empty but with history: last ID and deletions remain.
    pipe.cmd("XADD")
        .arg("stream:emptied")
        .arg("5-1")
        .arg("f")
        .arg("v")
        .ignore();
    pipe.cmd("XDEL").arg("stream:emptied").arg("5-1").ignore();
    pipe.cmd("XGROUP")
        .arg("CREATE")
        .arg("stream:group-only")
        .arg("g")
        .arg("$")
        .arg("MKSTREAM")
        .ignore();
    pipe.cmd("XADD")
        .arg("ttl:stream")
        .arg("1-1")
        .arg("a")
        .arg("b")
        .ignore();
    expire_far(&mut pipe, "ttl:stream", 9);
    send(con, &pipe, "stream acks and small streams")?;
    small_stream(con, "stream:small")
}

pub(super) fn small_stream(con: &mut Connection, key: &str) -> Result<()> {
    let mut pipe = redis::pipe();
    for (id, value) in [("1-1", "one"), ("1-2", "two"), ("2-0", "three")] {
        pipe.cmd("XADD")
            .arg(key)
            .arg(id)
            .arg("v")
            .arg(value)
            .ignore();
    }
    pipe.cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg("readers")
        .arg("0")
        .ignore();
    pipe.cmd("XREADGROUP")
        .arg("GROUP")
        .arg("readers")
        .arg("r1")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .ignore();
    send(con, &pipe, key)
}

/// IDs pending for one consumer, oldest first.
fn pending_ids(con: &mut Connection, group: &str, consumer: &str) -> Result<Vec<String>> {
    let reply: Vec<Value> = redis::cmd("XPENDING")
        .arg(MAIN)
        .arg(group)
        .arg("-")
        .arg("+")
        .arg(100)
        .arg(consumer)
        .query(con)
        .context("XPENDING failed")?;
    let ids: Vec<String> = reply
        .iter()
        .filter_map(|entry| match entry {
            Value::Array(fields) => match fields.first() {
                Some(Value::BulkString(id)) => Some(String::from_utf8_lossy(id).into_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    anyhow::ensure!(
        ids.len() > 10,
        "expected over 10 pending entries for {consumer}, got {}",
        ids.len()
    );
    Ok(ids)
}
