//! `--db 3 --db-map 3:0` into a Valkey 8.1 cluster (database 0 only): db 3 of a real
//! Redis 7.0 is merged into the cluster's db 0, by full sync and by the stream, and
//! `verify` with the same flags compares it there.

use crate::filters_migrate::{run, scoped};
use crate::support::ferry;
use crate::support::migrate::{wait_applied, Ferry};
use ferry_testkit::snapshot::{is_ferry_marker, DiffOptions, Snapshot};
use ferry_testkit::{Cluster, Server, ServerKind};
use std::time::Duration;

const SCOPE: [&str; 4] = ["--db", "3", "--db-map", "3:0"];

fn kept(db: u32, _key: &[u8]) -> bool {
    db == 3
}

fn mapped(_db: u32) -> u32 {
    0
}

#[test]
fn db_3_merges_into_db_0_of_a_cluster() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let cluster = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let mut con = source.client();
    for i in 0..50 {
        run(&mut con, 3, &["SET", &format!("app:{i}"), &i.to_string()]);
        run(&mut con, 0, &["SET", &format!("db0:{i}"), "left out"]);
    }
    // One hash tag: a cluster runs SMOVE only within one slot.
    run(&mut con, 3, &["SADD", "{app}:set", "a", "b"]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut migration = Ferry::migrate_between(&source.url(), &cluster.url(), &state, &SCOPE);
    migration.wait_in_sync();

    for (db, words) in [
        (
            3,
            &["MSET", "app:m1", "1", "app:m2", "2", "app:m3", "3"][..],
        ),
        (3, &["DEL", "app:1", "app:2", "app:3"]),
        (3, &["SMOVE", "{app}:set", "{app}:set2", "a"]),
        (0, &["SET", "db0:new", "left out"]),
        (0, &["FLUSHDB"]),
        (3, &["SET", "app:last", "x"]),
    ] {
        run(&mut con, db, words);
    }
    wait_applied(&source, &state, &migration);
    let expected = scoped(&Snapshot::capture(&source).unwrap(), kept, mapped);
    let actual = cluster.snapshot().unwrap();
    let options = DiffOptions::new().exclude_keys(|_, key| is_ferry_marker(key));
    let differences: Vec<String> = expected
        .diff(&actual, &options)
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert!(
        differences.is_empty(),
        "{differences:#?}\n{}",
        migration.output()
    );
    assert!(expected.key_count() > 50);
    migration.signal("TERM");
    assert!(migration.wait_exit(Duration::from_secs(20)).success());

    let (source_url, cluster_url) = (source.url(), cluster.url());
    let mut args = vec!["verify", "--source", &source_url, "--target", &cluster_url];
    args.extend_from_slice(&SCOPE);
    let verified = ferry(&args);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
}
