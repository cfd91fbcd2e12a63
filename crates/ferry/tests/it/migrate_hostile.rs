//! `ferry migrate` against peers that lie or misbehave, played by a loopback proxy in
//! front of a real server that tampers with one exchange: a source answering `+CONTINUE`
//! to a request for a full copy, a target failing `MULTI`, closing mid-batch, or never
//! answering. Each ends in one `ferry: …` line and a non-zero exit, within seconds.

use crate::support::migrate::Ferry;
use ferry_testkit::{Server, ServerKind};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does to the first client chunk holding its trigger command.
#[derive(Clone)]
enum Tamper {
    /// Answers PSYNC itself with this line; the server never sees it.
    AnswerPsync(&'static str),
    /// Renames MULTI so that the server answers it with an error.
    FailMulti,
    /// Closes both sides mid-batch.
    CloseOnMulti,
    /// Forwards nothing more either way, connections held open: replies never come.
    FreezeOnMulti,
    /// Server to client: closes both sides this many bytes after `+FULLRESYNC`, in the
    /// middle of the snapshot, on every connection.
    CutSnapshot(usize),
}

impl Tamper {
    fn trigger(&self) -> &'static [u8] {
        match self {
            Tamper::AnswerPsync(_) => b"\r\nPSYNC\r\n",
            Tamper::CutSnapshot(_) => b"+FULLRESYNC",
            _ => b"\r\nMULTI\r\n",
        }
    }

    /// Whether it acts on what the server sends (else on what the client sends).
    fn downstream(&self) -> bool {
        matches!(self, Tamper::CutSnapshot(_))
    }
}

/// Forwards 127.0.0.1:port to `upstream`, tampering as told; `fired` says it happened.
struct TamperProxy {
    port: u16,
    fired: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl TamperProxy {
    fn start(upstream: u16, tamper: Tamper) -> TamperProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fired = Arc::new(AtomicBool::new(false));
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (fired_in, held_in) = (fired.clone(), held.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let frozen = Arc::new(AtomicBool::new(false));
                held_in.lock().unwrap().push(client.try_clone().unwrap());
                held_in.lock().unwrap().push(server.try_clone().unwrap());
                let upstream_pump = Pump {
                    from: client.try_clone().unwrap(),
                    to: server.try_clone().unwrap(),
                    back: Some(client.try_clone().unwrap()),
                    tamper: Some(tamper.clone()).filter(|t| !t.downstream()),
                    fired: fired_in.clone(),
                    frozen: frozen.clone(),
                    counting: false,
                };
                let downstream_pump = Pump {
                    from: server,
                    to: client,
                    back: None,
                    tamper: Some(tamper.clone()).filter(|t| t.downstream()),
                    fired: fired_in.clone(),
                    frozen,
                    counting: false,
                };
                std::thread::spawn(move || upstream_pump.run());
                std::thread::spawn(move || downstream_pump.run());
            }
        });
        TamperProxy { port, fired, held }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for TamperProxy {
    fn drop(&mut self) {
        for stream in self.held.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

struct Pump {
    from: TcpStream,
    to: TcpStream,
    /// The client's socket, for a reply the proxy makes up.
    back: Option<TcpStream>,
    tamper: Option<Tamper>,
    fired: Arc<AtomicBool>,
    /// Set once the connection is frozen: both pumps drop what they read.
    frozen: Arc<AtomicBool>,
    /// Counting down to a snapshot cut.
    counting: bool,
}

impl Pump {
    fn run(mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match self.from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut chunk = buf[..n].to_vec();
            if self.frozen.load(Ordering::SeqCst) {
                continue;
            }
            if let (true, Some(Tamper::CutSnapshot(left))) = (self.counting, self.tamper.clone()) {
                let end = left.min(chunk.len());
                let _ = self.to.write_all(&chunk[..end]);
                if end < chunk.len() || left == chunk.len() {
                    let _ = self.to.shutdown(Shutdown::Both);
                    let _ = self.from.shutdown(Shutdown::Both);
                    return;
                }
                self.tamper = Some(Tamper::CutSnapshot(left - chunk.len()));
                continue;
            }
            if let Some(tamper) = self.tamper.clone() {
                if let Some(at) = find(&chunk, tamper.trigger()) {
                    self.fired.store(true, Ordering::SeqCst);
                    match tamper {
                        Tamper::AnswerPsync(line) => {
                            let back = self.back.as_mut().unwrap();
                            let _ = back.write_all(line.as_bytes());
                            self.frozen.store(true, Ordering::SeqCst);
                            continue;
                        }
                        Tamper::FailMulti => chunk[at + 2..at + 7].copy_from_slice(b"MULTX"),
                        Tamper::CutSnapshot(after) => {
                            let end = (at + after).min(chunk.len());
                            let _ = self.to.write_all(&chunk[..end]);
                            if end < chunk.len() {
                                let _ = self.to.shutdown(Shutdown::Both);
                                let _ = self.from.shutdown(Shutdown::Both);
                                return;
                            }
                            // The cut falls in a later chunk: count down to it.
                            self.tamper = Some(Tamper::CutSnapshot(at + after - chunk.len()));
                            self.counting = true;
                            continue;
                        }
                        Tamper::FreezeOnMulti => {
                            self.frozen.store(true, Ordering::SeqCst);
                            continue;
                        }
                        Tamper::CloseOnMulti => {
                            let _ = self.to.write_all(&chunk[..at]);
                            let _ = self.to.shutdown(Shutdown::Both);
                            let _ = self.from.shutdown(Shutdown::Both);
                            return;
                        }
                    }
                }
            }
            if self.to.write_all(&chunk).is_err() {
                break;
            }
        }
        if !self.frozen.load(Ordering::SeqCst) {
            let _ = self.to.shutdown(Shutdown::Both);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Runs ferry to its exit within `limit`; the exit code and stderr.
fn run_to_exit(args: &[&str], limit: Duration) -> (i32, String, Duration) {
    let started = Instant::now();
    let mut ferry = Ferry::start(args);
    let status = ferry.wait_exit(limit);
    let output = ferry.output();
    eprintln!("{}", output.lines().last().unwrap_or_default());
    (status.code().unwrap_or(-1), output, started.elapsed())
}

fn assert_one_error_line(output: &str, needles: &[&str]) {
    let errors: Vec<&str> = output
        .lines()
        .filter(|line| line.starts_with("ferry: ") && !line.starts_with("ferry: ["))
        .collect();
    let last = output.lines().last().unwrap_or_default();
    assert!(last.starts_with("ferry: "), "{output}");
    for needle in needles {
        assert!(
            last.contains(needle),
            "{needle:?} not in the last line:\n{output}"
        );
    }
    assert!(!errors.is_empty(), "{output}");
}

fn keys(server: &Server) -> Vec<String> {
    redis::cmd("KEYS")
        .arg("*")
        .query(&mut server.client())
        .unwrap()
}

#[test]
fn a_source_that_continues_a_full_copy_request_is_refused() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut source.client())
        .unwrap();
    let liar = TamperProxy::start(
        source.port(),
        Tamper::AnswerPsync("+CONTINUE 8f1c2b3a4d5e6f708192a3b4c5d6e7f809a1b2c3\r\n"),
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json").display().to_string();
    let (code, output, took) = run_to_exit(
        &[
            "--source",
            &liar.url(),
            "--target",
            &target.url(),
            "--state",
            &state,
        ],
        Duration::from_secs(20),
    );
    assert!(liar.fired(), "ferry never sent PSYNC:\n{output}");
    assert_eq!(code, 1, "{output}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_one_error_line(&output, &["+CONTINUE", "PSYNC ? -1"]);
    assert!(!output.contains("in sync"), "{output}");
    // Nothing claims the empty target holds the source's data.
    assert_eq!(keys(&target), Vec::<String>::new(), "{output}");
}

/// Migrates from a real source into `target` through a proxy that tampers with the first
/// stream batch (`MULTI`); ferry must stop with one line within `limit`.
fn stream_into_tampered_target(tamper: Tamper, extra: &[&str], limit: Duration) -> (i32, String) {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let proxy = TamperProxy::start(target.port(), tamper);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json").display().to_string();
    let (source_url, target_url) = (source.url(), proxy.url());
    let mut args = vec![
        "--source",
        &source_url,
        "--target",
        &target_url,
        "--state",
        &state,
    ];
    args.extend_from_slice(extra);
    let mut ferry = Ferry::start(&args);
    ferry.wait_in_sync();
    let mut con = source.client();
    for i in 0..50 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query(&mut con)
            .unwrap();
    }
    let started = Instant::now();
    let status = ferry.wait_exit(limit);
    let output = ferry.output();
    assert!(proxy.fired(), "no MULTI reached the proxy:\n{output}");
    assert!(started.elapsed() < limit, "{output}");
    eprintln!("{}", output.lines().last().unwrap_or_default());
    (status.code().unwrap_or(-1), output)
}

#[test]
fn a_target_failing_multi_stops_the_run_in_one_line() {
    let (code, output) =
        stream_into_tampered_target(Tamper::FailMulti, &[], Duration::from_secs(20));
    assert_eq!(code, 1, "{output}");
    assert_one_error_line(&output, &["target", "MULTX"]);
}

#[test]
fn a_target_closing_mid_batch_stops_the_run_in_one_line() {
    let (code, output) =
        stream_into_tampered_target(Tamper::CloseOnMulti, &[], Duration::from_secs(20));
    assert_eq!(code, 1, "{output}");
    assert_one_error_line(&output, &["target"]);
}

#[test]
fn a_target_that_never_answers_stops_the_run_in_one_line() {
    let (code, output) = stream_into_tampered_target(
        Tamper::FreezeOnMulti,
        &["--target-reply-timeout", "3"],
        Duration::from_secs(20),
    );
    assert_eq!(code, 1, "{output}");
    assert_one_error_line(
        &output,
        &["target", "sent nothing for 3s", "--target-reply-timeout"],
    );
}

#[test]
fn a_source_that_always_cuts_its_snapshot_ends_the_run_in_one_line() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let mut con = source.client();
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(20_000)
        .arg("key")
        .arg(100)
        .query(&mut con)
        .unwrap();
    let cutter = TamperProxy::start(source.port(), Tamper::CutSnapshot(4096));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json").display().to_string();
    let (code, output, took) = run_to_exit(
        &[
            "--source",
            &cutter.url(),
            "--target",
            &target.url(),
            "--state",
            &state,
        ],
        Duration::from_secs(40),
    );
    assert!(cutter.fired(), "{output}");
    assert_eq!(code, 1, "{output}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_one_error_line(&output, &["source", "snapshot"]);
}

#[test]
fn a_source_that_continues_a_history_it_does_not_hold_is_refused() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json").display().to_string();
    let mut con = source.client();
    let _: () = redis::cmd("SET").arg("a").arg("1").query(&mut con).unwrap();
    // A real run, stopped: the state and the target's marker hold the source's history.
    let mut first = Ferry::start(&[
        "--source",
        &source.url(),
        "--target",
        &target.url(),
        "--state",
        &state,
    ]);
    first.wait_in_sync();
    first.signal("TERM");
    assert!(
        first.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        first.output()
    );
    let _: () = redis::cmd("SET").arg("b").arg("2").query(&mut con).unwrap();

    // Resumed through a peer that claims another history continues it.
    let liar = TamperProxy::start(
        source.port(),
        Tamper::AnswerPsync("+CONTINUE ffffffffffffffffffffffffffffffffffffffff\r\n"),
    );
    let (code, output, took) = run_to_exit(
        &[
            "--source",
            &liar.url(),
            "--target",
            &target.url(),
            "--state",
            &state,
        ],
        Duration::from_secs(20),
    );
    assert!(liar.fired(), "{output}");
    assert_eq!(code, 1, "{output}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_one_error_line(
        &output,
        &["+CONTINUE ffffffff", "does not hold that history"],
    );
    assert!(!output.contains("in sync"), "{output}");

    // The real source, asked the same, continues.
    let mut again = Ferry::start(&[
        "--source",
        &source.url(),
        "--target",
        &target.url(),
        "--state",
        &state,
    ]);
    again.wait_for("partial resync accepted", Duration::from_secs(20));
    again.wait_in_sync();
}
