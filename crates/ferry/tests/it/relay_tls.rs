//! `ferry relay` serving TLS (`--listen-tls-cert/-key/-ca`): a Valkey replica with
//! `tls-replication yes` and a client certificate syncs through it and follows the
//! stream, with `--requirepass-file` too; peers whose certificate is refused (or that
//! have none, or speak plain TCP) are each logged by address while the relay goes on
//! serving; bad certificate or key files stop ferry with one line that shows no secret.

use crate::support::path;
use crate::support::relay::{assert_replicas_equal, simple_writes, wait_link_up, ClientTls, Relay};
use crate::support::{info_field, server_info};
use ferry_testkit::expect::FieldTtl;
use ferry_testkit::tls::{CertFiles, ServerTls, TestPki};
use ferry_testkit::{dataset, Server, ServerKind};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASSWORD: &str = "relay-Pw-93c1d";

/// The relay's TLS flags: the server certificate of `pki`, client certificates signed by
/// its CA required.
fn listen_tls(pki: &TestPki) -> Vec<String> {
    vec![
        "--listen-tls-cert".into(),
        path(&pki.server.cert),
        "--listen-tls-key".into(),
        path(&pki.server.key),
        "--listen-tls-ca".into(),
        path(&pki.ca),
    ]
}

/// A Valkey replica of the relay over TLS, presenting `client` as its certificate and
/// checking the relay's against `trusted_ca` (its tls-ca-cert-file).
fn tls_replica(
    pki: &TestPki,
    relay: &Relay,
    client: &CertFiles,
    trusted_ca: &Path,
    extra: &[&str],
) -> Server {
    let own = ServerTls {
        cert: pki.server.clone(),
        ca: trusted_ca.to_owned(),
        require_client_cert: false,
    };
    let port = relay.port.to_string();
    let (cert, key) = (path(&client.cert), path(&client.key));
    let mut args = vec![
        "--tls-replication",
        "yes",
        "--tls-client-cert-file",
        &cert,
        "--tls-client-key-file",
        &key,
        "--replicaof",
        "127.0.0.1",
        &port,
    ];
    args.extend_from_slice(extra);
    Server::start_with_tls(ServerKind::Valkey81, &own, &args).expect("start the replica")
}

fn client_tls(pki: &TestPki) -> ClientTls {
    ClientTls {
        ca: pki.ca.clone(),
        cert: pki.client.cert.clone(),
        key: pki.client.key.clone(),
    }
}

fn start_tls_relay(source: &Server, pki: &TestPki, extra: &[String]) -> Relay {
    // redis-rs (INFO over TLS) needs the process's crypto provider chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = listen_tls(pki);
    args.extend_from_slice(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // A bare port: the listener must come up on loopback.
    let mut relay = Relay::start_on(source, "0", &args);
    let line = relay.wait_for("listening on", Duration::from_secs(5));
    assert!(line.contains("listening on 127.0.0.1:"), "{line}");
    relay.wait_for("replicas connect over TLS", Duration::from_secs(5));
    relay.tls = Some(client_tls(pki));
    relay
}

/// Waits until ferry has logged `count` lines containing every one of `needles`.
fn wait_for_lines(relay: &Relay, needles: &[&str], count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found: Vec<String> = relay
            .output()
            .lines()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .map(str::to_owned)
            .collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no {count} lines with {needles:?}:\n{}",
            relay.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn link_status(replica: &Server) -> Option<String> {
    info_field(&server_info(replica, "replication"), "master_link_status")
}

#[test]
fn a_tls_replica_with_a_client_certificate_and_password_syncs_and_follows() {
    let pki = TestPki::generate().unwrap();
    let source = Server::start(ServerKind::Redis70).unwrap();
    dataset::populate(&source).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("requirepass");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    let mut relay = start_tls_relay(
        &source,
        &pki,
        &["--requirepass-file".into(), path(&password)],
    );
    relay.password = Some(PASSWORD.into());
    let replica = tls_replica(
        &pki,
        &relay,
        &pki.client,
        &pki.ca,
        &["--masterauth", PASSWORD],
    );
    wait_link_up(&replica, &relay);
    relay.wait_for("full sync sent", Duration::from_secs(5));
    // The stream follows over TLS too.
    simple_writes(&source);
    assert_replicas_equal(&source, &relay, &[&replica], FieldTtl::Keep, 0);
    let info = relay.info();
    assert!(info.contains("connected_slaves:1"), "{info}");
    let output = relay.output();
    assert!(!output.contains(PASSWORD), "{output}");
    assert!(!output.contains("TLS refused"), "{output}");
}

#[test]
fn refused_peers_are_logged_by_address_and_others_served() {
    let pki = TestPki::generate().unwrap();
    let source = Server::start(ServerKind::Redis70).unwrap();
    simple_writes(&source);
    let relay = start_tls_relay(&source, &pki, &[]);

    // A replica whose certificate another CA signed: refused at each of its attempts.
    let foreign = tls_replica(&pki, &relay, &pki.foreign_client, &pki.ca, &[]);
    let refused = wait_for_lines(
        &relay,
        &["TLS refused", "its client certificate is not signed by"],
        2,
    );
    assert!(
        refused[0].starts_with("ferry: client 127.0.0.1:"),
        "{refused:?}"
    );

    // A client with no certificate at all.
    let no_certificate = handshake_without_certificate(&pki, relay.port);
    wait_for_lines(
        &relay,
        &["TLS refused", "presented no client certificate"],
        1,
    );
    drop(no_certificate);

    // A plaintext client.
    let plain = redis::Client::open(format!("redis://127.0.0.1:{}", relay.port)).unwrap();
    let attempt = plain
        .get_connection_with_timeout(Duration::from_secs(5))
        .and_then(|mut con| redis::cmd("PING").query::<String>(&mut con));
    assert!(attempt.is_err(), "a plaintext PING was answered");
    wait_for_lines(&relay, &["TLS refused", "did not speak TLS"], 1);

    // A replica that does not trust the relay's certificate: it hangs up, ferry says why.
    let distrustful = tls_replica(&pki, &relay, &pki.client, &pki.other_ca, &[]);
    wait_for_lines(
        &relay,
        &["TLS refused", "refused the relay's certificate"],
        1,
    );

    // The relay goes on serving a replica it trusts.
    let trusted = tls_replica(&pki, &relay, &pki.client, &pki.ca, &[]);
    wait_link_up(&trusted, &relay);
    assert_replicas_equal(&source, &relay, &[&trusted], FieldTtl::Keep, 0);
    assert_eq!(link_status(&foreign).as_deref(), Some("down"));
    assert_eq!(link_status(&distrustful).as_deref(), Some("down"));
    assert_eq!(link_status(&trusted).as_deref(), Some("up"));
    let info = relay.info();
    assert!(info.contains("connected_slaves:1"), "{info}");
}

/// A TLS client that trusts the relay but presents no certificate; the connection, open
/// for as long as it is held (TLS 1.3 servers refuse after the client's side is done).
fn handshake_without_certificate(pki: &TestPki, port: u16) -> Option<std::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while tls.is_handshaking() {
        if tls.complete_io(&mut tcp).is_err() {
            return None;
        }
    }
    // The refusal comes as an alert on the first read.
    let _ = tls.complete_io(&mut tcp);
    Some(tcp)
}

/// `ferry relay` with these TLS flags and nothing listening at the source: the files are
/// checked first, so it stops at once with its one line (stderr).
fn relay_fails_with(flags: &[String]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["relay", "--source", "redis://127.0.0.1:1", "--listen", "0"])
        .args(flags)
        .output()
        .expect("run ferry");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn unreadable_or_mismatched_files_stop_ferry_with_one_line() {
    let pki = TestPki::generate().unwrap();
    let flags = |cert: &Path, key: &Path| {
        vec![
            "--listen-tls-cert".to_string(),
            path(cert),
            "--listen-tls-key".to_string(),
            path(key),
        ]
    };
    let missing = pki.dir().join("missing.key");
    let err = relay_fails_with(&flags(&pki.server.cert, &missing));
    assert!(
        err.contains(&format!("cannot read the key file {}", path(&missing))),
        "{err}"
    );

    let err = relay_fails_with(&flags(&pki.server.cert, &pki.client.key));
    assert!(
        err.contains(&format!(
            "the key file {} is not the key of the certificate file {}",
            path(&pki.client.key),
            path(&pki.server.cert)
        )),
        "{err}"
    );

    // Certificate and key given the wrong way round.
    let err = relay_fails_with(&flags(&pki.server.key, &pki.server.cert));
    assert!(err.contains("holds no PEM certificate"), "{err}");
    let key_text = std::fs::read_to_string(&pki.server.key).unwrap();
    let key_body = key_text.lines().nth(1).unwrap();
    assert!(!err.contains(key_body), "{err}");

    let mut with_ca = flags(&pki.server.cert, &pki.server.key);
    with_ca.extend(["--listen-tls-ca".into(), path(&missing)]);
    let err = relay_fails_with(&with_ca);
    assert!(err.contains("cannot read the CA file"), "{err}");
}
