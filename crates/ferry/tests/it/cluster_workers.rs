//! A cluster source split over worker processes (`migrate --shards K/N`), each with its
//! own state file and status address, then switched by one `ferry cutover` given every
//! worker's `--status`: every source primary paused, drained against the worker following
//! it, and all workers stopped together.

use crate::support::cutover::{
    self, assert_same_but_counters, cluster_counter_values, report, status_addr,
    switch_args_between, Counters,
};
use crate::support::migrate::{Ferry, CONTROL_FLAGS};
use crate::support::{http_get, info_field, server_info};
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

    let mut workers: Vec<Ferry> = (0..3)
        .map(|k| worker(&source, &target, dir.path(), k, 3))
        .collect();
    let statuses: Vec<String> = workers.iter_mut().map(status_addr).collect();
    for ferry in &mut workers {
        ferry.wait_all_shards_in_sync();
    }
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
    let mut workers: Vec<Ferry> = (0..2)
        .map(|k| worker(&source, &target, dir.path(), k, 2))
        .collect();
    let statuses: Vec<String> = workers.iter_mut().map(status_addr).collect();
    for ferry in &mut workers {
        ferry.wait_all_shards_in_sync();
    }
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

#[test]
fn a_reshard_across_workers_shares_stops_them_with_one_line_naming_the_slots() {
    let source = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    {
        let filler = Server::start(ServerKind::Valkey81).unwrap();
        dataset::populate_db0(&filler).unwrap();
        source.copy_from(&filler).unwrap();
    }
    let target = Cluster::start(ServerKind::Valkey81, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut workers: Vec<Ferry> = (0..2)
        .map(|k| worker(&source, &target, dir.path(), k, 2))
        .collect();
    for ferry in &mut workers {
        ferry.wait_all_shards_in_sync();
    }
    // The operator's own tool moves 50 slots from the first primary (worker 0's) to the
    // second (worker 1's): neither worker could pair the MIGRATEs with the other's DELs.
    source.cli_reshard(0, 1, 50).unwrap();
    for ferry in &mut workers {
        let status = ferry.wait_exit(Duration::from_secs(30));
        assert!(!status.success(), "{}", ferry.output());
        let line = ferry.wait_for("moved between workers' shares", Duration::from_secs(1));
        // Seen mid-way, or once done: slots from 0 on.
        assert!(line.contains("ferry: slots 0-"), "{line}");
        assert!(
            line.contains("rerun every worker on an emptied target"),
            "{line}"
        );
    }
}
