//! What a real Redis 8.0 primary actually sends its replicas for the commands Valkey lacks.
//! The command translator (`transforms::commands`) is built on these facts; each test
//! here writes on a primary and reads its replication stream through ferry's own replica
//! connection.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferry_repl::{ConnectOptions, PsyncOutcome, ReplicaConnection};
use ferry_testkit::{Server, ServerKind};

/// One primary, one client writing to it, and ferry-repl reading what it propagates.
struct Observer {
    server: Server,
    client: redis::Connection,
    replica: ReplicaConnection,
}

impl Observer {
    async fn start(kind: ServerKind) -> Observer {
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

    fn run(&mut self, args: &[&str]) -> redis::Value {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut self.client)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn master_offset(&mut self) -> i64 {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut self.client)
            .expect("INFO");
        info.lines()
            .find_map(|line| line.trim_end().strip_prefix("master_repl_offset:"))
            .and_then(|n| n.parse().ok())
            .expect("master_repl_offset")
    }

    /// The data commands propagated until the primary's offset, as text (PING, REPLCONF
    /// and SELECT left out).
    async fn read_to_offset(&mut self) -> Vec<Vec<String>> {
        let target = self.master_offset();
        let mut commands = Vec::new();
        while self.replica.offset() < target {
            let command =
                tokio::time::timeout(Duration::from_secs(10), self.replica.next_command())
                    .await
                    .expect("the stream reaches the primary's offset")
                    .expect("command");
            if command.is_protocol_only() || command.is("SELECT") {
                continue;
            }
            commands.push(
                command
                    .args
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect(),
            );
        }
        commands
    }

    /// Runs a setup command whose propagation does not matter.
    async fn setup(&mut self, args: &[&str]) {
        self.run(args);
        self.read_to_offset().await;
    }

    /// Runs one command on the primary and returns what it propagated for it.
    async fn propagated(&mut self, args: &[&str]) -> Vec<Vec<String>> {
        // Anything pending (e.g. from setup) must not be attributed to this command.
        let before = self.read_to_offset().await;
        assert!(before.is_empty(), "unexpected earlier commands: {before:?}");
        self.run(args);
        self.read_to_offset().await
    }

    /// Waits until the primary propagates something on its own (active expiry).
    async fn propagated_later(&mut self, within: Duration) -> Vec<Vec<String>> {
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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Asserts `value` is an absolute millisecond time about `from_now_ms` after `start`.
fn assert_abs_ms(value: &str, start: i64, from_now_ms: i64) {
    let at: i64 = value.parse().expect("a millisecond time");
    let end = now_ms();
    assert!(
        (start + from_now_ms..=end + from_now_ms).contains(&at),
        "{at} is not {from_now_ms} ms after [{start}, {end}]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis8_hash_field_ttl_commands_reach_replicas_in_absolute_or_plain_forms() {
    let mut o = Observer::start(ServerKind::Redis80).await;
    o.setup(&["HSET", "h", "a", "1", "b", "2", "c", "3", "d", "4"])
        .await;

    // HSETEX with a relative TTL becomes PXAT with an absolute time; the rest is verbatim.
    let start = now_ms();
    let sent = o
        .propagated(&["HSETEX", "h", "EX", "100", "FIELDS", "1", "a", "10"])
        .await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0][..3], strings(&["HSETEX", "h", "PXAT"]));
    assert_abs_ms(&sent[0][3], start, 100_000);
    assert_eq!(sent[0][4..], strings(&["FIELDS", "1", "a", "10"]));

    // FNX/FXX stay in the propagated command.
    let start = now_ms();
    let sent = o
        .propagated(&["HSETEX", "h", "FNX", "PX", "5000", "FIELDS", "1", "e", "5"])
        .await;
    assert_eq!(sent[0][..4], strings(&["HSETEX", "h", "FNX", "PXAT"]));
    assert_abs_ms(&sent[0][4], start, 5_000);

    // KEEPTTL, and no TTL option at all, are sent as they were given.
    for args in [
        &["HSETEX", "h", "KEEPTTL", "FIELDS", "1", "a", "11"][..],
        &["HSETEX", "h", "FIELDS", "2", "b", "20", "c", "30"][..],
        &[
            "HSETEX",
            "h",
            "FXX",
            "PXAT",
            "9999999999999",
            "FIELDS",
            "1",
            "b",
            "21",
        ][..],
    ] {
        assert_eq!(o.propagated(args).await, vec![strings(args)]);
    }

    // A TTL already in the past deletes the fields: only HDEL is sent.
    let sent = o
        .propagated(&["HSETEX", "h", "PXAT", "1", "FIELDS", "1", "c", "31"])
        .await;
    assert_eq!(sent, vec![strings(&["HDEL", "h", "c"])]);

    // HEXPIRE: HPEXPIREAT with an absolute time, keeping the condition; fields it did
    // not change (missing here) are left out and the count rewritten.
    let start = now_ms();
    let sent = o
        .propagated(&["HEXPIRE", "h", "200", "NX", "FIELDS", "2", "d", "missing"])
        .await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0][..2], strings(&["HPEXPIREAT", "h"]));
    assert_abs_ms(&sent[0][2], start, 200_000);
    assert_eq!(sent[0][3..], strings(&["NX", "FIELDS", "1", "d"]));

    // HPERSIST is sent as it was given.
    let args = ["HPERSIST", "h", "FIELDS", "1", "d"];
    assert_eq!(o.propagated(&args).await, vec![strings(&args)]);

    // HGETEX becomes HPEXPIREAT (absolute) or HPERSIST.
    let start = now_ms();
    let sent = o
        .propagated(&["HGETEX", "h", "PX", "7000", "FIELDS", "1", "d"])
        .await;
    assert_eq!(sent[0][..2], strings(&["HPEXPIREAT", "h"]));
    assert_abs_ms(&sent[0][2], start, 7_000);
    assert_eq!(sent[0][3..], strings(&["FIELDS", "1", "d"]));
    let sent = o
        .propagated(&["HGETEX", "h", "PERSIST", "FIELDS", "1", "d"])
        .await;
    assert_eq!(sent, vec![strings(&["HPERSIST", "h", "FIELDS", "1", "d"])]);

    // HGETDEL becomes HDEL.
    let sent = o
        .propagated(&["HGETDEL", "h", "FIELDS", "2", "d", "nope"])
        .await;
    assert_eq!(sent, vec![strings(&["HDEL", "h", "d", "nope"])]);

    // HINCRBYFLOAT is sent as the value it produced.
    let sent = o.propagated(&["HINCRBYFLOAT", "h", "b", "1.5"]).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let form = &sent[0];
    assert!(
        *form == strings(&["HSET", "h", "b", "22.5"])
            || *form == strings(&["HSETEX", "h", "KEEPTTL", "FIELDS", "1", "b", "22.5"]),
        "{form:?}"
    );
    eprintln!("redis 8.0 sends HINCRBYFLOAT as {form:?}");

    // A field expiring on the primary reaches replicas as HDEL.
    o.setup(&["HPEXPIRE", "h", "30", "FIELDS", "1", "e"]).await;
    let sent = o.propagated_later(Duration::from_secs(5)).await;
    assert_eq!(sent, vec![strings(&["HDEL", "h", "e"])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis8_vector_set_writes_reach_replicas_verbatim() {
    let mut o = Observer::start(ServerKind::Redis80).await;
    for args in [
        &[
            "VADD",
            "v",
            "VALUES",
            "3",
            "0.5",
            "1",
            "-1",
            "e1",
            "SETATTR",
            r#"{"a":1}"#,
        ][..],
        &["VADD", "v", "VALUES", "3", "1", "0", "0", "e2", "CAS"][..],
        &["VSETATTR", "v", "e1", r#"{"a":2}"#][..],
        &["VREM", "v", "e2"][..],
    ] {
        assert_eq!(o.propagated(args).await, vec![strings(args)], "{args:?}");
    }
    // A VREM that removes nothing is not sent at all.
    assert!(o.propagated(&["VREM", "v", "absent"]).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_reach_replicas_as_their_effects_in_a_transaction() {
    for kind in [
        ServerKind::Redis60,
        ServerKind::Redis70,
        ServerKind::Redis80,
    ] {
        let mut o = Observer::start(kind).await;
        let sent = o
            .propagated(&[
                "EVAL",
                "redis.call('SET', KEYS[1], ARGV[1]); redis.call('INCR', KEYS[2])",
                "2",
                "a",
                "b",
                "v",
            ])
            .await;
        assert_eq!(
            sent,
            vec![
                strings(&["MULTI"]),
                strings(&["SET", "a", "v"]),
                strings(&["INCR", "b"]),
                strings(&["EXEC"])
            ],
            "{kind}"
        );
        drop(o.server);
    }
}
