//! Cutover and rollback over TLS with client certificates and passwords from files: the
//! connection flags reach every connection cutover makes (pause, verify, kill), and the
//! reverse migration of `--keep-rollback` gets them swapped with the URLs. No password
//! shows in anything printed.

use crate::support::cutover;
use crate::support::cutover::{report, status_addr};
use crate::support::migrate::{simple_load, Ferry, CONTROL_FLAGS, CONTROL_TOKEN};
use crate::support::path;
use ferry_testkit::tls::{ServerTls, TestPki};
use ferry_testkit::{Server, ServerKind};
use std::path::Path;
use std::time::{Duration, Instant};

const PASSWORD: &str = "ops-Pw-6e1f0c3b";

/// `--{side} URL` with the TLS files and the password file.
fn side(flag: &str, server: &Server, pki: &TestPki, password: &Path) -> Vec<String> {
    vec![
        format!("--{flag}"),
        format!("rediss://ops@127.0.0.1:{}", server.tls_port()),
        format!("--{flag}-tls-ca"),
        path(&pki.ca),
        format!("--{flag}-tls-cert"),
        path(&pki.client.cert),
        format!("--{flag}-tls-key"),
        path(&pki.client.key),
        format!("--{flag}-password-file"),
        path(password),
    ]
}

fn wait_for_key(server: &Server, key: &str) {
    let mut con = server.client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value: Option<String> = redis::cmd("GET").arg(key).query(&mut con).unwrap();
        if value.is_some() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} never reached {}",
            server.kind()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cutover_and_rollback_over_tls_with_password_files() {
    let pki = TestPki::generate().unwrap();
    let tls = ServerTls::mutual(&pki);
    let redis = Server::start_with_tls(ServerKind::Redis70, &tls, &[]).unwrap();
    let valkey = Server::start_with_tls(ServerKind::Valkey81, &tls, &[]).unwrap();
    for server in [&redis, &valkey] {
        let mut con = server.client();
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg("ops")
            .arg("on")
            .arg(format!(">{PASSWORD}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .query::<()>(&mut con)
            .unwrap();
    }
    simple_load(&redis, 1);
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();

    let forward: Vec<String> = [
        side("source", &redis, &pki, &password),
        side("target", &valkey, &pki, &password),
    ]
    .concat();
    let mut migrate_args = forward.clone();
    migrate_args.extend(
        [
            "--state",
            &path(&dir.path().join("m.state")),
            "--metrics-addr",
            "127.0.0.1:0",
            CONTROL_FLAGS[0],
            CONTROL_FLAGS[1],
        ]
        .map(String::from),
    );
    let args: Vec<&str> = migrate_args.iter().map(String::as_str).collect();
    let mut migrate = Ferry::start(&args);
    let status = status_addr(&mut migrate);
    migrate.wait_in_sync();

    let mut cutover_args = forward.clone();
    cutover_args.extend(
        [
            "--status",
            &status,
            "--json",
            "--verify-timeout-ms",
            "60000",
            "--keep-rollback",
            "--rollback-state",
            &path(&dir.path().join("r.state")),
            "--rollback-metrics-addr",
            "127.0.0.1:0",
            CONTROL_FLAGS[0],
            CONTROL_FLAGS[1],
        ]
        .map(String::from),
    );
    let args: Vec<&str> = cutover_args.iter().map(String::as_str).collect();
    let mut cutover = Ferry::start_command("cutover", &args);
    let reverse_status = status_addr(&mut cutover);
    cutover.wait_in_sync();
    let line = cutover.stdout_lines().first().cloned().unwrap_or_default();
    let result: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(result["ok"], true, "{result}");
    assert!(migrate.wait_exit(Duration::from_secs(20)).success());

    // The reverse migration, over TLS with the swapped flags, carries a write back.
    let mut con = valkey.client();
    redis::cmd("SET")
        .arg("written:on:valkey")
        .arg("1")
        .query::<()>(&mut con)
        .unwrap();
    wait_for_key(&redis, "written:on:valkey");

    let mut rollback_args = vec!["rollback".to_string()];
    rollback_args.extend(side("source", &valkey, &pki, &password));
    rollback_args.extend(side("target", &redis, &pki, &password));
    rollback_args.extend(
        [
            "--status",
            &reverse_status,
            "--json",
            "--verify-timeout-ms",
            "60000",
            CONTROL_FLAGS[0],
            CONTROL_FLAGS[1],
        ]
        .map(String::from),
    );
    let output = cutover::ferry(&rollback_args);
    let back = report(&output);
    assert_eq!(back["ok"], true, "{back}");
    assert!(cutover.wait_exit(Duration::from_secs(20)).success());

    let printed = [
        migrate.output(),
        migrate.stdout_lines().join("\n"),
        cutover.output(),
        cutover.stdout_lines().join("\n"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ]
    .join("\n");
    assert!(
        !printed.contains(PASSWORD),
        "a password was printed:\n{printed}"
    );
    assert!(
        !printed.contains(CONTROL_TOKEN),
        "the control token was printed:\n{printed}"
    );
}
