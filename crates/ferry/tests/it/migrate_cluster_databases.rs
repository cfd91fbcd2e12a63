//! A standalone source with keys in several numbered databases into a Valkey 9 cluster
//! started with `cluster-databases`: every database keeps its keys through the full sync,
//! the stream, `ferry verify` and a cutover. Into a cluster with database 0 only, the run
//! is refused before anything is copied, naming the databases and what would work.

use crate::support::cutover::{
    cluster_counter_values, first_stdout_line, status_addr, switch_args_between, Counters,
};
use crate::support::migrate::{assert_as_policies_promise, wait_applied, Ferry, CONTROL_FLAGS};
use ferry_testkit::expect::{FieldTtl, VectorSets};
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::workload::Workload;
use ferry_testkit::{dataset, Cluster, Server, ServerKind};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Databases 0, 1 and 5 from the dataset, 2 and 3 filled here: five in all.
fn populate_five_databases(source: &Server) {
    dataset::populate(source).unwrap();
    let mut con = source.client();
    for db in [2, 3] {
        redis::cmd("SELECT").arg(db).query::<()>(&mut con).unwrap();
        let mut pipe = redis::pipe();
        for i in 0..300 {
            pipe.cmd("SET").arg(format!("db{db}:s:{i}")).arg(i).ignore();
            pipe.cmd("HSET")
                .arg(format!("db{db}:h:{}", i % 20))
                .arg(i)
                .arg("v")
                .ignore();
        }
        pipe.query::<()>(&mut con).unwrap();
    }
}

fn keys_per_db(snapshot: &Snapshot) -> Vec<(u32, usize)> {
    snapshot
        .databases
        .iter()
        .map(|(db, keys)| {
            let data = keys
                .keys()
                .filter(|key| !key.starts_with(b"ferry:migrate:applied"))
                .count();
            (*db, data)
        })
        .filter(|(_, keys)| *keys > 0)
        .collect()
}

#[test]
fn five_databases_land_equal_on_a_valkey_9_cluster_with_cluster_databases_and_cut_over() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let cluster =
        Cluster::start_with_args(ServerKind::Valkey91, 3, &["--cluster-databases", "16"]).unwrap();
    populate_five_databases(&source);
    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::new(ServerKind::Redis70, 29)
        .for_cluster_databases()
        .start(source.url(), stop.clone());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate_between(
        &source.url(),
        &cluster.url(),
        &state,
        &[
            "--metrics-addr",
            "127.0.0.1:0",
            CONTROL_FLAGS[0],
            CONTROL_FLAGS[1],
        ],
    );
    ferry.wait_for(
        "target is a cluster of 3 primaries: keys are routed by slot, databases 0 to 15",
        Duration::from_secs(30),
    );
    let status = status_addr(&mut ferry);
    ferry.wait_in_sync();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let stats = load.join().expect("the load ends");
    assert!(stats.applied("MOVE") > 0, "{stats:?}");
    assert!(stats.applied("FLUSHDB") > 0, "{stats:?}");
    std::thread::sleep(ferry_testkit::workload::SHORT_TTLS_PASSED);

    let before = Snapshot::capture(&source).unwrap();
    wait_applied(&source, &state, &ferry);
    let actual = cluster.snapshot().unwrap();
    let source_dbs = keys_per_db(&before);
    assert!(source_dbs.len() >= 5, "{source_dbs:?}");
    assert_eq!(keys_per_db(&actual), source_dbs, "keys per database");
    assert_as_policies_promise(
        &before,
        actual,
        (FieldTtl::Keep, VectorSets::Keep),
        &DiffOptions::new(),
        "redis 7.0 (5 databases) -> 3 x valkey 9.1 with cluster-databases 16",
        &ferry.output(),
    );

    // verify compares every database, on every primary.
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "verify",
            "--source",
            &source.url(),
            "--target",
            &cluster.url(),
            "--json",
        ])
        .output()
        .expect("run ferry verify");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{json:#}");
    let compared = json["summary"]["keys_compared"].as_u64().unwrap();
    let total: usize = source_dbs.iter().map(|(_, keys)| keys).sum();
    assert_eq!(compared as usize, total, "{json:#}");
    assert_eq!(
        json["summary"]["equal"].as_u64(),
        Some(compared),
        "{json:#}"
    );
    assert_eq!(json["summary"]["differing"], 0, "{json:#}");

    // A cutover while clients write: no acknowledged write is lost.
    let counters = Counters::start(&source, dir.path());
    counters.wait_progress(100);
    let hook = format!("printf %s \"$FERRY_TO\" > '{}'", counters.route.display());
    let args = switch_args_between(
        "cutover",
        &source.url(),
        &cluster.url(),
        &status,
        &["--exec", &hook, "--verify-sample", "200"],
    );
    let args: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let cutover = Ferry::start_command("cutover", &args);
    let result = first_stdout_line(&cutover);
    assert_eq!(result["ok"], true, "{result}\n{}", cutover.output());
    assert!(
        ferry.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        ferry.output()
    );
    counters.wait_progress(100);
    let acked = counters.stop();
    assert_eq!(
        cluster_counter_values(&cluster),
        acked,
        "each counter on the cluster must equal the INCRs acknowledged by either side"
    );
}

#[test]
fn a_cluster_with_database_0_only_is_refused_before_anything_is_copied() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let cluster = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let mut con = source.client();
    for db in [0, 3, 7] {
        redis::cmd("SELECT").arg(db).query::<()>(&mut con).unwrap();
        redis::cmd("SET")
            .arg("k")
            .arg(db)
            .query::<()>(&mut con)
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate_between(&source.url(), &cluster.url(), &state, &[]);
    let status = ferry.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{}", ferry.output());
    let output = ferry.output();
    let line = output
        .lines()
        .find(|line| line.contains("the source holds keys in databases 0, 3, 7"))
        .unwrap_or_else(|| panic!("no refusal naming the databases:\n{output}"));
    assert!(line.contains("database 0 only"), "{line}");
    assert!(line.contains("cluster-databases 8"), "{line}");
    assert!(line.contains("--db-map"), "{line}");
    assert_eq!(cluster.snapshot().unwrap().key_count(), 0, "nothing copied");
}

#[test]
fn slots_moved_on_a_cluster_with_databases_are_followed_in_every_database() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let cluster =
        Cluster::start_with_args(ServerKind::Valkey91, 3, &["--cluster-databases", "16"]).unwrap();
    populate_five_databases(&source);
    let load = |seed: u64| {
        let stop = Arc::new(AtomicBool::new(false));
        let running = Workload::new(ServerKind::Redis70, seed)
            .for_cluster_databases()
            .start(source.url(), stop.clone());
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        let stats = running.join().expect("the load ends");
        assert!(stats.total() > 1000, "{stats:?}");
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate_between(&source.url(), &cluster.url(), &state, &[]);
    ferry.wait_in_sync();
    load(31);
    wait_applied(&source, &state, &ferry);
    // Valkey 9's atomic slot migration moves the slots' keys of every database. It runs
    // while nothing is written: Valkey 9.1 applies writes that reach the old owner during
    // the migration to the last database of its snapshot on the new owner (see
    // docs/cluster.md). Afterwards ferry's writes to the old owner come back MOVED and go
    // again, each into its own database.
    cluster.migrate_slots_atomically(0, 1, 0, 2999).unwrap();
    load(37);
    std::thread::sleep(ferry_testkit::workload::SHORT_TTLS_PASSED);

    let before = Snapshot::capture(&source).unwrap();
    wait_applied(&source, &state, &ferry);
    let actual = cluster.snapshot().unwrap();
    let per_db = keys_per_db(&actual);
    assert_as_policies_promise(
        &before,
        actual,
        (FieldTtl::Keep, VectorSets::Keep),
        &DiffOptions::new().ttl_tolerance_ms(50),
        "5 databases into a cluster whose slots moved",
        &ferry.output(),
    );
    assert_eq!(per_db, keys_per_db(&before), "keys per database");
    ferry.signal("TERM");
    let status = ferry.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}:\n{}", ferry.output());
    let output = ferry.output();
    assert!(output.contains("followed a MOVED/ASK"), "{output}");
}
