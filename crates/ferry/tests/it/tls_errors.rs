//! Every way a TLS connection can be wrong ends ferry at once, with a non-zero exit and
//! one line that says what is wrong: for `migrate` (our own client), `verify` and
//! `assess` (redis-rs), against real servers serving TLS with certificates made here.

use crate::support::{ferry, path};
use ferry_testkit::tls::{ServerTls, TestPki};
use ferry_testkit::{Server, ServerKind};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longer than any TLS case may take, but far below a hang (connect timeout 5 s).
const FAST: Duration = Duration::from_secs(15);

struct Servers {
    pki: TestPki,
    /// Client certificates required.
    good: Server,
    expired: Server,
    wrong_name: Server,
    /// Plaintext only.
    plain: Server,
}

fn servers() -> Servers {
    let pki = TestPki::generate().unwrap();
    let kind = ServerKind::Valkey81;
    let good = Server::start_with_tls(kind, &ServerTls::mutual(&pki), &[]).unwrap();
    let one_way = |cert| ServerTls {
        cert,
        ca: pki.ca.clone(),
        require_client_cert: false,
    };
    let expired = Server::start_with_tls(kind, &one_way(pki.expired_server.clone()), &[]).unwrap();
    let wrong_name =
        Server::start_with_tls(kind, &one_way(pki.wrong_name_server.clone()), &[]).unwrap();
    let plain = Server::start(kind).unwrap();
    Servers {
        pki,
        good,
        expired,
        wrong_name,
        plain,
    }
}

/// Runs ferry; asserts it failed fast with one line on stderr containing `expected`.
fn fails_with(args: &[String], expected: &str) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ferry");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} succeeded:\n{stderr}");
    assert!(elapsed < FAST, "{args:?} took {elapsed:?}:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("ferry: ") && last.contains(expected),
        "{args:?}: expected a last line with {expected:?}, got:\n{stderr}"
    );
    eprintln!("{expected:?} <- {last}");
}

/// `ferry migrate` into `target_url` with the given target flags (the source is never
/// reached: the target is set up first).
fn migrate_into(s: &Servers, target_url: String, target_flags: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "migrate",
        "--source",
        &s.plain.url(),
        "--target",
        &target_url,
        "--connect-timeout",
        "3",
    ]
    .map(String::from)
    .to_vec();
    args.extend_from_slice(target_flags);
    args
}

fn client_cert_flags(pki: &TestPki, side: &str) -> Vec<String> {
    vec![
        format!("--{side}-tls-cert"),
        path(&pki.client.cert),
        format!("--{side}-tls-key"),
        path(&pki.client.key),
    ]
}

fn flags(pairs: &[(&str, &Path)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(flag, p)| [flag.to_string(), path(p)])
        .collect()
}

#[test]
fn migrate_names_each_certificate_problem() {
    let s = servers();
    let pki = &s.pki;
    let ca = flags(&[("--target-tls-ca", &pki.ca)]);
    let with_cert = [ca.clone(), client_cert_flags(pki, "target")].concat();

    // The CA that signed the server is not the one given.
    let other_ca = [
        flags(&[("--target-tls-ca", &pki.other_ca)]),
        client_cert_flags(pki, "target"),
    ]
    .concat();
    fails_with(
        &migrate_into(&s, s.good.tls_url(), &other_ca),
        "certificate verify failed: unknown issuer",
    );
    fails_with(
        &migrate_into(&s, s.expired.tls_url(), &ca),
        "certificate verify failed: the server's certificate has expired",
    );
    fails_with(
        &migrate_into(&s, s.wrong_name.tls_url(), &ca),
        "certificate verify failed: hostname mismatch",
    );
    // No client certificate for a server that requires one.
    fails_with(
        &migrate_into(&s, s.good.tls_url(), &ca),
        "the server requires a client certificate: give --target-tls-cert and --target-tls-key",
    );
    // A client certificate the server does not trust.
    let foreign = [
        ca.clone(),
        flags(&[
            ("--target-tls-cert", &pki.foreign_client.cert),
            ("--target-tls-key", &pki.foreign_client.key),
        ]),
    ]
    .concat();
    fails_with(
        &migrate_into(&s, s.good.tls_url(), &foreign),
        "the server refused our client certificate",
    );
    // Plain text to the TLS port, TLS to the plain port.
    let plain_to_tls = format!("redis://127.0.0.1:{}", s.good.tls_port());
    fails_with(
        &migrate_into(&s, plain_to_tls, &[]),
        "is the server expecting TLS? use rediss://",
    );
    let tls_to_plain = format!("rediss://127.0.0.1:{}", s.plain.port());
    fails_with(
        &migrate_into(&s, tls_to_plain, &with_cert),
        "is this a plaintext port? use redis://",
    );
    // The server name given is checked instead of the URL's host.
    let named = [
        with_cert.clone(),
        vec![
            "--target-tls-server-name".into(),
            "elsewhere.example".into(),
        ],
    ]
    .concat();
    fails_with(
        &migrate_into(&s, s.good.tls_url(), &named),
        "hostname mismatch",
    );
    // TLS flags with a plain URL are a usage error, not silently ignored.
    fails_with(
        &migrate_into(&s, s.plain.url(), &ca),
        "--target-tls-ca needs a TLS URL: use rediss://",
    );
}

#[test]
fn verify_and_assess_name_certificate_problems_too() {
    let s = servers();
    let pki = &s.pki;
    let good_source = [
        flags(&[("--source-tls-ca", &pki.ca)]),
        client_cert_flags(pki, "source"),
    ]
    .concat();
    let verify = |target: String, target_flags: Vec<String>| {
        let mut args: Vec<String> = vec![
            "verify".into(),
            "--source".into(),
            s.good.tls_url(),
            "--target".into(),
            target,
        ];
        args.extend(good_source.clone());
        args.extend(target_flags);
        args
    };
    fails_with(
        &verify(
            s.good.tls_url(),
            [
                flags(&[("--target-tls-ca", &pki.other_ca)]),
                client_cert_flags(pki, "target"),
            ]
            .concat(),
        ),
        "unknown issuer",
    );
    fails_with(
        &verify(s.expired.tls_url(), flags(&[("--target-tls-ca", &pki.ca)])),
        "has expired",
    );
    fails_with(
        &verify(s.good.tls_url(), flags(&[("--target-tls-ca", &pki.ca)])),
        "the server requires a client certificate",
    );
    fails_with(
        &verify(format!("redis://127.0.0.1:{}", s.good.tls_port()), vec![]),
        "is the server expecting TLS? use rediss://",
    );
    fails_with(
        &verify(
            format!("rediss://127.0.0.1:{}", s.plain.port()),
            flags(&[("--target-tls-ca", &pki.ca)]),
        ),
        "is this a plaintext port? use redis://",
    );

    let assess = |flags: Vec<String>| {
        let mut args: Vec<String> = vec!["assess".into(), "--source".into(), s.good.tls_url()];
        args.extend(flags);
        args
    };
    fails_with(
        &assess(flags(&[("--source-tls-ca", &pki.other_ca)])),
        "unknown issuer",
    );
    fails_with(
        &assess(flags(&[("--source-tls-ca", &pki.ca)])),
        "the server requires a client certificate",
    );
    let plain_as_tls = vec![
        "assess".into(),
        "--source".into(),
        format!("rediss://127.0.0.1:{}", s.plain.port()),
    ];
    fails_with(
        &[plain_as_tls, flags(&[("--source-tls-ca", &pki.ca)])].concat(),
        "is this a plaintext port? use redis://",
    );
}

/// `--…-insecure` skips the certificate checks (expired, wrong name) and nothing else: the
/// connection is still TLS, and a client certificate is still sent.
#[test]
fn insecure_skips_only_the_certificate_checks() {
    let s = servers();
    let pki = &s.pki;
    // Both sides empty: verify finds nothing to differ, after connecting over TLS.
    let verify: Vec<String> = [
        vec![
            "verify".into(),
            "--source".into(),
            s.expired.tls_url(),
            "--source-insecure".into(),
            "--target".into(),
            s.good.tls_url(),
            "--target-insecure".into(),
        ],
        client_cert_flags(pki, "target"),
    ]
    .concat();
    let output = ferry(&verify);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // migrate's own client: the target check passes and the run goes on to the source,
    // which is plaintext here and refuses the TLS handshake.
    let mut args = migrate_into(
        &s,
        s.wrong_name.tls_url(),
        &["--target-insecure".to_string()],
    );
    let source_at = args.iter().position(|a| a == "--source").unwrap() + 1;
    args[source_at] = format!("rediss://127.0.0.1:{}", s.plain.port());
    args.extend(["--source-insecure".to_string()]);
    fails_with(
        &args,
        &format!(
            "source rediss://127.0.0.1:{}: cannot connect: no answer to the TLS handshake",
            s.plain.port()
        ),
    );
}
