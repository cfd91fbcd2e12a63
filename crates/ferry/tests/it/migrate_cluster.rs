//! `ferry migrate` into a real cluster target: keys routed by slot to the primaries of a
//! Valkey cluster, under a write load; the cluster then holds what the source holds.

use crate::support::migrate::{assert_as_policies_promise, wait_applied, Ferry};
use ferry_testkit::expect::{FieldTtl, VectorSets};
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::workload::Workload;
use ferry_testkit::{dataset, Cluster, Server, ServerKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Migrates `source_kind` (dataset in db 0, write load) into a `primaries`-primary
/// cluster of `target_kind` and compares key by key with what the policies promise.
fn migrate_into_cluster(
    source_kind: ServerKind,
    target_kind: ServerKind,
    primaries: usize,
    policy: &[&str],
    field_ttl: FieldTtl,
) {
    let source = Server::start(source_kind).unwrap();
    let cluster = Cluster::start(target_kind, primaries).unwrap();
    dataset::populate_db0(&source).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::new(source_kind, 7)
        .for_cluster()
        .start(source.url(), stop.clone());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate_between(&source.url(), &cluster.url(), &state, policy);
    ferry.wait_for(
        &format!("target is a cluster of {primaries} primaries"),
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
    let actual = cluster.snapshot().unwrap();
    // A cluster target's markers are per slot, each in the slot its stream writes to;
    // the single marker of a standalone target would sit in one slot only.
    let keys = actual.databases.get(&0).expect("db 0");
    assert!(!keys.contains_key(ferry_testkit::snapshot::FERRY_MARKER_KEY));
    let markers = keys
        .keys()
        .filter(|key| key.starts_with(b"ferry:migrate:applied:{"))
        .count();
    assert!(markers > 10, "{markers} per-slot markers on the cluster");
    // Every primary took a share of the keys.
    for node in cluster.nodes() {
        let keys = Snapshot::capture(node).unwrap().key_count();
        assert!(keys > 10, "node {} holds {keys} keys", node.port());
    }
    let vectors = if target_kind.has_vector_sets() {
        VectorSets::Keep
    } else {
        VectorSets::Remove
    };
    let expected = assert_as_policies_promise(
        &before,
        actual,
        (field_ttl, vectors),
        &DiffOptions::new(),
        &format!("{source_kind} -> {primaries} x {target_kind}"),
        &ferry.output(),
    );
    assert!(expected.key_count() > 100, "{}", expected.key_count());

    ferry.signal("TERM");
    let status = ferry.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}:\n{}", ferry.output());
}

#[test]
fn a_standalone_source_under_load_lands_equal_on_a_three_primary_cluster() {
    migrate_into_cluster(
        ServerKind::Redis80,
        ServerKind::Valkey81,
        3,
        &["--hash-field-ttl", "persist", "--vector-set", "skip"],
        FieldTtl::Persist,
    );
}

#[test]
fn a_redis_7_source_lands_equal_on_a_four_primary_valkey_9_cluster() {
    migrate_into_cluster(
        ServerKind::Redis70,
        ServerKind::Valkey91,
        4,
        &[],
        FieldTtl::Keep,
    );
}

#[test]
fn a_crashed_run_into_a_cluster_resumes_applying_each_command_once() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let cluster = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    dataset::populate_db0(&source).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // INCR, XADD and list pushes: a command applied twice shows.
    let load = Workload::new(ServerKind::Redis70, 17)
        .for_cluster()
        .with_rate(Some(1500))
        .start(source.url(), stop.clone());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate_between(&source.url(), &cluster.url(), &state, &[]);
    ferry.wait_in_sync();
    for _ in 0..2 {
        // Well inside the state file's second: the last writes are applied, not saved.
        std::thread::sleep(Duration::from_millis(1500));
        ferry.kill();
        ferry = Ferry::migrate_between(&source.url(), &cluster.url(), &state, &[]);
        ferry.wait_in_sync();
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let stats = load.join().expect("the load ends");
    assert!(stats.total() > 1000, "{stats:?}");
    std::thread::sleep(ferry_testkit::workload::SHORT_TTLS_PASSED);

    let before = Snapshot::capture(&source).unwrap();
    wait_applied(&source, &state, &ferry);
    assert_as_policies_promise(
        &before,
        cluster.snapshot().unwrap(),
        (FieldTtl::Keep, VectorSets::Keep),
        &DiffOptions::new(),
        "Redis 7.0 -> 3 x Valkey 8.1, ferry killed twice",
        &ferry.output(),
    );
    ferry.signal("TERM");
    assert!(ferry.wait_exit(Duration::from_secs(30)).success());
    let output = ferry.output();
    assert!(
        output.contains("partial resync accepted (+CONTINUE)"),
        "{output}"
    );
    // The restart read the last writes again, and left out what the target held.
    assert!(output.contains("were not applied again"), "{output}");
}

#[test]
fn a_source_writing_to_another_database_stops_with_one_clear_line() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let cluster = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let mut con = source.client();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query::<()>(&mut con)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate_between(&source.url(), &cluster.url(), &state, &[]);
    ferry.wait_in_sync();
    // Database 0 alone at the start passes the check; a later write elsewhere stops it.
    redis::cmd("SELECT").arg(3).query::<()>(&mut con).unwrap();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query::<()>(&mut con)
        .unwrap();
    let status = ferry.wait_exit(Duration::from_secs(60));
    assert!(!status.success(), "{}", ferry.output());
    let output = ferry.output();
    assert!(
        output.contains("SELECT 3: the target is a cluster, which has database 0 only"),
        "{output}"
    );
}

/// Migrates a Redis 7.0 source (dataset, write load) into `cluster`, runs `change` on the
/// cluster once ferry is in sync, lets the load go on, and checks the cluster ends equal to
/// the source. Returns ferry's output after it stopped cleanly.
fn ends_equal_after_target_change(
    mut cluster: Cluster,
    change: impl FnOnce(&mut Cluster),
) -> String {
    let source = Server::start(ServerKind::Redis70).unwrap();
    dataset::populate_db0(&source).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::new(ServerKind::Redis70, 11)
        .for_cluster()
        .start(source.url(), stop.clone());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate_between(&source.url(), &cluster.url(), &state, &[]);
    ferry.wait_in_sync();
    change(&mut cluster);
    // The load keeps writing to the changed slots for a while.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let stats = load.join().expect("the load ends");
    assert!(stats.total() > 1000, "{stats:?}");
    std::thread::sleep(ferry_testkit::workload::SHORT_TTLS_PASSED);

    let before = Snapshot::capture(&source).unwrap();
    wait_applied(&source, &state, &ferry);
    let actual = cluster.snapshot().unwrap();
    // MIGRATE, which moves the slots' keys between target nodes, carries each key's
    // remaining TTL (relative) and the new node counts it from its own receipt: a moved key
    // expires a few ms later than on the source. The server's doing, not ferry's.
    let expected = assert_as_policies_promise(
        &before,
        actual,
        (FieldTtl::Keep, VectorSets::Keep),
        &DiffOptions::new().ttl_tolerance_ms(50),
        "into the changed cluster",
        &ferry.output(),
    );
    assert!(expected.key_count() > 100, "{}", expected.key_count());

    ferry.signal("TERM");
    let status = ferry.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}:\n{}", ferry.output());
    ferry.output()
}

/// Up to `most` slots holding the load's keys on node `node`.
fn load_slots_on(cluster: &Cluster, node: usize, most: usize) -> Vec<u16> {
    let mut con = cluster.nodes()[node].client();
    let keys: Vec<String> = redis::cmd("KEYS").arg("wl:*").query(&mut con).unwrap();
    let mut slots: Vec<u16> = keys
        .iter()
        .map(|key| cluster.keyslot(key.as_bytes()).unwrap())
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots.truncate(most);
    assert!(slots.len() >= 10, "{} slots", slots.len());
    slots
}

#[test]
fn slots_moving_on_the_target_mid_stream_are_followed_and_the_cluster_ends_equal() {
    let cluster = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let output = ends_equal_after_target_change(cluster, |cluster| {
        for slot in load_slots_on(cluster, 0, 40) {
            cluster.move_slot(slot, 0, 1).unwrap();
        }
    });
    assert!(output.contains("followed a MOVED/ASK"), "{output}");
}

#[test]
fn a_primary_added_to_the_target_mid_stream_gets_its_slots_and_the_cluster_ends_equal() {
    let cluster = Cluster::start(ServerKind::Valkey91, 3).unwrap();
    let mut added = String::new();
    let output = ends_equal_after_target_change(cluster, |cluster| {
        let new = cluster.add_primary().unwrap();
        added = format!("127.0.0.1:{}", cluster.nodes()[new].port());
        for slot in load_slots_on(cluster, 0, 40) {
            cluster.move_slot(slot, 0, new).unwrap();
        }
    });
    assert!(
        output.contains(&format!("primaries while ferry wrote ({added})")),
        "{output}"
    );
}

#[test]
fn a_failover_of_a_target_primary_mid_stream_is_followed_and_the_cluster_ends_equal() {
    let cluster = Cluster::start_with_replicas(ServerKind::Valkey81, 3, 1).unwrap();
    let mut promoted = String::new();
    let output = ends_equal_after_target_change(cluster, |cluster| {
        cluster.failover(1).unwrap();
        promoted = format!("127.0.0.1:{}", cluster.nodes()[1].port());
    });
    assert!(
        output.contains(&format!("primaries while ferry wrote ({promoted})")),
        "{output}"
    );
}

#[test]
fn a_target_primary_lost_mid_stream_stops_ferry_with_one_line_naming_it() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let mut cluster = Cluster::start_with_replicas(ServerKind::Valkey81, 3, 1).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::new(ServerKind::Redis70, 13)
        .for_cluster()
        .start(source.url(), stop.clone());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate_between(&source.url(), &cluster.url(), &state, &[]);
    ferry.wait_in_sync();
    let lost = format!("127.0.0.1:{}", cluster.nodes()[2].port());
    cluster.kill_primary(2).unwrap();
    let status = ferry.wait_exit(Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    load.join().expect("the load ends");
    assert!(!status.success(), "{}", ferry.output());
    let output = ferry.output();
    let naming: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("lost the connection"))
        .collect();
    assert_eq!(naming.len(), 1, "{output}");
    assert!(
        naming[0].contains(&format!("primary {lost}: lost the connection")),
        "{output}"
    );
}

/// `CLUSTER SETSLOT slot IMPORTING/MIGRATING` between primaries `from` and `to`, then
/// `MIGRATE` of `keys` only: the slot is left half moved, as a resharding tool leaves it
/// between two batches.
fn half_move(cluster: &Cluster, slot: u16, (from, to): (usize, usize), keys: &[Vec<u8>]) {
    let (from_id, to_id) = (cluster.node_id(from).unwrap(), cluster.node_id(to).unwrap());
    let mut origin = cluster.nodes()[from].client();
    let mut destination = cluster.nodes()[to].client();
    redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("IMPORTING")
        .arg(&from_id)
        .query::<()>(&mut destination)
        .unwrap();
    redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("MIGRATING")
        .arg(&to_id)
        .query::<()>(&mut origin)
        .unwrap();
    redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(cluster.nodes()[to].port())
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(keys)
        .query::<()>(&mut origin)
        .unwrap();
}

#[test]
fn a_write_into_a_slot_half_moved_on_the_target_waits_for_the_move_and_ends_equal() {
    let source = Server::start(ServerKind::Valkey81).unwrap();
    let cluster = Cluster::start(ServerKind::Valkey81, 2).unwrap();
    let tag = cluster.tag_for(0).unwrap();
    let key = format!("{{{tag}}}:balance");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate_between(&source.url(), &cluster.url(), &state, &[]);
    ferry.wait_in_sync();
    // Written through the stream: with ferry's marker of its slot beside it.
    let mut writer = source.client();
    redis::cmd("SET")
        .arg(&key)
        .arg(1)
        .query::<()>(&mut writer)
        .unwrap();
    wait_applied(&source, &state, &ferry);

    // The slot's keys on the target: the data key and ferry's marker of the slot.
    let slot = cluster.keyslot(key.as_bytes()).unwrap();
    let mut first = cluster.nodes()[0].client();
    let held: Vec<Vec<u8>> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(10)
        .query(&mut first)
        .unwrap();
    let (marker, data): (Vec<Vec<u8>>, Vec<Vec<u8>>) = held
        .into_iter()
        .partition(|k| k.starts_with(b"ferry:migrate:applied:"));
    assert_eq!((marker.len(), data.len()), (1, 1), "{marker:?} {data:?}");
    // The operator's resharding has moved the marker, not yet the data key: a batch
    // writing both (MULTI, SET, HSET marker, EXEC) has its keys on two nodes.
    half_move(&cluster, slot, (0, 1), &marker);
    redis::cmd("SET")
        .arg(&key)
        .arg(2)
        .query::<()>(&mut writer)
        .unwrap();
    ferry.wait_for("half moved", Duration::from_secs(20));
    // The resharding goes on: the rest of the slot, then its new owner.
    std::thread::sleep(Duration::from_secs(2));
    cluster.move_slot(slot, 0, 1).unwrap();
    redis::cmd("SET")
        .arg("after")
        .arg(1)
        .query::<()>(&mut writer)
        .unwrap();
    wait_applied(&source, &state, &ferry);

    let expected = Snapshot::capture(&source).unwrap();
    let actual = cluster.snapshot().unwrap();
    let differences = expected.diff(&actual, &DiffOptions::new());
    assert!(
        differences.is_empty(),
        "{differences:?}\n{}",
        ferry.output()
    );
    assert!(ferry.is_running(), "{}", ferry.output());
    ferry.signal("TERM");
    assert!(ferry.wait_exit(Duration::from_secs(20)).success());
}
