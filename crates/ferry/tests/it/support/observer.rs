//! A real primary and a replica connection reading what it propagates.

use std::time::{Duration, Instant};

use ferry_repl::{ConnectOptions, PsyncOutcome, ReplicaConnection};
use ferry_testkit::{Server, ServerKind};

/// One primary, one client writing to it, and ferry-repl reading what it propagates.
pub struct Observer {
    pub server: Server,
    pub client: redis::Connection,
    replica: ReplicaConnection,
}

impl Observer {
    pub async fn start(kind: ServerKind) -> Observer {
        let server = Server::start_with_args(kind, &["--repl-diskless-sync-delay", "0"])
            .expect("server starts");
        let options = ConnectOptions {
            listening_port: 7300,
            read_timeout: Duration::from_secs(20),
            ..ConnectOptions::default()
        };
        let address = format!("127.0.0.1:{}", server.port());
        let mut replica = ReplicaConnection::connect(&address, options)
            .await
            .expect("replica handshake");
        let outcome = replica.psync(None, -1).await.expect("psync");
        assert!(matches!(outcome, PsyncOutcome::FullResync { .. }));
        let mut snapshot = replica.snapshot().await.expect("snapshot");
        while snapshot
            .next_chunk()
            .await
            .expect("snapshot chunk")
            .is_some()
        {}
        let client = server.client();
        Observer {
            server,
            client,
            replica,
        }
    }

    pub fn run(&mut self, args: &[&str]) -> redis::Value {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut self.client)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    pub fn master_offset(&mut self) -> i64 {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut self.client)
            .expect("INFO");
        info.lines()
            .find_map(|line| line.trim_end().strip_prefix("master_repl_offset:"))
            .and_then(|n| n.parse().ok())
            .expect("master_repl_offset")
    }

    /// Every command propagated until the primary's offset, SELECT, MULTI and EXEC
    /// included (PING and REPLCONF left out).
    pub async fn read_raw_to_offset(&mut self) -> Vec<Vec<bytes::Bytes>> {
        let target = self.master_offset();
        let mut commands = Vec::new();
        while self.replica.offset() < target {
            let command =
                tokio::time::timeout(Duration::from_secs(10), self.replica.next_command())
                    .await
                    .expect("the stream reaches the primary's offset")
                    .expect("command");
            if !command.is_protocol_only() {
                commands.push(command.args);
            }
        }
        commands
    }

    /// The data commands propagated until the primary's offset, as text (PING, REPLCONF
    /// and SELECT left out).
    pub async fn read_to_offset(&mut self) -> Vec<Vec<String>> {
        let raw = self.read_raw_to_offset().await;
        raw.into_iter()
            .filter(|args| !args[0].eq_ignore_ascii_case(b"SELECT"))
            .map(|args| {
                args.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .collect()
    }

    /// Runs a setup command whose propagation does not matter.
    pub async fn setup(&mut self, args: &[&str]) {
        self.run(args);
        self.read_to_offset().await;
    }

    /// Runs one command on the primary and returns what it propagated for it.
    pub async fn propagated(&mut self, args: &[&str]) -> Vec<Vec<String>> {
        // Anything pending (e.g. from setup) must not be attributed to this command.
        let before = self.read_to_offset().await;
        assert!(before.is_empty(), "unexpected earlier commands: {before:?}");
        self.run(args);
        self.read_to_offset().await
    }

    /// Waits until the primary propagates something on its own (active expiry).
    pub async fn propagated_later(&mut self, within: Duration) -> Vec<Vec<String>> {
        let start_offset = self.master_offset();
        let deadline = Instant::now() + within;
        while self.master_offset() == start_offset {
            assert!(
                Instant::now() < deadline,
                "nothing propagated in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.read_to_offset().await
    }
}
