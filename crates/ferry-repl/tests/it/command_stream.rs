//! The command stream from real primaries: offsets equal the primary's
//! `master_repl_offset`, ACKs reach it, GETACK is answered, and a reconnection resumes with
//! `+CONTINUE` from the saved position.

use std::time::Duration;

use crate::support::*;
use ferry_repl::{PsyncOutcome, ReplicaConnection};
use ferry_testkit::{Server, ServerKind};

const KINDS: [ServerKind; 4] = [
    ServerKind::Redis60,
    ServerKind::Redis70,
    ServerKind::Redis80,
    ServerKind::Valkey80,
];

/// No waiting for more replicas before a diskless transfer starts.
const FAST_SYNC: &[&str] = &["--repl-diskless-sync-delay", "0"];

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// Connects and reads the (empty) snapshot; returns the connection ready for commands.
async fn synced_replica(server: &Server, port: u16) -> ReplicaConnection {
    let mut conn = ReplicaConnection::connect(&address(server), options(port))
        .await
        .expect("connect");
    let outcome = conn.psync(None, -1).await.expect("psync");
    assert!(matches!(outcome, PsyncOutcome::FullResync { .. }));
    let (_, snapshot) = read_snapshot(&mut conn).await;
    assert_complete_rdb(&snapshot, "empty snapshot");
    conn
}

/// Writes a mix of commands; returns them as the primary should propagate them.
fn write_mix(server: &Server, tag: &str) -> Vec<Vec<String>> {
    let mut client = server.client();
    let mut expected = Vec::new();
    let big = "v".repeat(200_000);
    let mut run = |args: Vec<String>| {
        let mut cmd = redis::cmd(&args[0]);
        for arg in &args[1..] {
            cmd.arg(arg);
        }
        cmd.query::<redis::Value>(&mut client).expect("write");
        args
    };
    expected.push(run(strings(&["SET", &format!("{tag}:a"), "1"])));
    expected.push(run(strings(&[
        "RPUSH",
        &format!("{tag}:list"),
        "x",
        "y",
        "z",
    ])));
    // Larger than a read: one command spans many socket reads.
    expected.push(run(vec!["SET".into(), format!("{tag}:big"), big]));
    for i in 0..300 {
        expected.push(run(strings(&[
            "SET",
            &format!("{tag}:n{i}"),
            &i.to_string(),
        ])));
    }
    // Another database: the primary inserts a SELECT, which must count in the offset.
    run(strings(&["SELECT", "3"]));
    expected.push(run(strings(&["SET", &format!("{tag}:db3"), "yes"])));
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_track_the_primary_and_resume_continues() {
    for kind in KINDS {
        let server = Server::start_with_args(kind, FAST_SYNC).expect("server");
        let port = 7100;
        let mut conn = synced_replica(&server, port).await;
        let acks = conn.ack_handle();

        let expected = write_mix(&server, "first");
        let target = master_offset(&server);
        let commands = read_until(&mut conn, target).await;
        assert_eq!(data_commands(&commands), expected, "{kind}");
        assert!(
            commands.iter().any(|c| c.is("SELECT")),
            "{kind}: no SELECT seen"
        );
        // Offsets grow strictly: every command's bytes count.
        assert!(commands
            .windows(2)
            .all(|w| w[0].offset_after < w[1].offset_after));

        // The primary sees the applied offset we report, on the port we announced.
        acks.set_applied(target);
        wait_for_replica_offset(&server, port, target)
            .unwrap_or_else(|e| panic!("{kind}: ACK not seen: {e}"));

        // Reconnect from the saved position; what was written meanwhile arrives.
        let replid = conn.replid().expect("replid").to_owned();
        drop(conn);
        let while_away = write_mix(&server, "second");
        let mut conn = ReplicaConnection::connect(&address(&server), options(port))
            .await
            .expect("reconnect");
        let outcome = conn.psync(Some(&replid), target).await.expect("psync");
        assert_eq!(
            outcome,
            PsyncOutcome::Continue {
                replid: replid.clone()
            },
            "{kind}"
        );
        assert_eq!(conn.offset(), target);
        let target = master_offset(&server);
        let commands = read_until(&mut conn, target).await;
        assert_eq!(data_commands(&commands), while_away, "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn getack_is_answered_with_the_applied_offset() {
    for kind in [
        ServerKind::Redis70,
        ServerKind::Redis80,
        ServerKind::Valkey80,
    ] {
        let server = Server::start_with_args(kind, FAST_SYNC).expect("server");
        let mut conn = ReplicaConnection::connect(
            &address(&server),
            ferry_repl::ConnectOptions {
                // Periodic ACKs too rare to satisfy WAIT: only the GETACK answer can.
                ack_interval: Duration::from_secs(600),
                ..options(7200)
            },
        )
        .await
        .expect("connect");
        conn.psync(None, -1).await.expect("psync");
        read_snapshot(&mut conn).await;
        let acks = conn.ack_handle();
        // Let the stream start and the post-snapshot ACK warm-up end, so that no ACK but
        // the answer to GETACK can carry the offset WAIT waits for.
        redis::cmd("SET")
            .arg("warm")
            .arg("1")
            .query::<()>(&mut server.client())
            .unwrap();
        let target = master_offset(&server);
        read_until(&mut conn, target).await;
        acks.set_applied(target);
        tokio::time::sleep(Duration::from_millis(300)).await;

        let writer = {
            let mut client = server.client();
            tokio::task::spawn_blocking(move || {
                redis::cmd("SET")
                    .arg("w")
                    .arg("1")
                    .query::<()>(&mut client)?;
                redis::cmd("WAIT")
                    .arg(1)
                    .arg(5000)
                    .query::<i64>(&mut client)
            })
        };
        let mut saw_getack = false;
        while !saw_getack {
            let command = tokio::time::timeout(Duration::from_secs(10), conn.next_command())
                .await
                .expect("GETACK within 10 s")
                .expect("command");
            saw_getack = command.is_getack();
            acks.set_applied(command.offset_after);
        }
        let replicas = writer.await.unwrap().expect("WAIT");
        assert_eq!(replicas, 1, "{kind}: WAIT did not count the replica");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_an_unknown_history_is_a_full_resync() {
    let server = Server::start_with_args(ServerKind::Redis70, FAST_SYNC).expect("server");
    let mut conn = ReplicaConnection::connect(&address(&server), options(7300))
        .await
        .expect("connect");
    let outcome = conn
        .psync(Some("0123456789012345678901234567890123456789"), 100)
        .await
        .expect("psync");
    assert!(
        matches!(outcome, PsyncOutcome::FullResync { .. }),
        "{outcome:?}"
    );
}
