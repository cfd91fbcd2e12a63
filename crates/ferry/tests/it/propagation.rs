//! What a real Redis 8.0 primary actually sends its replicas for the commands Valkey lacks.
//! The command translator (`transforms::commands`) is built on these facts; each test
//! here writes on a primary and reads its replication stream through ferry's own replica
//! connection.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::observer::Observer;
use ferry_testkit::ServerKind;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Asserts `value` is an absolute millisecond time about `from_now_ms` after `start`.
fn assert_abs_ms(value: &str, start: i64, from_now_ms: i64) {
    let at: i64 = value.parse().expect("a millisecond time");
    let end = now_ms();
    assert!(
        (start + from_now_ms..=end + from_now_ms).contains(&at),
        "{at} is not {from_now_ms} ms after [{start}, {end}]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis8_hash_field_ttl_commands_reach_replicas_in_absolute_or_plain_forms() {
    let mut o = Observer::start(ServerKind::Redis80).await;
    o.setup(&["HSET", "h", "a", "1", "b", "2", "c", "3", "d", "4"])
        .await;

    // HSETEX with a relative TTL becomes PXAT with an absolute time; the rest is verbatim.
    let start = now_ms();
    let sent = o
        .propagated(&["HSETEX", "h", "EX", "100", "FIELDS", "1", "a", "10"])
        .await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0][..3], strings(&["HSETEX", "h", "PXAT"]));
    assert_abs_ms(&sent[0][3], start, 100_000);
    assert_eq!(sent[0][4..], strings(&["FIELDS", "1", "a", "10"]));

    // FNX/FXX stay in the propagated command.
    let start = now_ms();
    let sent = o
        .propagated(&["HSETEX", "h", "FNX", "PX", "5000", "FIELDS", "1", "e", "5"])
        .await;
    assert_eq!(sent[0][..4], strings(&["HSETEX", "h", "FNX", "PXAT"]));
    assert_abs_ms(&sent[0][4], start, 5_000);

    // KEEPTTL, and no TTL option at all, are sent as they were given.
    for args in [
        &["HSETEX", "h", "KEEPTTL", "FIELDS", "1", "a", "11"][..],
        &["HSETEX", "h", "FIELDS", "2", "b", "20", "c", "30"][..],
        &[
            "HSETEX",
            "h",
            "FXX",
            "PXAT",
            "9999999999999",
            "FIELDS",
            "1",
            "b",
            "21",
        ][..],
    ] {
        assert_eq!(o.propagated(args).await, vec![strings(args)]);
    }

    // A TTL already in the past deletes the fields: only HDEL is sent.
    let sent = o
        .propagated(&["HSETEX", "h", "PXAT", "1", "FIELDS", "1", "c", "31"])
        .await;
    assert_eq!(sent, vec![strings(&["HDEL", "h", "c"])]);

    // HEXPIRE: HPEXPIREAT with an absolute time, keeping the condition; fields it did
    // not change (missing here) are left out and the count rewritten.
    let start = now_ms();
    let sent = o
        .propagated(&["HEXPIRE", "h", "200", "NX", "FIELDS", "2", "d", "missing"])
        .await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0][..2], strings(&["HPEXPIREAT", "h"]));
    assert_abs_ms(&sent[0][2], start, 200_000);
    assert_eq!(sent[0][3..], strings(&["NX", "FIELDS", "1", "d"]));

    // HPERSIST is sent with every field it was given, also those it did not change.
    let args = ["HPERSIST", "h", "FIELDS", "2", "d", "nosuch"];
    assert_eq!(o.propagated(&args).await, vec![strings(&args)]);

    // HGETEX becomes HPEXPIREAT (absolute) or HPERSIST.
    let start = now_ms();
    let sent = o
        .propagated(&["HGETEX", "h", "PX", "7000", "FIELDS", "1", "d"])
        .await;
    assert_eq!(sent[0][..2], strings(&["HPEXPIREAT", "h"]));
    assert_abs_ms(&sent[0][2], start, 7_000);
    assert_eq!(sent[0][3..], strings(&["FIELDS", "1", "d"]));
    let sent = o
        .propagated(&["HGETEX", "h", "PERSIST", "FIELDS", "1", "d"])
        .await;
    assert_eq!(sent, vec![strings(&["HPERSIST", "h", "FIELDS", "1", "d"])]);

    // HGETDEL becomes HDEL.
    let sent = o
        .propagated(&["HGETDEL", "h", "FIELDS", "2", "d", "nope"])
        .await;
    assert_eq!(sent, vec![strings(&["HDEL", "h", "d", "nope"])]);

    // HINCRBYFLOAT is sent as the value it produced.
    let sent = o.propagated(&["HINCRBYFLOAT", "h", "b", "1.5"]).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let form = &sent[0];
    assert!(
        *form == strings(&["HSET", "h", "b", "22.5"])
            || *form == strings(&["HSETEX", "h", "KEEPTTL", "FIELDS", "1", "b", "22.5"]),
        "{form:?}"
    );
    eprintln!("redis 8.0 sends HINCRBYFLOAT as {form:?}");

    // A field expiring on the primary reaches replicas as HDEL.
    o.setup(&["HPEXPIRE", "h", "30", "FIELDS", "1", "e"]).await;
    let sent = o.propagated_later(Duration::from_secs(5)).await;
    assert_eq!(sent, vec![strings(&["HDEL", "h", "e"])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis8_vector_set_writes_reach_replicas_verbatim() {
    let mut o = Observer::start(ServerKind::Redis80).await;
    for args in [
        &[
            "VADD",
            "v",
            "VALUES",
            "3",
            "0.5",
            "1",
            "-1",
            "e1",
            "SETATTR",
            r#"{"a":1}"#,
        ][..],
        &["VADD", "v", "VALUES", "3", "1", "0", "0", "e2", "CAS"][..],
        &["VSETATTR", "v", "e1", r#"{"a":2}"#][..],
        &["VREM", "v", "e2"][..],
    ] {
        assert_eq!(o.propagated(args).await, vec![strings(args)], "{args:?}");
    }
    // A VREM that removes nothing is not sent at all.
    assert!(o.propagated(&["VREM", "v", "absent"]).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_reach_replicas_as_their_effects_in_a_transaction() {
    for kind in [
        ServerKind::Redis60,
        ServerKind::Redis70,
        ServerKind::Redis80,
    ] {
        let mut o = Observer::start(kind).await;
        let sent = o
            .propagated(&[
                "EVAL",
                "redis.call('SET', KEYS[1], ARGV[1]); redis.call('INCR', KEYS[2])",
                "2",
                "a",
                "b",
                "v",
            ])
            .await;
        assert_eq!(
            sent,
            vec![
                strings(&["MULTI"]),
                strings(&["SET", "a", "v"]),
                strings(&["INCR", "b"]),
                strings(&["EXEC"])
            ],
            "{kind}"
        );
        drop(o.server);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_ttls_reach_replicas_relative_from_redis6_and_absolute_from_redis7() {
    let relative_forms: [&[&str]; 5] = [
        &["SET", "a", "v", "EX", "100"],
        &["SET", "a", "v", "PX", "100000"],
        &["SETEX", "b", "100", "v"],
        &["PSETEX", "b", "100000", "v"],
        &["EXPIRE", "k", "100"],
    ];
    let mut o = Observer::start(ServerKind::Redis60).await;
    o.setup(&["SET", "k", "v"]).await;
    for args in relative_forms
        .iter()
        .copied()
        .chain([&["PEXPIRE", "k", "100000"][..]])
    {
        assert_eq!(o.propagated(args).await, vec![strings(args)], "redis 6.0");
    }
    let payload: Vec<u8> = redis::cmd("DUMP").arg("k").query(&mut o.client).unwrap();
    redis::cmd("RESTORE")
        .arg("r")
        .arg(100_000)
        .arg(payload)
        .query::<()>(&mut o.client)
        .unwrap();
    let sent = o.read_to_offset().await;
    assert_eq!(sent[0][..3], strings(&["RESTORE", "r", "100000"]));
    assert!(!sent[0].iter().any(|a| a == "ABSTTL"), "{sent:?}");

    for kind in [ServerKind::Redis70, ServerKind::Redis80] {
        let mut o = Observer::start(kind).await;
        o.setup(&["SET", "k", "v"]).await;
        for args in relative_forms {
            let start = now_ms();
            let sent = o.propagated(args).await;
            assert_eq!(sent.len(), 1, "{kind} {args:?}: {sent:?}");
            let sent = &sent[0];
            if args[0] == "EXPIRE" {
                assert_eq!(sent[..2], strings(&["PEXPIREAT", "k"]), "{kind}");
                assert_abs_ms(&sent[2], start, 100_000);
            } else {
                assert_eq!(sent[0], "SET", "{kind}: {sent:?}");
                assert_eq!(sent[3], "PXAT", "{kind}: {sent:?}");
                assert_abs_ms(&sent[4], start, 100_000);
            }
        }
        let start = now_ms();
        let payload: Vec<u8> = redis::cmd("DUMP").arg("k").query(&mut o.client).unwrap();
        redis::cmd("RESTORE")
            .arg("r")
            .arg(100_000)
            .arg(payload)
            .query::<()>(&mut o.client)
            .unwrap();
        let sent = o.read_to_offset().await;
        assert_eq!(sent[0][..2], strings(&["RESTORE", "r"]));
        assert_abs_ms(&sent[0][2], start, 100_000);
        assert!(sent[0].iter().any(|a| a == "ABSTTL"), "{kind}: {sent:?}");
    }
}
