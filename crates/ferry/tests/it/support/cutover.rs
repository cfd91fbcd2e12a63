//! Shared by the `cutover_*` tests: a running migration with its status address, the
//! `ferry cutover`/`ferry rollback` commands, and a counter workload whose clients follow
//! the cutover hook.

use super::migrate::{Ferry, CONTROL_FLAGS, CONTROL_TOKEN, CONTROL_TOKEN_ENV};
use ferry_testkit::{Server, ServerKind};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The policies a migration from `source` needs: Redis 8's vector sets and hash field
/// TTLs have no place in Valkey before 9.
pub fn policies(source: &Server) -> Vec<&'static str> {
    match source.kind() {
        ServerKind::Redis80 => vec!["--vector-set", "skip", "--hash-field-ttl", "persist"],
        _ => Vec::new(),
    }
}

/// A `ferry migrate` with `--metrics-addr`, in sync.
pub fn start_migrate(
    source: &Server,
    target: &Server,
    state: &Path,
    extra: &[&str],
) -> (Ferry, String) {
    let mut args = vec!["--metrics-addr", "127.0.0.1:0"];
    args.extend_from_slice(&CONTROL_FLAGS);
    args.extend_from_slice(extra);
    let mut ferry = Ferry::migrate(source, target, state, &args);
    let addr = status_addr(&mut ferry);
    ferry.wait_in_sync();
    (ferry, addr)
}

/// The address a run logged for `--metrics-addr 127.0.0.1:0`.
pub fn status_addr(ferry: &mut Ferry) -> String {
    ferry.status_address(Duration::from_secs(20))
}

/// Runs `ferry <args>` to its end, with the control token its `--control-token-env` names.
pub fn ferry(args: &[String]) -> Output {
    super::ferry_with_env(args, &[(CONTROL_TOKEN_ENV, CONTROL_TOKEN)])
}

/// The arguments of a cutover (or rollback) from `source` to `target` against the run at
/// `status`, with the control token and long pause and verify timeouts unless `extra`
/// sets them.
pub fn switch_args(
    command: &str,
    source: &Server,
    target: &Server,
    status: &str,
    extra: &[&str],
) -> Vec<String> {
    switch_args_between(command, &source.url(), &target.url(), status, extra)
}

/// [`switch_args`] between URLs (a cluster is given by any of its nodes). The long
/// timeouts give way to those `extra` sets.
pub fn switch_args_between(
    command: &str,
    source: &str,
    target: &str,
    status: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<&str> = vec![
        command, "--source", source, "--target", target, "--status", status, "--json",
    ];
    args.extend_from_slice(&CONTROL_FLAGS);
    // A long pause timeout, so a pause left behind would show; and a debug build
    // comparing big keys on a busy machine is slow, which is not what these tests check.
    for (flag, value) in [
        ("--pause-timeout-ms", "60000"),
        ("--verify-timeout-ms", "60000"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    args.iter().map(|s| s.to_string()).collect()
}

/// The JSON report a cutover printed.
pub fn report(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let first = stdout.lines().next().unwrap_or_default();
    serde_json::from_str(first).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}):\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The first stdout line (the cutover's JSON report), once printed.
pub fn first_stdout_line(ferry: &Ferry) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(line) = ferry.stdout_lines().first() {
            return serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        }
        assert!(Instant::now() < deadline, "no report:\n{}", ferry.output());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts the server takes a write within 5 s (not held by a pause).
pub fn assert_serving(server: &Server) {
    let mut con = server.client();
    con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A source left paused (the tests pause for up to 60 s) would time this out.
    redis::cmd("SET")
        .arg("cutover:probe")
        .arg("written")
        .query::<()>(&mut con)
        .expect("the source takes a write after the failed cutover (still paused?)");
}

/// Counters incremented by client threads. Each thread sends INCR to the server named in
/// the route file (host:port, rewritten by the cutover hook) and counts the INCRs that
/// server acknowledged. A client whose connection fails reconnects, reading the route
/// again, as an application would after the hook changed its configuration.
pub struct Counters {
    pub route: PathBuf,
    stop: Arc<AtomicBool>,
    acked: Vec<Arc<AtomicU64>>,
    threads: Vec<JoinHandle<()>>,
}

pub const COUNTERS: usize = 4;

pub fn counter_key(i: usize) -> String {
    format!("cutover:counter:{i}")
}

impl Counters {
    pub fn start(first: &Server, dir: &Path) -> Counters {
        let route = dir.join("route");
        std::fs::write(&route, format!("127.0.0.1:{}", first.port())).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut acked = Vec::new();
        let mut threads = Vec::new();
        for i in 0..COUNTERS {
            let count = Arc::new(AtomicU64::new(0));
            acked.push(count.clone());
            let (route, stop) = (route.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                count_on(&counter_key(i), &route, &stop, &count)
            }));
        }
        Counters {
            route,
            stop,
            acked,
            threads,
        }
    }

    /// Waits until every counter was acknowledged at least `n` more times.
    pub fn wait_progress(&self, n: u64) {
        let start: Vec<u64> = self
            .acked
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .acked
            .iter()
            .zip(&start)
            .any(|(a, s)| a.load(Ordering::SeqCst) < s + n)
        {
            assert!(Instant::now() < deadline, "the counters stopped moving");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the clients; the acknowledged INCRs per counter.
    pub fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            thread.join().expect("a counter thread");
        }
        self.acked
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .collect()
    }
}

fn count_on(key: &str, route: &Path, stop: &AtomicBool, acked: &AtomicU64) {
    let mut current: Option<(String, redis::Connection)> = None;
    while !stop.load(Ordering::SeqCst) {
        let wanted = std::fs::read_to_string(route).unwrap_or_default();
        let wanted = wanted.trim();
        if current.as_ref().is_none_or(|(addr, _)| addr != wanted) {
            current = connect(wanted).map(|con| (wanted.to_owned(), con));
            if current.is_none() {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        }
        let Some((_, con)) = current.as_mut() else {
            continue;
        };
        match redis::cmd("INCR").arg(key).query::<i64>(con) {
            Ok(_) => {
                acked.fetch_add(1, Ordering::SeqCst);
            }
            // A cluster node sends the client to the node serving the key's slot, as a
            // cluster client follows it (the route keeps naming the cluster).
            Err(error) if error.redirect_node().is_some() => {
                let moved = error
                    .redirect_node()
                    .map(|(address, _slot)| address.to_owned());
                current = moved
                    .and_then(|addr| connect(&addr))
                    .map(|con| (wanted.to_owned(), con));
            }
            // Not acknowledged: not counted. Reconnect (to wherever the route says).
            Err(_) => current = None,
        }
    }
}

fn connect(addr: &str) -> Option<redis::Connection> {
    let client = redis::Client::open(format!("redis://{addr}")).ok()?;
    let con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    // Longer than any pause, so that a write held by the pause waits for its outcome.
    con.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    Some(con)
}

/// The counters' values on a cluster: each read from the primary serving it.
pub fn cluster_counter_values(cluster: &ferry_testkit::Cluster) -> Vec<u64> {
    (0..COUNTERS)
        .map(|i| {
            let key = counter_key(i);
            cluster
                .nodes()
                .iter()
                .find_map(|node| {
                    // Every other primary answers MOVED.
                    redis::cmd("GET")
                        .arg(&key)
                        .query::<Option<u64>>(&mut node.client())
                        .ok()
                })
                .expect("a primary serves the counter")
                .unwrap_or(0)
        })
        .collect()
}

/// `actual` holds what `expected` holds, the counters (which the clients keep moving
/// between the two) left out.
pub fn assert_same_but_counters(
    expected: &ferry_testkit::Cluster,
    actual: &ferry_testkit::Cluster,
) {
    let moving = |_: u32, key: &[u8]| (0..COUNTERS).any(|i| key == counter_key(i).as_bytes());
    let differences = expected.snapshot().unwrap().diff(
        &actual.snapshot().unwrap(),
        &ferry_testkit::snapshot::DiffOptions::new().exclude_keys(moving),
    );
    assert!(
        differences.is_empty(),
        "{} differences, first: {}",
        differences.len(),
        differences[0]
    );
}

/// The counters' values on `server`.
pub fn counter_values(server: &Server) -> Vec<u64> {
    let mut con = server.client();
    (0..COUNTERS)
        .map(|i| {
            redis::cmd("GET")
                .arg(counter_key(i))
                .query::<Option<u64>>(&mut con)
                .unwrap()
                .unwrap_or(0)
        })
        .collect()
}

/// A redis-benchmark write load on `server` until dropped.
pub struct Benchmark(std::process::Child);

impl Benchmark {
    pub fn start(server: &Server) -> Benchmark {
        let child = server
            .benchmark_command()
            .args([
                "-t",
                "set,incr,lpush",
                "-n",
                "100000000",
                "-c",
                "4",
                "-r",
                "100000",
                "-q",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the benchmark");
        Benchmark(child)
    }
}

impl Drop for Benchmark {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
