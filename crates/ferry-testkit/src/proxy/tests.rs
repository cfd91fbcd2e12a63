use super::*;
use crate::{Server, ServerKind};
use std::io::{ErrorKind, Read, Write};
use std::sync::mpsc;

/// Every read in these tests gives up after this: a test never hangs.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A loopback server that answers each connection with `answer(bytes read)`; its threads
/// end when it is dropped.
struct TestServer {
    port: u16,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Sends back everything it reads.
    fn echo() -> TestServer {
        TestServer::start(|mut socket: TcpStream| {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n @ 1..) = socket.read(&mut buf) {
                if socket.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        })
    }

    /// Reads until the client's end, then reports the bytes and when the last came.
    fn sink(received: mpsc::Sender<(usize, Instant)>) -> TestServer {
        TestServer::start(move |mut socket: TcpStream| {
            let mut total = 0;
            let mut buf = [0u8; 64 * 1024];
            while let Ok(n @ 1..) = socket.read(&mut buf) {
                total += n;
            }
            let _ = received.send((total, Instant::now()));
        })
    }

    fn start(serve: impl Fn(TcpStream) + Send + Sync + Clone + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let acceptor = std::thread::spawn(move || {
            let mut sessions = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((socket, _)) => {
                        socket.set_nonblocking(false).unwrap();
                        socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                        let serve = serve.clone();
                        sessions.push(std::thread::spawn(move || serve(socket)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for session in sessions {
                let _ = session.join();
            }
        });
        TestServer {
            port,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn connect(proxy: &FaultProxy) -> TcpStream {
    let socket = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    socket
}

fn read_exactly(socket: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    socket.read_exact(&mut buf).unwrap();
    buf
}

/// The connection ends (end of stream or reset) within `within`.
fn assert_closed(socket: &mut TcpStream, within: Duration) {
    socket.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 16];
    match socket.read(&mut buf) {
        Ok(0) => {}
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {}
        other => panic!("the connection is still open: {other:?}"),
    }
}

#[test]
fn bytes_pass_both_ways_and_are_counted() {
    let echo = TestServer::echo();
    let proxy = FaultProxy::start(echo.port).unwrap();
    let mut socket = connect(&proxy);
    socket.write_all(b"hello, server").unwrap();
    assert_eq!(read_exactly(&mut socket, 13), b"hello, server");
    assert_eq!(proxy.bytes_to_upstream(), 13);
    assert_eq!(proxy.bytes_to_client(), 13);
    assert_eq!(proxy.accepted(), 1);
    assert_eq!(proxy.open_connections(), 1);
    assert_eq!(proxy.url(), format!("redis://127.0.0.1:{}", proxy.port()));
}

#[test]
fn a_stalled_ping_is_answered_only_after_resume() {
    let server = Server::start(ServerKind::Valkey81).unwrap();
    let proxy = FaultProxy::start(server.port()).unwrap();
    let mut socket = connect(&proxy);
    socket.write_all(b"PING\r\n").unwrap();
    assert_eq!(read_exactly(&mut socket, 7), b"+PONG\r\n");

    proxy.stall();
    socket.write_all(b"PING\r\n").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 7];
    let silent = socket.read(&mut buf).unwrap_err();
    assert!(
        matches!(silent.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{silent:?}"
    );
    assert_eq!(
        proxy.bytes_to_upstream(),
        6,
        "the stalled PING stays in the proxy"
    );

    proxy.resume();
    socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    assert_eq!(read_exactly(&mut socket, 7), b"+PONG\r\n");
}

#[test]
fn a_delay_holds_each_chunk_back_and_keeps_their_order() {
    let echo = TestServer::echo();
    let proxy = FaultProxy::start(echo.port).unwrap();
    let mut socket = connect(&proxy);
    let delay = Duration::from_millis(150);
    proxy.set_delay(delay);
    let sent = Instant::now();
    socket.write_all(b"first").unwrap();
    // Taken off the delay at once: it still comes after the chunk before it.
    std::thread::sleep(Duration::from_millis(20));
    proxy.set_delay(Duration::ZERO);
    socket.write_all(b"second").unwrap();
    assert_eq!(read_exactly(&mut socket, 11), b"firstsecond");
    // Out through the delay, back without it.
    assert!(sent.elapsed() >= delay, "{:?}", sent.elapsed());

    proxy.set_delay(delay);
    let sent = Instant::now();
    socket.write_all(b"again").unwrap();
    assert_eq!(read_exactly(&mut socket, 5), b"again");
    // Delayed on the way there and on the way back.
    assert!(sent.elapsed() >= 2 * delay, "{:?}", sent.elapsed());
}

#[test]
fn a_rate_limit_slows_a_megabyte_to_about_the_rate() {
    let (received, arrivals) = mpsc::channel();
    let sink = TestServer::sink(received);
    let proxy = FaultProxy::start(sink.port).unwrap();
    let rate = 1_000_000u64;
    proxy.set_rate(Some(rate));
    let mut socket = connect(&proxy);
    let started = Instant::now();
    socket.write_all(&vec![7u8; 1_000_000]).unwrap();
    socket.shutdown(Shutdown::Write).unwrap();
    let (total, last) = arrivals.recv_timeout(READ_TIMEOUT).unwrap();
    assert_eq!(total, 1_000_000);
    let took = last - started;
    // One second at the rate, less the first slice that goes at once; a loaded machine
    // may add to it.
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "1 MB at {rate} B/s took {took:?}"
    );

    // Unthrottled, the same megabyte is much faster.
    proxy.set_rate(None);
    let mut socket = connect(&proxy);
    let started = Instant::now();
    socket.write_all(&vec![7u8; 1_000_000]).unwrap();
    socket.shutdown(Shutdown::Write).unwrap();
    let (total, last) = arrivals.recv_timeout(READ_TIMEOUT).unwrap();
    assert_eq!(total, 1_000_000);
    assert!(
        last - started < Duration::from_millis(500),
        "{:?}",
        last - started
    );
}

#[test]
fn a_cut_closes_open_connections_and_new_ones_still_pass() {
    let echo = TestServer::echo();
    let proxy = FaultProxy::start(echo.port).unwrap();
    let mut first = connect(&proxy);
    let mut second = connect(&proxy);
    // Both through the proxy's accept before the cut.
    for socket in [&mut first, &mut second] {
        socket.write_all(b"x").unwrap();
        assert_eq!(read_exactly(socket, 1), b"x");
    }

    proxy.cut();
    assert_closed(&mut first, Duration::from_secs(2));
    assert_closed(&mut second, Duration::from_secs(2));

    let mut third = connect(&proxy);
    third.write_all(b"after").unwrap();
    assert_eq!(read_exactly(&mut third, 5), b"after");
    assert_eq!(proxy.accepted(), 3);
}

#[test]
fn refused_connections_close_at_once_until_accepted_again() {
    let echo = TestServer::echo();
    let proxy = FaultProxy::start(echo.port).unwrap();
    let mut open = connect(&proxy);
    // Through the proxy's accept before refusing starts.
    open.write_all(b"open").unwrap();
    assert_eq!(read_exactly(&mut open, 4), b"open");

    proxy.refuse(true);
    let mut refused = connect(&proxy);
    assert_closed(&mut refused, Duration::from_secs(2));
    // The connection opened before goes on.
    open.write_all(b"still").unwrap();
    assert_eq!(read_exactly(&mut open, 5), b"still");

    proxy.refuse(false);
    let mut accepted = connect(&proxy);
    accepted.write_all(b"back").unwrap();
    assert_eq!(read_exactly(&mut accepted, 4), b"back");
}

#[test]
fn a_server_that_is_down_closes_the_client() {
    let closed = crate::ClosedPort::reserve().unwrap();
    let proxy = FaultProxy::start(closed.port()).unwrap();
    let mut socket = connect(&proxy);
    assert_closed(&mut socket, Duration::from_secs(2));
    assert_eq!(proxy.open_connections(), 0);
}

#[test]
fn dropping_the_proxy_ends_its_connections_even_stalled() {
    let echo = TestServer::echo();
    let proxy = FaultProxy::start(echo.port).unwrap();
    let mut socket = connect(&proxy);
    proxy.set_delay(Duration::from_millis(100));
    proxy.stall();
    socket.write_all(b"held").unwrap();
    let dropped = Instant::now();
    drop(proxy);
    // Drop joined every thread, promptly.
    assert!(dropped.elapsed() < Duration::from_secs(2));
    assert_closed(&mut socket, Duration::from_secs(2));
}
