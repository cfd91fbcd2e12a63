//! `ferry cutover` and `ferry rollback` between clusters: every source primary is paused,
//! drained against its own shard of the run and checked; counter clients (following
//! `MOVED` as cluster clients do) move with the hooks, and no acknowledged INCR is lost
//! either way. A failed cluster cutover unpauses every primary.

use crate::support::cutover;
use crate::support::cutover::{
    assert_same_but_counters, cluster_counter_values, first_stdout_line, report, status_addr,
    switch_args_between, Counters,
};
use crate::support::migrate::{Ferry, CONTROL_FLAGS};
use ferry_testkit::{dataset, Cluster, Server, ServerKind};
use std::path::Path;
use std::time::{Duration, Instant};

/// A Redis 7.0 cluster with the dataset, a Valkey 8.1 cluster, and a migration between
/// them with a status address, in sync.
struct Setup {
    source: Cluster,
    target: Cluster,
    migrate: Ferry,
    status: String,
    dir: tempfile::TempDir,
}

fn migrating() -> Setup {
    let source = Cluster::start(ServerKind::Redis70, 3).unwrap();
    let target = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let filler = Server::start(ServerKind::Redis70).unwrap();
    dataset::populate_db0(&filler).unwrap();
    source.copy_from(&filler).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut migrate = Ferry::migrate_between(
        &source.url(),
        &target.url(),
        &state,
        &[
            "--metrics-addr",
            "127.0.0.1:0",
            CONTROL_FLAGS[0],
            CONTROL_FLAGS[1],
        ],
    );
    let status = status_addr(&mut migrate);
    migrate.wait_all_shards_in_sync();
    Setup {
        source,
        target,
        migrate,
        status,
        dir,
    }
}

/// The hook that points the counter clients at `$FERRY_TO`.
fn route_hook(route: &Path) -> String {
    format!("printf %s \"$FERRY_TO\" > '{}'", route.display())
}

/// Every primary of `cluster` takes writes within 5 s (none is left paused). The probe key
/// is deleted again: after a cutover the old cluster is the reverse run's target, whose
/// keys the rollback's verify compares.
fn assert_every_primary_serving(cluster: &Cluster) {
    for primary in 0..cluster.nodes().len() {
        let key = format!("{{{}}}:probe", cluster.tag_for(primary).unwrap());
        let mut con = cluster.nodes()[primary].client();
        con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg("written")
            .ignore()
            .cmd("DEL")
            .arg(&key)
            .ignore()
            .query::<()>(&mut con)
            .unwrap_or_else(|e| panic!("primary {primary} takes no write (still paused?): {e}"));
    }
}

#[test]
fn a_cluster_cuts_over_to_a_cluster_and_back_without_losing_a_write() {
    let mut setup = migrating();
    let counters = Counters::start(&setup.source.nodes()[0], setup.dir.path());
    counters.wait_progress(100);

    let hook = route_hook(&counters.route);
    let rollback_state = setup.dir.path().join("rollback.state");
    let rollback_state = rollback_state.display().to_string();
    let args = switch_args_between(
        "cutover",
        &setup.source.url(),
        &setup.target.url(),
        &setup.status,
        &[
            "--exec",
            &hook,
            "--verify-sample",
            "200",
            "--drain-timeout-ms",
            "30000",
            "--keep-rollback",
            "--rollback-state",
            &rollback_state,
            "--rollback-metrics-addr",
            "127.0.0.1:0",
        ],
    );
    let args: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let mut cutover = Ferry::start_command("cutover", &args);
    let result = first_stdout_line(&cutover);
    assert_eq!(result["ok"], true, "{result}\n{}", cutover.output());
    // Each primary was paused and drained against its own shard.
    let paused = result["paused_offsets"]
        .as_object()
        .expect("per-primary offsets");
    assert_eq!(paused.len(), 3, "{result}");
    for node in setup.source.nodes() {
        assert!(
            paused.contains_key(&format!("127.0.0.1:{}", node.port())),
            "{result}"
        );
    }
    eprintln!(
        "cluster cutover: write pause {:.1} ms; steps: {}",
        result["pause_window_ms"].as_f64().unwrap(),
        result["steps"]
    );
    assert!(
        setup.migrate.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        setup.migrate.output()
    );
    assert_every_primary_serving(&setup.source);

    // The clients now write to the target cluster; the cutover process goes on as the
    // reverse migration, Valkey cluster -> Redis cluster.
    let reverse_status = status_addr(&mut cutover);
    cutover.wait_all_shards_in_sync();
    counters.wait_progress(100);
    let output = cutover::ferry(&switch_args_between(
        "rollback",
        &setup.target.url(),
        &setup.source.url(),
        &reverse_status,
        &["--exec", &hook, "--drain-timeout-ms", "30000"],
    ));
    let back = report(&output);
    assert!(
        output.status.success(),
        "rollback failed: {back}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        cutover.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        cutover.output()
    );
    counters.wait_progress(100);
    let acked = counters.stop();

    assert_eq!(
        cluster_counter_values(&setup.source),
        acked,
        "each counter on the old cluster must equal the INCRs acknowledged to its client \
         by either cluster"
    );
    // Everything else the old cluster holds is what the target held at the rollback.
    assert_same_but_counters(&setup.target, &setup.source);
}

#[test]
fn a_failed_cluster_cutover_unpauses_every_primary_and_the_migration_goes_on() {
    let mut setup = migrating();
    let output = cutover::ferry(&switch_args_between(
        "cutover",
        &setup.source.url(),
        &setup.target.url(),
        &setup.status,
        &["--exec", "exit 3", "--drain-timeout-ms", "30000"],
    ));
    let result = report(&output);
    assert!(!output.status.success(), "{result}");
    assert_eq!(result["failed_step"], "hook", "{result}");
    let error = result["error"].as_str().unwrap();
    assert!(error.contains("the source is unpaused"), "{error}");
    assert!(error.contains("the migration keeps running"), "{error}");
    assert_every_primary_serving(&setup.source);
    // Writes made after the failed cutover still reach the target.
    let key = format!("{{{}}}:after", setup.source.tag_for(2).unwrap());
    redis::cmd("SET")
        .arg(&key)
        .arg("carried")
        .query::<()>(&mut setup.source.nodes()[2].client())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !setup
        .target
        .snapshot()
        .unwrap()
        .databases
        .get(&0)
        .is_some_and(|keys| keys.contains_key(key.as_bytes()))
    {
        assert!(Instant::now() < deadline, "{}", setup.migrate.output());
        std::thread::sleep(Duration::from_millis(100));
    }
    setup.migrate.signal("TERM");
    assert!(setup.migrate.wait_exit(Duration::from_secs(20)).success());
}
