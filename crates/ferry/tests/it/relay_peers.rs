//! Several replicas on one `ferry relay`, and peers that misbehave: each replica gets
//! its own full sync (a late one a fresh snapshot from the source), a chained replica
//! follows its Valkey primary, and garbage, an unauthenticated PSYNC or a replica leaving
//! mid-RDB cost one log line and their own connection, nothing else.

use crate::support::relay;
use crate::support::relay::{assert_replicas_equal, start_replica, wait_link_up, Relay};
use crate::support::{info_field, server_info};
use ferry_testkit::expect::FieldTtl;
use ferry_testkit::workload::{Workload, SHORT_TTLS_PASSED};
use ferry_testkit::{dataset, Server, ServerKind};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn two_replicas_a_late_one_and_a_chained_one_end_equal() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    dataset::populate(&source).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::spawn(source.url(), ServerKind::Redis70, stop.clone());
    let relay = Relay::start(&source, 0, &[]);
    let first = start_replica(ServerKind::Valkey81, &relay, &[]);
    wait_link_up(&first, &relay);
    std::thread::sleep(Duration::from_secs(1));
    // Attaches after the first snapshot: gets its own, in its own format.
    let late = start_replica(ServerKind::Valkey91, &relay, &[]);
    // A replica of the late replica: Valkey passes the relay's stream on as it is.
    let late_port = late.port().to_string();
    let chained = Server::start_with_args(
        ServerKind::Valkey91,
        &["--replicaof", "127.0.0.1", &late_port],
    )
    .unwrap();
    wait_link_up(&late, &relay);
    wait_link_up(&chained, &relay);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    load.join().expect("the load ends");
    std::thread::sleep(SHORT_TTLS_PASSED);

    let info = relay.info();
    assert_eq!(
        info_field(&info, "connected_slaves").as_deref(),
        Some("2"),
        "{info}"
    );
    assert_eq!(
        info_field(&info, "sync_full").as_deref(),
        Some("2"),
        "{info}"
    );
    assert_replicas_equal(&source, &relay, &[&first, &late], FieldTtl::Keep, 0);
    // The chained replica is level with its primary once their offsets agree.
    let deadline = Instant::now() + Duration::from_secs(30);
    let offset =
        |server: &Server| info_field(&server_info(server, "replication"), "master_repl_offset");
    while offset(&chained) != offset(&late) {
        assert!(Instant::now() < deadline, "the chained replica lags");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_replicas_equal(&source, &relay, &[&chained], FieldTtl::Keep, 0);
}

/// Sends `bytes` and reads until the peer closes (or 10 s pass): what it answered.
fn exchange(port: u16, bytes: &[u8]) -> (String, bool) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match socket.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

#[test]
fn bad_peers_are_closed_and_a_good_replica_syncs() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    dataset::populate(&source).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("relay.pass");
    std::fs::write(&password_file, "s3cret relay\n").unwrap();
    let password_arg = password_file.display().to_string();
    let mut relay = Relay::start(
        &source,
        0,
        &[
            "--requirepass-file",
            &password_arg,
            "--hash-field-ttl",
            "persist",
            "--vector-set",
            "skip",
        ],
    );

    relay.password = Some("s3cret relay".into());

    // Garbage.
    let (answer, closed) = exchange(relay.port, b"*2\r\n$4\r\nPING\r\n:x\r\n");
    assert!(closed && answer.contains("Protocol error"), "{answer:?}");
    relay.wait_for("sent invalid RESP", Duration::from_secs(5));

    // PSYNC without AUTH.
    let (answer, closed) = exchange(relay.port, b"PING\r\nREPLCONF capa eof\r\n");
    assert!(closed && answer.contains("NOAUTH"), "{answer:?}");
    relay.wait_for(
        "without AUTH while a password is required",
        Duration::from_secs(5),
    );

    // A wrong password.
    let (answer, closed) = exchange(relay.port, b"AUTH nope\r\n");
    assert!(closed && answer.contains("WRONGPASS"), "{answer:?}");
    relay.wait_for("sent a wrong password", Duration::from_secs(5));

    // Other commands before AUTH get NOAUTH alone, as from a server (client libraries
    // send CLIENT SETINFO first); after AUTH, INFO answers.
    let (answer, closed) = exchange(
        relay.port,
        b"CLIENT SETINFO lib-name x\r\nAUTH \"s3cret relay\"\r\nINFO replication\r\nQUIT\r\n",
    );
    assert!(closed, "{answer:?}");
    assert!(
        answer.starts_with("-NOAUTH") && answer.contains("+OK") && answer.contains("role:master"),
        "{answer:?}"
    );

    // A replica that leaves after the first bytes of its RDB.
    let mut socket = TcpStream::connect(("127.0.0.1", relay.port)).unwrap();
    socket
        .write_all(b"AUTH \"s3cret relay\"\r\nREPLCONF capa eof capa psync2\r\nPSYNC ? -1\r\n")
        .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("$EOF:") {
        let n = socket.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    drop(socket);
    relay.wait_for("left during the full sync", Duration::from_secs(30));

    // A real replica with the right password gets everything.
    let replica = start_replica(
        ServerKind::Valkey81,
        &relay,
        &["--masterauth", "s3cret relay"],
    );
    wait_link_up(&replica, &relay);
    relay::simple_writes(&source);
    assert_replicas_equal(&source, &relay, &[&replica], FieldTtl::Persist, 0);
}

/// A replica finds the `$EOF:` end mark only as the last bytes of a read, so nothing may
/// follow the mark before the replica's first ACK (its "loaded" signal); then the stream
/// flows.
#[test]
fn after_the_snapshot_the_stream_waits_for_the_first_ack() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    relay::simple_writes(&source);
    let relay = Relay::start(&source, 0, &[]);
    let mut socket = TcpStream::connect(("127.0.0.1", relay.port)).unwrap();
    socket
        .write_all(b"REPLCONF capa eof capa psync2\r\nPSYNC ? -1\r\n")
        .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 65536];
    // Read to the end mark (the 40 characters after `$EOF:`).
    let mark = loop {
        let n = socket.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some(at) = text.find("$EOF:") {
            if let Some(mark) = text.get(at + 5..at + 45) {
                let body_start = at + 47;
                if seen.len() > body_start
                    && seen[body_start..].windows(40).any(|w| w == mark.as_bytes())
                {
                    break mark.to_string();
                }
            }
        }
    };
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(
        text.ends_with(&mark),
        "bytes after the end mark before any ACK: {:?}",
        &text[text.rfind(&mark).unwrap()..]
    );
    // Writes now go to the stream; none reaches this replica before it ACKs.
    relay::simple_writes(&source);
    socket
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    match socket.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("stream bytes before the first ACK: {other:?}"),
    }
    let offset: i64 = text
        .split("+FULLRESYNC ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|o| o.parse().ok())
        .expect("the FULLRESYNC offset");
    socket
        .write_all(format!("REPLCONF ACK {offset}\r\n").as_bytes())
        .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut stream = Vec::new();
    while !String::from_utf8_lossy(&stream).contains("w:db3") {
        let n = socket.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&stream));
        stream.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&stream).starts_with('*'));
}
