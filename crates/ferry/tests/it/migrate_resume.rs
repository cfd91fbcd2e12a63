//! Resuming with `--state`: after a SIGKILL mid-stream, a restart continues with a partial
//! resync; when the source's backlog no longer covers the gap it says so, reloads, and the
//! result is equal either way.

use crate::support::migrate;
use crate::support::migrate::{assert_same, simple_load, wait_applied, Ferry};
use ferry_testkit::snapshot::DiffOptions;
use ferry_testkit::{Server, ServerKind};
use std::time::Duration;

fn small_dataset(server: &Server) {
    let mut con = server.client();
    for i in 0..500 {
        redis::cmd("SET")
            .arg(format!("base:{i}"))
            .arg(i)
            .query::<()>(&mut con)
            .unwrap();
    }
}

#[test]
fn a_killed_migration_resumes_with_a_partial_resync() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    small_dataset(&source);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");

    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    ferry.wait_in_sync();
    simple_load(&source, 1);
    wait_applied(&source, &state, &ferry);
    ferry.signal("KILL");
    ferry.wait_exit(Duration::from_secs(10));

    // Writes while ferry is down, first in the database the stream had selected before the
    // kill: the source does not repeat that SELECT, so ferry must have remembered it.
    let mut con = source.client();
    redis::cmd("SELECT").arg(1).query::<()>(&mut con).unwrap();
    redis::cmd("SET")
        .arg("written:in:db1:while:down")
        .arg("x")
        .query::<()>(&mut con)
        .unwrap();
    simple_load(&source, 2);

    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    ferry.wait_for(
        "partial resync accepted (+CONTINUE)",
        Duration::from_secs(30),
    );
    ferry.wait_in_sync();
    simple_load(&source, 3);
    wait_applied(&source, &state, &ferry);
    assert_same(&source, &target, &DiffOptions::new());
    assert!(!ferry.output().contains("full sync"), "{}", ferry.output());
}

#[test]
fn a_gap_beyond_the_backlog_means_a_full_sync_said_out_loud() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let mut con = source.client();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("repl-backlog-size")
        .arg("16384")
        .query::<()>(&mut con)
        .unwrap();
    small_dataset(&source);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");

    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    ferry.wait_in_sync();
    simple_load(&source, 1);
    wait_applied(&source, &state, &ferry);
    ferry.signal("KILL");
    ferry.wait_exit(Duration::from_secs(10));

    // Far more than the 16 KiB backlog, and a key deleted: the reload must not keep it.
    for round in 2..=6 {
        simple_load(&source, round);
    }
    redis::cmd("DEL")
        .arg("base:7")
        .query::<()>(&mut con)
        .unwrap();

    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    ferry.wait_for(
        "partial resync refused by source; full sync",
        Duration::from_secs(30),
    );
    ferry.wait_in_sync();
    wait_applied(&source, &state, &ferry);
    assert_same(&source, &target, &DiffOptions::new());
}

#[test]
fn a_migration_killed_mid_full_sync_starts_over_cleanly() {
    const KEYS: u64 = 300_000;
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let mut con = source.client();
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(KEYS)
        .arg("pop")
        .arg(64)
        .query::<()>(&mut con)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");

    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    ferry.wait_for("full sync: receiving", Duration::from_secs(30));
    // Killed once keys are on the target: a fixed wait let a fast load end first.
    let mut tcon = target.client();
    let count = |con: &mut redis::Connection| -> u64 { redis::cmd("DBSIZE").query(con).unwrap() };
    let began = std::time::Instant::now();
    while count(&mut tcon) < 1000 {
        assert!(began.elapsed() < Duration::from_secs(30), "no key written");
        std::thread::sleep(Duration::from_millis(1));
    }
    ferry.signal("KILL");
    ferry.wait_exit(Duration::from_secs(10));
    let loaded = count(&mut tcon);
    assert!(
        loaded < KEYS,
        "killed mid-load: {loaded} of {KEYS} keys loaded"
    );
    assert_eq!(
        migrate::applied_offset(&state),
        None,
        "a partial load must not look resumable"
    );
    // Keys the next full sync must not keep.
    redis::cmd("DEL")
        .arg("pop:1")
        .arg("pop:2")
        .query::<()>(&mut con)
        .unwrap();

    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    ferry.wait_for("emptied the target (FLUSHALL)", Duration::from_secs(30));
    ferry.wait_in_sync();
    wait_applied(&source, &state, &ferry);
    assert_same(&source, &target, &DiffOptions::new());
}
