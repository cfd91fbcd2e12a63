//! `ferry migrate --mode scan --state FILE` stopped and started again: it resumes from its
//! checkpoint instead of scanning everything again, catches up with what changed while it
//! was down (keys deleted, overwritten, given a TTL), and ends with the target equal to
//! the source; a checkpoint that no longer holds (the source restarted) starts over
//! cleanly, and a state file of another source or of replication mode is refused in one
//! line.

use crate::support::migrate::Ferry;
use crate::support::{ferry, path};
use ferry_testkit::expect::{after_policies, FieldTtl, VectorSets};
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::workload::{Workload, DEFAULT_SEED, SHORT_TTLS_PASSED};
use ferry_testkit::{dataset, Server, ServerKind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys of the big source: the scan takes about 10 s at [`PACED`] keys a second.
const BULK_KEYS: usize = 200_000;
const PACED: &str = "20000";
const IN_SYNC: &str = "ferry: in sync";
const RUN_TIMEOUT: Duration = Duration::from_secs(180);
const CONVERGE_WITHIN: Duration = Duration::from_secs(60);
/// Longer than the margin a resumed run gives idle times (5 s).
const IDLE_MARGIN: Duration = Duration::from_secs(8);
/// What scan mode documents it cannot follow (no notification names a key).
const UNFOLLOWED: [&str; 2] = ["FLUSHDB", "SWAPDB"];

fn scan(source: &Server, target: &Server, state: &Path, keys_per_sec: &str) -> Ferry {
    let (source, target, state) = (source.url(), target.url(), path(state));
    Ferry::start(&[
        "--source",
        &source,
        "--target",
        &target,
        "--mode",
        "scan",
        "--scan-keys-per-sec",
        keys_per_sec,
        "--state",
        &state,
    ])
}

/// `bulk:0` … in one database, written in pipelined chunks.
fn fill(server: &Server, keys: usize) {
    let mut con = server.client();
    for start in (0..keys).step_by(10_000) {
        let mut pipe = redis::pipe();
        for i in start..(start + 10_000).min(keys) {
            pipe.cmd("SET")
                .arg(format!("bulk:{i}"))
                .arg(format!("value {i}"))
                .ignore();
        }
        pipe.query::<()>(&mut con).unwrap();
    }
}

fn dbsize(server: &Server) -> usize {
    redis::cmd("DBSIZE").query(&mut server.client()).unwrap()
}

/// How many DUMPs the server has answered (`INFO commandstats`).
fn dump_calls(server: &Server) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.client())
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_dump:calls="))
        .and_then(|rest| rest.split(',').next())
        .map(|calls| calls.parse().unwrap())
        .unwrap_or(0)
}

/// The state file as JSON.
fn state_json(state: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap()
}

/// Polls until the target holds what the source does (field TTLs only exist where both
/// sides have them here; vector sets are kept where the target has them).
fn wait_equal(source: &Server, target: &Server, ferry: &Ferry) {
    let deadline = Instant::now() + CONVERGE_WITHIN;
    let vectors = if target.kind().has_vector_sets() {
        VectorSets::Keep
    } else {
        VectorSets::Remove
    };
    loop {
        let before = Snapshot::capture(source).expect("capture source");
        let expected = after_policies(&before, FieldTtl::Keep, vectors).snapshot;
        let actual = Snapshot::capture(target).expect("capture target");
        let differences = expected.diff(&actual, &DiffOptions::new());
        if differences.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let shown: Vec<String> = differences.iter().take(40).map(|d| d.to_string()).collect();
            panic!(
                "{} differences after {CONVERGE_WITHIN:?}:\n{}\n{}",
                differences.len(),
                shown.join("\n"),
                ferry.output()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn stop(ferry: &mut Ferry) {
    ferry.signal("TERM");
    let status = ferry.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", ferry.output());
}

/// `count` keys the target holds (so ferry copied them before it was killed).
fn copied_keys(target: &Server, count: usize) -> Vec<String> {
    let (_, keys): (String, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("MATCH")
        .arg("bulk:*")
        .arg("COUNT")
        .arg(1000)
        .query(&mut target.client())
        .unwrap();
    assert!(keys.len() >= count, "{keys:?}");
    keys.into_iter().take(count).collect()
}

/// Killed (SIGKILL) half-way through the scan of 200k keys with a write load running,
/// and changed while down: the restarted run resumes, DUMPs far fewer keys than the
/// source holds, and ends equal.
fn killed_mid_scan_resumes(source_kind: ServerKind, target_kind: ServerKind) {
    let source = Server::start(source_kind).unwrap();
    let target = Server::start(target_kind).unwrap();
    dataset::populate(&source).unwrap();
    fill(&source, BULK_KEYS);
    // As on a live source, the data is older than the run: keys written within seconds
    // of the checkpoint count as touched since (the margin for idle times' coarse clock).
    std::thread::sleep(IDLE_MARGIN);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("scan.state");
    let halt = Arc::new(AtomicBool::new(false));
    let load = Workload::new(source.kind(), DEFAULT_SEED)
        .without(&UNFOLLOWED)
        .with_rate(Some(500))
        .start(source.url(), halt.clone());

    let mut first = scan(&source, &target, &state, PACED);
    let deadline = Instant::now() + RUN_TIMEOUT;
    while dbsize(&target) < BULK_KEYS * 55 / 100 {
        assert!(Instant::now() < deadline, "{}", first.output());
        assert!(first.is_running(), "{}", first.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill();
    let copied_before_kill = dbsize(&target);
    let total = dbsize(&source);
    assert!(
        copied_before_kill < total * 9 / 10,
        "killed too late to be mid-scan: {copied_before_kill} of {total}\n{}",
        first.output()
    );
    let saved = state_json(&state);
    assert_eq!(saved["mode"], "scan", "{saved}");
    let dbs = saved["scan"]["dbs"]
        .as_array()
        .expect("a checkpoint")
        .clone();
    assert!(
        dbs.iter().any(|db| db["done"] == false),
        "the checkpoint is mid-scan: {saved}"
    );

    // While ferry is down: keys it had copied change; their notifications are lost.
    let changed = copied_keys(&target, 3);
    let mut con = source.client();
    redis::cmd("DEL")
        .arg(&changed[0])
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("SET")
        .arg(&changed[1])
        .arg("overwritten while ferry was down")
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("EXPIRE")
        .arg(&changed[2])
        .arg(3600)
        .query::<()>(&mut con)
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));

    let dumps_before = dump_calls(&source);
    let mut second = scan(&source, &target, &state, PACED);
    second.wait_for("resuming the scan from the checkpoint", RUN_TIMEOUT);
    second.wait_for("caught up with the downtime", RUN_TIMEOUT);
    second.wait_for(IN_SYNC, RUN_TIMEOUT);
    halt.store(true, Ordering::Relaxed);
    let stats = load.join().expect("the load ends");
    assert!(stats.total() > 1000, "{stats:?}");
    std::thread::sleep(SHORT_TTLS_PASSED);
    wait_equal(&source, &target, &second);
    let dumped = dump_calls(&source) - dumps_before;
    eprintln!(
        "{source_kind} -> {target_kind}: {total} keys, {copied_before_kill} on the target when \
         killed, {dumped} DUMPed by the resumed run"
    );
    assert!(
        (dumped as usize) < total * 7 / 10,
        "the resumed run DUMPed {dumped} of {total} keys:\n{}",
        second.output()
    );
    let mut on_target = target.client();
    let exists: bool = redis::cmd("EXISTS")
        .arg(&changed[0])
        .query(&mut on_target)
        .unwrap();
    assert!(!exists, "{} was deleted while ferry was down", changed[0]);
    let value: String = redis::cmd("GET")
        .arg(&changed[1])
        .query(&mut on_target)
        .unwrap();
    assert_eq!(value, "overwritten while ferry was down");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&changed[2])
        .query(&mut on_target)
        .unwrap();
    assert!(ttl > 3000, "{ttl}");
    stop(&mut second);
}

#[test]
fn valkey_8_1_killed_mid_scan_resumes_without_copying_everything_again() {
    killed_mid_scan_resumes(ServerKind::Valkey81, ServerKind::Valkey91);
}

#[test]
fn redis_8_0_killed_mid_scan_resumes_without_copying_everything_again() {
    killed_mid_scan_resumes(ServerKind::Redis80, ServerKind::Redis80);
}

/// The source restarted while ferry was stopped: its cursors mean nothing now, so the
/// run copies everything again (and deletes on the target what the source lost).
#[test]
fn a_checkpoint_of_a_source_restarted_since_starts_over_and_ends_equal() {
    let mut source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    dataset::populate(&source).unwrap();
    fill(&source, 2_000);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("scan.state");
    let mut first = scan(&source, &target, &state, "200000");
    first.wait_for(IN_SYNC, RUN_TIMEOUT);
    stop(&mut first);
    assert!(state_json(&state)["scan"]["run_id"].is_string());

    source.restart().unwrap();
    redis::cmd("DEL")
        .arg("bulk:7")
        .query::<()>(&mut source.client())
        .unwrap();
    let mut second = scan(&source, &target, &state, "200000");
    second.wait_for("the source restarted since the checkpoint", RUN_TIMEOUT);
    second.wait_for(IN_SYNC, RUN_TIMEOUT);
    wait_equal(&source, &target, &second);
    stop(&mut second);
}

/// The last line of a run expected to stop at once, with exit 1.
fn refusal(args: &[&str]) -> String {
    let output = ferry(args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    stderr.lines().last().unwrap_or_default().to_owned()
}

#[test]
fn a_state_file_of_another_source_or_mode_is_refused_in_one_line() {
    let source = Server::start(ServerKind::Valkey81).unwrap();
    let other = Server::start(ServerKind::Valkey81).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    fill(&source, 100);
    fill(&other, 100);
    let dir = tempfile::tempdir().unwrap();
    let scan_state = dir.path().join("scan.state");
    let mut run = scan(&source, &target, &scan_state, "200000");
    run.wait_for(IN_SYNC, RUN_TIMEOUT);
    stop(&mut run);

    let (source_url, other_url, target_url) = (source.url(), other.url(), target.url());
    let scan_path = path(&scan_state);
    let mut args = vec![
        "migrate",
        "--source",
        &other_url,
        "--target",
        &target_url,
        "--state",
        &scan_path,
        "--mode",
        "scan",
    ];
    let line = refusal(&args);
    assert!(
        line.contains("holds a scan of source") && line.contains(&source_url),
        "{line}"
    );
    // The same file, given to replication mode.
    args[2] = &source_url;
    args.truncate(args.len() - 2);
    let line = refusal(&args);
    assert!(line.contains("was written by --mode scan"), "{line}");

    // A replication run's file, given to scan mode.
    let other_target = Server::start(ServerKind::Valkey81).unwrap();
    let replication_state = dir.path().join("replication.state");
    let mut replication = Ferry::migrate(&source, &other_target, &replication_state, &[]);
    replication.wait_in_sync();
    stop(&mut replication);
    let (other_target_url, replication_path) = (other_target.url(), path(&replication_state));
    let line = refusal(&[
        "migrate",
        "--source",
        &source_url,
        "--target",
        &other_target_url,
        "--state",
        &replication_path,
        "--mode",
        "scan",
    ]);
    assert!(line.contains("was written by --mode replication"), "{line}");
}
