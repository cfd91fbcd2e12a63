//! `ferry migrate` from a real Redis Cluster source: one replication reader per shard,
//! into a cluster or a standalone target, under a write load on every shard; through a
//! failover of a source primary and a restart of ferry.

use crate::support::migrate::{master_repl_offset, Ferry, IN_SYNC_TIMEOUT};
use ferry_testkit::expect::{after_policies, FieldTtl, VectorSets};
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::workload::{forget_unreplicated_group_state, Workload, WorkloadStats};
use ferry_testkit::{dataset, Cluster, Server, ServerKind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A cluster source filled with the database 0 dataset (written to a standalone server of
/// the same kind, then copied in by DUMP/RESTORE).
pub(crate) fn source_cluster(kind: ServerKind, primaries: usize, replicas: usize) -> Cluster {
    let cluster = Cluster::start_with_replicas(kind, primaries, replicas).unwrap();
    let staging = Server::start(kind).unwrap();
    dataset::populate_db0(&staging).unwrap();
    cluster.copy_from(&staging).unwrap();
    cluster
}

/// A load on one primary: its keys carry a hash tag of that primary's slots.
pub(crate) fn load_on(
    cluster: &Cluster,
    primary: usize,
    seed: u64,
    stop: &Arc<AtomicBool>,
) -> JoinHandle<WorkloadStats> {
    Workload::new(cluster.kind(), seed)
        .for_cluster()
        .with_key_tag(&cluster.tag_for(primary).unwrap())
        .with_rate(Some(700))
        .start(cluster.nodes()[primary].url(), stop.clone())
}

pub(crate) fn loads(
    cluster: &Cluster,
    seed: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<WorkloadStats>> {
    (0..cluster.nodes().len())
        .map(|primary| load_on(cluster, primary, seed + primary as u64, stop))
        .collect()
}

pub(crate) fn stop_loads(stop: &Arc<AtomicBool>, loads: Vec<JoinHandle<WorkloadStats>>) {
    stop.store(true, Ordering::Relaxed);
    for load in loads {
        let stats = load.join().expect("the load ends");
        assert!(stats.total() > 100, "{stats:?}");
    }
}

/// The offset each shard's entry in the state file says is applied, by the node it follows
/// (`127.0.0.1:port`; the entries are in slot order, which a resharding changes).
fn shard_offsets(state: &Path) -> Vec<(String, Option<i64>)> {
    let Ok(text) = std::fs::read_to_string(state) else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let Some(shards) = value.get("shards").and_then(|s| s.as_array()) else {
        return Vec::new();
    };
    shards
        .iter()
        .map(|shard| {
            let node = shard.get("node").and_then(|n| n.as_str()).unwrap_or("");
            let offset = shard
                .get("replid")
                .and_then(|r| r.as_str())
                .and_then(|_| shard.get("offset")?.as_i64());
            (node.to_string(), offset)
        })
        .collect()
}

/// Waits until every shard's entry records all its primary has written so far.
fn wait_shards_applied(source: &Cluster, state: &Path, ferry: &Ferry) {
    let wanted: Vec<(String, i64)> = source
        .nodes()
        .iter()
        .map(|node| {
            (
                format!("127.0.0.1:{}", node.port()),
                master_repl_offset(node),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let applied = shard_offsets(state);
        let done = applied.len() == wanted.len()
            && wanted.iter().all(|(node, wanted)| {
                applied
                    .iter()
                    .any(|(at, offset)| at == node && offset.is_some_and(|a| a >= *wanted))
            });
        if done {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "offsets {wanted:?} not applied within 60 s (state says {applied:?}):\n{}",
                ferry.output()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Captures the source cluster (which makes it expire due keys and replicate their DELs),
/// waits until ferry applied all of it, and compares with `target` key by key.
fn assert_equal(
    source: &Cluster,
    target: impl Fn() -> Snapshot,
    state: &Path,
    ferry: &Ferry,
    field_ttl: FieldTtl,
    vectors: VectorSets,
) {
    let differences = differences(source, target, state, ferry, field_ttl, vectors);
    assert!(
        differences.is_empty(),
        "{} differences:\n{}\n{}",
        differences.len(),
        differences.join("\n"),
        ferry.output()
    );
}

/// [`assert_equal`] into a cluster target, for a source whose types it all holds.
fn assert_same_as_cluster(source: &Cluster, target: &Cluster, state: &Path, ferry: &Ferry) {
    assert_equal(
        source,
        || target.snapshot().unwrap(),
        state,
        ferry,
        FieldTtl::Keep,
        VectorSets::Keep,
    );
}

/// [`assert_equal`] into a standalone target, for a source whose types it all holds.
fn assert_same_as_standalone(source: &Cluster, target: &Server, state: &Path, ferry: &Ferry) {
    assert_equal(
        source,
        || Snapshot::capture(target).unwrap(),
        state,
        ferry,
        FieldTtl::Keep,
        VectorSets::Keep,
    );
}

/// What [`assert_equal`] compares, as lines (at most 40).
fn differences(
    source: &Cluster,
    target: impl Fn() -> Snapshot,
    state: &Path,
    ferry: &Ferry,
    field_ttl: FieldTtl,
    vectors: VectorSets,
) -> Vec<String> {
    std::thread::sleep(ferry_testkit::workload::SHORT_TTLS_PASSED);
    let before = source.snapshot().unwrap();
    wait_shards_applied(source, state, ferry);
    let mut actual = target();
    let mut expected = after_policies(&before, field_ttl, vectors).snapshot;
    forget_unreplicated_group_state(&mut expected);
    forget_unreplicated_group_state(&mut actual);
    assert!(expected.key_count() > 100, "{}", expected.key_count());
    let differences = expected.diff(&actual, &DiffOptions::new());
    differences.iter().take(40).map(|d| d.to_string()).collect()
}

fn start_ferry(source: &Cluster, target_url: &str, state: &Path, extra: &[&str]) -> Ferry {
    Ferry::migrate_between(&source.url(), target_url, state, extra)
}

fn stop_ferry(mut ferry: Ferry) -> String {
    ferry.signal("TERM");
    let status = ferry.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", ferry.output());
    ferry.output()
}

fn cluster_into_cluster(
    source_kind: ServerKind,
    target_kind: ServerKind,
    target_primaries: usize,
    policy: &[&str],
    field_ttl: FieldTtl,
) {
    let source = source_cluster(source_kind, 3, 0);
    let target = Cluster::start(target_kind, target_primaries).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let running = loads(&source, 21, &stop);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let (source_url, target_url) = (source.url(), target.url());
    let mut ferry = start_ferry(&source, &target_url, &state, policy);
    ferry.wait_for("source is a cluster of 3 shards", Duration::from_secs(30));
    ferry.wait_all_shards_in_sync();
    // The load goes on through the three streams for a while.
    std::thread::sleep(Duration::from_secs(2));
    stop_loads(&stop, running);
    let vectors = match target_kind.has_vector_sets() {
        true => VectorSets::Keep,
        false => VectorSets::Remove,
    };
    assert_equal(
        &source,
        || target.snapshot().unwrap(),
        &state,
        &ferry,
        field_ttl,
        vectors,
    );
    // What a user runs to close the migration: verify compares the two clusters key by
    // key, reading each side's keys from the primary serving their slot.
    let mut verify_args = vec![
        "verify",
        "--source",
        &source_url,
        "--target",
        &target_url,
        "--json",
    ];
    verify_args.extend(policy);
    let verified = crate::support::ferry(&verify_args);
    assert!(
        verified.status.success(),
        "ferry verify found differences:\n{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    let compared = report["summary"]["keys_compared"].as_u64().unwrap_or(0);
    assert!(compared > 100, "verify compared {compared} keys: {report}");
    let output = stop_ferry(ferry);
    assert_eq!(output.matches("full sync done").count(), 3, "{output}");
}

#[test]
fn a_redis_7_cluster_lands_equal_on_a_valkey_8_cluster() {
    cluster_into_cluster(
        ServerKind::Redis70,
        ServerKind::Valkey81,
        3,
        &[],
        FieldTtl::Keep,
    );
}

#[test]
fn a_redis_8_cluster_lands_equal_on_a_four_primary_valkey_9_cluster() {
    cluster_into_cluster(
        ServerKind::Redis80,
        ServerKind::Valkey91,
        4,
        // Valkey 9 has hash field TTLs (kept as they are) but no vector sets.
        &["--vector-set", "skip"],
        FieldTtl::Keep,
    );
}

#[test]
fn a_failover_of_a_source_primary_is_followed_without_a_full_sync() {
    let mut source = source_cluster(ServerKind::Redis70, 3, 1);
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = loads(&source, 31, &stop);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    ferry.wait_all_shards_in_sync();

    // The load on shard 1 pauses while its replica takes over, then goes on there.
    let shard_stop = Arc::new(AtomicBool::new(false));
    let shard_load = load_on(&source, 1, 41, &shard_stop);
    std::thread::sleep(Duration::from_secs(1));
    stop_loads(&shard_stop, vec![shard_load]);
    let old_port = source.nodes()[1].port();
    source.failover(1).unwrap();
    let new_port = source.nodes()[1].port();
    running.push(load_on(&source, 1, 51, &stop));
    let line = ferry.wait_for(
        &format!("failover followed from 127.0.0.1:{old_port} without a full sync"),
        Duration::from_secs(60),
    );
    assert!(
        line.contains(&format!("(127.0.0.1:{new_port}): ")),
        "{line}\n{}",
        ferry.output()
    );
    std::thread::sleep(Duration::from_secs(2));
    stop_loads(&stop, running);
    assert_same_as_standalone(&source, &target, &state, &ferry);
    let output = stop_ferry(ferry);
    assert_eq!(
        output.matches("full sync: receiving").count(),
        3,
        "{output}"
    );
}

#[test]
fn a_restarted_ferry_resumes_every_shard_from_the_state_file() {
    let source = source_cluster(ServerKind::Redis70, 3, 0);
    let target = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let running = loads(&source, 61, &stop);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    ferry.wait_all_shards_in_sync();
    std::thread::sleep(Duration::from_secs(1));
    let first = stop_ferry(ferry);
    assert_eq!(first.matches("resume with --state").count(), 3, "{first}");

    // The load goes on while ferry is down; the second run continues each shard.
    std::thread::sleep(Duration::from_secs(1));
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    ferry.wait_all_shards_in_sync();
    std::thread::sleep(Duration::from_secs(1));
    stop_loads(&stop, running);
    assert_same_as_cluster(&source, &target, &state, &ferry);
    let second = stop_ferry(ferry);
    assert_every_shard_resumed_partially(&second, 3);
}

#[test]
fn slots_moving_between_source_shards_mid_stream_keep_their_keys_on_the_target() {
    let source = source_cluster(ServerKind::Redis70, 3, 0);
    let target = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let running = loads(&source, 71, &stop);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    ferry.wait_all_shards_in_sync();

    // The slot of shard 0's load and slots of the dataset's keys there move to shard 1 by
    // MIGRATE, with the load going on: shard 1's stream restores each key (RESTORE-ASKING)
    // just before shard 0's deletes it (DEL).
    let mut on_first = source.nodes()[0].client();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut on_first).unwrap();
    let mut slots: Vec<u16> = keys
        .iter()
        .map(|key| source.keyslot(key.as_bytes()).unwrap())
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots.truncate(30);
    let load_slot = source
        .keyslot(format!("{{{}}}", source.tag_for(0).unwrap()).as_bytes())
        .unwrap();
    if !slots.contains(&load_slot) {
        slots.push(load_slot);
    }
    let moved_keys: usize = slots
        .iter()
        .map(|slot| {
            redis::cmd("CLUSTER")
                .arg("COUNTKEYSINSLOT")
                .arg(*slot)
                .query::<usize>(&mut on_first)
                .unwrap()
        })
        .sum();
    assert!(moved_keys > 50, "{moved_keys} keys to move");
    for slot in &slots {
        source.move_slot(*slot, 0, 1).unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    stop_loads(&stop, running);
    // Each key moved shows up as RESTORE-ASKING in shard 1's stream just before the DEL in
    // shard 0's: without ferry's rules the target loses them, or shard 0's earlier writes
    // land on the restored keys again.
    assert_same_as_cluster(&source, &target, &state, &ferry);
    stop_ferry(ferry);
}

#[test]
fn a_shard_offered_only_a_full_sync_on_restart_stops_with_one_line_until_flushed() {
    let source = source_cluster(ServerKind::Redis70, 3, 0);
    let target = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    ferry.wait_all_shards_in_sync();
    stop_ferry(ferry);

    // Shard 1's saved replication is one its primary does not know: it offers FULLRESYNC.
    let text = std::fs::read_to_string(&state).unwrap();
    let mut saved: serde_json::Value = serde_json::from_str(&text).unwrap();
    saved["shards"][1]["replid"] = serde_json::Value::String("f".repeat(40));
    std::fs::write(&state, serde_json::to_string(&saved).unwrap()).unwrap();
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    let status = ferry.wait_exit(Duration::from_secs(60));
    let output = ferry.output();
    assert!(!status.success(), "{output}");
    let last = output.lines().last().unwrap_or_default();
    assert!(
        last.contains("shard 5461-10921") && last.contains("rerun with --flush-target"),
        "{output}"
    );

    // As asked: the target is emptied once and every shard loads again.
    let stop = Arc::new(AtomicBool::new(false));
    let running = loads(&source, 81, &stop);
    let mut ferry = start_ferry(&source, &target.url(), &state, &["--flush-target"]);
    ferry.wait_all_shards_in_sync();
    std::thread::sleep(Duration::from_secs(1));
    stop_loads(&stop, running);
    assert_same_as_cluster(&source, &target, &state, &ferry);
    let output = stop_ferry(ferry);
    assert_eq!(output.matches("emptied the target").count(), 1, "{output}");
    assert_eq!(output.matches("full sync done").count(), 3, "{output}");
}

#[test]
fn scan_mode_refuses_a_cluster_source_rather_than_copy_one_node() {
    let source = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let mut ferry = Ferry::start(&[
        "--source",
        &source.url(),
        "--target",
        &target.url(),
        "--mode",
        "scan",
    ]);
    assert_refused(
        &mut ferry,
        &["--mode scan reads one server", "a node of a cluster"],
    );
}

#[test]
fn a_standalone_state_file_is_refused_for_a_cluster_source() {
    let source = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let standalone = serde_json::json!({
        "version": 1,
        "replid": "a".repeat(40),
        "offset": 100,
        "db": 0,
        "target": target.url(),
        "format": "RDB 11",
    });
    std::fs::write(&state, standalone.to_string()).unwrap();
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    assert_refused(
        &mut ferry,
        &["was written for a standalone source", "is a cluster"],
    );
}

/// The run fails, saying every one of `needles`.
fn assert_refused(ferry: &mut Ferry, needles: &[&str]) {
    let status = ferry.wait_exit(Duration::from_secs(30));
    let output = ferry.output();
    assert!(!status.success(), "{output}");
    for needle in needles {
        assert!(output.contains(needle), "no {needle:?} in: {output}");
    }
}

#[test]
fn a_primary_lost_is_followed_to_the_replica_the_cluster_promotes() {
    let mut source = source_cluster(ServerKind::Valkey81, 3, 1);
    let target = Cluster::start(ServerKind::Valkey91, 3).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut running: Vec<_> = (0..2)
        .map(|p| load_on(&source, p, 91 + p as u64, &stop))
        .collect();
    let shard_stop = Arc::new(AtomicBool::new(false));
    let shard_load = load_on(&source, 2, 97, &shard_stop);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    ferry.wait_all_shards_in_sync();

    // Shard 2 is idle and its replica holds all of it (as ferry does) when its primary dies.
    stop_loads(&shard_stop, vec![shard_load]);
    let written = master_repl_offset(&source.nodes()[2]);
    let replica = source.replicas_of(2)[0];
    let deadline = Instant::now() + Duration::from_secs(30);
    while master_repl_offset(replica) < written {
        assert!(Instant::now() < deadline, "the replica does not catch up");
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_shards_applied(&source, &state, &ferry);
    let old_port = source.nodes()[2].port();
    source.kill_primary(2).unwrap();
    let new_port = source.nodes()[2].port();
    let line = ferry.wait_for(
        &format!("failover followed from 127.0.0.1:{old_port} without a full sync"),
        Duration::from_secs(60),
    );
    assert!(
        line.contains(&format!("(127.0.0.1:{new_port}): ")),
        "{line}"
    );
    running.push(load_on(&source, 2, 99, &stop));
    std::thread::sleep(Duration::from_secs(1));
    stop_loads(&stop, running);
    assert_same_as_cluster(&source, &target, &state, &ferry);
    stop_ferry(ferry);
}

/// A hash tag whose slot is below `below`: among the first slots `redis-cli --cluster
/// reshard` takes from shard 0 (it moves a source's slots in ascending order).
pub(crate) fn tag_below(cluster: &Cluster, below: u16) -> String {
    (0..100_000)
        .map(|i| format!("r{i}"))
        .find(|tag| cluster.keyslot(tag.as_bytes()).unwrap() < below)
        .expect("a tag in the first slots")
}

/// A load on primary `primary` whose keys carry `{tag}`.
pub(crate) fn load_tagged(
    cluster: &Cluster,
    primary: usize,
    tag: &str,
    seed: u64,
    stop: &Arc<AtomicBool>,
) -> JoinHandle<WorkloadStats> {
    Workload::new(cluster.kind(), seed)
        .for_cluster()
        .with_key_tag(tag)
        .with_rate(Some(700))
        .start(cluster.nodes()[primary].url(), stop.clone())
}

/// The source's primaries 1 and 2 under load, and primary 0 under a load whose keys are
/// in its first slots (`tag`), the ones a reshard of shard 0 moves first.
fn loads_with_moving_slot(
    cluster: &Cluster,
    tag: &str,
    seed: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<WorkloadStats>> {
    vec![
        load_tagged(cluster, 0, tag, seed, stop),
        load_on(cluster, 1, seed + 1, stop),
        load_on(cluster, 2, seed + 2, stop),
    ]
}

/// 400 slots of shard 0 (the load's among them) move to shard 1 with `redis-cli --cluster
/// reshard`'s defaults, under the load; the load then goes on at the slot's new owner.
fn reshard_by_cli_into_cluster(
    source_kind: ServerKind,
    target_kind: ServerKind,
    policy: &[&str],
    field_ttl: FieldTtl,
) {
    let source = source_cluster(source_kind, 3, 0);
    let target = Cluster::start(target_kind, 3).unwrap();
    let tag = tag_below(&source, 400);
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = loads_with_moving_slot(&source, &tag, 111, &stop);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = start_ferry(&source, &target.url(), &state, policy);
    ferry.wait_all_shards_in_sync();
    std::thread::sleep(Duration::from_secs(1));

    // MIGRATE … KEYS without REPLACE: shard 1's stream restores each key (RESTORE-ASKING)
    // that the target already holds through shard 0's.
    let tool = source.cli_reshard(0, 1, 400).unwrap();
    assert_eq!(source.slot_count(1).unwrap(), 5461 + 400, "{tool}");
    running.push(load_tagged(&source, 1, &tag, 121, &stop));
    std::thread::sleep(Duration::from_secs(2));
    stop_loads(&stop, running);
    let vectors = match policy.contains(&"skip") {
        true => VectorSets::Remove,
        false => VectorSets::Keep,
    };
    assert_equal(
        &source,
        || target.snapshot().unwrap(),
        &state,
        &ferry,
        field_ttl,
        vectors,
    );
    let output = stop_ferry(ferry);
    assert_eq!(output.matches("full sync done").count(), 3, "{output}");
}

#[test]
fn a_redis_7_source_resharded_by_redis_cli_lands_equal() {
    reshard_by_cli_into_cluster(
        ServerKind::Redis70,
        ServerKind::Valkey81,
        &[],
        FieldTtl::Keep,
    );
}

#[test]
fn a_valkey_8_source_resharded_by_valkey_cli_lands_equal() {
    reshard_by_cli_into_cluster(
        ServerKind::Valkey81,
        ServerKind::Valkey81,
        &[],
        FieldTtl::Keep,
    );
}

#[test]
fn a_valkey_9_source_resharded_by_valkey_cli_lands_equal() {
    reshard_by_cli_into_cluster(
        ServerKind::Valkey91,
        ServerKind::Valkey91,
        &[],
        FieldTtl::Keep,
    );
}

#[test]
fn a_redis_8_source_resharded_by_redis_cli_lands_equal() {
    reshard_by_cli_into_cluster(
        ServerKind::Redis80,
        ServerKind::Valkey81,
        &["--hash-field-ttl", "persist", "--vector-set", "skip"],
        FieldTtl::Persist,
    );
}

#[test]
fn a_source_rebalanced_by_redis_cli_lands_equal() {
    let source = source_cluster(ServerKind::Redis70, 3, 0);
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let running = loads(&source, 131, &stop);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    ferry.wait_all_shards_in_sync();

    // Primary 2 weighs twice the others: rebalance moves slots to it from both.
    let tool = source.cli_rebalance(2, 2).unwrap();
    let counts: Vec<usize> = (0..3).map(|p| source.slot_count(p).unwrap()).collect();
    assert!(counts[2] > 8000 && counts[0] < 5000, "{counts:?}\n{tool}");
    std::thread::sleep(Duration::from_secs(1));
    stop_loads(&stop, running);
    assert_same_as_standalone(&source, &target, &state, &ferry);
    stop_ferry(ferry);
}

#[test]
fn a_run_stopped_after_a_reshard_resumes_every_shard() {
    let source = source_cluster(ServerKind::Redis70, 3, 0);
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let tag = tag_below(&source, 300);
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = loads_with_moving_slot(&source, &tag, 141, &stop);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    ferry.wait_all_shards_in_sync();
    source.cli_reshard(0, 1, 300).unwrap();
    running.push(load_tagged(&source, 1, &tag, 151, &stop));
    std::thread::sleep(Duration::from_secs(1));
    stop_ferry(ferry);

    // While ferry is down the same slots move on to shard 2, under the load.
    source.cli_reshard(1, 2, 300).unwrap();
    running.push(load_tagged(&source, 2, &tag, 161, &stop));
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    ferry.wait_all_shards_in_sync();
    std::thread::sleep(Duration::from_secs(1));
    stop_loads(&stop, running);
    assert_same_as_standalone(&source, &target, &state, &ferry);
    let second = stop_ferry(ferry);
    assert_every_shard_resumed_partially(&second, 3);
}

#[test]
fn a_valkey_9_source_resharded_by_atomic_slot_migration_lands_equal() {
    let source = source_cluster(ServerKind::Valkey91, 3, 0);
    let target = Cluster::start(ServerKind::Valkey91, 3).unwrap();
    let tag = tag_below(&source, 400);
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = loads_with_moving_slot(&source, &tag, 171, &stop);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    ferry.wait_all_shards_in_sync();
    std::thread::sleep(Duration::from_secs(1));

    // Shard 1's stream rebuilds the slots' keys as commands (RPUSH, HMSET, …) the target
    // already holds through shard 0's, which then UNLINKs them.
    source.migrate_slots_atomically(0, 1, 0, 399).unwrap();
    running.push(load_tagged(&source, 1, &tag, 181, &stop));
    std::thread::sleep(Duration::from_secs(2));
    stop_loads(&stop, running);
    assert_same_as_cluster(&source, &target, &state, &ferry);
    let output = stop_ferry(ferry);
    assert_eq!(output.matches("full sync done").count(), 3, "{output}");
}

#[test]
fn a_run_stopped_in_the_middle_of_a_reshard_resumes_every_shard() {
    let source = Arc::new(source_cluster(ServerKind::Redis70, 3, 0));
    let target = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let tag = tag_below(&source, 600);
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = loads_with_moving_slot(&source, &tag, 191, &stop);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    ferry.wait_all_shards_in_sync();

    // ferry stops while redis-cli is moving keys: some restored, their DELs not read yet.
    let resharding = {
        let source = source.clone();
        std::thread::spawn(move || source.cli_reshard(0, 1, 600))
    };
    std::thread::sleep(Duration::from_millis(1500));
    let first = stop_ferry(ferry);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let remembered = saved["moved_keys"].as_array().map_or(0, Vec::len);
    assert!(remembered > 0, "no moved keys in the state file: {saved}");
    resharding.join().unwrap().unwrap();
    running.push(load_tagged(&source, 1, &tag, 201, &stop));
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    ferry.wait_all_shards_in_sync();
    std::thread::sleep(Duration::from_secs(1));
    stop_loads(&stop, running);
    assert_same_as_cluster(&source, &target, &state, &ferry);
    let second = stop_ferry(ferry);
    assert!(!second.contains("full sync"), "{first}\n{second}");
}

#[test]
fn a_primary_joining_the_source_stops_the_run_until_flushed() {
    let mut source = source_cluster(ServerKind::Redis70, 3, 0);
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    ferry.wait_all_shards_in_sync();

    // A fourth primary takes slots ferry follows in shard 0's stream only: the keys
    // restored there are in a stream ferry does not read.
    let added = source.add_primary().unwrap();
    source.cli_reshard(0, added, 300).unwrap();
    let status = ferry.wait_exit(Duration::from_secs(60));
    let output = ferry.output();
    assert!(!status.success(), "{output}");
    let last = output.lines().last().unwrap_or_default();
    let port = source.nodes()[added].port();
    assert!(
        last.starts_with("ferry: ")
            && last.contains(&format!("0-299 are served by 127.0.0.1:{port}"))
            && last.contains("--flush-target"),
        "{output}"
    );

    // The same state file is refused (a primary it does not know), until flushed.
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    assert_refused(&mut ferry, &["is not in the state file", "--flush-target"]);
    let stop = Arc::new(AtomicBool::new(false));
    let running: Vec<_> = (0..3)
        .map(|p| load_on(&source, p, 211 + p as u64, &stop))
        .collect();
    let mut ferry = start_ferry(&source, &target.url(), &state, &["--flush-target"]);
    ferry.wait_for("in sync: all 4 shards", IN_SYNC_TIMEOUT);
    std::thread::sleep(Duration::from_secs(1));
    stop_loads(&stop, running);
    assert_same_as_standalone(&source, &target, &state, &ferry);
    stop_ferry(ferry);
}

/// A restarted run's output: each of `shards` continued its stream (`+CONTINUE`), and none
/// loaded a snapshot again.
fn assert_every_shard_resumed_partially(output: &str, shards: usize) {
    assert_eq!(
        output
            .matches("partial resync accepted (+CONTINUE)")
            .count(),
        shards,
        "{output}"
    );
    assert!(!output.contains("full sync"), "{output}");
}

/// Kills ferry (SIGKILL: no state saved, no drain) twice while every shard's load runs
/// (INCR, XADD, list pushes: commands that must run once), restarting it each time; the
/// target must end equal, every shard resumed by PSYNC.
fn crash_and_resume(source: &Cluster, target_url: &str, state: &Path) -> Ferry {
    let mut ferry = start_ferry(source, target_url, state, &[]);
    ferry.wait_all_shards_in_sync();
    for _ in 0..2 {
        // Well inside the state file's second: the last writes are applied but not saved.
        std::thread::sleep(Duration::from_millis(1500));
        ferry.kill();
        ferry = start_ferry(source, target_url, state, &[]);
        ferry.wait_all_shards_in_sync();
    }
    std::thread::sleep(Duration::from_secs(1));
    ferry
}

#[test]
fn a_crashed_run_into_a_cluster_resumes_applying_each_command_once() {
    let source = source_cluster(ServerKind::Redis70, 3, 0);
    let target = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let running = loads(&source, 91, &stop);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let ferry = crash_and_resume(&source, &target.url(), &state);
    stop_loads(&stop, running);
    assert_same_as_cluster(&source, &target, &state, &ferry);
    let output = stop_ferry(ferry);
    assert_every_shard_resumed_partially(&output, 3);
    assert!(
        output.contains("were not applied again"),
        "the restart replayed nothing the target held: {output}"
    );
}

#[test]
fn a_crashed_run_into_a_standalone_target_resumes_each_shard_from_its_marker() {
    let source = source_cluster(ServerKind::Redis70, 3, 0);
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let running = loads(&source, 92, &stop);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let ferry = crash_and_resume(&source, &target.url(), &state);
    stop_loads(&stop, running);
    assert_same_as_standalone(&source, &target, &state, &ferry);
    let output = stop_ferry(ferry);
    assert_every_shard_resumed_partially(&output, 3);
    // The state file trailed; the shards' markers said where the target's data ends.
    assert!(
        output.contains("by its marker (the state file:"),
        "{output}"
    );
}

/// `--spool-dir` with a cluster source: ferry killed about half-way through the spooled
/// load of a shard holding 400,000 more keys, under a load on every shard; the next run
/// resumes that shard's load from its own spool (its primary serves no second full sync,
/// nothing is flushed) and the target ends equal.
#[test]
fn a_shard_killed_half_way_through_its_spooled_load_resumes_from_its_spool() {
    const BULK: u64 = 400_000;
    let source = source_cluster(ServerKind::Redis70, 3, 0);
    let tag = source.tag_for(0).unwrap();
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(BULK)
        .arg(format!("{{{tag}}}:bulk"))
        .query(&mut source.nodes()[0].client())
        .unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let running = loads(&source, 71, &stop);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let spool = dir.path().join("spool");
    let flags = ["--spool-dir", spool.to_str().unwrap()];
    let mut ferry = start_ferry(&source, &target.url(), &state, &flags);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let keys: u64 = redis::cmd("DBSIZE").query(&mut target.client()).unwrap();
        if keys >= BULK * 6 / 10 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", ferry.output());
        std::thread::sleep(Duration::from_millis(20));
    }
    ferry.kill();
    let first = ferry.output();
    assert!(first.contains("into the spool"), "{first}");

    let mut ferry = start_ferry(&source, &target.url(), &state, &flags);
    ferry.wait_all_shards_in_sync();
    let second = ferry.output();
    assert!(
        second.contains("resuming the load from the spool at byte"),
        "{second}"
    );
    // The shard killed half way through its load resumed from its spool. (A small shard
    // whose snapshot had not come whole when ferry was killed, on a loaded machine, gets
    // its first full sync on the restart: see the test below.)
    let bulk_node = &source.nodes()[0];
    assert_eq!(
        crate::support::info_number(bulk_node, "stats", "sync_full"),
        1,
        "node {} served another full sync:\n{second}",
        bulk_node.port()
    );
    assert_eq!(
        crate::support::command_calls(&target, "flushall"),
        0,
        "{second}"
    );
    std::thread::sleep(Duration::from_secs(1));
    stop_loads(&stop, running);
    // The bulk keys by value, then dropped on the source (their DELs replicate), so that
    // the key-by-key comparison of the rest is quick: a long one lets the load's expiring
    // keys run out between the two captures.
    let mut from = source.nodes()[0].client();
    let mut to = target.client();
    for first in (0..BULK).step_by(10_000) {
        let keys: Vec<String> = (first..first + 10_000)
            .map(|n| format!("{{{tag}}}:bulk:{n}"))
            .collect();
        let expected: Vec<Option<Vec<u8>>> =
            redis::cmd("MGET").arg(&keys).query(&mut from).unwrap();
        let actual: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&keys).query(&mut to).unwrap();
        assert!(expected.iter().all(Option::is_some));
        assert!(
            expected == actual,
            "bulk keys from {first} differ:\n{second}"
        );
        let _: () = redis::cmd("UNLINK").arg(&keys).query(&mut from).unwrap();
    }
    assert_same_as_standalone(&source, &target, &state, &ferry);
}

#[test]
fn a_shard_whose_snapshot_never_came_gets_its_full_sync_after_a_restart() {
    let source = source_cluster(ServerKind::Redis70, 3, 0);
    // The second primary holds its snapshot back for 30 s (a diskless sync waiting for
    // more replicas); the others send theirs at once.
    for (node, delay) in source.nodes().iter().zip(["0", "30", "0"]) {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("repl-diskless-sync-delay")
            .arg(delay)
            .query(&mut node.client())
            .unwrap();
    }
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    let port = |node: usize| source.nodes()[node].port();
    for served in [0, 2] {
        ferry.wait_for(
            &format!("(127.0.0.1:{}): in sync at offset", port(served)),
            Duration::from_secs(30),
        );
    }
    // Stopped while that shard's snapshot had not come: nothing of it is on the target.
    ferry.kill();
    let first = ferry.output();
    assert!(!first.contains("in sync: all"), "{first}");
    let held_back = format!("(127.0.0.1:{}): full sync done", port(1));
    assert!(!first.contains(&held_back), "{first}");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("repl-diskless-sync-delay")
        .arg("0")
        .query(&mut source.nodes()[1].client())
        .unwrap();

    // The restart resumes the two loaded shards and gives the third its first full sync,
    // rather than refusing it as a second one over keys the target holds.
    let mut ferry = start_ferry(&source, &target.url(), &state, &[]);
    ferry.wait_all_shards_in_sync();
    let second = stop_ferry(ferry);
    assert!(!second.contains("only a full sync"), "{second}");
    let expected = source.snapshot().unwrap();
    let actual = Snapshot::capture(&target).unwrap();
    let differences = expected.diff(&actual, &DiffOptions::new().ttl_tolerance_ms(1000));
    assert!(differences.is_empty(), "{differences:?}\n{second}");
}
