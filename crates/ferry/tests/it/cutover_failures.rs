//! A failure injected at each cutover step leaves the source unpaused and serving, the
//! error names the step on one line, and (when the failure came before the migration was
//! stopped) the migration keeps carrying writes to the target.

use crate::support::cutover;
use crate::support::cutover::{
    assert_serving, report, start_migrate, switch_args, switch_args_between,
};
use crate::support::migrate::{simple_load, wait_applied, Ferry, CONTROL_TOKEN, CONTROL_TOKEN_ENV};
use ferry_testkit::{Server, ServerKind};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Setup {
    source: Server,
    target: Server,
    state: std::path::PathBuf,
    migrate: Ferry,
    status: String,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    setup_from(ServerKind::Redis70)
}

fn setup_from(kind: ServerKind) -> Setup {
    let source = Server::start(kind).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    simple_load(&source, 1);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let (migrate, status) = start_migrate(&source, &target, &state, &[]);
    Setup {
        source,
        target,
        state,
        migrate,
        status,
        _dir: dir,
    }
}

/// The cutover failed at `step` and said so on one stderr line.
fn assert_failed_at(output: &Output, step: &str) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let result = report(output);
    assert_eq!(result["ok"], false, "{result}");
    assert_eq!(result["failed_step"], step, "{result}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("ferry: cutover failed at step"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(line.contains(&format!("step {step}:")), "{line}");
    result
}

/// The migration still runs: a new write on the source reaches the target.
fn assert_still_migrating(setup: &Setup) {
    let mut source = setup.source.client();
    redis::cmd("SET")
        .arg("cutover:after")
        .arg("still copied")
        .query::<()>(&mut source)
        .unwrap();
    wait_applied(&setup.source, &setup.state, &setup.migrate);
    let mut target = setup.target.client();
    let copied: Option<String> = redis::cmd("GET")
        .arg("cutover:after")
        .query(&mut target)
        .unwrap();
    assert_eq!(copied.as_deref(), Some("still copied"));
}

#[test]
fn a_hook_that_exits_non_zero_unpauses_and_the_migration_goes_on() {
    let setup = setup();
    let output = cutover::ferry(&switch_args(
        "cutover",
        &setup.source,
        &setup.target,
        &setup.status,
        &["--exec", "exit 3"],
    ));
    let result = assert_failed_at(&output, "hook");
    assert!(result["pause_window_ms"].as_f64().is_some(), "{result}");
    assert!(result["error"]
        .as_str()
        .unwrap()
        .contains("the source is unpaused"));
    assert_serving(&setup.source);
    assert_still_migrating(&setup);
}

#[test]
fn a_verify_difference_unpauses_and_the_hook_never_runs() {
    let setup = setup();
    // The target loses its keys behind ferry's back: the sample finds them missing.
    let mut target = setup.target.client();
    redis::cmd("FLUSHALL").query::<()>(&mut target).unwrap();
    let marker = setup._dir.path().join("hook-ran");
    let hook = format!("touch '{}'", marker.display());
    let output = cutover::ferry(&switch_args(
        "cutover",
        &setup.source,
        &setup.target,
        &setup.status,
        &["--exec", &hook],
    ));
    let result = assert_failed_at(&output, "verify");
    assert!(
        result["error"].as_str().unwrap().contains("missing"),
        "{result}"
    );
    assert!(!marker.exists(), "the hook ran after a failed verify");
    assert_serving(&setup.source);
    assert_still_migrating(&setup);
}

#[test]
fn a_target_that_stops_applying_fails_the_drain_and_unpauses() {
    let setup = setup();
    // The target holds ferry's writes: the offset the source reached is never applied.
    let mut target = setup.target.client();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(60_000)
        .arg("WRITE")
        .query::<()>(&mut target)
        .unwrap();
    simple_load(&setup.source, 2);
    let output = cutover::ferry(&switch_args(
        "cutover",
        &setup.source,
        &setup.target,
        &setup.status,
        &["--drain-timeout-ms", "1000", "--max-lag-bytes", "100000000"],
    ));
    assert_failed_at(&output, "drain");
    assert_serving(&setup.source);
    redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query::<()>(&mut target)
        .unwrap();
    assert_still_migrating(&setup);
}

#[test]
fn an_unreachable_target_fails_before_pausing() {
    let mut setup = setup();
    let Setup { target, .. } = &mut setup;
    let target_url = target.url();
    // Replace the target with a stopped one: same address, nobody listening.
    let port = target.port();
    drop(std::mem::replace(
        target,
        Server::start(ServerKind::Valkey81).unwrap(),
    ));
    let output = cutover::ferry(&switch_args_between(
        "cutover",
        &setup.source.url(),
        &target_url,
        &setup.status,
        &[],
    ));
    let result = assert_failed_at(&output, "preflight");
    let error = result["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("target 127.0.0.1:{port} is unreachable")),
        "{error}"
    );
    assert!(error.contains("the source was not paused"), "{error}");
    assert!(result["pause_window_ms"].is_null());
    assert_serving(&setup.source);
}

#[test]
fn a_pause_that_runs_out_during_the_hook_fails_before_stopping_the_migration() {
    let setup = setup();
    let undone = setup._dir.path().join("undone");
    let undo = format!("printf %s \"$FERRY_TO\" > '{}'", undone.display());
    let output = cutover::ferry(&switch_args(
        "cutover",
        &setup.source,
        &setup.target,
        &setup.status,
        &[
            "--pause-timeout-ms",
            "300",
            "--verify-sample",
            "0",
            "--exec",
            "sleep 0.6",
            "--exec-undo",
            &undo,
        ],
    ));
    let result = assert_failed_at(&output, "stop");
    let error = result["error"].as_str().unwrap();
    assert!(error.contains("ran out"), "{error}");
    // The undo hook ran, pointing clients back at the source.
    let back = std::fs::read_to_string(&undone).expect("--exec-undo ran");
    assert_eq!(back, format!("127.0.0.1:{}", setup.source.port()));
    assert!(error.contains("--exec-undo moved clients back"), "{error}");
    assert!(error.contains("the migration keeps running"), "{error}");
    assert_serving(&setup.source);
    assert_still_migrating(&setup);
}

#[test]
fn a_source_without_write_pauses_fails_at_the_pause_and_is_not_left_paused() {
    // Redis 6.0 knows only CLIENT PAUSE of every command, without WRITE or UNPAUSE.
    let setup = setup_from(ServerKind::Redis60);
    let output = cutover::ferry(&switch_args(
        "cutover",
        &setup.source,
        &setup.target,
        &setup.status,
        &[],
    ));
    let result = assert_failed_at(&output, "pause");
    let error = result["error"].as_str().unwrap();
    assert!(error.contains("needs Redis 6.2+"), "{error}");
    assert!(error.contains("the source was not paused"), "{error}");
    assert_serving(&setup.source);
    assert_still_migrating(&setup);
}

#[test]
fn a_verify_slower_than_its_limit_unpauses() {
    let setup = setup();
    let output = cutover::ferry(&switch_args(
        "cutover",
        &setup.source,
        &setup.target,
        &setup.status,
        &["--verify-timeout-ms", "1"],
    ));
    let result = assert_failed_at(&output, "verify");
    let error = result["error"].as_str().unwrap();
    assert!(error.contains("--verify-timeout-ms"), "{error}");
    assert_serving(&setup.source);
    assert_still_migrating(&setup);
}

#[test]
fn ctrl_c_during_the_hook_kills_it_and_undoes_the_switch_at_once() {
    let setup = setup();
    let hook_started = setup._dir.path().join("hook-started");
    let undone = setup._dir.path().join("undone");
    let args = switch_args(
        "cutover",
        &setup.source,
        &setup.target,
        &setup.status,
        &[
            "--verify-sample",
            "0",
            "--exec-timeout-ms",
            "120000",
            "--exec",
            &format!("touch '{}'; sleep 60", hook_started.display()),
            "--exec-undo",
            &format!("printf %s \"$FERRY_TO\" > '{}'", undone.display()),
        ],
    );
    let mut cutover = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(&args)
        .env(CONTROL_TOKEN_ENV, CONTROL_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !hook_started.exists() {
        assert!(Instant::now() < deadline, "the hook never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Writes are paused on the source now, for up to the tests' 60 s pause timeout.
    let interrupted_at = Instant::now();
    let sent = Command::new("kill")
        .arg("-INT")
        .arg(cutover.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
    let exit_deadline = Instant::now() + Duration::from_secs(30);
    while cutover.try_wait().unwrap().is_none() {
        if Instant::now() >= exit_deadline {
            let _ = cutover.kill();
            panic!("ferry cutover did not end within 30 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Far sooner than the 60 s hook or pause would have taken.
    assert!(
        interrupted_at.elapsed() < Duration::from_secs(20),
        "{:?}",
        interrupted_at.elapsed()
    );
    let output = cutover.wait_with_output().unwrap();
    let result = assert_failed_at(&output, "hook");
    let error = result["error"].as_str().unwrap();
    assert!(error.contains("interrupted"), "{error}");
    assert!(error.contains("--exec-undo moved clients back"), "{error}");
    assert!(error.contains("the source is unpaused"), "{error}");
    assert!(error.contains("the migration keeps running"), "{error}");
    let back = std::fs::read_to_string(&undone).expect("--exec-undo ran");
    assert_eq!(back, format!("127.0.0.1:{}", setup.source.port()));
    assert_serving(&setup.source);
    assert_still_migrating(&setup);
}
