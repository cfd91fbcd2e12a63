//! A whole migration over TLS with client certificates and ACL users: Redis 8.0 (TLS
//! only for ferry, a replication-only ACL user) into Valkey 8.1 (TLS, a write-only-data
//! ACL user), with the dataset and a live write load; the servers end equal, `verify` and
//! `assess` run over TLS too, and no password shows in anything ferry printed or served.
//!
//! The servers keep a plain loopback port for the test's own seeding and snapshots (its
//! client speaks no TLS); ferry is only ever given their TLS ports.

use crate::support::migrate::{capture_in_step, master_repl_offset, wait_applied, Ferry};
use crate::support::{ferry_with_env, http, path};
use ferry_testkit::expect::{after_policies, FieldTtl, VectorSets};
use ferry_testkit::snapshot::DiffOptions;
use ferry_testkit::tls::{ServerTls, TestPki};
use ferry_testkit::workload::{forget_unreplicated_group_state, Workload};
use ferry_testkit::{dataset, Server, ServerKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// Distinct, so that a leak names which one leaked.
const SOURCE_PASSWORD: &str = "src-Pw-7d1e4b9a";
const TARGET_PASSWORD: &str = "tgt-Pw-52c08f3e";
const OPS_PASSWORD: &str = "ops-Pw-a93b6c21";
const WRONG_PASSWORD: &str = "wrong-Pw-0be4d7aa";
const ALL_PASSWORDS: [&str; 4] = [
    SOURCE_PASSWORD,
    TARGET_PASSWORD,
    OPS_PASSWORD,
    WRONG_PASSWORD,
];

/// The least a replica-only user needs on the source (docs/security.md): PING and INFO
/// (server facts), REPLCONF and PSYNC (the replication link). No keys, no channels.
const SOURCE_ACL: &[&str] = &[
    "resetkeys",
    "resetchannels",
    "-@all",
    "+ping",
    "+info",
    "+replconf",
    "+psync",
];
/// The target user: every key and command but the administrative ones.
const TARGET_ACL: &[&str] = &["~*", "&*", "+@all", "-@admin"];

fn acl_user(server: &Server, name: &str, password: &str, rules: &[&str]) {
    let mut con = server.client();
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER")
        .arg(name)
        .arg("on")
        .arg(format!(">{password}"));
    for rule in rules {
        cmd.arg(*rule);
    }
    cmd.query::<()>(&mut con)
        .unwrap_or_else(|e| panic!("ACL SETUSER {name} on {}: {e}", server.kind()));
}

/// A plain HTTP/1.1 GET that succeeds: the whole response (head and body).
fn http_get_ok(addr: &str, what: &str) -> String {
    let response = http(addr, "GET", what, &[]);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

fn run_ferry(args: &[String], env: &[(&str, &str)]) -> (bool, String) {
    let output = ferry_with_env(args, env);
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn assert_no_password(what: &str, text: &str) {
    for password in ALL_PASSWORDS {
        assert!(
            !text.contains(password),
            "{what} shows the password {password}:\n{text}"
        );
    }
}

struct Side {
    /// `--source` or `--target`.
    flag: &'static str,
    url: String,
    password_file: std::path::PathBuf,
}

impl Side {
    /// The TLS flags (CA, client certificate) and the password file.
    fn flags(&self, pki: &TestPki) -> Vec<String> {
        let f = self.flag;
        vec![
            f.to_string(),
            self.url.clone(),
            format!("{f}-tls-ca"),
            path(&pki.ca),
            format!("{f}-tls-cert"),
            path(&pki.client.cert),
            format!("{f}-tls-key"),
            path(&pki.client.key),
            format!("{f}-password-file"),
            path(&self.password_file),
        ]
    }
}

#[test]
fn redis_8_0_to_valkey_8_1_over_tls_with_client_certificates_and_acl_users() {
    let pki = TestPki::generate().unwrap();
    let tls = ServerTls::mutual(&pki);
    let source = Server::start_with_tls(ServerKind::Redis80, &tls, &[]).unwrap();
    let target = Server::start_with_tls(ServerKind::Valkey81, &tls, &[]).unwrap();
    acl_user(&source, "ferry-source", SOURCE_PASSWORD, SOURCE_ACL);
    acl_user(&target, "ferry-target", TARGET_PASSWORD, TARGET_ACL);
    for server in [&source, &target] {
        acl_user(server, "ops", OPS_PASSWORD, &["~*", "&*", "+@all"]);
    }
    dataset::populate(&source).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::spawn(source.url(), ServerKind::Redis80, stop.clone());

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let source_password = dir.path().join("source.password");
    std::fs::write(&source_password, format!("{SOURCE_PASSWORD}\n")).unwrap();
    let wrong_password = dir.path().join("wrong.password");
    std::fs::write(&wrong_password, WRONG_PASSWORD).unwrap();
    // The target's password comes from the environment: each ferry is given these.
    let env = [
        ("FERRY_TLS_TEST_TARGET_PASSWORD", TARGET_PASSWORD),
        ("FERRY_TLS_TEST_OPS_PASSWORD", OPS_PASSWORD),
    ];

    let source_flags = Side {
        flag: "--source",
        url: format!("rediss://ferry-source@127.0.0.1:{}", source.tls_port()),
        password_file: source_password.clone(),
    }
    .flags(&pki);
    let target_flags = |user: &str, var: &str| -> Vec<String> {
        vec![
            "--target".into(),
            format!("rediss://{user}@127.0.0.1:{}", target.tls_port()),
            "--target-tls-ca".into(),
            path(&pki.ca),
            "--target-tls-cert".into(),
            path(&pki.client.cert),
            "--target-tls-key".into(),
            path(&pki.client.key),
            "--target-password-env".into(),
            var.into(),
        ]
    };
    let mut everything_printed = String::new();

    // A wrong password is refused, and not printed either.
    let wrong_source = [
        source_flags[..source_flags.len() - 1].to_vec(),
        vec![path(&wrong_password)],
        target_flags("ferry-target", "FERRY_TLS_TEST_TARGET_PASSWORD"),
    ]
    .concat();
    let (ok, output) = run_ferry(&[vec!["migrate".into()], wrong_source].concat(), &env);
    assert!(!ok && output.contains("WRONGPASS"), "{output}");
    everything_printed += &output;

    let mut args = [
        source_flags.clone(),
        target_flags("ferry-target", "FERRY_TLS_TEST_TARGET_PASSWORD"),
    ]
    .concat();
    args.extend(
        [
            "--state",
            &path(&state),
            "--json",
            "--metrics-addr",
            "127.0.0.1:0",
            "--hash-field-ttl",
            "persist",
            "--vector-set",
            "skip",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut ferry = Ferry::start_command_with_env("migrate", &args, &env);
    let addr = ferry.status_address(Duration::from_secs(20));
    ferry.wait_in_sync();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let stats = load.join().expect("the load ends");
    assert!(stats.total() > 100, "{stats:?}");
    std::thread::sleep(ferry_testkit::workload::SHORT_TTLS_PASSED);
    wait_applied(&source, &state, &ferry);

    // The servers end equal (under the policies Valkey 8.1 needs).
    let (before, mut actual) = capture_in_step(&source, &target, &state, &ferry);
    let mut expected = after_policies(&before, FieldTtl::Persist, VectorSets::Remove).snapshot;
    forget_unreplicated_group_state(&mut expected);
    forget_unreplicated_group_state(&mut actual);
    let differences = expected.diff(&actual, &DiffOptions::new());
    let shown: Vec<String> = differences.iter().take(40).map(|d| d.to_string()).collect();
    assert!(
        differences.is_empty(),
        "{} differences:\n{}\n{}",
        differences.len(),
        shown.join("\n"),
        ferry.output()
    );
    // ferry replicated over the TLS port: the source lists it as a connected replica.
    let mut con = source.client();
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut con)
        .unwrap();
    assert!(info.contains("connected_slaves:1"), "{info}");

    let wanted = master_repl_offset(&source);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = http_get_ok(&addr, "/status");
        let body = status.split_once("\r\n\r\n").unwrap().1;
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        if value["applied_offset"].as_i64() >= Some(wanted) || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    everything_printed += &status;
    everything_printed += &http_get_ok(&addr, "/metrics");

    ferry.signal("TERM");
    assert!(
        ferry.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        ferry.output()
    );
    everything_printed += &ferry.output();
    everything_printed += &ferry.stdout_lines().join("\n");
    everything_printed += &std::fs::read_to_string(&state).unwrap();

    // verify over TLS, both passwords from the environment.
    let ops_source = [
        source_flags[..source_flags.len() - 2].to_vec(),
        vec![
            "--source-password-env".into(),
            "FERRY_TLS_TEST_OPS_PASSWORD".into(),
        ],
    ]
    .concat();
    let ops_source: Vec<String> = ops_source
        .into_iter()
        .map(|a| a.replace("ferry-source@", "ops@"))
        .collect();
    let verify = [
        vec!["verify".into(), "--json".into()],
        ops_source.clone(),
        target_flags("ops", "FERRY_TLS_TEST_OPS_PASSWORD"),
        ["--hash-field-ttl", "persist", "--vector-set", "skip"]
            .map(String::from)
            .to_vec(),
    ]
    .concat();
    let (ok, output) = run_ferry(&verify, &env);
    assert!(ok, "verify over TLS failed:\n{output}");
    assert!(output.contains("\"differing\": 0"), "{output}");
    everything_printed += &output;

    // assess over TLS.
    let assess = [
        vec!["assess".into(), "--format".into(), "json".into()],
        ops_source,
        target_flags("ops", "FERRY_TLS_TEST_OPS_PASSWORD"),
    ]
    .concat();
    let (ok, output) = run_ferry(&assess, &env);
    assert!(ok, "assess over TLS failed:\n{output}");
    assert!(output.contains("\"verdict\""), "{output}");
    assert!(output.contains("redis 8.0"), "{output}");
    everything_printed += &output;

    assert_no_password(
        "ferry's output, events, /status, /metrics and state",
        &everything_printed,
    );
}
