//! Hostile clients of a real `ferry relay`: a huge multibulk header, junk bytes, 200 idle
//! connections, a slowloris, a run of wrong passwords, all while a real Valkey replica
//! attaches. Each hostile client is cut off, the relay's memory stays bounded, its log
//! stays short (refusals are rate-limited), and the replica reaches
//! `master_link_status:up`. Also what the log says of each replica: a first attach is
//! called one, and a policy line names the replica it applied to. And a source that lies
//! about a resume (`+CONTINUE` of a history it does not hold) ends that history.

use crate::support::proc_status_kb;
use crate::support::relay::{start_replica, wait_link_up, Relay};
use crate::support::{migrate, relay};
use ferry_testkit::{Server, ServerKind};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The relay's handshake limit (`gate::HANDSHAKE_TIMEOUT`) and a margin for a busy machine.
const CUT_WITHIN: Duration = Duration::from_secs(15);

fn rss_kib(pid: u32) -> u64 {
    proc_status_kb(pid, "VmRSS").expect("VmRSS in /proc")
}

fn connect(port: u16) -> TcpStream {
    let socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    socket
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
}

/// Whether the relay has closed `socket` (reads end or fail other than by a timeout).
fn is_closed(socket: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Keeps calling `feed` (which may write to the socket) until the relay closes it;
/// returns how long that took. Panics after `CUT_WITHIN`.
fn until_cut(what: &str, socket: &mut TcpStream, mut feed: impl FnMut(&mut TcpStream)) -> Duration {
    let started = Instant::now();
    loop {
        feed(socket);
        if is_closed(socket) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < CUT_WITHIN,
            "{what}: still connected after {CUT_WITHIN:?}"
        );
    }
}

#[test]
fn hostile_clients_are_cut_off_while_a_real_replica_syncs() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    relay::simple_writes(&source);
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("relay.pass");
    std::fs::write(&password_file, "hostile-test-pass\n").unwrap();
    let password_arg = password_file.display().to_string();
    let mut relay = Relay::start(&source, 0, &["--requirepass-file", &password_arg]);
    relay.password = Some("hostile-test-pass".into());
    let port = relay.port;
    let rss_before = rss_kib(relay.pid());

    // A real replica attaches while the hostile clients below do their worst.
    let replica = start_replica(
        ServerKind::Valkey81,
        &relay,
        &["--masterauth", "hostile-test-pass"],
    );
    let hostile = [
        std::thread::spawn(move || {
            // A multibulk header of 2^31-1 elements, then elements as fast as they go.
            let mut socket = connect(port);
            socket.write_all(b"*2147483647\r\n").unwrap();
            let element = b"$1\r\na\r\n".repeat(8192);
            let mut sent = 0usize;
            let took = until_cut("huge multibulk", &mut socket, |s| {
                if s.write_all(&element).is_ok() {
                    sent += element.len();
                }
            });
            assert!(sent < 8 << 20, "the relay took {sent} bytes of one request");
            took
        }),
        std::thread::spawn(move || {
            let mut socket = connect(port);
            let junk: Vec<u8> = (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect();
            let _ = socket.write_all(&junk);
            until_cut("junk bytes", &mut socket, |_| {})
        }),
        std::thread::spawn(move || {
            // Slowloris, authenticated: then one byte of a PING per second, never a whole
            // command.
            let mut socket = connect(port);
            socket.write_all(b"AUTH hostile-test-pass\r\n").unwrap();
            let request = b"*1\r\n$4\r\nPING\r\n";
            let mut next = 0;
            let mut last = Instant::now() - Duration::from_secs(1);
            until_cut("slowloris", &mut socket, |s| {
                if last.elapsed() >= Duration::from_secs(1) && next < request.len() - 1 {
                    let _ = s.write_all(&request[next..next + 1]);
                    next += 1;
                    last = Instant::now();
                }
            })
        }),
        std::thread::spawn(move || {
            // A run of wrong passwords, each on its own connection.
            let mut longest = Duration::ZERO;
            for i in 0..30 {
                let mut socket = connect(port);
                socket
                    .write_all(format!("AUTH guess-{i}\r\n").as_bytes())
                    .unwrap();
                longest = longest.max(until_cut("wrong password", &mut socket, |_| {}));
            }
            longest
        }),
    ];
    let names = ["huge multibulk", "junk", "slowloris", "30 wrong passwords"];
    for (name, client) in names.iter().zip(hostile) {
        let took = client.join().expect("hostile client");
        eprintln!("{name}: cut off after {took:?}");
    }
    wait_link_up(&replica, &relay);

    // 200 idle connections: the relay's places for handshakes fill, the rest are closed
    // at once, the held ones after the handshake timeout; a second replica arriving in
    // the middle of the flood gets in once places free (it retries each second).
    let idle: Vec<TcpStream> = (0..200).map(|_| connect(port)).collect();
    let late = start_replica(
        ServerKind::Valkey91,
        &relay,
        &["--masterauth", "hostile-test-pass"],
    );
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let mut held = Vec::new();
    for mut socket in idle {
        socket
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        if !is_closed(&mut socket) {
            held.push(socket);
        }
    }
    let cut_at_once = 200 - held.len();
    for (i, mut socket) in held.into_iter().enumerate() {
        while !is_closed(&mut socket) {
            assert!(
                started.elapsed() < CUT_WITHIN,
                "idle connection {i} still open:\n{}",
                relay.output()
            );
        }
    }
    eprintln!(
        "idle flood: {cut_at_once} of 200 closed at once, all closed after {:?}",
        started.elapsed()
    );
    assert!(cut_at_once >= 100, "{cut_at_once}");
    wait_link_up(&late, &relay);
    relay::simple_writes(&source);
    relay.wait_acked(&source);
    let rss_after = rss_kib(relay.pid());
    eprintln!("relay VmRSS: {rss_before} KiB before the hostile clients, {rss_after} KiB after");
    assert!(
        rss_after < rss_before + 48 * 1024,
        "relay RSS grew from {rss_before} KiB to {rss_after} KiB"
    );

    // Hundreds of refusals, a few lines: at most one per kind every 10 s, with counts.
    let output = relay.output();
    let wrong = output
        .lines()
        .filter(|l| l.contains("sent a wrong password"))
        .count();
    assert!(
        (1..=3).contains(&wrong),
        "{wrong} wrong-password lines:\n{output}"
    );
    assert!(output.contains("more wrong passwords"), "{output}");
    assert!(
        output.contains("connections are already in their handshake"),
        "{output}"
    );
    assert!(output.contains("completed no command"), "{output}");
    assert!(output.contains("did not authenticate within"), "{output}");
    // Neither the relay's password nor the guesses appear.
    assert!(
        !output.contains("hostile-test-pass") && !output.contains("guess-"),
        "{output}"
    );
    let lines = output.lines().count();
    assert!(
        lines < 60,
        "{lines} log lines for ~235 hostile clients:\n{output}"
    );
}

#[test]
fn the_log_names_each_replica_a_policy_applied_to_and_calls_a_first_attach_one() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    let mut con = source.client();
    let _: () = redis::cmd("HSET")
        .arg("h")
        .arg("f1")
        .arg("v1")
        .arg("f2")
        .arg("v2")
        .query(&mut con)
        .unwrap();
    let _: redis::Value = redis::cmd("HEXPIRE")
        .arg("h")
        .arg(3600)
        .arg("FIELDS")
        .arg(1)
        .arg("f1")
        .query(&mut con)
        .unwrap();
    let relay = Relay::start(
        &source,
        0,
        &["--hash-field-ttl", "persist", "--vector-set", "skip"],
    );
    let old = start_replica(ServerKind::Valkey81, &relay, &[]);
    wait_link_up(&old, &relay);
    let new = start_replica(ServerKind::Valkey91, &relay, &[]);
    wait_link_up(&new, &relay);
    let output = relay.output();
    let policy: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("--hash-field-ttl persist:"))
        .collect();
    // Valkey 8.1 cannot hold field TTLs, Valkey 9.1 can: one line, naming the 8.1 replica.
    assert_eq!(policy.len(), 1, "{output}");
    let old_port = format!("listening on {}", old.port());
    assert!(
        policy[0].contains(&old_port) && policy[0].contains("version 8.1"),
        "{output}"
    );
    // Neither replica had attached before: no "cannot continue" that reads like an error.
    assert!(!output.contains("cannot continue"), "{output}");
    let first = output
        .lines()
        .filter(|l| l.contains("first attach to this relay; full sync"))
        .count();
    assert_eq!(first, 2, "{output}");
}

/// Forwards to `upstream`; answers every resume (`PSYNC <id> <offset>`, not `PSYNC ?`)
/// with `+CONTINUE` of a history the source does not have, and freezes that connection.
/// `cut` resets every open connection.
struct LyingOnResume {
    port: u16,
    open: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
    lies: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl LyingOnResume {
    fn start(upstream: u16) -> LyingOnResume {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let lies = Arc::new(AtomicUsize::new(0));
        let (registry, counter) = (open.clone(), lies.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().take(200) {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                registry.lock().unwrap().push(client.try_clone().unwrap());
                registry.lock().unwrap().push(server.try_clone().unwrap());
                let frozen = Arc::new(AtomicBool::new(false));
                let (mut from, mut to) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let mut back = client.try_clone().unwrap();
                let (up_frozen, counter) = (frozen.clone(), counter.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = from.read(&mut buf) {
                        let chunk = &buf[..n];
                        if up_frozen.load(Ordering::SeqCst) {
                            continue;
                        }
                        let psync = chunk.windows(9).any(|w| w == b"\r\nPSYNC\r\n");
                        let full = chunk.windows(5).any(|w| w == b"\r\n?\r\n");
                        if psync && !full {
                            counter.fetch_add(1, Ordering::SeqCst);
                            up_frozen.store(true, Ordering::SeqCst);
                            let _ = back.write_all(
                                b"+CONTINUE ffffffffffffffffffffffffffffffffffffffff\r\n",
                            );
                            continue;
                        }
                        if to.write_all(chunk).is_err() {
                            break;
                        }
                    }
                });
                let (mut from, mut to) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = from.read(&mut buf) {
                        if frozen.load(Ordering::SeqCst) {
                            continue;
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        LyingOnResume { port, open, lies }
    }

    fn cut(&self) {
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn a_source_lying_about_a_resume_ends_the_history_and_the_replica_resyncs() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    relay::simple_writes(&source);
    let liar = LyingOnResume::start(source.port());
    // The relay reads the source through the liar (ServerKind only picks the binary).
    let url = format!("redis://127.0.0.1:{}", liar.port);
    let mut relay = {
        let mut ferry =
            migrate::Ferry::start_command("relay", &["--source", &url, "--listen", "127.0.0.1:0"]);
        let line = ferry.wait_for("listening on", Duration::from_secs(30));
        let port: u16 = line
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        (ferry, port)
    };
    let replica = Server::start_with_args(
        ServerKind::Valkey81,
        &["--replicaof", "127.0.0.1", &relay.1.to_string()],
    )
    .unwrap();
    wait_link_up(&replica, &relay.0);

    // The history's source connection is cut; the liar "continues" the resume.
    liar.cut();
    relay
        .0
        .wait_for("does not hold that history", Duration::from_secs(20));
    assert!(liar.lies.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    // The replica is sent away and comes back for a full sync of a new history, which
    // carries writes made after the cut.
    let mut con = source.client();
    let _: () = redis::cmd("SET")
        .arg("after-cut")
        .arg("1")
        .query(&mut con)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: Option<String> = redis::cmd("GET")
            .arg("after-cut")
            .query(&mut replica.client())
            .unwrap();
        if got.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never got the write after the cut:\n{}",
            relay.0.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
