//! Full synchronisation from real servers: the snapshot arrives whole and exact, framed by
//! length (disk) or by end mark (diskless), and the command stream follows it.

use std::io::Read;

use crate::support::*;
use ferry_repl::{snapshot_channel, PsyncOutcome, ReplicaConnection, SnapshotFraming};
use ferry_testkit::{dataset, Server, ServerKind};

const KINDS: [ServerKind; 5] = [
    ServerKind::Redis60,
    ServerKind::Redis70,
    ServerKind::Redis80,
    ServerKind::Valkey80,
    ServerKind::Valkey91,
];

#[derive(Clone, Copy, Debug)]
enum Transfer {
    Disk,
    Diskless,
}

impl Transfer {
    fn server_args(self) -> &'static [&'static str] {
        match self {
            Transfer::Disk => &["--repl-diskless-sync", "no"],
            Transfer::Diskless => &[
                "--repl-diskless-sync",
                "yes",
                "--repl-diskless-sync-delay",
                "0",
            ],
        }
    }
}

async fn full_sync(kind: ServerKind, transfer: Transfer) {
    let what = format!("{kind} {transfer:?}");
    let server = Server::start_with_args(kind, transfer.server_args()).expect("server");
    // Several MiB: the snapshot spans many reads, so the end mark can straddle two.
    dataset::populate(&server).expect("dataset");

    let mut settings = options(7001);
    // Valkey 9 data needs a Valkey 9 snapshot, which Valkey sends to replicas announcing 9.
    if kind == ServerKind::Valkey91 {
        settings.announce_version = Some("9.1.2".into());
    }
    let mut conn = ReplicaConnection::connect(&address(&server), settings)
        .await
        .expect("connect");
    let PsyncOutcome::FullResync { replid, offset } = conn.psync(None, -1).await.expect("psync")
    else {
        panic!("{what}: a first PSYNC must be a full resync");
    };
    let info = info_replication(&server);
    assert_eq!(replid, info["master_replid"], "{what}");
    assert!(offset >= 0);

    let (framing, snapshot) = match transfer {
        // The blocking bridge, as the product feeds the codec.
        Transfer::Diskless => {
            let stream = conn.snapshot().await.expect("snapshot header");
            let framing = stream.framing();
            let (sender, mut reader) = snapshot_channel(4);
            let decoder = tokio::task::spawn_blocking(move || {
                let mut all = Vec::new();
                reader.read_to_end(&mut all).map(|_| all)
            });
            let forwarded = stream.forward(sender).await.expect("forward");
            let bytes = decoder.await.unwrap().expect("reader");
            assert_eq!(forwarded, bytes.len() as u64);
            (framing, bytes)
        }
        Transfer::Disk => {
            let mut stream = match conn.snapshot().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("ERR {e}\nLOG:\n{}", server.log_tail(30));
                    panic!()
                }
            };
            let mut v = Vec::new();
            loop {
                match stream.next_chunk().await {
                    Ok(Some(c)) => v.extend_from_slice(&c),
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!("ERR {e}\nLOG:\n{}", server.log_tail(30));
                        panic!()
                    }
                }
            }
            (stream.framing(), v)
        }
    };
    match (transfer, framing) {
        (Transfer::Disk, SnapshotFraming::Sized(len)) => {
            assert_eq!(len, snapshot.len() as u64, "{what}")
        }
        (Transfer::Diskless, SnapshotFraming::EndMark) => {}
        _ => panic!("{what}: unexpected framing {framing:?}"),
    }
    assert!(
        snapshot.len() > 1_000_000,
        "{what}: {} bytes",
        snapshot.len()
    );
    assert_complete_rdb(&snapshot, &what);

    // The stream starts after the snapshot (after our first ACK, when diskless).
    let mut client = server.client();
    redis::cmd("SET")
        .arg("after-sync")
        .arg("1")
        .query::<()>(&mut client)
        .unwrap();
    let target = master_offset(&server);
    let commands = read_until(&mut conn, target).await;
    assert!(
        data_commands(&commands).contains(&vec!["SET".into(), "after-sync".into(), "1".into()]),
        "{what}: {:?}",
        data_commands(&commands)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_snapshots_are_framed_by_length() {
    for kind in KINDS {
        full_sync(kind, Transfer::Disk).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diskless_snapshots_end_at_the_mark() {
    for kind in KINDS {
        full_sync(kind, Transfer::Diskless).await;
    }
}
