//! Faults on the links, not on the servers: ferry talks to a Redis 7.0 source and a Valkey
//! 8.1 target through the testkit's fault proxy, under the testkit's write load, and the
//! proxy stalls, slows, delays, cuts or refuses a link. ferry either rides it out and the
//! target ends key by key equal to the source (with partial resyncs only: the source's
//! `sync_full` stays at 1), or stops with one `ferry: …` line that says how to resume, and
//! the same `--state` then resumes exactly once.

use crate::support::migrate::{
    assert_as_policies_promise, capture_in_step, wait_applied, Ferry, Load,
};
use crate::support::proc_status_kb;
use ferry_testkit::expect::{FieldTtl, VectorSets};
use ferry_testkit::snapshot::DiffOptions;
use ferry_testkit::{dataset, FaultProxy, Server, ServerKind};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// ferry's bound on each wait for bytes from the source (`--source-read-timeout`, 60 s
/// by default), short here so that a stall past it takes seconds. The source PINGs its
/// replicas every 10 s, so a quiet but healthy link stays up well within it.
const SOURCE_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// ferry's bound on a silent target (`--target-reply-timeout`, 120 s by default).
const TARGET_REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// A source holding the dataset under the write load, an empty target, a proxy in front
/// of each, and (once started) ferry between the two proxies with a state file.
struct Run {
    source: Server,
    target: Server,
    source_link: FaultProxy,
    target_link: FaultProxy,
    load: Option<Load>,
    state: PathBuf,
    ferry: Option<Ferry>,
    _dir: tempfile::TempDir,
}

impl Run {
    fn new() -> Run {
        let source = Server::start(ServerKind::Redis70).unwrap();
        let target = Server::start(ServerKind::Valkey81).unwrap();
        let mut con = source.client();
        // The snapshot starts at once; the backlog holds whatever a stalled link misses.
        for (name, value) in [
            ("repl-diskless-sync-delay", "0"),
            ("repl-backlog-size", "256mb"),
        ] {
            redis::cmd("CONFIG")
                .arg("SET")
                .arg(name)
                .arg(value)
                .query::<()>(&mut con)
                .unwrap();
        }
        dataset::populate(&source).unwrap();
        let source_link = FaultProxy::start(source.port()).unwrap();
        let target_link = FaultProxy::start(target.port()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("ferry.state");
        // Straight to the source: the faults are on ferry's links only.
        let load = Load::start(&source);
        Run {
            source,
            target,
            source_link,
            target_link,
            load: Some(load),
            state,
            ferry: None,
            _dir: dir,
        }
    }

    /// Starts ferry between the two proxies (again, after a stop: same state file).
    fn start_ferry(&mut self) -> &mut Ferry {
        let source_read_timeout = SOURCE_READ_TIMEOUT.as_secs().to_string();
        let target_reply_timeout = TARGET_REPLY_TIMEOUT.as_secs().to_string();
        let ferry = Ferry::migrate_between(
            &self.source_link.url(),
            &self.target_link.url(),
            &self.state,
            &[
                "--source-read-timeout",
                &source_read_timeout,
                "--target-reply-timeout",
                &target_reply_timeout,
            ],
        );
        self.ferry.insert(ferry)
    }

    fn ferry(&mut self) -> &mut Ferry {
        self.ferry.as_mut().expect("ferry runs")
    }

    /// Stops the load, lets its short TTLs run out on both sides, waits until the target
    /// applied everything, and compares key by key.
    fn settle_and_assert_equal(&mut self) {
        let stats = self.load.take().expect("the load runs").stop();
        assert!(stats.total() > 1000, "{stats:?}");
        std::thread::sleep(ferry_testkit::workload::SHORT_TTLS_PASSED);
        let ferry = self.ferry.as_ref().expect("ferry runs");
        wait_applied(&self.source, &self.state, ferry);
        let (before, actual) = capture_in_step(&self.source, &self.target, &self.state, ferry);
        // A Redis 7.0 source: no field TTLs or vector sets, which the default policies
        // would refuse.
        let policies = (FieldTtl::Keep, VectorSets::Remove);
        assert_as_policies_promise(
            &before,
            actual,
            policies,
            &DiffOptions::new(),
            "through the proxy",
            &ferry.output(),
        );
    }

    /// SIGTERM ends ferry cleanly.
    fn stop_ferry(&mut self) {
        let ferry = self.ferry();
        ferry.signal("TERM");
        let status = ferry.wait_exit(Duration::from_secs(20));
        assert!(status.success(), "{status}:\n{}", ferry.output());
    }

    /// The source's full and partial resyncs so far (`INFO stats`).
    fn resyncs(&self) -> Resyncs {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query(&mut self.source.client())
            .unwrap();
        let field = |name: &str| -> u64 {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{name} in INFO stats:\n{info}"))
        };
        Resyncs {
            full: field("sync_full"),
            partial: field("sync_partial_ok"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resyncs {
    full: u64,
    partial: u64,
}

/// ferry stopped on an error: a non-zero exit, no panic, and its last line is the one
/// error line, naming the target (by the address ferry was given) and the state file to
/// resume with.
fn assert_stopped_on_the_target(run: &Run, status: ExitStatus, output: &str) {
    assert!(!status.success(), "{status}:\n{output}");
    assert!(!output.contains("panicked"), "{output}");
    let last = output.lines().last().unwrap_or_default();
    assert!(last.starts_with("ferry: "), "{output}");
    for needle in [
        run.target_link.url(),
        format!("resume with --state {}", run.state.display()),
    ] {
        assert!(
            last.contains(&needle),
            "{needle:?} not in {last:?}:\n{output}"
        );
    }
    let errors = output
        .lines()
        .filter(|l| l.contains("resume with --state"))
        .count();
    assert_eq!(errors, 1, "{output}");
}

#[test]
fn a_source_link_stalled_past_the_read_timeout_resumes_with_a_partial_resync() {
    let mut run = Run::new();
    run.start_ferry().wait_in_sync();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(run.resyncs().full, 1);
    let partial_before = run.resyncs().partial;

    let stalled = Instant::now();
    run.source_link.stall();
    let lost = run.ferry().wait_for(
        "lost the source",
        SOURCE_READ_TIMEOUT + Duration::from_secs(20),
    );
    let noticed_after = stalled.elapsed();
    eprintln!("noticed after {noticed_after:?}: {lost}");
    assert!(noticed_after >= SOURCE_READ_TIMEOUT, "{lost}");
    run.source_link.resume();

    run.ferry().wait_for(
        "partial resync accepted (+CONTINUE)",
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_secs(2));
    run.settle_and_assert_equal();
    let resyncs = run.resyncs();
    assert_eq!(resyncs.full, 1, "{resyncs:?}");
    assert!(resyncs.partial > partial_before, "{resyncs:?}");
    run.stop_ferry();
}

#[test]
fn a_full_sync_over_a_slow_source_link_ends_equal() {
    let mut run = Run::new();
    fill(&run.source, 4 << 20);
    let rate = 200_000;
    run.source_link.set_rate(Some(rate));
    let started = Instant::now();
    run.start_ferry()
        .wait_for("full sync: receiving", Duration::from_secs(30));
    // The snapshot comes at about the rate while it is set.
    let from = run.source_link.bytes_to_client();
    std::thread::sleep(Duration::from_secs(3));
    let received = run.source_link.bytes_to_client() - from;
    eprintln!("{received} bytes in 3 s at {rate} B/s");
    assert!(received > 2 * rate && received < 4 * rate, "{received}");

    run.source_link.set_rate(None);
    run.ferry().wait_in_sync();
    eprintln!("in sync after {:?}", started.elapsed());
    std::thread::sleep(Duration::from_secs(2));
    run.settle_and_assert_equal();
    assert_eq!(run.resyncs().full, 1);
    run.stop_ferry();
}

/// The peak resident memory of process `pid` so far (`VmHWM`), in MB.
fn peak_rss_mb(pid: u32) -> u64 {
    proc_status_kb(pid, "VmHWM").expect("VmHWM of a running process") / 1024
}

/// `bytes` of 1 KiB strings, for a snapshot that takes a while at a slow rate.
fn fill(server: &Server, bytes: usize) {
    let mut con = server.client();
    let value = "v".repeat(1024);
    for block in 0..bytes / 1024 / 500 {
        let mut pipe = redis::pipe();
        for i in 0..500 {
            pipe.cmd("SET")
                .arg(format!("fill:{block}:{i}"))
                .arg(&value)
                .ignore();
        }
        pipe.query::<()>(&mut con).unwrap();
    }
}

#[test]
fn a_delayed_target_link_ends_equal() {
    let mut run = Run::new();
    let delay = Duration::from_millis(200);
    run.target_link.set_delay(delay);
    let started = Instant::now();
    // Under a steady load the applied offset trails the received one by the round trip,
    // so "in sync" (the two equal at a tick) may never show while the load runs.
    run.start_ferry()
        .wait_for("full sync done", Duration::from_secs(30));
    eprintln!("full sync done after {:?}", started.elapsed());
    std::thread::sleep(Duration::from_secs(5));
    let streamed = run.target_link.bytes_to_upstream();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        run.target_link.bytes_to_upstream() > streamed,
        "the stream flows"
    );
    // Once the load stops, the applied offset catches up with the source's.
    run.settle_and_assert_equal();
    run.stop_ferry();
}

/// A user waits for "in sync" before a cutover; a target 200 ms away must not keep it
/// from ever showing while the source takes steady writes.
#[test]
fn a_delayed_target_link_still_reaches_in_sync_under_load() {
    let mut run = Run::new();
    run.target_link.set_delay(Duration::from_millis(200));
    let ferry = run.start_ferry();
    ferry.wait_for("full sync done", Duration::from_secs(30));
    ferry.wait_for("ferry: in sync at offset", Duration::from_secs(30));
    run.settle_and_assert_equal();
    run.stop_ferry();
}

#[test]
fn a_cut_target_link_stops_ferry_and_the_same_state_resumes_once() {
    let mut run = Run::new();
    run.start_ferry().wait_in_sync();
    std::thread::sleep(Duration::from_secs(2));

    run.target_link.cut();
    let status = run.ferry().wait_exit(Duration::from_secs(30));
    let first_run = run.ferry().output();
    assert_stopped_on_the_target(&run, status, &first_run);

    // The load went on; the same state file through the healed link resumes from what the
    // target holds, with a partial resync, each write applied once (the load's INCRs,
    // LPUSHes and APPENDs would show a replay).
    std::thread::sleep(Duration::from_secs(1));
    let ferry = run.start_ferry();
    ferry.wait_for(
        "partial resync accepted (+CONTINUE)",
        Duration::from_secs(30),
    );
    ferry.wait_in_sync();
    let second_run = ferry.output();
    assert!(!second_run.contains("full sync"), "{second_run}");
    std::thread::sleep(Duration::from_secs(2));
    eprintln!("first run:\n{first_run}");
    run.settle_and_assert_equal();
    assert_eq!(run.resyncs().full, 1);
    run.stop_ferry();
}

#[test]
fn a_stalled_target_link_stops_ferry_within_a_bound() {
    let mut run = Run::new();
    run.start_ferry().wait_in_sync();
    std::thread::sleep(Duration::from_secs(1));

    let stalled = Instant::now();
    run.target_link.stall();
    // More writes than the sockets between ferry and the stalled target hold, so that
    // ferry's writes to the target block, not only its wait for replies.
    fill(&run.source, 32 << 20);
    std::thread::sleep(Duration::from_secs(5));
    let peak = peak_rss_mb(run.ferry().pid());
    eprintln!(
        "ferry's peak RSS {peak} MB, {:?} into the stall",
        stalled.elapsed()
    );
    // ferry's bound on a target that owes replies and sends nothing, or takes no bytes.
    let status = run
        .ferry()
        .wait_exit(TARGET_REPLY_TIMEOUT + Duration::from_secs(40));
    eprintln!("stopped {:?} after the stall", stalled.elapsed());
    let first_run = run.ferry().output();
    assert_stopped_on_the_target(&run, status, &first_run);

    run.target_link.resume();
    let ferry = run.start_ferry();
    ferry.wait_in_sync();
    std::thread::sleep(Duration::from_secs(2));
    eprintln!("first run:\n{first_run}");
    run.settle_and_assert_equal();
    run.stop_ferry();
}

#[test]
fn a_source_refusing_connections_after_a_cut_is_retried_until_it_accepts() {
    let mut run = Run::new();
    run.start_ferry().wait_in_sync();
    std::thread::sleep(Duration::from_secs(1));
    let accepted_before = run.source_link.accepted();

    run.source_link.refuse(true);
    run.source_link.cut();
    run.ferry()
        .wait_for("lost the source", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(4));
    let attempts = run.source_link.accepted() - accepted_before;
    eprintln!("{attempts} connections refused in 4 s");
    assert!(attempts >= 2, "ferry tried {attempts} times");

    run.source_link.refuse(false);
    run.ferry().wait_for(
        "partial resync accepted (+CONTINUE)",
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_secs(2));
    run.settle_and_assert_equal();
    assert_eq!(run.resyncs().full, 1);
    run.stop_ferry();
}
