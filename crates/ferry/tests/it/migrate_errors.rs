//! `ferry migrate` refusing to start: each failure is one `ferry: ...` line, a non-zero
//! exit within seconds, and never a password.

use crate::support::migrate::Ferry;
use crate::support::require_password;
use ferry_testkit::{Server, ServerKind};
use std::time::{Duration, Instant};

const QUICKLY: Duration = Duration::from_secs(15);

/// Runs ferry to its exit; returns the exit code and its stderr.
fn run_to_exit(args: &[&str]) -> (i32, String) {
    let started = Instant::now();
    let mut ferry = Ferry::start(args);
    let status = ferry.wait_exit(QUICKLY);
    let output = ferry.output();
    assert!(started.elapsed() < QUICKLY);
    (status.code().unwrap_or(-1), output)
}

fn assert_one_line(output: &str, needles: &[&str]) {
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{output}");
    assert!(lines[0].starts_with("ferry: "), "{output}");
    for needle in needles {
        assert!(output.contains(needle), "{needle:?} not in: {output}");
    }
}

fn with_password(server: &Server, password: &str) -> String {
    format!("redis://:{password}@127.0.0.1:{}", server.port())
}

#[test]
fn a_wrong_source_password_is_one_line_without_the_password() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    require_password(&source, "right-one");
    let source_url = with_password(&source, "wrong-secret-77");
    let (code, output) = run_to_exit(&["--source", &source_url, "--target", &target.url()]);
    assert_eq!(code, 1, "{output}");
    assert_one_line(&output, &["source", "authentication failed"]);
    assert!(!output.contains("wrong-secret-77"), "{output}");

    // No password at all for a source that wants one.
    let (code, output) = run_to_exit(&["--source", &source.url(), "--target", &target.url()]);
    assert_eq!(code, 1, "{output}");
    assert_one_line(&output, &["source", "authentication failed", "NOAUTH"]);
}

#[test]
fn a_wrong_target_password_is_one_line_without_the_password() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    require_password(&target, "right-one");
    let target_url = with_password(&target, "wrong-secret-78");
    let (code, output) = run_to_exit(&["--source", &source.url(), "--target", &target_url]);
    assert_eq!(code, 1, "{output}");
    assert_one_line(&output, &["target", "authentication failed"]);
    assert!(!output.contains("wrong-secret-78"), "{output}");
    assert!(output.contains(":***@"), "{output}");
}

#[test]
fn an_unreachable_target_is_one_line() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let closed = ferry_testkit::ClosedPort::reserve().unwrap();
    let target_url = format!("redis://127.0.0.1:{}", closed.port());
    let (code, output) = run_to_exit(&["--source", &source.url(), "--target", &target_url]);
    assert_eq!(code, 1, "{output}");
    assert_one_line(&output, &["target", "cannot connect"]);
}

#[test]
fn a_malformed_url_is_a_usage_error() {
    let (code, output) = run_to_exit(&[
        "--source",
        "localhost:6379",
        "--target",
        "redis://u:topsecret@h:notaport",
    ]);
    assert_eq!(code, 2, "{output}");
    assert_one_line(&output, &["--source", "expected redis://"]);
    let (code, output) = run_to_exit(&[
        "--source",
        "redis://h:1",
        "--target",
        "redis://u:topsecret@h:notaport",
    ]);
    assert_eq!(code, 2, "{output}");
    assert_one_line(&output, &["--target", "notaport"]);
    assert!(!output.contains("topsecret"), "{output}");
}

#[test]
fn a_target_that_is_a_replica_is_refused() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let primary = Server::start(ServerKind::Valkey81).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let mut con = target.client();
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port())
        .query::<()>(&mut con)
        .unwrap();
    let (code, output) = run_to_exit(&["--source", &source.url(), "--target", &target.url()]);
    assert_eq!(code, 1, "{output}");
    assert_one_line(&output, &["target", "is a replica"]);
}

#[test]
fn a_non_empty_target_is_refused_without_a_flag() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let mut con = target.client();
    redis::cmd("SELECT").arg(2).query::<()>(&mut con).unwrap();
    redis::cmd("SET")
        .arg("old")
        .arg("data")
        .query::<()>(&mut con)
        .unwrap();
    let (code, output) = run_to_exit(&["--source", &source.url(), "--target", &target.url()]);
    assert_eq!(code, 1, "{output}");
    assert_one_line(
        &output,
        &[
            "target",
            "not empty",
            "db2 1",
            "--flush-target",
            "--allow-non-empty",
        ],
    );
}

#[test]
fn flush_target_empties_it_and_copies() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let mut con = target.client();
    redis::cmd("SET")
        .arg("old")
        .arg("data")
        .query::<()>(&mut con)
        .unwrap();
    let mut src = source.client();
    redis::cmd("SET")
        .arg("new")
        .arg("data")
        .query::<()>(&mut src)
        .unwrap();
    let mut ferry = Ferry::start(&[
        "--source",
        &source.url(),
        "--target",
        &target.url(),
        "--flush-target",
    ]);
    ferry.wait_in_sync();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    keys.sort();
    // The source's key, and ferry's record of what it applied.
    assert_eq!(keys, ["ferry:migrate:applied", "new"]);
}
