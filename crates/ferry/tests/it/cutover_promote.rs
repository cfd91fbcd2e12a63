//! The relay-mode steps of `ferry cutover`: when the run's `/status` says `mode: relay`,
//! the target is a replica; cutover promotes it (REPLICAOF NO ONE) after the verify, and
//! a failure after that (the hook) puts it back under its primary. The run is stood in for
//! by a small `/status` server over a native Valkey replica, reporting the replica's own
//! offset as the applied offset: exactly what relay is to expose.

use crate::support::cutover;
use crate::support::cutover::{assert_serving, report, switch_args};
use crate::support::migrate::simple_load;
use crate::support::{info_field, server_info};
use ferry_testkit::{Server, ServerKind};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A field of the server's `INFO replication` ("" when it has none).
fn replication_field(server: &Server, name: &str) -> String {
    info_field(&server_info(server, "replication"), name).unwrap_or_default()
}

/// Serves `/status` for a native replica as relay would, and `POST /stop`.
fn fake_relay(source: &Server, replica: &Server) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stopped = Arc::new(AtomicBool::new(false));
    let (source_port, replica_port) = (source.port(), replica.port());
    let replica_url = replica.url();
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { continue };
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            let request = String::from_utf8_lossy(&request).to_string();
            let body = if request.starts_with("POST /stop") {
                stopped.store(true, Ordering::SeqCst);
                "stopping".to_owned()
            } else {
                let client = redis::Client::open(replica_url.as_str()).unwrap();
                let mut con = client.get_connection().unwrap();
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut con)
                    .unwrap();
                let field = |name: &str| {
                    info.lines()
                        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                        .unwrap_or_default()
                        .trim()
                        .to_owned()
                };
                let phase = if stopped.load(Ordering::SeqCst) {
                    "stopped"
                } else {
                    "in-sync"
                };
                serde_json::json!({
                    "mode": "relay",
                    "phase": phase,
                    "source": format!("127.0.0.1:{source_port}"),
                    "target": format!("127.0.0.1:{replica_port}"),
                    "source_replid": field("master_replid"),
                    "applied_offset": field("slave_repl_offset").parse::<i64>().unwrap_or(0),
                })
                .to_string()
            };
            let _ = write!(
                socket,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

fn replica_of(source: &Server) -> Server {
    let replica = Server::start(ServerKind::Valkey81).unwrap();
    let mut con = replica.client();
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(source.port())
        .query::<()>(&mut con)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while replication_field(&replica, "master_link_status") != "up"
        || replication_field(&replica, "master_sync_in_progress") != "0"
    {
        assert!(Instant::now() < deadline, "the replica never synced");
        std::thread::sleep(Duration::from_millis(50));
    }
    replica
}

#[test]
fn a_relay_target_is_promoted_after_the_checks() {
    let source = Server::start(ServerKind::Valkey81).unwrap();
    simple_load(&source, 1);
    let replica = replica_of(&source);
    let status = fake_relay(&source, &replica);
    let output = cutover::ferry(&switch_args("cutover", &source, &replica, &status, &[]));
    let result = report(&output);
    assert_eq!(result["ok"], true, "{result}");
    let steps: Vec<&str> = result["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    let at = |name: &str| steps.iter().position(|s| *s == name).unwrap();
    assert!(
        at("verify") < at("promote") && at("promote") < at("unpause"),
        "{steps:?}"
    );
    assert_eq!(replication_field(&replica, "role"), "master");
    assert_serving(&source);
}

#[test]
fn a_failure_after_the_promotion_puts_the_target_back_under_its_primary() {
    let source = Server::start(ServerKind::Valkey81).unwrap();
    simple_load(&source, 1);
    let replica = replica_of(&source);
    let status = fake_relay(&source, &replica);
    let output = cutover::ferry(&switch_args(
        "cutover",
        &source,
        &replica,
        &status,
        &["--exec", "exit 1"],
    ));
    let result = report(&output);
    assert_eq!(result["failed_step"], "hook", "{result}");
    let error = result["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "the target follows 127.0.0.1:{} again",
            source.port()
        )),
        "{error}"
    );
    assert_eq!(replication_field(&replica, "role"), "slave");
    assert_eq!(
        replication_field(&replica, "master_port"),
        source.port().to_string()
    );
    assert_serving(&source);
}
