//! `ferry migrate` against real servers: full sync of the dataset, then a write load
//! through the command stream; source and target must then hold the same data.

mod migrate_support;

use ferry_testkit::snapshot::{DiffOptions, Snapshot, Value};
use ferry_testkit::{dataset, Server, ServerKind};
use migrate_support::{assert_same, simple_load, wait_applied, Ferry};
use std::time::Duration;

/// What the target is expected to hold instead of an exact copy.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Exact,
    /// `--hash-field-ttl persist`: every hash field without its TTL.
    FieldTtlsDropped,
}

/// Vector sets are skipped for every Valkey target (`--vector-set skip`).
fn without_vector_sets() -> DiffOptions {
    DiffOptions::new().exclude_keys(|_, key| key.starts_with(b"vset:") || key == b"ttl:vset")
}

/// Migrates `source_kind` with the full dataset into `target_kind` under `policy`, with
/// writes before and after the snapshot, and compares.
fn migrate_and_compare(
    source_kind: ServerKind,
    target_kind: ServerKind,
    policy: &[&str],
    expect: Expect,
) {
    let source = Server::start(source_kind).unwrap();
    let target = Server::start(target_kind).unwrap();
    dataset::populate(&source).unwrap();
    simple_load(&source, 0);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");

    let mut ferry = Ferry::migrate(&source, &target, &state, policy);
    ferry.wait_in_sync();
    for round in 1..=3 {
        simple_load(&source, round);
    }
    wait_applied(&source, &state, &ferry);
    if expect == Expect::Exact {
        assert_same(&source, &target, &without_vector_sets());
    } else {
        let mut expected = Snapshot::capture(&source).unwrap();
        for entries in expected.databases.values_mut() {
            for entry in entries.values_mut() {
                if let Value::Hash(fields) = &mut entry.value {
                    fields.iter_mut().for_each(|f| f.expire_at_ms = None);
                }
            }
        }
        let actual = Snapshot::capture(&target).unwrap();
        let differences = expected.diff(&actual, &without_vector_sets());
        let shown: Vec<String> = differences.iter().take(40).map(|d| d.to_string()).collect();
        assert!(differences.is_empty(), "{}", shown.join("\n"));
        assert!(actual.get(0, b"hash:fttl:small").is_some());
    }

    ferry.signal("TERM");
    let status = ferry.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}:\n{}", ferry.output());
    ferry.wait_for("resume with --state", Duration::from_secs(1));
}

#[test]
fn a_small_source_is_copied_and_followed() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let mut con = source.client();
    redis::cmd("SET")
        .arg("a")
        .arg("1")
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("RPUSH")
        .arg("l")
        .arg("x")
        .arg("y")
        .query::<()>(&mut con)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    ferry.wait_in_sync();
    redis::cmd("SET")
        .arg("b")
        .arg("2")
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("SELECT").arg(3).query::<()>(&mut con).unwrap();
    redis::cmd("HSET")
        .arg("h")
        .arg("f")
        .arg("v")
        .query::<()>(&mut con)
        .unwrap();
    wait_applied(&source, &state, &ferry);
    assert_same(&source, &target, &DiffOptions::new());
}

#[test]
fn redis_6_0_to_valkey_8_1() {
    migrate_and_compare(
        ServerKind::Redis60,
        ServerKind::Valkey81,
        &[],
        Expect::Exact,
    );
}

#[test]
fn redis_6_0_to_valkey_9_1() {
    migrate_and_compare(
        ServerKind::Redis60,
        ServerKind::Valkey91,
        &[],
        Expect::Exact,
    );
}

#[test]
fn redis_7_0_to_valkey_8_1() {
    migrate_and_compare(
        ServerKind::Redis70,
        ServerKind::Valkey81,
        &[],
        Expect::Exact,
    );
}

#[test]
fn redis_7_0_to_valkey_9_1() {
    migrate_and_compare(
        ServerKind::Redis70,
        ServerKind::Valkey91,
        &[],
        Expect::Exact,
    );
}

#[test]
fn redis_8_0_to_valkey_8_1_persisting_field_ttls() {
    migrate_and_compare(
        ServerKind::Redis80,
        ServerKind::Valkey81,
        &["--hash-field-ttl", "persist", "--vector-set", "skip"],
        Expect::FieldTtlsDropped,
    );
}

#[test]
fn redis_8_0_to_valkey_9_1_keeps_field_ttls() {
    migrate_and_compare(
        ServerKind::Redis80,
        ServerKind::Valkey91,
        &["--vector-set", "skip"],
        Expect::Exact,
    );
}
