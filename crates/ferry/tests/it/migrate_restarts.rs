//! Servers restarted under a running `ferry migrate`, with the testkit's write load on the
//! source throughout: the source (its data saved, then started again on the same port) is
//! followed again by itself; a restarted target stops ferry, and running it again with the
//! same `--state` resumes from what the target itself holds (ferry's marker, written in the
//! same transaction as each batch): a target that kept everything (append-only, shut down
//! or crashed) resumes with nothing applied twice — the load's INCRs, LPUSHes, APPENDs and
//! XADDs would show a replay — and a target that lost everything is loaded again. Either
//! way the target ends holding what the source holds.

use crate::support::migrate;
use crate::support::migrate::{
    applied_offset, assert_as_policies_promise, capture_in_step, wait_applied, Ferry, Load,
};
use ferry_testkit::expect::{FieldTtl, VectorSets};
use ferry_testkit::snapshot::DiffOptions;
use ferry_testkit::{dataset, Server, ServerKind};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The comparison of `migrate_sync`: the target holds the source's data as the default
/// policies promise (Redis 7.0 has no field TTLs or vector sets).
fn assert_equal(source: &Server, target: &Server, state: &Path, ferry: &Ferry) {
    let (before, actual) = capture_in_step(source, target, state, ferry);
    let policies = (FieldTtl::Keep, VectorSets::Remove);
    let between = format!("{} -> {}", source.kind(), target.kind());
    assert_as_policies_promise(
        &before,
        actual,
        policies,
        &DiffOptions::new(),
        &between,
        &ferry.output(),
    );
}

/// After the load stops: short TTLs run out on both sides, then the source's deletions
/// reach the target (as in `migrate_sync`).
fn settle(source: &Server, state: &Path, ferry: &Ferry, load: Load) {
    let stats = load.stop();
    assert!(stats.total() > 1000, "{stats:?}");
    std::thread::sleep(ferry_testkit::workload::SHORT_TTLS_PASSED);
    wait_applied(source, state, ferry);
}

/// A Redis 7.0 source holding the dataset under the write load, and ferry (with a state
/// file) in sync with a Valkey 8.1 target started with `target_args`.
struct Run {
    source: Server,
    target: Server,
    load: Option<Load>,
    state: PathBuf,
    ferry: Ferry,
    _dir: tempfile::TempDir,
}

impl Run {
    fn start(target_args: &[&str]) -> Run {
        let source = Server::start(ServerKind::Redis70).unwrap();
        let target = Server::start_with_args(ServerKind::Valkey81, target_args).unwrap();
        dataset::populate(&source).unwrap();
        let load = Load::start(&source);
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("ferry.state");
        let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
        ferry.wait_in_sync();
        Run {
            source,
            target,
            load: Some(load),
            state,
            ferry,
            _dir: dir,
        }
    }

    /// A new ferry with the same state file, the previous one having stopped.
    fn migrate_again(&mut self) {
        self.ferry = Ferry::migrate(&self.source, &self.target, &self.state, &[]);
    }

    /// Stops the load and waits until its effects settled on the target.
    fn settle(&mut self) {
        let load = self.load.take().expect("the load runs");
        settle(&self.source, &self.state, &self.ferry, load);
    }

    fn assert_equal(&self) {
        assert_equal(&self.source, &self.target, &self.state, &self.ferry);
    }

    /// SIGTERM ends ferry cleanly.
    fn stop(&mut self) {
        self.ferry.signal("TERM");
        let status = self.ferry.wait_exit(Duration::from_secs(20));
        assert!(status.success(), "{status}:\n{}", self.ferry.output());
    }
}

#[test]
fn a_restarted_source_is_followed_again() {
    let mut run = Run::start(&[]);
    std::thread::sleep(Duration::from_secs(2));
    run.source.restart().unwrap();
    run.ferry
        .wait_for("lost the source", Duration::from_secs(30));
    // The load reconnects by itself and keeps writing to the restarted source.
    std::thread::sleep(Duration::from_secs(4));
    wait_applied(&run.source, &run.state, &run.ferry);
    run.settle();
    run.assert_equal();
    run.stop();
}

/// The source restarted while the load is stopped: ferry reconnects (partial or full
/// resync, as the source allows) and the target ends equal.
#[test]
fn a_source_restarted_between_writes_is_followed_again() {
    let mut run = Run::start(&[]);
    std::thread::sleep(Duration::from_secs(2));
    run.settle();
    run.source.restart().unwrap();
    run.ferry
        .wait_for("lost the source", Duration::from_secs(30));
    run.ferry.wait_for("resync", Duration::from_secs(30));
    // Short TTLs that ran out while the source was down: the restarted source dropped
    // them on load, the target by its own clock.
    std::thread::sleep(Duration::from_secs(2));
    wait_applied(&run.source, &run.state, &run.ferry);
    run.assert_equal();
}

/// Waits until ferry's state file records `bytes` more of the stream than it did when
/// called: the stream is being applied (and the state file trails the target).
fn wait_stream_progress(state: &Path, ferry: &Ferry, bytes: i64) {
    let from = applied_offset(state).unwrap_or(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while applied_offset(state).unwrap_or(0) < from + bytes {
        assert!(
            std::time::Instant::now() < deadline,
            "the stream did not advance {bytes} bytes past {from} within 60 s:\n{}",
            ferry.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// ferry's marker on the target: (replication ID, offset) it says the target holds.
fn target_marker(target: &Server) -> Option<(String, i64)> {
    let mut con = target.client();
    let fields: (Option<String>, Option<i64>) = redis::cmd("HMGET")
        .arg(ferry_testkit::snapshot::FERRY_MARKER_KEY)
        .arg("replid")
        .arg("offset")
        .query(&mut con)
        .unwrap();
    match fields {
        (Some(replid), Some(offset)) => Some((replid, offset)),
        _ => None,
    }
}

/// A stopped run's exit: a failure naming the lost target and the resume point.
fn assert_stopped_by_the_target(ferry: &mut Ferry) -> String {
    let status = ferry.wait_exit(Duration::from_secs(60));
    assert!(!status.success(), "{status}:\n{}", ferry.output());
    let output = ferry.output();
    assert!(
        output.contains("last applied offset") && output.contains("resume with --state"),
        "{output}"
    );
    output
}

#[test]
fn a_restarted_target_stops_ferry_and_the_same_state_resumes() {
    let mut run = Run::start(&["--appendonly", "yes"]);
    std::thread::sleep(Duration::from_secs(2));
    run.target.restart().unwrap();
    // A lost target is fatal: ferry stops, keeping the last applied offset.
    let first_run = assert_stopped_by_the_target(&mut run.ferry);

    // The load went on meanwhile; the same state resumes from where the target was.
    std::thread::sleep(Duration::from_secs(1));
    run.migrate_again();
    run.ferry.wait_in_sync();
    assert!(
        !run.ferry.output().contains("full sync"),
        "expected a partial resync:\n{}",
        run.ferry.output()
    );
    std::thread::sleep(Duration::from_secs(2));
    run.settle();
    // Shown with a failure, to tell what the stopped run had applied.
    eprintln!("first run:\n{first_run}");
    run.assert_equal();
    run.stop();
}

/// Freezes ferry (SIGSTOP) at a moment its state file trails ferry's marker on the target
/// (between two writes of the file), trying again until it does.
fn freeze_ferry_behind_the_target(ferry: &Ferry, target: &Server, state: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        ferry.signal("STOP");
        let recorded = applied_offset(state).expect("a resume point");
        let (_, held) = target_marker(target).expect("ferry's marker on the target");
        if held > recorded {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the target never got ahead of the state file ({held} vs {recorded})"
        );
        ferry.signal("CONT");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The target and ferry go down together (a machine crash): the target writes every
/// command to its append-only file before answering (`appendfsync always`), so it comes
/// back with every batch it ran, while ferry's state file is up to a second older.
/// Resuming from the target's marker applies none of those batches twice.
#[test]
fn a_target_ahead_of_the_state_file_gets_nothing_twice() {
    let mut run = Run::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    wait_stream_progress(&run.state, &run.ferry, 100_000);
    freeze_ferry_behind_the_target(&run.ferry, &run.target, &run.state);
    run.target.crash_and_restart().unwrap();
    run.ferry.signal("KILL");
    run.ferry.wait_exit(Duration::from_secs(10));
    // Read again now that both are down: the target may have run batches already on
    // their way when ferry froze.
    let (_, held) = target_marker(&run.target).expect("the crashed target kept ferry's marker");
    let recorded = applied_offset(&run.state).unwrap();
    assert!(held > recorded, "{held} vs {recorded}");

    run.migrate_again();
    run.ferry.wait_in_sync();
    let output = run.ferry.output();
    assert!(
        output.contains(&format!(
            "the target holds offset {held} by its marker, {} bytes past the state file's {recorded}",
            held - recorded
        )) && output.contains(&format!("partial resync accepted (+CONTINUE) at offset {held}"))
            && !output.contains("full sync"),
        "expected a partial resync from the target's offset {held}:\n{output}"
    );
    wait_stream_progress(&run.state, &run.ferry, 50_000);
    run.settle();
    run.assert_equal();
    run.stop();
}

/// The target's append-only file (its commands since the full sync).
fn incremental_aof(target: &Server) -> std::path::PathBuf {
    std::fs::read_dir(target.dir().join("appendonlydir"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".incr.aof"))
        .max()
        .expect("an incremental append-only file")
}

/// The target crashes and its append-only file loses its tail, cut anywhere (as a machine
/// crash before fsync leaves it): the target comes back with less than it acknowledged to
/// ferry. Its marker, cut with the data (a transaction cut short is dropped whole on load),
/// says where it ends; ferry says how much was lost and applies it again.
#[test]
fn a_target_that_lost_its_last_writes_gets_them_again() {
    let mut run = Run::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    wait_stream_progress(&run.state, &run.ferry, 50_000);
    let aof = incremental_aof(&run.target);
    let kept = std::fs::metadata(&aof).unwrap().len();
    wait_stream_progress(&run.state, &run.ferry, 100_000);
    run.target.kill().unwrap();
    let written = std::fs::metadata(&aof).unwrap().len();
    // Somewhere in the writes made after `kept`, not on a command boundary.
    let cut = kept + (written - kept) / 2 + 7;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&aof)
        .unwrap()
        .set_len(cut)
        .unwrap();
    run.target.start_again().unwrap();
    assert_stopped_by_the_target(&mut run.ferry);
    let recorded = applied_offset(&run.state).unwrap();
    let (_, held) = target_marker(&run.target).expect("the marker survives the cut");
    assert!(
        held < recorded,
        "the target holds {held}, ferry recorded {recorded}"
    );

    run.migrate_again();
    run.ferry.wait_in_sync();
    let output = run.ferry.output();
    assert!(
        output.contains(&format!(
            "the target lost its last {} bytes of writes (its marker says offset {held}, the state file {recorded})",
            recorded - held
        )) && !output.contains("full sync"),
        "{output}"
    );
    run.settle();
    run.assert_equal();
}

/// A target without persistence comes back empty after a crash: ferry finds no marker
/// where the state file says data was applied, says so and copies everything again.
#[test]
fn a_target_that_lost_its_data_is_loaded_again() {
    let mut run = Run::start(&[]);
    wait_stream_progress(&run.state, &run.ferry, 50_000);
    run.target.crash_and_restart().unwrap();
    assert_stopped_by_the_target(&mut run.ferry);
    assert_eq!(target_marker(&run.target), None);

    run.migrate_again();
    run.ferry
        .wait_for("the target lost its data", Duration::from_secs(30));
    run.ferry
        .wait_for("full sync done", Duration::from_secs(60));
    run.ferry.wait_in_sync();
    run.settle();
    run.assert_equal();
}

/// Keys on the target but no marker while the state file says data was applied: the
/// marker was removed (a cutover) or the target kept only part of its data. ferry does not
/// empty a target it may no longer own without being told to.
#[test]
fn a_target_with_data_but_no_marker_is_not_emptied_unasked() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let mut con = source.client();
    for i in 0..200 {
        redis::cmd("SET")
            .arg(format!("k:{i}"))
            .arg(i)
            .query::<()>(&mut con)
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");

    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    ferry.wait_in_sync();
    ferry.signal("TERM");
    assert!(ferry.wait_exit(Duration::from_secs(20)).success());
    assert!(target_marker(&target).is_some(), "{}", ferry.output());
    redis::cmd("DEL")
        .arg(ferry_testkit::snapshot::FERRY_MARKER_KEY)
        .query::<()>(&mut target.client())
        .unwrap();
    let keys_before = target_keys(&target);

    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    let status = ferry.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "{}", ferry.output());
    assert!(
        ferry.output().contains("no ferry marker") && ferry.output().contains("--flush-target"),
        "{}",
        ferry.output()
    );
    assert_eq!(target_keys(&target), keys_before);

    let mut ferry = Ferry::migrate(&source, &target, &state, &["--flush-target"]);
    ferry.wait_for("emptied the target (FLUSHALL)", Duration::from_secs(30));
    ferry.wait_in_sync();
    assert_equal(&source, &target, &state, &ferry);
}

fn target_keys(target: &Server) -> u64 {
    let mut con = target.client();
    (0..16)
        .map(|db| {
            redis::cmd("SELECT").arg(db).query::<()>(&mut con).unwrap();
            redis::cmd("DBSIZE").query::<u64>(&mut con).unwrap()
        })
        .sum()
}

/// The source moves database 0 away (SWAPDB) and empties everything (FLUSHALL): the
/// marker is rewritten in database 0 with each batch and no stray copy stays behind.
#[test]
fn the_marker_stays_alone_in_database_0_through_swaps_and_flushes() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let mut con = source.client();
    let set = |con: &mut redis::Connection, db: i64, key: &str| {
        redis::cmd("SELECT").arg(db).query::<()>(con).unwrap();
        redis::cmd("SET").arg(key).arg(db).query::<()>(con).unwrap();
    };
    set(&mut con, 0, "in:0");
    set(&mut con, 5, "in:5");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    ferry.wait_in_sync();

    for other in [5, 6] {
        redis::cmd("SWAPDB")
            .arg(0)
            .arg(other)
            .query::<()>(&mut con)
            .unwrap();
        set(&mut con, 0, &format!("after:swap:{other}"));
        wait_applied(&source, &state, &ferry);
        migrate::assert_same(&source, &target, &DiffOptions::new());
        assert!(target_marker(&target).is_some());
    }
    redis::cmd("FLUSHALL").query::<()>(&mut con).unwrap();
    set(&mut con, 3, "after:flush");
    wait_applied(&source, &state, &ferry);
    migrate::assert_same(&source, &target, &DiffOptions::new());
    let (_, offset) = target_marker(&target).expect("the marker after FLUSHALL");
    assert!(offset >= applied_offset(&state).unwrap());
}

/// The same load streamed as long as in the restart tests, with no restart: tells a
/// stream problem from a restart problem.
#[test]
fn the_same_load_streamed_as_long_without_a_restart() {
    let mut run = Run::start(&[]);
    std::thread::sleep(Duration::from_secs(8));
    run.settle();
    run.assert_equal();
}
