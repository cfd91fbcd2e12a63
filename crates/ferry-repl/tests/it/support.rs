//! Helpers shared by the tests against real servers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ferry_repl::{ConnectOptions, ReplCommand, ReplicaConnection, SnapshotFraming};
use ferry_testkit::Server;

pub fn address(server: &Server) -> String {
    format!("127.0.0.1:{}", server.port())
}

pub fn options(listening_port: u16) -> ConnectOptions {
    ConnectOptions {
        listening_port,
        read_timeout: Duration::from_secs(20),
        ..ConnectOptions::default()
    }
}

/// `INFO replication` as a map.
pub fn info_replication(server: &Server) -> HashMap<String, String> {
    let text: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut server.client())
        .expect("INFO replication");
    text.lines()
        .filter_map(|line| line.trim_end().split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

pub fn master_offset(server: &Server) -> i64 {
    info_replication(server)["master_repl_offset"]
        .parse()
        .expect("numeric master_repl_offset")
}

/// Reads the whole snapshot through `next_chunk`.
pub async fn read_snapshot(conn: &mut ReplicaConnection) -> (SnapshotFraming, Vec<u8>) {
    let mut stream = conn.snapshot().await.expect("snapshot header");
    let framing = stream.framing();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next_chunk().await.expect("snapshot chunk") {
        assert!(!chunk.is_empty() && chunk.len() <= 64 * 1024);
        bytes.extend_from_slice(&chunk);
    }
    assert_eq!(stream.bytes_received(), bytes.len() as u64);
    (framing, bytes)
}

/// The bytes are exactly one RDB file: magic first, EOF opcode and a matching CRC64 last.
pub fn assert_complete_rdb(bytes: &[u8], what: &str) {
    assert!(
        bytes.starts_with(b"REDIS00") || bytes.starts_with(b"VALKEY0"),
        "{what}: starts {:?}",
        &bytes[..bytes.len().min(9)]
    );
    assert!(bytes.len() > 18, "{what}: only {} bytes", bytes.len());
    let (body, stored) = bytes.split_at(bytes.len() - 8);
    assert_eq!(
        body.last(),
        Some(&0xFF),
        "{what}: no EOF opcode before the checksum"
    );
    let stored = u64::from_le_bytes(stored.try_into().unwrap());
    assert_eq!(
        ferry_codec::crc64(body),
        stored,
        "{what}: checksum does not match: the snapshot was cut or extended"
    );
}

/// Reads commands until `offset_after` reaches `target`; fails if it passes it.
pub async fn read_until(conn: &mut ReplicaConnection, target: i64) -> Vec<ReplCommand> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut commands = Vec::new();
    while conn.offset() < target {
        assert!(
            Instant::now() < deadline,
            "stream stalled at {}",
            conn.offset()
        );
        let command = conn.next_command().await.expect("command");
        assert!(
            command.offset_after <= target,
            "offset {} jumped past the primary's {target}",
            command.offset_after
        );
        commands.push(command);
    }
    assert_eq!(conn.offset(), target);
    commands
}

/// The commands that change data, as text (PING, REPLCONF, SELECT, MULTI, EXEC left out).
pub fn data_commands(commands: &[ReplCommand]) -> Vec<Vec<String>> {
    commands
        .iter()
        .filter(|c| !c.is_protocol_only() && !c.is("SELECT") && !c.is("MULTI") && !c.is("EXEC"))
        .map(|c| {
            c.args
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .collect()
}

/// Polls `INFO replication` until the replica listening on `port` shows `offset`.
pub fn wait_for_replica_offset(server: &Server, port: u16, offset: i64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let wanted_port = format!("port={port}");
    let wanted_offset = format!("offset={offset}");
    loop {
        let info = info_replication(server);
        let line = info
            .iter()
            .filter(|(key, _)| key.starts_with("slave"))
            .map(|(_, value)| value.clone())
            .find(|value| value.split(',').any(|field| field == wanted_port));
        if let Some(line) = &line {
            if line.split(',').any(|field| field == wanted_offset) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("replica line: {line:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
