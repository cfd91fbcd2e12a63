//! Credentials and connection failures against real servers.

use std::time::{Duration, Instant};

use crate::support::*;
use ferry_repl::{ConnectOptions, PsyncOutcome, ReplError, ReplicaConnection, Secret};
use ferry_testkit::{Server, ServerKind};

const KINDS: [ServerKind; 4] = [
    ServerKind::Redis60,
    ServerKind::Redis70,
    ServerKind::Redis80,
    ServerKind::Valkey80,
];

fn with_credentials(user: Option<&str>, password: &str) -> ConnectOptions {
    ConnectOptions {
        username: user.map(str::to_owned),
        password: Some(Secret::new(password)),
        ..options(7400)
    }
}

async fn full_resync_works(server: &Server, settings: ConnectOptions) {
    let mut conn = ReplicaConnection::connect(&address(server), settings)
        .await
        .expect("connect");
    let outcome = conn.psync(None, -1).await.expect("psync");
    assert!(matches!(outcome, PsyncOutcome::FullResync { .. }));
}

async fn auth_error(server: &Server, settings: ConnectOptions) -> String {
    let result = match ReplicaConnection::connect(&address(server), settings).await {
        Ok(mut conn) => conn.psync(None, -1).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Err(error @ ReplError::Auth(_)) => error.to_string(),
        other => panic!(
            "{}: expected an authentication error, got {other:?}",
            server.kind()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirepass_is_met_with_auth() {
    for kind in KINDS {
        let server =
            Server::start_with_args(kind, &["--repl-diskless-sync-delay", "0"]).expect("server");
        // Set after start: the testkit's readiness probe does not authenticate.
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("requirepass")
            .arg("the-right-pass")
            .query::<()>(&mut server.client())
            .unwrap();

        full_resync_works(&server, with_credentials(None, "the-right-pass")).await;

        let message = auth_error(&server, with_credentials(None, "wrong-pass-xyz")).await;
        assert!(!message.contains("wrong-pass-xyz"), "{kind}: {message}");
        assert!(!message.contains('\n'));

        let message = auth_error(&server, options(7400)).await;
        assert!(message.contains("NOAUTH"), "{kind}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_users_authenticate_and_need_the_replication_commands() {
    for kind in KINDS {
        let server =
            Server::start_with_args(kind, &["--repl-diskless-sync-delay", "0"]).expect("server");
        let mut admin = server.client();
        for (user, rules) in [
            ("replicator", &["+psync", "+replconf", "+ping"][..]),
            ("reader", &["+replconf", "+ping"][..]),
        ] {
            let mut acl = redis::cmd("ACL");
            acl.arg("SETUSER").arg(user).arg("on").arg(">user-pass-123");
            for rule in rules {
                acl.arg(rule);
            }
            acl.query::<()>(&mut admin).unwrap();
        }

        full_resync_works(
            &server,
            with_credentials(Some("replicator"), "user-pass-123"),
        )
        .await;

        let message = auth_error(
            &server,
            with_credentials(Some("replicator"), "not-user-pass"),
        )
        .await;
        assert!(!message.contains("not-user-pass"), "{kind}: {message}");

        // Authenticated, but not allowed to PSYNC.
        let message = auth_error(&server, with_credentials(Some("reader"), "user-pass-123")).await;
        assert!(message.contains("NOPERM"), "{kind}: {message}");
    }
}

#[tokio::test]
async fn a_closed_port_fails_fast_with_a_connect_error() {
    // Bound but never listening: connections are refused, and the port stays ours (a
    // port merely freed could be taken by a server another test starts meanwhile).
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = reserved.local_addr().unwrap().to_string();
    let started = Instant::now();
    let result = ReplicaConnection::connect(&address, ConnectOptions::default()).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    match result {
        Err(error @ ReplError::Connect { .. }) => {
            assert!(error.to_string().contains(&address), "{error}")
        }
        Err(other) => panic!("expected a connect error, got {other:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}
