//! A full sync writes strings without expiry or eviction hints several to an MSET, the
//! other keys by RESTORE: the target must end as RESTORE … REPLACE alone would leave it
//! (values, types replaced, TTLs, databases, LFU counters).

use crate::support::migrate::{assert_same, wait_applied, Ferry};
use ferry_testkit::snapshot::DiffOptions;
use ferry_testkit::{Server, ServerKind};
use std::time::Duration;

/// The counts of the `full sync done:` line: (by RESTORE, by MSET).
fn written_by(ferry: &mut Ferry) -> (u64, u64) {
    let line = ferry.wait_for("full sync done:", Duration::from_secs(30));
    let count = |what: &str| -> u64 {
        let before = line
            .split(what)
            .next()
            .and_then(|head| head.rsplit(['(', ' ']).next())
            .unwrap_or_else(|| panic!("no '{what}' count in {line:?}"));
        before
            .parse()
            .unwrap_or_else(|_| panic!("no '{what}' count in {line:?}"))
    };
    (count(" by RESTORE"), count(" by MSET"))
}

#[test]
fn strings_go_by_mset_and_the_target_ends_as_with_restore() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let mut con = source.client();
    // Several groups' worth in database 0, a few in 2 and 5: a group pending when the
    // database changes must go out in its own.
    let plain_strings = 700;
    for db in [0, 2, 5] {
        redis::cmd("SELECT").arg(db).query::<()>(&mut con).unwrap();
        let keys = if db == 0 { 600 } else { 50 };
        let mut pipe = redis::pipe();
        for i in 0..keys {
            pipe.cmd("SET")
                .arg(format!("s:{db}:{i}"))
                .arg(format!("value {i} {}", "x".repeat(i % 90)))
                .ignore();
            if i % 10 == 0 {
                pipe.cmd("SET")
                    .arg(format!("ttl:{db}:{i}"))
                    .arg(i)
                    .arg("PX")
                    .arg(3_600_000)
                    .ignore();
                pipe.cmd("HSET")
                    .arg(format!("h:{db}:{i}"))
                    .arg("f")
                    .arg(i)
                    .ignore();
            }
        }
        // Integers and an empty string are strings too.
        pipe.cmd("SET").arg(format!("n:{db}")).arg(-42).ignore();
        pipe.cmd("SET").arg(format!("empty:{db}")).arg("").ignore();
        pipe.query::<()>(&mut con).unwrap();
    }
    // The target already holds some of these keys: another type, another value with a
    // TTL. MSET replaces both, as RESTORE … REPLACE does.
    let mut tcon = target.client();
    redis::cmd("HSET")
        .arg("s:0:1")
        .arg("old")
        .arg("x")
        .query::<()>(&mut tcon)
        .unwrap();
    redis::cmd("SET")
        .arg("s:0:2")
        .arg("old")
        .arg("EX")
        .arg(1000)
        .query::<()>(&mut tcon)
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate(&source, &target, &state, &["--allow-non-empty"]);
    let (by_restore, by_mset) = written_by(&mut ferry);
    let ttl_and_hash_keys = 2 * (60 + 5 + 5);
    let strings = plain_strings + 3 * 2;
    assert_eq!(
        (by_restore, by_mset),
        (ttl_and_hash_keys, strings),
        "{}",
        ferry.output()
    );
    ferry.wait_in_sync();
    wait_applied(&source, &state, &ferry);
    assert_same(&source, &target, &DiffOptions::new());
    let ttl: i64 = redis::cmd("PTTL").arg("s:0:2").query(&mut tcon).unwrap();
    assert_eq!(ttl, -1, "the target's TTL on a replaced key is gone");
}

/// A source that keeps LFU counters puts them in its snapshot: those keys go by RESTORE
/// with FREQ, so the target's eviction sees them as hot as the source did.
#[test]
fn strings_with_lfu_counters_keep_them_by_restore() {
    let lfu = ["--maxmemory-policy", "allkeys-lfu"];
    let source = Server::start_with_args(ServerKind::Redis70, &lfu).unwrap();
    let target = Server::start_with_args(ServerKind::Valkey81, &lfu).unwrap();
    let mut con = source.client();
    for i in 0..200 {
        redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query::<()>(&mut con)
            .unwrap();
    }
    for _ in 0..2000 {
        redis::cmd("GET").arg("k7").query::<()>(&mut con).unwrap();
    }
    let hot: u64 = redis::cmd("OBJECT")
        .arg("FREQ")
        .arg("k7")
        .query(&mut con)
        .unwrap();
    assert!(hot > 5, "k7 is hot on the source: {hot}");

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    assert_eq!(written_by(&mut ferry), (200, 0), "{}", ferry.output());
    ferry.wait_in_sync();
    let on_target: u64 = redis::cmd("OBJECT")
        .arg("FREQ")
        .arg("k7")
        .query(&mut target.client())
        .unwrap();
    assert_eq!(on_target, hot);
    assert_same(&source, &target, &DiffOptions::new());
}
