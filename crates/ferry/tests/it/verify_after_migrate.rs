//! `ferry verify` after `ferry migrate`, the setup it exists for: the write load keeps
//! running while verify compares, and the rounds must leave no false difference; the
//! policies the migration used are passed to verify too.

use crate::support::migrate;
use crate::support::migrate::Ferry;
use crate::support::{ferry, server_url};
use ferry::policy::{HashFieldTtlPolicy, Policies, VectorSetPolicy};
use ferry::verify::{self, VerifyOptions};
use ferry_testkit::workload::Workload;
use ferry_testkit::{dataset, Server, ServerKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn verify_live_migration(
    source_kind: ServerKind,
    target_kind: ServerKind,
    flags: &[&str],
    policies: Policies,
) {
    let source = Server::start(source_kind).unwrap();
    let target = Server::start(target_kind).unwrap();
    dataset::populate(&source).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::spawn(source.url(), source_kind, stop.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut ferry = Ferry::migrate(&source, &target, &dir.path().join("ferry.state"), flags);
    ferry.wait_in_sync();

    let options = VerifyOptions {
        rounds: 5,
        policies,
        ..VerifyOptions::new(server_url(&source), server_url(&target))
    };
    let report = verify::run(&options);
    stop.store(true, Ordering::Relaxed);
    let stats = load.join().expect("the load ends");
    let report = report.expect("verify");
    assert!(stats.total() > 1000, "the load ran: {stats:?}");
    assert!(
        report.is_clean(),
        "{source_kind} -> {target_kind}: {:#?}\n{}",
        report.differences,
        ferry.output()
    );
    assert!(report.summary.keys_compared > 100, "{:?}", report.summary);
    // ferry's marker on the target is its bookkeeping: left out, and said so.
    assert_eq!(report.ferry_markers_skipped, 1, "{report:?}");

    ferry.signal("TERM");
    ferry.wait_exit(Duration::from_secs(20));
}

#[test]
fn redis_7_0_to_valkey_9_1_under_load() {
    verify_live_migration(
        ServerKind::Redis70,
        ServerKind::Valkey91,
        &[],
        Policies::default(),
    );
}

#[test]
fn redis_8_0_to_valkey_8_1_under_load_with_policies() {
    let policies = Policies {
        hash_field_ttl: HashFieldTtlPolicy::Persist,
        vector_set: VectorSetPolicy::Skip,
        ..Policies::default()
    };
    verify_live_migration(
        ServerKind::Redis80,
        ServerKind::Valkey81,
        &["--hash-field-ttl", "persist", "--vector-set", "skip"],
        policies,
    );
}

/// Redis before 7.4 replicates XREADGROUP as XCLAIMs that do not carry the group's
/// entries-read, and after XDEL or XTRIM its own replicas lose the counter (a native
/// Redis 7.0 replica shows the same). verify must not call that a difference: the data is
/// equal, and the counter is named in a note.
#[test]
fn stream_group_counters_redis_7_0_does_not_replicate_are_a_note() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let mut con = source.client();
    let run = |con: &mut redis::Connection, args: &[&str]| {
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command.query::<redis::Value>(con).unwrap();
    };
    // The full sync carries the group's counter as it is (4) ...
    run(
        &mut con,
        &["XGROUP", "CREATE", "jobs", "g1", "$", "MKSTREAM"],
    );
    for i in 1..=20 {
        run(
            &mut con,
            &["XADD", "jobs", &format!("{i}-0"), "n", &i.to_string()],
        );
    }
    let read = [
        "XREADGROUP",
        "GROUP",
        "g1",
        "c1",
        "COUNT",
        "4",
        "STREAMS",
        "jobs",
        ">",
    ];
    run(&mut con, &read);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate(&source, &target, &state, &[]);
    ferry.wait_in_sync();

    // ... and the reads after it reach the target as XCLAIMs, which leave it behind.
    for _ in 0..3 {
        run(&mut con, &read);
    }
    run(&mut con, &["XADD", "jobs", "21-0", "n", "21"]);
    run(&mut con, &read);
    migrate::wait_applied(&source, &state, &ferry);

    let out = ferry_verify(&source, &target, &["--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["differing"], 0, "{report:#}");
    let notes = report["notes"].to_string();
    assert!(notes.contains("entries-read"), "{report:#}");

    // The text report says the same in one line.
    let out = ferry_verify(&source, &target, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("note:") && l.contains("entries-read")),
        "{text}"
    );
    ferry.signal("TERM");
    ferry.wait_exit(Duration::from_secs(20));
}

/// `ferry verify` between the two servers, with `extra` arguments.
fn ferry_verify(source: &Server, target: &Server, extra: &[&str]) -> std::process::Output {
    let (source, target) = (source.url(), target.url());
    let mut args = vec!["verify", "--source", &source, "--target", &target];
    args.extend_from_slice(extra);
    ferry(&args)
}
