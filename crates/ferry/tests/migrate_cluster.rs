//! `ferry migrate` into a real cluster target: keys routed by slot to the primaries of a
//! Valkey cluster, under a write load; the cluster then holds what the source holds.

mod migrate_support;

use ferry_testkit::expect::{after_policies, FieldTtl, VectorSets};
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::workload::{forget_unreplicated_group_state, Workload};
use ferry_testkit::{dataset, Cluster, Server, ServerKind};
use migrate_support::{wait_applied, Ferry};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn a_standalone_source_under_load_lands_equal_on_a_three_primary_cluster() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    let cluster = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    dataset::populate_db0(&source).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::new(ServerKind::Redis80, 7)
        .for_cluster()
        .start(source.url(), stop.clone());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let state_arg = state.display().to_string();
    let mut ferry = Ferry::start(&[
        "--source",
        &source.url(),
        "--target",
        &cluster.url(),
        "--state",
        &state_arg,
        "--hash-field-ttl",
        "persist",
        "--vector-set",
        "skip",
    ]);
    ferry.wait_for(
        "target is a cluster of 3 primaries",
        Duration::from_secs(30),
    );
    ferry.wait_in_sync();
    // Let the load run through the stream for a while.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let stats = load.join().expect("the load ends");
    assert!(stats.total() > 1000, "{stats:?}");
    assert!(stats.applied("DEL") > 0, "{stats:?}");
    std::thread::sleep(ferry_testkit::workload::SHORT_TTLS_PASSED);

    let before = Snapshot::capture(&source).unwrap();
    wait_applied(&source, &state, &ferry);
    let mut actual = cluster.snapshot().unwrap();
    // Every primary took a share of the keys.
    for node in cluster.nodes() {
        let keys = Snapshot::capture(node).unwrap().key_count();
        assert!(keys > 10, "node {} holds {keys} keys", node.port());
    }
    let mut expected = after_policies(&before, FieldTtl::Persist, VectorSets::Remove).snapshot;
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
    assert!(expected.key_count() > 100, "{}", expected.key_count());

    ferry.signal("TERM");
    let status = ferry.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}:\n{}", ferry.output());
}

#[test]
fn a_source_writing_to_another_database_stops_with_one_clear_line() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let cluster = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let mut con = source.client();
    redis::cmd("SELECT").arg(3).query::<()>(&mut con).unwrap();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query::<()>(&mut con)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let state_arg = state.display().to_string();
    let mut ferry = Ferry::start(&[
        "--source",
        &source.url(),
        "--target",
        &cluster.url(),
        "--state",
        &state_arg,
    ]);
    let status = ferry.wait_exit(Duration::from_secs(60));
    assert!(!status.success(), "{}", ferry.output());
    let output = ferry.output();
    assert!(
        output.contains("SELECT 3: the target is a cluster, which has database 0 only"),
        "{output}"
    );
}
