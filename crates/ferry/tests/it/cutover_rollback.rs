//! `ferry cutover --keep-rollback` then `ferry rollback`: after the cutover ferry migrates
//! the target back into the old source (Valkey data loaded into Redis 8, through the
//! codec), and the rollback switches clients back without losing an acknowledged write.
//! Counter clients follow both hooks; at the end each counter on the old source equals
//! the INCRs acknowledged to its client by either server.

use crate::support::cutover;
use crate::support::cutover::{
    counter_key, counter_values, first_stdout_line, policies, report, start_migrate, status_addr,
    switch_args, Benchmark, Counters, COUNTERS,
};
use crate::support::migrate::{assert_same, Ferry};
use ferry_testkit::snapshot::DiffOptions;
use ferry_testkit::{dataset, Server, ServerKind};
use std::time::Duration;

fn cutover_and_back(redis_kind: ServerKind, valkey_kind: ServerKind) {
    let redis = Server::start(redis_kind).unwrap();
    let valkey = Server::start(valkey_kind).unwrap();
    dataset::populate(&redis).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let rollback_state = dir.path().join("rollback.state");
    let mut policy_args = policies(&redis);
    if valkey_kind == ServerKind::Valkey91 {
        // Valkey 9 has hash field TTLs: only vector sets stay behind.
        policy_args = vec!["--vector-set", "skip"];
    }
    let (mut forward, status) = start_migrate(&redis, &valkey, &state, &policy_args);

    let counters = Counters::start(&redis, dir.path());
    let load = Benchmark::start(&redis);
    counters.wait_progress(100);

    let to_valkey = format!("printf %s \"$FERRY_TO\" > '{}'", counters.route.display());
    let rollback_state_arg = rollback_state.display().to_string();
    let mut extra = vec![
        "--exec",
        to_valkey.as_str(),
        "--keep-rollback",
        "--rollback-state",
        rollback_state_arg.as_str(),
        "--rollback-metrics-addr",
        "127.0.0.1:0",
        "--drain-timeout-ms",
        "30000",
    ];
    extra.extend_from_slice(&policy_args);
    let args = switch_args("cutover", &redis, &valkey, &status, &extra);
    let args: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let mut cutover = Ferry::start_command("cutover", &args);
    let result = first_stdout_line(&cutover);
    assert_eq!(result["ok"], true, "{result}\n{}", cutover.output());
    eprintln!(
        "cutover {} -> {}: write pause {:.1} ms",
        redis_kind.name(),
        valkey_kind.name(),
        result["pause_window_ms"].as_f64().unwrap()
    );
    drop(load);
    assert!(forward.wait_exit(Duration::from_secs(20)).success());

    // The same process goes on as the reverse migration, Valkey -> Redis.
    let reverse_status = status_addr(&mut cutover);
    cutover.wait_in_sync();
    let load = Benchmark::start(&valkey);
    counters.wait_progress(100);

    let to_redis = format!("printf %s \"$FERRY_TO\" > '{}'", counters.route.display());
    let output = cutover::ferry(&switch_args(
        "rollback",
        &valkey,
        &redis,
        &reverse_status,
        &["--exec", &to_redis, "--drain-timeout-ms", "30000"],
    ));
    let back = report(&output);
    assert!(
        output.status.success(),
        "rollback failed: {back}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "rollback {} -> {}: write pause {:.1} ms",
        valkey_kind.name(),
        redis_kind.name(),
        back["pause_window_ms"].as_f64().unwrap()
    );
    assert!(
        cutover.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        cutover.output()
    );
    drop(load);
    counters.wait_progress(100);
    let acked = counters.stop();

    assert_eq!(
        counter_values(&redis),
        acked,
        "each counter on Redis must equal the INCRs acknowledged to its client"
    );
    // Everything else Redis holds is what Valkey held at the rollback: the reverse full
    // sync and stream carried Valkey's data into Redis. Counters moved on since, and the
    // benchmark's keys may have taken writes on Valkey after its clients were closed.
    let moving = |_: u32, key: &[u8]| {
        (0..COUNTERS).any(|i| key == counter_key(i).as_bytes())
            || key.windows(8).any(|w| w == b"__rand_i")
            || key == b"mylist"
    };
    assert_same(&valkey, &redis, &DiffOptions::new().exclude_keys(moving));
}

#[test]
fn redis_8_0_to_valkey_8_1_and_back_loses_no_acknowledged_write() {
    cutover_and_back(ServerKind::Redis80, ServerKind::Valkey81);
}

#[test]
fn redis_8_0_to_valkey_9_1_and_back_loses_no_acknowledged_write() {
    cutover_and_back(ServerKind::Redis80, ServerKind::Valkey91);
}
