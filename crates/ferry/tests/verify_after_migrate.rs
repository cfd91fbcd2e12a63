//! `ferry verify` after `ferry migrate`, the setup it exists for: the write load keeps
//! running while verify compares, and the rounds must leave no false difference; the
//! policies the migration used are passed to verify too.

mod migrate_support;

use ferry::policy::{HashFieldTtlPolicy, Policies, VectorSetPolicy};
use ferry::url::ServerUrl;
use ferry::verify::{self, VerifyOptions};
use ferry_testkit::workload::Workload;
use ferry_testkit::{dataset, Server, ServerKind};
use migrate_support::Ferry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn url(server: &Server) -> ServerUrl {
    ServerUrl::parse(&server.url()).expect("server URL")
}

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
        ..VerifyOptions::new(url(&source), url(&target))
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
