//! No secret in anything ferry prints, serves or writes. Source, target and relay require
//! passwords (requirepass), the runs a control token; every command runs, in every output
//! format, on its good path and its error paths, and every stdout, stderr, HTTP body and
//! file ferry wrote is searched for them.
//!
//! All secrets share one prefix ([`CANARY`]), so one search finds any of them; each has
//! its own suffix, so a hit names which leaked. The passwords reach ferry every way it
//! takes them: a file, an environment variable, the URL.

use crate::support::migrate::Ferry;
use crate::support::relay::wait_link_up;
use crate::support::{ferry_with_env, http, http_post, require_password};
use ferry_testkit::{dataset, ClosedPort, Server, ServerKind};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

const CANARY: &str = "S3cr3t-ferry-canary";
const SOURCE_PASSWORD: &str = "S3cr3t-ferry-canary-source-5d2a";
const TARGET_PASSWORD: &str = "S3cr3t-ferry-canary-target-b817";
const RELAY_PASSWORD: &str = "S3cr3t-ferry-canary-relay-0c3f";
const WRONG_PASSWORD: &str = "S3cr3t-ferry-canary-wrong-94e1";
const CONTROL_TOKEN: &str = "S3cr3t-ferry-canary-control-token-7a61";
const WRONG_TOKEN: &str = "S3cr3t-ferry-canary-wrong-token-2b90";

const TARGET_PASSWORD_ENV: &str = "FERRY_SECRETS_TARGET_PASSWORD";
const WRONG_TOKEN_ENV: &str = "FERRY_SECRETS_WRONG_TOKEN";

/// What Redis 8's data needs in Valkey 8.1, for the commands that compare.
const POLICIES: [&str; 4] = ["--hash-field-ttl", "persist", "--vector-set", "skip"];

/// Everything ferry printed or served, by where it came from.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }

    fn output(&mut self, what: &str, output: &Output) {
        self.add(
            format!("{what}: stdout"),
            String::from_utf8_lossy(&output.stdout),
        );
        self.add(
            format!("{what}: stderr"),
            String::from_utf8_lossy(&output.stderr),
        );
    }

    fn run(&mut self, what: &str, ferry: &Ferry) {
        self.add(format!("{what}: stdout"), ferry.stdout_lines().join("\n"));
        self.add(format!("{what}: stderr"), ferry.output());
    }

    /// Every file under `dir`, whatever ferry named it.
    fn files(&mut self, dir: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                self.files(&path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                self.add(
                    format!("file {}", path.display()),
                    String::from_utf8_lossy(&bytes),
                );
            }
        }
    }

    fn text_of(&self, what: &str) -> &str {
        self.0
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("nothing recorded as {what}"))
    }
}

fn start(kind: ServerKind) -> Server {
    // No 5 s wait before each full sync (Redis 7+ diskless default).
    Server::start_with_args(kind, &["--repl-diskless-sync-delay", "0"]).unwrap()
}

/// `/metrics` and `/status` of a run, recorded; `/status` is returned.
fn fetch_both(seen: &mut Seen, what: &str, addr: &str) -> String {
    let metrics = http(addr, "GET", "/metrics", &[]);
    assert!(metrics.contains("ferry_applied_offset_bytes"), "{metrics}");
    seen.add(format!("{what} /metrics"), metrics);
    let status = http(addr, "GET", "/status", &[]);
    assert!(status.contains("\"phase\""), "{status}");
    seen.add(format!("{what} /status"), status.clone());
    status
}

fn wait_exit_ok(run: &mut Ferry, what: &str) {
    let exit = run.wait_exit(Duration::from_secs(30));
    assert!(exit.success(), "{what}: {exit}\n{}", run.output());
}

/// Asserts a command failed with one `ferry: …` line on stderr.
fn assert_one_line_failure(what: &str, output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{what} succeeded: {stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with("ferry: ")),
        "{what}: {stderr}"
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write_secret(dir: &Path, name: &str, value: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, format!("{value}\n")).unwrap();
    file
}

#[test]
fn no_password_or_control_token_shows_in_any_output() {
    let started = Instant::now();
    // The secrets' own files live apart from everything ferry writes (`out`), which is
    // searched whole at the end.
    let secrets = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let source_password = write_secret(secrets.path(), "source.pw", SOURCE_PASSWORD);
    let wrong_password = write_secret(secrets.path(), "wrong.pw", WRONG_PASSWORD);
    let relay_password = write_secret(secrets.path(), "relay.pw", RELAY_PASSWORD);
    let control_token = write_secret(secrets.path(), "control.token", CONTROL_TOKEN);
    // Two lines: refused, and the refusal must not quote the file.
    let bad_token = write_secret(
        secrets.path(),
        "bad.token",
        &format!("{CONTROL_TOKEN}\n{WRONG_TOKEN}"),
    );
    let target_env = [(TARGET_PASSWORD_ENV, TARGET_PASSWORD)];

    // Redis 8 with the dataset (a vector set, for the export file) into Valkey 8.1.
    let source = start(ServerKind::Redis80);
    dataset::populate(&source).unwrap();
    let target = start(ServerKind::Valkey81);
    require_password(&source, SOURCE_PASSWORD);
    require_password(&target, TARGET_PASSWORD);
    let source_url = source.url();
    let target_url = target.url();
    let source_in_url = format!("redis://:{SOURCE_PASSWORD}@127.0.0.1:{}", source.port());
    let source_flags = [
        "--source",
        &source_url,
        "--source-password-file",
        path(&source_password),
    ];
    let target_flags = [
        "--target",
        &target_url,
        "--target-password-env",
        TARGET_PASSWORD_ENV,
    ];
    let control_flags = ["--control-token-file", path(&control_token)];
    let mut seen = Seen::default();

    // assess: every format, printed and written to --out.
    for format in ["text", "markdown", "json"] {
        let report = out.path().join(format!("assess.{format}"));
        let args = [
            &["assess", "--format", format, "--max-ops-per-sec", "100000"][..],
            &source_flags,
            &target_flags,
            &["--out", path(&report)],
        ]
        .concat();
        let output = ferry_with_env(&args, &target_env);
        assert!(output.status.success(), "assess {format}: {output:?}");
        seen.output(&format!("assess --format {format} --out"), &output);
        let output = ferry_with_env(&args[..args.len() - 2], &target_env);
        assert!(output.status.success(), "assess {format}: {output:?}");
        seen.output(&format!("assess --format {format}"), &output);
    }

    // migrate with --json events, /metrics, /status, the state file, the export file and
    // a spool (its own lines, its description file while it exists).
    let export = out.path().join("vectors.jsonl");
    let spool = out.path().join("spool");
    let export_policy = format!("export={}", path(&export));
    let state = out.path().join("migrate.state");
    let migrate_args = [
        &source_flags[..],
        &target_flags,
        &control_flags,
        &[
            "--state",
            path(&state),
            "--spool-dir",
            path(&spool),
            "--json",
            "--metrics-addr",
            "127.0.0.1:0",
            "--hash-field-ttl",
            "persist",
            "--vector-set",
            &export_policy,
        ],
    ]
    .concat();
    let mut migrate = Ferry::start_command_with_env("migrate", &migrate_args, &target_env);
    let migrate_addr = migrate.status_address(Duration::from_secs(30));
    migrate.wait_in_sync();
    fetch_both(&mut seen, "migrate", &migrate_addr);
    // The control endpoint's refusals (no token, a wrong one) are outputs too.
    let refused = http(&migrate_addr, "POST", "/stop", &[]);
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    seen.add("POST /stop without the token", refused);
    let wrong = format!("Bearer {WRONG_TOKEN}");
    let (code, body) = http_post(&migrate_addr, "/stop", &[("Authorization", &wrong)]);
    assert_eq!(code, 401, "{body}");
    seen.add("POST /stop with a wrong token", body);

    // verify: text and JSON; the source's password in its URL for once.
    for json in [false, true] {
        let mut args = vec!["verify", "--source", &source_in_url];
        args.extend_from_slice(&target_flags[..]);
        args.extend_from_slice(&POLICIES);
        if json {
            args.push("--json");
        }
        let output = ferry_with_env(&args, &target_env);
        assert!(output.status.success(), "verify: {output:?}");
        seen.output(&format!("verify json={json}"), &output);
    }

    // relay: a Valkey replica AUTHs with the relay's password; one with a wrong password
    // is refused; /metrics and /status; the state file; stopped with the token.
    let relay_state = out.path().join("relay.state");
    let relay_args = [
        &[
            "--source",
            &source_url,
            "--source-password-env",
            "FERRY_SECRETS_SOURCE",
        ][..],
        &[
            "--listen",
            "127.0.0.1:0",
            "--requirepass-file",
            path(&relay_password),
            "--state",
            path(&relay_state),
            "--metrics-addr",
            "127.0.0.1:0",
        ],
        &control_flags,
        &POLICIES,
    ]
    .concat();
    let mut relay = Ferry::start_command_with_env(
        "relay",
        &relay_args,
        &[("FERRY_SECRETS_SOURCE", SOURCE_PASSWORD)],
    );
    let relay_addr = relay.status_address(Duration::from_secs(30));
    let line = relay.wait_for("listening on", Duration::from_secs(30));
    let relay_port = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split(':').nth(1))
        .and_then(|port| port.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or_else(|| panic!("no port in {line}"))
        .to_owned();
    let replica = Server::start_with_args(
        ServerKind::Valkey81,
        &[
            "--replicaof",
            "127.0.0.1",
            &relay_port,
            "--masterauth",
            RELAY_PASSWORD,
        ],
    )
    .unwrap();
    let impostor = Server::start_with_args(
        ServerKind::Valkey81,
        &[
            "--replicaof",
            "127.0.0.1",
            &relay_port,
            "--masterauth",
            WRONG_PASSWORD,
        ],
    )
    .unwrap();
    wait_link_up(&replica, &relay);
    // What the relay tells any client that AUTHs: its INFO (it names the source).
    let relay_client =
        redis::Client::open(format!("redis://:{RELAY_PASSWORD}@127.0.0.1:{relay_port}")).unwrap();
    let info: String = redis::cmd("INFO")
        .query(&mut relay_client.get_connection().unwrap())
        .unwrap();
    assert!(info.contains("role:master"), "{info}");
    seen.add("relay INFO", info);
    relay.wait_for("wrong password", Duration::from_secs(30));
    let status = fetch_both(&mut seen, "relay", &relay_addr);
    assert!(status.contains("relay"), "{status}");
    let (code, body) = http_post(
        &relay_addr,
        "/stop",
        &[("Authorization", &format!("Bearer {CONTROL_TOKEN}"))],
    );
    assert_eq!(code, 202, "{body}");
    wait_exit_ok(&mut relay, "relay");
    seen.run("relay", &relay);
    drop((replica, impostor));

    // migrate --mode scan (SCAN + DUMP), once, into another target with its password.
    let scan_target = start(ServerKind::Valkey81);
    require_password(&scan_target, TARGET_PASSWORD);
    let scan_target_url = scan_target.url();
    let args = [
        &["migrate", "--mode", "scan", "--no-follow", "--json"][..],
        &source_flags,
        &["--target", &scan_target_url, "--target-password-env"],
        &[TARGET_PASSWORD_ENV],
        &POLICIES,
    ]
    .concat();
    let output = ferry_with_env(&args, &target_env);
    assert!(output.status.success(), "migrate --mode scan: {output:?}");
    seen.output("migrate --mode scan --json", &output);
    drop(scan_target);

    // Error paths, while the migration runs.
    let closed = ClosedPort::reserve().unwrap();
    let nowhere_addr = format!("127.0.0.1:{}", closed.port());
    let nowhere = format!("redis://{nowhere_addr}");
    let wrong_in_url = format!("redis://:{WRONG_PASSWORD}@127.0.0.1:{}", source.port());
    let failures: Vec<(&str, Vec<&str>)> = vec![
        (
            "migrate, the source refuses the password in the URL",
            [&["migrate", "--source", &wrong_in_url][..], &target_flags].concat(),
        ),
        (
            "migrate, the source refuses a client without a password",
            [&["migrate", "--source", &source_url][..], &target_flags].concat(),
        ),
        (
            "migrate, the target is unreachable",
            [
                &["migrate"][..],
                &source_flags,
                &["--target", &nowhere, "--target-password-env"],
                &[TARGET_PASSWORD_ENV],
            ]
            .concat(),
        ),
        (
            "verify, the target refuses the source's password",
            [
                &["verify"][..],
                &source_flags,
                &["--target", &target_url, "--target-password-file"],
                &[path(&source_password)],
            ]
            .concat(),
        ),
        (
            "assess, the source refuses a wrong password file",
            vec![
                "assess",
                "--source",
                &source_url,
                "--source-password-file",
                path(&wrong_password),
                "--format",
                "json",
            ],
        ),
        (
            "relay, the source refuses a wrong password",
            [
                &[
                    "relay",
                    "--source",
                    &wrong_in_url,
                    "--listen",
                    "127.0.0.1:0",
                ][..],
                &control_flags,
            ]
            .concat(),
        ),
        (
            "rollback, nothing listens at --status",
            [
                &["rollback"][..],
                &source_flags,
                &target_flags,
                &["--status", &nowhere_addr],
                &control_flags,
            ]
            .concat(),
        ),
        (
            "cutover, a control token file of two lines",
            [
                &["cutover"][..],
                &source_flags,
                &target_flags,
                &["--status", &migrate_addr, "--control-token-file"],
                &[path(&bad_token)],
            ]
            .concat(),
        ),
    ];
    for (what, args) in &failures {
        let output = ferry_with_env(args, &target_env);
        assert_one_line_failure(what, &output);
        seen.output(what, &output);
    }

    // cutover with a wrong control token: the run refuses to stop, so the switch is
    // undone and the migration goes on.
    let cutover_base = [
        &[
            "--status",
            &migrate_addr,
            "--verify-sample",
            "20",
            "--verify-timeout-ms",
            "60000",
        ][..],
        &source_flags,
        &target_flags,
        &POLICIES,
    ]
    .concat();
    let args = [
        &["cutover"][..],
        &cutover_base,
        &["--control-token-env", WRONG_TOKEN_ENV],
    ]
    .concat();
    let output = ferry_with_env(
        &args,
        &[
            (TARGET_PASSWORD_ENV, TARGET_PASSWORD),
            (WRONG_TOKEN_ENV, WRONG_TOKEN),
        ],
    );
    assert_one_line_failure("cutover with a wrong control token", &output);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("answered 401"),
        "{output:?}"
    );
    seen.output("cutover with a wrong control token", &output);
    assert!(migrate.is_running(), "{}", migrate.output());

    // cutover (text) keeping the rollback: the reverse migration's /metrics, /status and
    // state file; then rollback (JSON) stops it.
    let rollback_state = out.path().join("rollback.state");
    let args = [
        &cutover_base[..],
        &control_flags,
        &[
            "--keep-rollback",
            "--rollback-state",
            path(&rollback_state),
            "--rollback-metrics-addr",
            "127.0.0.1:0",
        ],
    ]
    .concat();
    let mut cutover = Ferry::start_command_with_env("cutover", &args, &target_env);
    let reverse_addr = cutover.status_address(Duration::from_secs(30));
    cutover.wait_in_sync();
    wait_exit_ok(&mut migrate, "migrate after the cutover");
    seen.run("migrate", &migrate);
    fetch_both(&mut seen, "reverse migration", &reverse_addr);
    let rollback_args = [
        &["rollback", "--source", &target_url, "--target", &source_url][..],
        &["--source-password-env", TARGET_PASSWORD_ENV],
        &["--target-password-file", path(&source_password)],
        &[
            "--status",
            &reverse_addr,
            "--json",
            "--verify-sample",
            "20",
            "--verify-timeout-ms",
            "60000",
        ],
        &control_flags,
    ]
    .concat();
    let output = ferry_with_env(&rollback_args, &target_env);
    assert!(
        output.status.success(),
        "rollback: {output:?}\n{}",
        cutover.output()
    );
    seen.output("rollback --json", &output);
    wait_exit_ok(&mut cutover, "cutover's reverse migration");
    seen.run("cutover --keep-rollback", &cutover);

    // What ferry wrote: assess reports, state files, the export.
    seen.files(out.path());
    for (what, needle) in [
        ("migrate: stdout", "\"event\""),
        ("migrate: stderr", "into the spool"),
        ("cutover --keep-rollback: stdout", "pause"),
        ("rollback --json: stdout", "\"ok\":true"),
    ] {
        let text = seen.text_of(what);
        assert!(text.contains(needle), "{what} lacks {needle}:\n{text}");
    }
    let export_text = seen.text_of(&format!("file {}", export.display()));
    assert!(export_text.contains("element"), "{export_text}");
    for file in [&state, &relay_state, &rollback_state] {
        assert!(file.exists(), "{} was not written", file.display());
    }

    let leaks: Vec<String> = seen
        .0
        .iter()
        .filter(|(_, text)| text.contains(CANARY))
        .map(|(what, text)| {
            let line = text
                .lines()
                .find(|l| l.contains(CANARY))
                .unwrap_or_default();
            format!("{what}: {line}")
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "secrets shown in {} of {} outputs:\n{}",
        leaks.len(),
        seen.0.len(),
        leaks.join("\n")
    );
    eprintln!(
        "searched {} outputs in {:?}",
        seen.0.len(),
        started.elapsed()
    );
}
