//! What an operator sees when a server cannot be reached: `--connect-timeout` bounds the
//! whole connect (TCP, TLS, the first reply) against a port that accepts and never
//! answers, and the "is the server expecting TLS?" hint appears only when the failure
//! looks like TLS, never on a refused connection or on silence.

use crate::support::migrate::Ferry;
use ferry_testkit::ClosedPort;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loopback port that accepts connections and never sends a byte.
struct SilentPort {
    port: u16,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

impl SilentPort {
    fn start() -> SilentPort {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let keep = held.clone();
        std::thread::spawn(move || {
            // Bounded: a test makes a handful of connections.
            for stream in listener.incoming().take(64) {
                let Ok(stream) = stream else { break };
                keep.lock().unwrap().push(stream);
            }
        });
        SilentPort { port, _held: held }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// Runs `ferry <command> <args>` to its exit (at most 40 s): code, stderr, time taken.
fn run(command: &str, args: &[&str]) -> (i32, String, Duration) {
    let started = Instant::now();
    let mut ferry = Ferry::start_command(command, args);
    let status = ferry.wait_exit(Duration::from_secs(40));
    (
        status.code().unwrap_or(-1),
        ferry.output(),
        started.elapsed(),
    )
}

fn assert_one_line(output: &str) {
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line:\n{output}");
    assert!(lines[0].starts_with("ferry: "), "{output}");
}

#[test]
fn connect_timeout_bounds_a_server_that_accepts_and_never_answers() {
    let silent = SilentPort::start();
    let url = silent.url();
    for (command, args) in [
        (
            "migrate",
            vec!["--source", &url, "--target", &url, "--connect-timeout", "2"],
        ),
        (
            "relay",
            vec![
                "--source",
                &url,
                "--listen",
                "127.0.0.1:0",
                "--connect-timeout",
                "2",
            ],
        ),
    ] {
        let (code, output, took) = run(command, &args);
        assert_eq!(code, 1, "{command}: {output}");
        assert!(
            took < Duration::from_secs(4),
            "{command} took {took:?} with --connect-timeout 2:\n{output}"
        );
        assert_one_line(&output);
        assert!(output.contains("within 2s"), "{command}: {output}");
        // Silence is no sign of TLS.
        assert!(!output.contains("TLS"), "{command}: {output}");
    }
    // verify reads through redis-rs, with its own reply timeout (10 s).
    let (code, output, took) = run("verify", &["--source", &url, "--target", &url]);
    assert_ne!(code, 0, "{output}");
    assert!(took < Duration::from_secs(15), "{took:?}: {output}");
    assert_one_line(&output);
    assert!(output.contains("never replied"), "{output}");
    assert!(!output.contains("TLS"), "{output}");
}

#[test]
fn a_refused_connection_gets_no_tls_hint() {
    let closed = ClosedPort::reserve().unwrap();
    let refused = format!("redis://127.0.0.1:{}", closed.port());
    for (command, args) in [
        ("migrate", vec!["--source", &refused, "--target", &refused]),
        ("verify", vec!["--source", &refused, "--target", &refused]),
        ("assess", vec!["--source", &refused, "--to", "valkey-8.1"]),
    ] {
        let (code, output, _) = run(command, &args);
        assert_ne!(code, 0, "{command}: {output}");
        assert_one_line(&output);
        assert!(output.contains("refused"), "{command}: {output}");
        assert!(!output.contains("TLS"), "{command}: {output}");
    }
}
