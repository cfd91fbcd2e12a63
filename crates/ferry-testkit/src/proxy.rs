//! A TCP proxy on loopback that faults the link between a client under test and a server,
//! on command, while traffic flows: cut every connection, refuse new ones, stall both
//! directions, delay each chunk (order kept), limit the rate. It only moves bytes; what a
//! server answers is the server's.
//!
//! ```no_run
//! use ferry_testkit::{FaultProxy, Server, ServerKind};
//! let server = Server::start(ServerKind::Valkey81)?;
//! let proxy = FaultProxy::start(server.port())?;
//! // point the client under test at proxy.url(), then:
//! proxy.stall();
//! proxy.resume();
//! proxy.cut();
//! # anyhow::Ok(())
//! ```
//!
//! Every connection runs four threads: per direction a reader and a deliverer joined by a
//! bounded queue, so that a delay does not slow the throughput down and a stalled or slow
//! side pushes back on the sender instead of filling the proxy's memory. Every thread ends
//! when the proxy is dropped.

mod pump;

use anyhow::{Context, Result};
use socket2::SockRef;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the acceptor looks for a new connection or the proxy's end.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// Bound on connecting to the upstream server.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on each wait on a fault setting, so a thread sees the proxy's end promptly.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// A running proxy from `127.0.0.1:port()` to `127.0.0.1:upstream`.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// What the faults are now; read by every pump before each step.
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    stalled: bool,
    delay: Duration,
    /// Bytes per second, per connection and direction.
    rate: Option<u64>,
}

/// Bytes delivered each way and connections accepted.
#[derive(Debug, Default)]
struct Counters {
    to_upstream: AtomicU64,
    to_client: AtomicU64,
    accepted: AtomicU64,
}

struct Shared {
    upstream: u16,
    closing: AtomicBool,
    refusing: AtomicBool,
    faults: Mutex<Faults>,
    faults_changed: Condvar,
    /// Both sockets of every open connection, by connection id: what `cut` closes.
    open: Mutex<Vec<(u64, [TcpStream; 2])>>,
    /// The pumps' threads, joined on drop.
    workers: Mutex<Vec<JoinHandle<()>>>,
    counters: Counters,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16) -> Result<FaultProxy> {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("cannot bind the proxy's loopback port")?;
        let port = listener.local_addr()?.port();
        // Non-blocking, so that the acceptor sees the proxy's end without a connection.
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            upstream: upstream_port,
            closing: AtomicBool::new(false),
            refusing: AtomicBool::new(false),
            faults: Mutex::new(Faults::default()),
            faults_changed: Condvar::new(),
            open: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
            counters: Counters::default(),
        });
        let acceptor = std::thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn({
                let shared = shared.clone();
                move || accept_loop(listener, shared)
            })
            .context("cannot start the proxy's thread")?;
        Ok(FaultProxy {
            port,
            shared,
            acceptor: Some(acceptor),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Closes every open connection, on both sides, at once (the client and the server
    /// each see their connection end); new connections are still accepted.
    pub fn cut(&self) {
        let open = std::mem::take(&mut *lock(&self.shared.open));
        for (_, sockets) in open {
            for socket in sockets {
                abort(&socket);
            }
        }
    }

    /// While `true`, every new connection is closed as soon as it is accepted; open ones
    /// go on.
    pub fn refuse(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Stops forwarding in both directions, sockets kept open (new connections too), until
    /// [`FaultProxy::resume`].
    pub fn stall(&self) {
        self.shared.update(|faults| faults.stalled = true);
    }

    pub fn resume(&self) {
        self.shared.update(|faults| faults.stalled = false);
    }

    /// Each chunk read from now on is delivered `delay` after it arrived, in order per
    /// direction (`Duration::ZERO`: none).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.update(|faults| faults.delay = delay);
    }

    /// Limits each direction of each connection to `bytes_per_sec` (`None`: no limit).
    pub fn set_rate(&self, bytes_per_sec: Option<u64>) {
        self.shared
            .update(|faults| faults.rate = bytes_per_sec.map(|rate| rate.max(1)));
    }

    /// Bytes delivered to the server so far.
    pub fn bytes_to_upstream(&self) -> u64 {
        self.shared.counters.to_upstream.load(Ordering::Relaxed)
    }

    /// Bytes delivered to clients so far.
    pub fn bytes_to_client(&self) -> u64 {
        self.shared.counters.to_client.load(Ordering::Relaxed)
    }

    /// Connections accepted so far (refused ones included).
    pub fn accepted(&self) -> u64 {
        self.shared.counters.accepted.load(Ordering::Relaxed)
    }

    /// Connections open now (both sides connected, not cut, not ended).
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.open).len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        self.shared.faults_changed.notify_all();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // The acceptor is gone: no connection joins the lists any more.
        self.cut();
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

impl Shared {
    fn update(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut lock(&self.faults));
        self.faults_changed.notify_all();
    }

    fn faults(&self) -> Faults {
        *lock(&self.faults)
    }

    fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Waits while the link is stalled; `false` once the proxy is closing.
    fn wait_flowing(&self) -> bool {
        let mut faults = lock(&self.faults);
        loop {
            if self.closing() {
                return false;
            }
            if !faults.stalled {
                return true;
            }
            faults = self
                .faults_changed
                .wait_timeout(faults, WAIT_SLICE)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Sleeps until `when`; `false` once the proxy is closing.
    fn sleep_until(&self, when: Instant) -> bool {
        loop {
            if self.closing() {
                return false;
            }
            let now = Instant::now();
            if now >= when {
                return true;
            }
            std::thread::sleep((when - now).min(WAIT_SLICE));
        }
    }

    fn forget(&self, connection: u64) {
        lock(&self.open).retain(|(id, _)| *id != connection);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    while !shared.closing() {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
            Err(_) => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        if shared.refusing.load(Ordering::SeqCst) {
            abort(&client);
            continue;
        }
        next_id += 1;
        if let Err(e) = connect(next_id, client, &shared) {
            eprintln!("fault proxy: {e:#}");
        }
    }
}

/// Opens the upstream side of a new connection and starts its pumps; the client's socket
/// is closed when the server cannot be reached.
fn connect(id: u64, client: TcpStream, shared: &Arc<Shared>) -> Result<()> {
    client.set_nonblocking(false)?;
    let upstream_addr = std::net::SocketAddr::from(([127, 0, 0, 1], shared.upstream));
    let server = match TcpStream::connect_timeout(&upstream_addr, UPSTREAM_CONNECT_TIMEOUT) {
        Ok(server) => server,
        Err(_) => {
            // As a client would see a server that is down.
            abort(&client);
            return Ok(());
        }
    };
    for socket in [&client, &server] {
        socket.set_nodelay(true)?;
    }
    lock(&shared.open).push((id, [client.try_clone()?, server.try_clone()?]));
    let connection = Arc::new(pump::Connection::new(id, shared.clone()));
    let mut workers = Vec::with_capacity(4);
    workers.extend(pump::spawn(
        client.try_clone()?,
        server.try_clone()?,
        pump::Direction::ToUpstream,
        connection.clone(),
    )?);
    workers.extend(pump::spawn(
        server,
        client,
        pump::Direction::ToClient,
        connection,
    )?);
    lock(&shared.workers).extend(workers);
    Ok(())
}

/// Closes a socket at once, with a reset rather than an orderly end where the kernel
/// allows it (no lingering), so both peers see the connection fail.
fn abort(socket: &TcpStream) {
    let _ = SockRef::from(socket).set_linger(Some(Duration::ZERO));
    let _ = socket.shutdown(Shutdown::Both);
}

/// A poisoned lock here only means a test thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
