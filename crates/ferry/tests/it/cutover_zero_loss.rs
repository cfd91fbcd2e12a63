//! `ferry cutover` under load loses no acknowledged write: counter clients and a
//! redis-benchmark load write to the source while `migrate` runs; the cutover's hook
//! points the clients at the target; afterwards every counter on the target equals the
//! number of INCRs its client had acknowledged (by the source before the switch, by the
//! target after). A lost write would leave the target lower; a write applied twice (or
//! one the source ran after the switch) would show as a mismatch too.

use crate::support::cutover;
use crate::support::cutover::{
    counter_values, policies, report, start_migrate, switch_args, Benchmark, Counters,
};
use ferry_testkit::{dataset, Server, ServerKind};
use std::time::Duration;

fn cutover_loses_nothing(source_kind: ServerKind, target_kind: ServerKind) {
    let source = Server::start(source_kind).unwrap();
    let target = Server::start(target_kind).unwrap();
    dataset::populate(&source).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let policies = policies(&source);
    let (mut migrate, status) = start_migrate(&source, &target, &state, &policies);

    // A Pub/Sub subscriber of the old server must be sent away too: messages are
    // published on the target from now on.
    let mut subscriber = source.client();
    subscriber
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut subscription = subscriber.as_pubsub();
    subscription.subscribe("cutover:news").unwrap();

    let counters = Counters::start(&source, dir.path());
    let load = Benchmark::start(&source);
    counters.wait_progress(200);

    let hook = format!("printf %s \"$FERRY_TO\" > '{}'", counters.route.display());
    // A slow machine may need more than the default 5 s to apply the backlog.
    let mut extra = vec![
        "--exec",
        hook.as_str(),
        "--verify-sample",
        "500",
        "--drain-timeout-ms",
        "30000",
    ];
    extra.extend_from_slice(&policies);
    let output = cutover::ferry(&switch_args("cutover", &source, &target, &status, &extra));
    let result = report(&output);
    assert!(
        output.status.success(),
        "cutover failed: {result}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(result["ok"], true, "{result}");
    let window = result["pause_window_ms"].as_f64().expect("a pause window");
    eprintln!(
        "{} -> {}: write pause {window:.1} ms; steps: {}",
        source_kind.name(),
        target_kind.name(),
        result["steps"]
    );
    let closed = subscription
        .get_message()
        .expect_err("the subscriber's connection is closed by the cutover");
    assert!(
        !closed.is_timeout(),
        "the subscriber was left connected: {closed}"
    );
    drop(subscription);

    // The clients now write to the target only.
    counters.wait_progress(200);
    drop(load);
    let acked = counters.stop();

    // The migration was stopped by the cutover, cleanly.
    assert!(
        migrate.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        migrate.output()
    );
    assert!(migrate.output().contains("asked to by POST /stop"));

    let on_target = counter_values(&target);
    assert_eq!(
        on_target, acked,
        "each counter on the target must equal the INCRs acknowledged to its client"
    );
    assert!(acked.iter().all(|n| *n >= 400), "{acked:?}");

    // The target is left as a plain live server: no ferry key, import mode off.
    let mut con = target.client();
    let marker: bool = redis::cmd("EXISTS")
        .arg("ferry:migrate:applied")
        .query(&mut con)
        .unwrap();
    assert!(!marker, "ferry's marker is left on the live target");
    let import_mode: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("import-mode")
        .query(&mut con)
        .unwrap();
    assert_ne!(import_mode.get(1).map(String::as_str), Some("yes"));
}

#[test]
fn redis_8_0_to_valkey_8_1_under_load_loses_no_acknowledged_write() {
    cutover_loses_nothing(ServerKind::Redis80, ServerKind::Valkey81);
}

#[test]
fn redis_7_0_to_valkey_8_1_under_load_loses_no_acknowledged_write() {
    cutover_loses_nothing(ServerKind::Redis70, ServerKind::Valkey81);
}
