//! Lists, sets, sorted sets and hashes, each in its small (listpack/ziplist/intset) and large
//! (quicklist/hashtable/skiplist) encodings.

use anyhow::{Context, Result};
use redis::Connection;

use super::{expire_far, send, BIG_LIST_LEN};
use crate::rng::Rng;
use crate::ServerKind;

pub(super) fn lists(con: &mut Connection, rng: &mut Rng, kind: ServerKind) -> Result<()> {
    let mut pipe = redis::pipe();
    // Small: one listpack (ziplist inside a quicklist node on 6.0). Integers of each width.
    let small: Vec<Vec<u8>> = [
        "a",
        "1",
        "-2",
        "hello world",
        "",
        "3.5",
        "1000",
        "1099511627776",
        "-70000",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    pipe.cmd("RPUSH").arg("list:small").arg(&small).ignore();
    pipe.cmd("RPUSH").arg("ttl:list").arg(&small).ignore();
    expire_far(&mut pipe, "ttl:list", 4);

    // 5,000 elements: a quicklist of many nodes; ints and strings of varied lengths.
    let elements: Vec<Vec<u8>> = (0..5000)
        .map(|i| {
            if i % 4 == 0 {
                rng.below(100_000).to_string().into_bytes()
            } else {
                let len = 1 + rng.below(60) as usize;
                rng.text(len, b"list-element ")
            }
        })
        .collect();
    for chunk in elements.chunks(1000) {
        pipe.cmd("RPUSH").arg("list:quicklist").arg(chunk).ignore();
    }
    // Long repetitive values: nodes that LZF compresses when saved.
    let long: Vec<Vec<u8>> = (0..300)
        .map(|_| {
            let len = 100 + rng.below(400) as usize;
            rng.text(len, b"ab")
        })
        .collect();
    pipe.cmd("RPUSH")
        .arg("list:quicklist:long-values")
        .arg(&long)
        .ignore();
    pipe.cmd("LPUSH")
        .arg("list:pushed-left")
        .arg(&["3", "2", "1"])
        .ignore();
    send(con, &pipe, "lists")?;

    if kind.is_redis7_or_later() {
        plain_nodes(con, rng)?;
    }
    Ok(())
}

/// Quicklist nodes holding one large element unpacked ("plain", Redis 7+). Lowering the
/// packed threshold makes them without megabyte-sized values; 0 restores the default.
fn plain_nodes(con: &mut Connection, rng: &mut Rng) -> Result<()> {
    let threshold = |con: &mut Connection, size: &str| {
        redis::cmd("DEBUG")
            .arg("QUICKLIST-PACKED-THRESHOLD")
            .arg(size)
            .query::<()>(con)
            .with_context(|| format!("DEBUG QUICKLIST-PACKED-THRESHOLD {size} failed"))
    };
    threshold(con, "1000")?;
    let mut pipe = redis::pipe();
    for size in [10usize, 1500, 20, 5000, 1001, 3, 2500] {
        pipe.cmd("RPUSH")
            .arg("list:plain")
            .arg(rng.text(size, b"plain"))
            .ignore();
    }
    let result = send(con, &pipe, "plain list nodes");
    threshold(con, "0")?;
    result
}

pub(super) fn big_list(con: &mut Connection) -> Result<()> {
    let mut pipe = redis::pipe();
    let elements: Vec<String> = (0..BIG_LIST_LEN).map(|i| format!("item-{i}")).collect();
    for chunk in elements.chunks(10_000) {
        pipe.cmd("RPUSH").arg("big:list").arg(chunk).ignore();
    }
    send(con, &pipe, "the big list")
}

pub(super) fn sets(con: &mut Connection, rng: &mut Rng) -> Result<()> {
    let mut pipe = redis::pipe();
    // Intsets of each integer width.
    pipe.cmd("SADD")
        .arg("set:intset:16")
        .arg(&[1, 2, 3, -7])
        .ignore();
    pipe.cmd("SADD")
        .arg("set:intset:32")
        .arg(&[5, 100_000, -3_000_000])
        .ignore();
    let wide: Vec<i64> = (1..=40)
        .chain([5_000_000_000, -9_000_000_000_000])
        .collect();
    pipe.cmd("SADD").arg("set:intset:64").arg(&wide).ignore();
    // Small strings: listpack on Redis 7.2+/Valkey, hashtable before.
    let small: Vec<String> = (0..20).map(|i| format!("member-{i}")).collect();
    pipe.cmd("SADD")
        .arg("set:small-strings")
        .arg(&small)
        .ignore();
    pipe.cmd("SADD")
        .arg("set:mixed")
        .arg(&["1", "two", "3", ""])
        .ignore();
    // Beyond every small-encoding limit.
    let big: Vec<Vec<u8>> = (0..1000)
        .map(|_| {
            let len = 1 + rng.below(30) as usize;
            rng.text(len, b"setmember")
        })
        .collect();
    pipe.cmd("SADD").arg("set:hashtable").arg(&big).ignore();
    let ints: Vec<u64> = (0..600).map(|i| i * 7 + rng.below(5)).collect();
    pipe.cmd("SADD")
        .arg("set:hashtable:ints")
        .arg(&ints)
        .ignore();
    pipe.cmd("SADD").arg("ttl:set").arg(&["x", "y"]).ignore();
    expire_far(&mut pipe, "ttl:set", 5);
    pipe.cmd("SADD").arg("ttl:set:intset").arg(&[1, 2]).ignore();
    expire_far(&mut pipe, "ttl:set:intset", 6);
    send(con, &pipe, "sets")
}

pub(super) fn sorted_sets(con: &mut Connection, rng: &mut Rng) -> Result<()> {
    let mut pipe = redis::pipe();
    let special = [
        ("0", "zero"),
        ("-1.5", "negative"),
        ("0.1", "fraction"),
        ("inf", "plus-inf"),
        ("-inf", "minus-inf"),
        ("1e300", "huge"),
        ("-2.5e-300", "tiny-negative"),
        ("42", "integer"),
        ("42", "integer-tie"),
    ];
    let mut small = redis::cmd("ZADD");
    small.arg("zset:small");
    for (score, member) in special {
        small.arg(score).arg(member);
    }
    pipe.add_command(small).ignore();

    let mut big = redis::cmd("ZADD");
    big.arg("zset:skiplist");
    for i in 0..1000u64 {
        let score = match i % 10 {
            0 => format!("{}", rng.below(1000)),
            1 => format!("-{}.{}", rng.below(1000), rng.below(1000)),
            2 => format!("{}e{}", rng.below(9) + 1, 100 + rng.below(200)),
            _ => format!("{}.{:03}", rng.below(100_000), rng.below(1000)),
        };
        big.arg(score).arg(format!("m{i}:{}", rng.below(1000)));
    }
    big.arg("inf").arg("top").arg("-inf").arg("bottom");
    pipe.add_command(big).ignore();

    pipe.cmd("ZADD")
        .arg("ttl:zset")
        .arg(&["1", "a", "2.25", "b"])
        .ignore();
    expire_far(&mut pipe, "ttl:zset", 7);
    send(con, &pipe, "sorted sets")
}

pub(super) fn hashes(con: &mut Connection, rng: &mut Rng) -> Result<()> {
    let mut pipe = redis::pipe();
    let mut small = redis::cmd("HSET");
    small.arg("hash:small");
    for (field, value) in [
        ("name", "ferry"),
        ("count", "12"),
        ("negative", "-5"),
        ("empty", ""),
        ("", "empty field name"),
        ("float", "2.5"),
    ] {
        small.arg(field).arg(value);
    }
    small.arg(b"\x00bin\xff").arg(b"\r\n");
    pipe.add_command(small).ignore();

    // Many fields with long values: hashtable.
    let mut big = redis::cmd("HSET");
    big.arg("hash:hashtable");
    for i in 0..600 {
        let len = 1 + rng.below(200) as usize;
        big.arg(format!("field-{i}"))
            .arg(rng.text(len, b"hashvalue"));
    }
    pipe.add_command(big).ignore();
    // Few fields, one value over the small-encoding size limit: hashtable too.
    pipe.cmd("HSET")
        .arg("hash:long-value")
        .arg("short")
        .arg("v")
        .arg("long")
        .arg(rng.text(300, b"L"))
        .ignore();
    pipe.cmd("HSET").arg("ttl:hash").arg(&["f", "v"]).ignore();
    expire_far(&mut pipe, "ttl:hash", 8);
    send(con, &pipe, "hashes")
}
