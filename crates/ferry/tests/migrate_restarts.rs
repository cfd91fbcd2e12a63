//! Servers restarted under a running `ferry migrate`, with the testkit's write load on the
//! source throughout: the source (its data saved, then started again on the same port) is
//! followed again by itself; a restarted target (append-only, so its data survives) stops
//! ferry, and running it again with the same `--state` resumes. Either way the target ends
//! holding what the source holds.

mod migrate_support;

use ferry_testkit::expect::{after_policies, FieldTtl, VectorSets};
use ferry_testkit::snapshot::DiffOptions;
use ferry_testkit::workload::{forget_unreplicated_group_state, Workload, WorkloadStats};
use ferry_testkit::{dataset, Server, ServerKind};
use migrate_support::{capture_in_step, wait_applied, Ferry};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The testkit's write load on the source, stopped on demand.
struct Load {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<WorkloadStats>,
}

impl Load {
    fn start(source: &Server) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = Workload::spawn(source.url(), source.kind(), stop.clone());
        Load { stop, thread }
    }

    fn stop(self) -> WorkloadStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the load ends")
    }
}

/// The comparison of migrate_sync.rs: the target holds the source's data as the default
/// policies promise (Redis 7.0 has no field TTLs or vector sets).
fn assert_equal(source: &Server, target: &Server, state: &Path, ferry: &Ferry) {
    let (before, mut actual) = capture_in_step(source, target, state, ferry);
    let mut expected = after_policies(&before, FieldTtl::Keep, VectorSets::Remove).snapshot;
    forget_unreplicated_group_state(&mut expected);
    forget_unreplicated_group_state(&mut actual);
    let differences = expected.diff(&actual, &DiffOptions::new());
    let shown: Vec<String> = differences.iter().take(40).map(|d| d.to_string()).collect();
    assert!(
        differences.is_empty(),
        "{} differences:\n{}\n{}",
        differences.len(),
        shown.join("\n"),
        ferry.output()
    );
    assert!(expected.key_count() > 0);
}

/// After the load stops: short TTLs run out on both sides, then the source's deletions
/// reach the target (as in migrate_sync.rs).
fn settle(source: &Server, state: &Path, ferry: &Ferry, load: Load) {
    let stats = load.stop();
    assert!(stats.total() > 1000, "{stats:?}");
    std::thread::sleep(ferry_testkit::workload::SHORT_TTLS_PASSED);
    wait_applied(source, state, ferry);
}

#[test]
fn a_restarted_source_is_followed_again() {
    let mut source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    dataset::populate(&source).unwrap();
    let load = Load::start(&source);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");

    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    ferry.wait_in_sync();
    std::thread::sleep(Duration::from_secs(2));
    source.restart().unwrap();
    ferry.wait_for("lost the source", Duration::from_secs(30));
    // The load reconnects by itself and keeps writing to the restarted source.
    std::thread::sleep(Duration::from_secs(4));
    wait_applied(&source, &state, &ferry);
    settle(&source, &state, &ferry, load);
    assert_equal(&source, &target, &state, &ferry);

    ferry.signal("TERM");
    let status = ferry.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}:\n{}", ferry.output());
}

/// The source restarted while the load is stopped: ferry reconnects (partial or full
/// resync, as the source allows) and the target ends equal.
#[test]
fn a_source_restarted_between_writes_is_followed_again() {
    let mut source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    dataset::populate(&source).unwrap();
    let load = Load::start(&source);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");

    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    ferry.wait_in_sync();
    std::thread::sleep(Duration::from_secs(2));
    settle(&source, &state, &ferry, load);
    source.restart().unwrap();
    ferry.wait_for("lost the source", Duration::from_secs(30));
    ferry.wait_for("resync", Duration::from_secs(30));
    // Short TTLs that ran out while the source was down: the restarted source dropped
    // them on load, the target by its own clock.
    std::thread::sleep(Duration::from_secs(2));
    wait_applied(&source, &state, &ferry);
    assert_equal(&source, &target, &state, &ferry);
}

#[test]
#[ignore = "engine bug: commands the target ran but never acknowledged before it went \
            down are sent again on resume (seen: the target refuses a replayed XADD, 'ID \
            equal or smaller than the target stream top item'; an INCR would apply twice); \
            fix: store the applied offset on the target atomically with each batch"]
fn a_restarted_target_stops_ferry_and_the_same_state_resumes() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let mut target =
        Server::start_with_args(ServerKind::Valkey81, &["--appendonly", "yes"]).unwrap();
    dataset::populate(&source).unwrap();
    let load = Load::start(&source);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");

    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    ferry.wait_in_sync();
    std::thread::sleep(Duration::from_secs(2));
    target.restart().unwrap();
    // Today a lost target is fatal: ferry stops, keeping the last applied offset.
    let status = ferry.wait_exit(Duration::from_secs(60));
    assert!(!status.success(), "{status}:\n{}", ferry.output());
    let first_run = ferry.output();

    // The load went on meanwhile; the same state resumes from where the target was.
    std::thread::sleep(Duration::from_secs(1));
    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    ferry.wait_in_sync();
    assert!(
        !ferry.output().contains("full sync"),
        "expected a partial resync:\n{}",
        ferry.output()
    );
    std::thread::sleep(Duration::from_secs(2));
    settle(&source, &state, &ferry, load);
    // Shown with a failure, to tell what the stopped run had applied.
    eprintln!("first run:\n{first_run}");
    assert_equal(&source, &target, &state, &ferry);

    ferry.signal("TERM");
    let status = ferry.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}:\n{}", ferry.output());
}

/// The same load streamed as long as in the restart tests, with no restart: tells a
/// stream problem from a restart problem.
#[test]
fn the_same_load_streamed_as_long_without_a_restart() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    dataset::populate(&source).unwrap();
    let load = Load::start(&source);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");

    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    ferry.wait_in_sync();
    std::thread::sleep(Duration::from_secs(8));
    settle(&source, &state, &ferry, load);
    assert_equal(&source, &target, &state, &ferry);
}
