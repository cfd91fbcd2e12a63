//! A cluster source split over worker processes (`migrate --shards K/N`), each with its
//! own state file and status address, then switched by one `ferry cutover` given every
//! worker's `--status`: every source primary paused, drained against the worker following
//! it, and all workers stopped together.

use crate::migrate_cluster_source::{load_on, load_tagged, source_cluster, stop_loads, tag_below};
use crate::support::cutover::{
    self, assert_same_but_counters, cluster_counter_values, report, status_addr,
    switch_args_between, Counters,
};
use crate::support::migrate::{Ferry, CONTROL_FLAGS};
use crate::support::{http_get, info_field, server_info};
use ferry_testkit::snapshot::DiffOptions;
use ferry_testkit::workload::{forget_unreplicated_group_state, SHORT_TTLS_PASSED};
use ferry_testkit::{dataset, Cluster, Server, ServerKind};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Starts worker `index` of `count` between the two clusters, with its own state file
/// and status address.
fn worker(source: &Cluster, target: &Cluster, dir: &Path, index: usize, count: usize) -> Ferry {
    let state = dir.join(format!("worker-{index}.state"));
    let share = format!("{index}/{count}");
    Ferry::migrate_between(
        &source.url(),
        &target.url(),
        &state,
        &[
            "--shards",
            &share,
            "--metrics-addr",
            "127.0.0.1:0",
            CONTROL_FLAGS[0],
            CONTROL_FLAGS[1],
        ],
    )
}

/// Starts `count` workers between the two clusters and waits until each has all its
/// shards in sync.
fn workers_in_sync(source: &Cluster, target: &Cluster, dir: &Path, count: usize) -> Vec<Ferry> {
    let mut workers: Vec<Ferry> = (0..count)
        .map(|k| worker(source, target, dir, k, count))
        .collect();
    for ferry in &mut workers {
        ferry.wait_all_shards_in_sync();
    }
    workers
}

fn status(addr: &str) -> serde_json::Value {
    let (code, body) = http_get(addr, "/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The primaries a worker follows, by `/status`.
fn followed(addr: &str) -> Vec<String> {
    status(addr)["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|shard| shard["node"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until `check` holds for the worker's `/status`.
fn wait_status(addr: &str, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = status(addr);
        if check(&now) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {now:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client writing new keys all over the slots, following `MOVED` as a cluster client
/// does (a failover sends it to the promoted replica). Returns the keys acknowledged.
fn spawn_writer(seed: String, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let connect = |addr: &str| {
            let client = redis::Client::open(format!("redis://{addr}")).ok()?;
            client
                .get_connection_with_timeout(Duration::from_secs(2))
                .ok()
        };
        let mut con = None;
        let mut written = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let Some(link) = con.as_mut() else {
                con = connect(&seed);
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let key = format!("load:{written}");
            match redis::cmd("SET").arg(&key).arg(written).query::<()>(link) {
                Ok(()) => written += 1,
                Err(error) => {
                    con = error
                        .redirect_node()
                        .and_then(|(address, _)| connect(address));
                }
            }
        }
        written
    })
}

#[test]
fn three_workers_carry_a_three_primary_cluster_through_a_failover_and_one_cutover() {
    let mut source = Cluster::start_with_replicas(ServerKind::Redis70, 3, 1).unwrap();
    {
        let filler = Server::start(ServerKind::Redis70).unwrap();
        dataset::populate_db0(&filler).unwrap();
        source.copy_from(&filler).unwrap();
    }
    let target = Cluster::start(ServerKind::Valkey81, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Writes all along: counters whose clients follow the cutover hook, and new keys.
    let counters = Counters::start(&source.nodes()[0], dir.path());
    let stop_writer = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(
        format!("127.0.0.1:{}", source.nodes()[0].port()),
        stop_writer.clone(),
    );

    let mut workers = workers_in_sync(&source, &target, dir.path(), 3);
    let statuses: Vec<String> = workers.iter_mut().map(status_addr).collect();
    // Each worker follows one primary; together, every primary once.
    let mut all = BTreeSet::new();
    for addr in &statuses {
        let mine = followed(addr);
        assert_eq!(mine.len(), 1, "{mine:?}");
        all.extend(mine);
    }
    let primaries: BTreeSet<String> = source
        .nodes()
        .iter()
        .map(|node| format!("127.0.0.1:{}", node.port()))
        .collect();
    assert_eq!(all, primaries);
    counters.wait_progress(100);

    // Primary 1 fails over to its replica while the writes go on; the worker following
    // it follows the promoted replica, the others go on as they were.
    let old = format!("127.0.0.1:{}", source.nodes()[1].port());
    let owner = statuses
        .iter()
        .find(|addr| followed(addr).contains(&old))
        .unwrap()
        .clone();
    source.failover(1).unwrap();
    let promoted = format!("127.0.0.1:{}", source.nodes()[1].port());
    let replication = server_info(&source.nodes()[1], "replication");
    let promoted_replid = info_field(&replication, "master_replid").unwrap();
    wait_status(&owner, "the worker follows the promoted replica", |now| {
        let shard = &now["shards"][0];
        shard["node"] == promoted.as_str()
            && shard["replid"] == promoted_replid.as_str()
            && shard["failovers"] == 1
            && now["phase"] == "in-sync"
    });
    counters.wait_progress(100);
    stop_writer.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert!(written > 100, "the writer wrote {written} keys");

    // One cutover for the three workers.
    let route = counters.route.display().to_string();
    let hook = format!("printf %s \"$FERRY_TO\" > '{route}'");
    let mut extra = vec!["--exec", &hook, "--drain-timeout-ms", "30000"];
    for addr in &statuses[1..] {
        extra.extend(["--status", addr.as_str()]);
    }
    let output = cutover::ferry(&switch_args_between(
        "cutover",
        &source.url(),
        &target.url(),
        &statuses[0],
        &extra,
    ));
    let result = report(&output);
    assert!(
        output.status.success(),
        "{result}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let paused: BTreeSet<String> = result["paused_offsets"]
        .as_object()
        .expect("per-primary offsets")
        .keys()
        .cloned()
        .collect();
    let primaries_now: BTreeSet<String> = source
        .nodes()
        .iter()
        .map(|node| format!("127.0.0.1:{}", node.port()))
        .collect();
    assert_eq!(paused, primaries_now, "{result}");
    for ferry in &mut workers {
        assert!(
            ferry.wait_exit(Duration::from_secs(20)).success(),
            "{}",
            ferry.output()
        );
    }

    // The counters' clients now write to the target: not one acknowledged INCR lost.
    counters.wait_progress(50);
    let acked = counters.stop();
    assert_eq!(
        cluster_counter_values(&target),
        acked,
        "each counter on the target must equal the INCRs acknowledged by either cluster"
    );
    assert_same_but_counters(&source, &target);
}

#[test]
fn a_cutover_missing_a_worker_or_given_one_twice_changes_nothing() {
    let source = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let target = Cluster::start(ServerKind::Valkey81, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut workers = workers_in_sync(&source, &target, dir.path(), 2);
    let statuses: Vec<String> = workers.iter_mut().map(status_addr).collect();
    // Worker 0 follows the first and third primaries, worker 1 the second.
    assert_eq!(followed(&statuses[0]).len(), 2);
    assert_eq!(followed(&statuses[1]).len(), 1);

    let second = format!("127.0.0.1:{}", source.nodes()[1].port());
    let missing = cutover::ferry(&switch_args_between(
        "cutover",
        &source.url(),
        &target.url(),
        &statuses[0],
        &[],
    ));
    let result = report(&missing);
    assert!(!missing.status.success(), "{result}");
    assert_eq!(result["failed_step"], "preflight", "{result}");
    let error = result["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("follows {second}")) && error.contains("every worker's --status"),
        "{error}"
    );

    let twice = cutover::ferry(&switch_args_between(
        "cutover",
        &source.url(),
        &target.url(),
        &statuses[0],
        &["--status", &statuses[0]],
    ));
    assert_eq!(twice.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&twice.stderr);
    assert!(stderr.contains("given twice"), "{stderr}");

    // Both workers still run. Stopped by a signal rather than a cutover, a worker exits
    // non-zero, so that a scheduler starts it again rather than count its share done.
    for ferry in &mut workers {
        assert!(ferry.is_running(), "{}", ferry.output());
    }
    for ferry in &workers {
        ferry.signal("TERM");
    }
    for ferry in &mut workers {
        let status = ferry.wait_exit(Duration::from_secs(20));
        assert_eq!(status.code(), Some(1), "{}", ferry.output());
        let line = ferry.wait_for("stopped before a cutover", Duration::from_secs(1));
        assert!(line.contains("starts it again"), "{line}");
    }
}

#[test]
fn a_worker_refuses_a_standalone_source_and_an_empty_share() {
    let server = Server::start(ServerKind::Valkey81).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let output = crate::support::ferry(&[
        "migrate",
        "--source",
        &server.url(),
        "--target",
        &target.url(),
        "--shards",
        "0/2",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a cluster node"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let source = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let output = crate::support::ferry(&[
        "migrate",
        "--source",
        &source.url(),
        "--target",
        &target.url(),
        "--shards",
        "3/4",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("run at most 3 workers"), "{stderr}");
}

/// The operator's own tool moves slots between the workers' shares while clients write:
/// 300 slots from primary 0 (worker 0's) to primary 1 (worker 1's), then 200 from
/// primary 1 to primary 2 (worker 0's again), the first of them the ones just moved in.
/// Each `MIGRATE`'s `RESTORE-ASKING` is in one worker's stream and its `DEL` in the
/// other's: written in the wrong order, the `DEL` would delete the moved key on the target.
#[test]
fn keys_resharded_between_workers_shares_by_redis_cli_under_writes_end_equal() {
    let source = source_cluster(ServerKind::Redis70, 3, 0);
    let target = Cluster::start(ServerKind::Valkey81, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A load on each primary; primary 0's keys in the slots both reshards move.
    let tag = tag_below(&source, 200);
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = vec![
        load_tagged(&source, 0, &tag, 211, &stop),
        load_on(&source, 1, 212, &stop),
        load_on(&source, 2, 213, &stop),
    ];
    let mut workers = workers_in_sync(&source, &target, dir.path(), 2);
    let statuses: Vec<String> = workers.iter_mut().map(status_addr).collect();
    let node = |primary: usize| format!("127.0.0.1:{}", source.nodes()[primary].port());
    assert_eq!(followed(&statuses[0]), [node(0), node(2)]);
    assert_eq!(followed(&statuses[1]), [node(1)]);

    let before: Vec<usize> = (0..3).map(|p| source.slot_count(p).unwrap()).collect();
    let tool = source.cli_reshard(0, 1, 300).unwrap();
    assert_eq!(source.slot_count(1).unwrap(), before[1] + 300, "{tool}");
    running.push(load_tagged(&source, 1, &tag, 221, &stop));
    std::thread::sleep(Duration::from_millis(500));
    let tool = source.cli_reshard(1, 2, 200).unwrap();
    assert_eq!(source.slot_count(2).unwrap(), before[2] + 200, "{tool}");
    running.push(load_tagged(&source, 2, &tag, 231, &stop));
    std::thread::sleep(Duration::from_secs(1));
    stop_loads(&stop, running);
    // Every short TTL the load set has passed: what remains is compared whole.
    std::thread::sleep(SHORT_TTLS_PASSED);

    cut_over_and_compare(&source, &target, &statuses, &mut workers);
}

/// One cutover drains every worker; then the clusters hold the same keys.
fn cut_over_and_compare(
    source: &Cluster,
    target: &Cluster,
    statuses: &[String],
    workers: &mut [Ferry],
) {
    let mut extra = vec!["--drain-timeout-ms", "30000"];
    for addr in &statuses[1..] {
        extra.extend(["--status", addr.as_str()]);
    }
    let output = cutover::ferry(&switch_args_between(
        "cutover",
        &source.url(),
        &target.url(),
        &statuses[0],
        &extra,
    ));
    let result = report(&output);
    let logs = |workers: &[Ferry]| -> String {
        workers
            .iter()
            .map(|ferry| ferry.output())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        output.status.success(),
        "{result}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        logs(workers)
    );
    for ferry in workers.iter_mut() {
        assert!(
            ferry.wait_exit(Duration::from_secs(20)).success(),
            "{}",
            ferry.output()
        );
    }
    let mut expected = source.snapshot().unwrap();
    let mut actual = target.snapshot().unwrap();
    // Consumer groups' entries-read is not replicated (see the workload).
    forget_unreplicated_group_state(&mut expected);
    forget_unreplicated_group_state(&mut actual);
    let differences = expected.diff(&actual, &DiffOptions::new());
    assert!(
        differences.is_empty(),
        "{} differences:\n{}\n{}",
        differences.len(),
        differences
            .iter()
            .take(20)
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        logs(workers)
    );
}

/// A worker killed while `redis-cli` moves keys into its share (some restored, the
/// origin's DELs applied or not) and started again once the move is over: the slots that
/// came while it was down still wait for the other worker, and it resumes its stream
/// without a full sync.
#[test]
fn a_worker_killed_while_slots_move_into_its_share_resumes_and_ends_equal() {
    let source = Arc::new(source_cluster(ServerKind::Redis70, 3, 0));
    let target = Cluster::start(ServerKind::Valkey81, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tag = tag_below(&source, 300);
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = vec![
        load_tagged(&source, 0, &tag, 311, &stop),
        load_on(&source, 1, 312, &stop),
        load_on(&source, 2, 313, &stop),
    ];
    let mut workers = workers_in_sync(&source, &target, dir.path(), 2);

    let resharding = {
        let source = source.clone();
        std::thread::spawn(move || source.cli_reshard(0, 1, 600))
    };
    std::thread::sleep(Duration::from_millis(700));
    workers[1].kill();
    let first = workers[1].output();
    resharding.join().unwrap().unwrap();
    running.push(load_tagged(&source, 1, &tag, 321, &stop));
    std::thread::sleep(Duration::from_millis(500));
    workers[1] = worker(&source, &target, dir.path(), 1, 2);
    workers[1].wait_all_shards_in_sync();
    std::thread::sleep(Duration::from_secs(1));
    stop_loads(&stop, running);
    std::thread::sleep(SHORT_TTLS_PASSED);
    let second = workers[1].output();
    assert!(!second.contains("full sync"), "{first}\n{second}");
    let statuses: Vec<String> = workers.iter_mut().map(status_addr).collect();
    cut_over_and_compare(&source, &target, &statuses, &mut workers);
}

/// Valkey 9's atomic slot migration between two workers' primaries: the origin deletes
/// the slots' keys after the new owner took them, which no wait can order, so the
/// worker that receives them stops with one line rather than let the deletes through.
#[test]
fn an_atomic_slot_migration_into_another_workers_share_stops_that_worker_with_one_line() {
    let source = source_cluster(ServerKind::Valkey91, 3, 0);
    let target = Cluster::start(ServerKind::Valkey91, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut workers = workers_in_sync(&source, &target, dir.path(), 2);
    source.migrate_slots_atomically(0, 1, 0, 99).unwrap();
    let status = workers[1].wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "{}", workers[1].output());
    let line = workers[1].wait_for("atomic slot migration", Duration::from_secs(1));
    assert!(line.contains("brings slots 0-99 into"), "{line}");
    assert!(line.contains("--cluster reshard"), "{line}");
}
