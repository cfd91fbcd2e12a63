//! `--spool-dir`: a full sync received into a spool and loaded from it, interrupted the
//! ways operations interrupt it — ferry killed (SIGKILL) half-way through the load, the
//! target restarted mid-load, the source connection cut once the snapshot arrived — on a
//! source of a million keys plus the mixed dataset under the testkit's write load. Each
//! time the source serves one full sync only (`sync_full` 1), ferry never empties the
//! target (no FLUSHALL in its command stats, and no FLUSHDB but the source's own), the resumed load does not start over (the
//! target's RESTORE count stays well under twice the keys), and the target ends equal.

use crate::support::migrate::{
    assert_as_policies_promise, capture_in_step, wait_applied, Ferry, Load,
};
use crate::support::{command_calls, info_number};
use ferry_testkit::expect::{FieldTtl, VectorSets};
use ferry_testkit::snapshot::DiffOptions;
use ferry_testkit::FaultProxy;
use ferry_testkit::{dataset, Server, ServerKind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BULK_KEYS: u64 = 1_000_000;
/// The million keys live in a database of their own, which the write load never touches:
/// they are checked there key by key (value and count), then dropped on the source (one
/// replicated FLUSHDB) so that the full comparison of the rest takes seconds, not the
/// minutes in which the load's expiring keys would run out between the two captures.
const BULK_DB: u64 = 9;

/// Keys in every database.
fn dbsize(server: &Server) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("keyspace")
        .query(&mut server.client())
        .unwrap();
    info.lines()
        .filter_map(|line| line.split_once(":keys="))
        .filter_map(|(_, rest)| rest.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// A Redis 7.0 source with a million small keys and the mixed dataset, under the load.
fn big_source() -> (Server, Load) {
    let source = Server::start(ServerKind::Redis70).unwrap();
    dataset::populate(&source).unwrap();
    let mut con = source.client();
    let _: () = redis::cmd("SELECT").arg(BULK_DB).query(&mut con).unwrap();
    // Keys `bulk:N` holding `value:N`.
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(BULK_KEYS)
        .arg("bulk")
        .query(&mut con)
        .unwrap();
    let load = Load::start(&source);
    (source, load)
}

/// Waits until the target holds `fraction` of the source's keys.
fn wait_for_keys(target: &Server, wanted: u64, ferry: &Ferry) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while dbsize(target) < wanted {
        assert!(
            Instant::now() < deadline,
            "the target never reached {wanted} keys:\n{}",
            ferry.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Paths {
    _dir: tempfile::TempDir,
    state: PathBuf,
    spool: PathBuf,
}

impl Paths {
    fn new() -> Paths {
        let dir = tempfile::tempdir().unwrap();
        Paths {
            state: dir.path().join("ferry.state"),
            spool: dir.path().join("spool"),
            _dir: dir,
        }
    }

    fn spool_flag(&self) -> [&str; 2] {
        ["--spool-dir", self.spool.to_str().unwrap()]
    }
}

/// The load stopped, its effects applied, then the target compared with the source as
/// the default policies promise.
fn settle_and_compare(source: &Server, target: &Server, state: &Path, ferry: &Ferry, load: Load) {
    let stats = load.stop();
    assert!(stats.total() > 100, "{stats:?}");
    std::thread::sleep(ferry_testkit::workload::SHORT_TTLS_PASSED);
    wait_applied(source, state, ferry);
    assert_bulk_keys(target, ferry);
    let mut con = source.client();
    let _: () = redis::cmd("SELECT").arg(BULK_DB).query(&mut con).unwrap();
    let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
    wait_applied(source, state, ferry);
    let (before, actual) = capture_in_step(source, target, state, ferry);
    assert_as_policies_promise(
        &before,
        actual,
        (FieldTtl::Keep, VectorSets::Remove),
        &DiffOptions::new(),
        &format!("{} -> {}", source.kind(), target.kind()),
        &ferry.output(),
    );
}

/// Every one of the million keys is on the target with its value, and nothing else is in
/// their database.
fn assert_bulk_keys(target: &Server, ferry: &Ferry) {
    let mut con = target.client();
    let _: () = redis::cmd("SELECT").arg(BULK_DB).query(&mut con).unwrap();
    let count: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(count, BULK_KEYS, "{}", ferry.output());
    const CHUNK: u64 = 10_000;
    for first in (0..BULK_KEYS).step_by(CHUNK as usize) {
        let keys: Vec<String> = (first..first + CHUNK)
            .map(|n| format!("bulk:{n}"))
            .collect();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut con).unwrap();
        for (n, value) in (first..).zip(values) {
            assert_eq!(
                value.as_deref(),
                Some(format!("value:{n}").as_str()),
                "bulk:{n} on the target"
            );
        }
    }
}

/// What every interrupted spooled load must show once in sync.
fn assert_one_full_sync_never_flushed_not_restarted(
    source: &Server,
    target: &Server,
    ferry: &Ferry,
) {
    assert_eq!(
        info_number(source, "stats", "sync_full"),
        1,
        "the source served a second full sync:\n{}",
        ferry.output()
    );
    // The load's own FLUSHDB (of database 2) replicates; ferry adds none.
    assert_eq!(command_calls(target, "flushall"), 0, "{}", ferry.output());
    assert!(
        command_calls(target, "flushdb") <= command_calls(source, "flushdb"),
        "{}",
        ferry.output()
    );
    let restores = command_calls(target, "restore");
    assert!(
        restores < BULK_KEYS * 14 / 10,
        "{restores} RESTOREs for {BULK_KEYS} keys: the load started over:\n{}",
        ferry.output()
    );
}

#[test]
fn ferry_killed_half_way_through_the_load_resumes_it_from_the_spool() {
    let (source, load) = big_source();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let paths = Paths::new();
    let mut ferry = Ferry::migrate(&source, &target, &paths.state, &paths.spool_flag());
    wait_for_keys(&target, BULK_KEYS / 2, &ferry);
    ferry.kill();
    let first = ferry.output();
    assert!(
        first.contains("receiving the snapshot into the spool"),
        "{first}"
    );
    assert!(
        !first.contains("full sync done"),
        "killed after the load, not half-way:\n{first}"
    );
    let held = dbsize(&target);

    let mut ferry = Ferry::migrate(&source, &target, &paths.state, &paths.spool_flag());
    ferry.wait_in_sync();
    let second = ferry.output();
    assert!(
        second.contains("resuming the load from the spool at byte"),
        "{second}"
    );
    assert!(!second.contains("full sync: receiving"), "{second}");
    assert!(dbsize(&target) >= held, "the target lost keys:\n{second}");
    assert_one_full_sync_never_flushed_not_restarted(&source, &target, &ferry);
    ferry.wait_for(
        "the stream caught up with the spool",
        Duration::from_secs(60),
    );
    assert!(
        !paths.spool.join("spool.json").exists() && !paths.spool.join("snapshot.rdb").exists(),
        "the spool is still there:\n{}",
        ferry.output()
    );
    settle_and_compare(&source, &target, &paths.state, &ferry, load);
}

#[test]
fn a_target_restarted_during_the_load_is_waited_for_and_the_load_resumes_from_the_spool() {
    let (source, load) = big_source();
    // Append-only: the restarted target keeps a prefix of its writes, marker included.
    let mut target =
        Server::start_with_args(ServerKind::Valkey81, &["--appendonly", "yes"]).unwrap();
    let paths = Paths::new();
    let mut ferry = Ferry::migrate(&source, &target, &paths.state, &paths.spool_flag());
    wait_for_keys(&target, BULK_KEYS / 2, &ferry);
    target.crash_and_restart().unwrap();
    ferry.wait_for("answers again", Duration::from_secs(60));
    ferry.wait_in_sync();
    let output = ferry.output();
    assert!(
        output.contains("resuming the load from the spool at byte"),
        "{output}"
    );
    assert_eq!(
        output.matches("full sync: receiving").count(),
        1,
        "{output}"
    );
    assert_one_full_sync_never_flushed_not_restarted(&source, &target, &ferry);
    settle_and_compare(&source, &target, &paths.state, &ferry, load);
}

#[test]
fn a_source_connection_cut_after_the_snapshot_arrived_is_resumed_at_once_from_the_spooled_offset() {
    let (source, load) = big_source();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    // A slow target: the load outlasts the transfer by far.
    let slow = FaultProxy::start(target.port()).unwrap();
    slow.set_rate(Some(8 << 20));
    let paths = Paths::new();
    let mut ferry = Ferry::migrate_between(
        &source.url(),
        &slow.url(),
        &paths.state,
        &paths.spool_flag(),
    );
    let meta = paths.spool.join("spool.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&meta)
        .is_ok_and(|text| !text.contains("\"snapshot_bytes\": null"))
    {
        assert!(Instant::now() < deadline, "{}", ferry.output());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        dbsize(&target) < BULK_KEYS / 2,
        "the load should still be early when the transfer ends"
    );
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query(&mut source.client())
        .unwrap();
    assert_eq!(killed, 1);
    // Resumed at once, while the load goes on: not after it, when the source's backlog
    // may have dropped the offset.
    ferry.wait_for("lost and resumed", Duration::from_secs(30));
    assert!(
        !ferry.output().contains("full sync done"),
        "{}",
        ferry.output()
    );
    slow.set_rate(None);
    ferry.wait_in_sync();
    let output = ferry.output();
    assert!(
        info_number(&source, "stats", "sync_partial_ok") >= 1,
        "{output}"
    );
    assert_one_full_sync_never_flushed_not_restarted(&source, &target, &ferry);
    settle_and_compare(&source, &target, &paths.state, &ferry, load);
}

#[test]
fn a_spooled_full_sync_under_load_ends_equal_and_deletes_its_spool() {
    let (source, load) = big_source();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let paths = Paths::new();
    let mut ferry = Ferry::migrate(&source, &target, &paths.state, &paths.spool_flag());
    ferry.wait_in_sync();
    ferry.wait_for(
        "the stream caught up with the spool",
        Duration::from_secs(60),
    );
    assert!(
        !paths.spool.join("spool.json").exists(),
        "{}",
        ferry.output()
    );
    assert_one_full_sync_never_flushed_not_restarted(&source, &target, &ferry);
    settle_and_compare(&source, &target, &paths.state, &ferry, load);
}

#[test]
fn a_snapshot_larger_than_the_spool_may_hold_is_refused_in_one_line() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    dataset::populate(&source).unwrap();
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(100_000)
        .arg("bulk")
        .arg(100)
        .query(&mut source.client())
        .unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let paths = Paths::new();
    let mut flags = paths.spool_flag().to_vec();
    flags.extend(["--spool-max-mb", "1"]);
    let mut ferry = Ferry::migrate(&source, &target, &paths.state, &flags);
    let status = ferry.wait_exit(Duration::from_secs(60));
    let output = ferry.output();
    assert!(!status.success(), "{output}");
    let last = output.lines().last().unwrap_or_default();
    assert!(
        last.contains("the snapshot needs") && last.contains("--spool-max-mb"),
        "{output}"
    );
    assert!(
        std::fs::metadata(paths.spool.join("snapshot.rdb")).map_or(0, |m| m.len()) <= 1 << 20,
        "more than the limit was written"
    );
}
