//! Shared by the `migrate_*` tests (and by `cutover` and `relay`): runs the built `ferry
//! migrate` (or another command) as a child process, watches its stderr, and compares
//! servers.

use super::{http_post, FERRY};
use ferry_testkit::expect::{after_policies, FieldTtl, VectorSets};
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::workload::{forget_unreplicated_group_state, Workload, WorkloadStats};
use ferry_testkit::Server;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const IN_SYNC_TIMEOUT: Duration = Duration::from_secs(180);

/// The variable every ferry the tests start finds the runs' control token in (POST /stop):
/// runs started with [`CONTROL_FLAGS`] take it, and cutover and rollback send it.
pub const CONTROL_TOKEN_ENV: &str = "FERRY_TEST_CONTROL_TOKEN";
pub const CONTROL_TOKEN: &str = "test-control-token-5f0c9e2a71b4";
pub const CONTROL_FLAGS: [&str; 2] = ["--control-token-env", CONTROL_TOKEN_ENV];

/// A running `ferry migrate` (or `ferry <command>`, from [`Ferry::start_command`]).
pub struct Ferry {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    stdout_reader: Option<std::thread::JoinHandle<()>>,
}

impl Ferry {
    pub fn start(args: &[&str]) -> Ferry {
        Ferry::start_command("migrate", args)
    }

    /// Runs `ferry <command> <args>` (a cutover that goes on as the reverse migration).
    pub fn start_command(command: &str, args: &[&str]) -> Ferry {
        Ferry::start_command_with_env(command, args, &[])
    }

    /// [`Ferry::start_command`] with more environment variables (passwords by `-env`).
    pub fn start_command_with_env(command: &str, args: &[&str], env: &[(&str, &str)]) -> Ferry {
        let mut child = Command::new(FERRY)
            .arg(command)
            .args(args)
            .env(CONTROL_TOKEN_ENV, CONTROL_TOKEN)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ferry");
        let stderr = child.stderr.take().expect("stderr");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stdout_sink = stdout.clone();
        let child_stdout = child.stdout.take().expect("stdout");
        // Read continuously, so that ferry never blocks on a full pipe.
        let stdout_reader = std::thread::spawn(move || {
            for line in BufReader::new(child_stdout).lines() {
                let Ok(line) = line else { break };
                stdout_sink.lock().unwrap().push(line);
            }
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("FERRY_TEST_ECHO").is_some() {
                    eprintln!("[ferry] {line}");
                }
                sink.lock().unwrap().push(line);
            }
        });
        Ferry {
            child,
            lines,
            stdout,
            reader: Some(reader),
            stdout_reader: Some(stdout_reader),
        }
    }

    pub fn migrate(source: &Server, target: &Server, state: &Path, extra: &[&str]) -> Ferry {
        Ferry::migrate_between(&source.url(), &target.url(), state, extra)
    }

    /// [`Ferry::migrate`] between URLs (a cluster's, say).
    pub fn migrate_between(source: &str, target: &str, state: &Path, extra: &[&str]) -> Ferry {
        let state = state.display().to_string();
        let mut args = vec!["--source", source, "--target", target, "--state", &state];
        args.extend_from_slice(extra);
        Ferry::start(&args)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The lines ferry printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for a stderr line containing `needle`; panics with the output on timeout or
    /// if ferry exits first.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.find_line(needle) {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                if let Some(line) = self.find_line(needle) {
                    return line;
                }
                panic!(
                    "ferry exited ({status}) before printing {needle:?}:\n{}",
                    self.output()
                );
            }
            if Instant::now() > deadline {
                panic!("no {needle:?} within {timeout:?}:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The first stderr line so far containing `needle`.
    fn find_line(&self, needle: &str) -> Option<String> {
        let lines = self.lines.lock().unwrap();
        lines.iter().find(|l| l.contains(needle)).cloned()
    }

    /// The address ferry logged for `--metrics-addr 127.0.0.1:0`, within `timeout`.
    pub fn status_address(&mut self, timeout: Duration) -> String {
        let line = self.wait_for("serving /metrics and /status on", timeout);
        line.rsplit("http://").next().unwrap().trim().to_owned()
    }

    pub fn wait_in_sync(&mut self) {
        self.wait_for("ferry: in sync at offset", IN_SYNC_TIMEOUT);
    }

    /// A cluster source: every shard caught up.
    pub fn wait_all_shards_in_sync(&mut self) {
        self.wait_for("ferry: in sync: all", IN_SYNC_TIMEOUT);
    }

    /// Waits for the exit; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                for reader in [self.reader.take(), self.stdout_reader.take()]
                    .into_iter()
                    .flatten()
                {
                    let _ = reader.join();
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("ferry still running after {timeout:?}:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and the exit reaped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn master_repl_offset(server: &Server) -> i64 {
    let mut con = server.client();
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut con)
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("master_repl_offset")
}

/// The offset ferry's state file says is applied.
pub fn applied_offset(state: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(state).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("replid")?.as_str()?;
    value.get("offset")?.as_i64()
}

/// Waits until ferry's state file records everything the source has written so far.
pub fn wait_applied(source: &Server, state: &Path, ferry: &Ferry) {
    let wanted = master_repl_offset(source);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if applied_offset(state).is_some_and(|o| o >= wanted) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "offset {wanted} not applied within 60 s (state says {:?}):\n{}",
                applied_offset(state),
                ferry.output()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Captures the source, waits until ferry has applied everything the source wrote up to
/// then, and captures the target. Reading the source makes it expire due keys lazily and
/// replicate their DELs; the target, whose expiries ferry holds for exactly those DELs,
/// must have them before it is read.
pub fn capture_in_step(
    source: &Server,
    target: &Server,
    state: &Path,
    ferry: &Ferry,
) -> (Snapshot, Snapshot) {
    let expected = Snapshot::capture(source).expect("capture source");
    wait_applied(source, state, ferry);
    let actual = Snapshot::capture(target).expect("capture target");
    (expected, actual)
}

/// The testkit's write load on a server (`Workload::spawn`), stopped on demand.
pub struct Load {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<WorkloadStats>,
}

impl Load {
    pub fn start(server: &Server) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = Workload::spawn(server.url(), server.kind(), stop.clone());
        Load { stop, thread }
    }

    /// Stops the load and waits for it: what it did.
    pub fn stop(self) -> WorkloadStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the load ends")
    }
}

/// A write load touching every type, expiries, MULTI/EXEC and a second database.
pub fn simple_load(server: &Server, round: u32) {
    let mut con = server.client();
    let mut pipe = redis::pipe();
    for i in 0..200u32 {
        let n = round * 1000 + i;
        pipe.cmd("SET").arg(format!("load:s:{n}")).arg(n).ignore();
        pipe.cmd("INCR").arg("load:counter").ignore();
        pipe.cmd("LPUSH").arg("load:list").arg(n).ignore();
        pipe.cmd("HSET")
            .arg("load:hash")
            .arg(format!("f{}", n % 50))
            .arg(n)
            .ignore();
        pipe.cmd("ZADD")
            .arg("load:zset")
            .arg(n as f64 / 7.0)
            .arg(format!("m{}", n % 80))
            .ignore();
        pipe.cmd("SADD").arg("load:set").arg(n % 300).ignore();
        pipe.cmd("XADD")
            .arg("load:stream")
            .arg("*")
            .arg("n")
            .arg(n)
            .ignore();
        if i % 10 == 0 {
            pipe.cmd("DEL")
                .arg(format!("load:s:{}", n.saturating_sub(5)))
                .ignore();
            pipe.cmd("PEXPIREAT")
                .arg(format!("load:s:{n}"))
                .arg(4_102_444_800_000i64 + n as i64)
                .ignore();
        }
    }
    pipe.query::<()>(&mut con).unwrap();
    // A transaction, and writes to another database.
    redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("load:tx:a")
        .arg(round)
        .cmd("INCRBY")
        .arg("load:tx:b")
        .arg(round)
        .cmd("RPUSH")
        .arg("load:tx:list")
        .arg(round)
        .query::<()>(&mut con)
        .unwrap();
    // Scripts (replicated as their effects), renames, moves between databases, a database
    // flushed, databases swapped back and forth.
    redis::cmd("EVAL")
        .arg("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])")
        .arg(2)
        .arg(format!("load:lua:{round}"))
        .arg("load:lua:counter")
        .arg(round)
        .query::<i64>(&mut con)
        .unwrap();
    redis::cmd("SET")
        .arg("load:rename:from")
        .arg(round)
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("RENAME")
        .arg("load:rename:from")
        .arg(format!("load:rename:to:{round}"))
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("SET")
        .arg(format!("load:move:{round}"))
        .arg(round)
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("MOVE")
        .arg(format!("load:move:{round}"))
        .arg(2)
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("SELECT").arg(7).query::<()>(&mut con).unwrap();
    redis::cmd("SET")
        .arg("load:doomed")
        .arg(round)
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("FLUSHDB").query::<()>(&mut con).unwrap();
    redis::cmd("SET")
        .arg("load:after:flush")
        .arg(round)
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("SWAPDB")
        .arg(7)
        .arg(8)
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("SELECT").arg(1).query::<()>(&mut con).unwrap();
    redis::cmd("SET")
        .arg(format!("load:db1:{round}"))
        .arg("x")
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("HSET")
        .arg("load:db1:hash")
        .arg(round)
        .arg(round)
        .query::<()>(&mut con)
        .unwrap();
}

/// Asserts the two servers hold the same data (under `options`).
pub fn assert_same(source: &Server, target: &Server, options: &DiffOptions) {
    let expected = Snapshot::capture(source).expect("capture source");
    let actual = Snapshot::capture(target).expect("capture target");
    let between = format!("between {} and {}", source.kind(), target.kind());
    assert_snapshots_equal(&expected, &actual, options, &between, "");
}

/// Asserts `actual` holds what the source held in `before` as the policies (`field_ttl`,
/// `vectors`) promise, consumer-group state that does not replicate left out on both sides;
/// see [`assert_snapshots_equal`]. Returns what was expected.
pub fn assert_as_policies_promise(
    before: &Snapshot,
    mut actual: Snapshot,
    (field_ttl, vectors): (FieldTtl, VectorSets),
    options: &DiffOptions,
    between: &str,
    context: &str,
) -> Snapshot {
    let mut expected = after_policies(before, field_ttl, vectors).snapshot;
    forget_unreplicated_group_state(&mut expected);
    forget_unreplicated_group_state(&mut actual);
    assert_snapshots_equal(&expected, &actual, options, between, context);
    expected
}

/// Asserts `actual` holds what `expected` does (under `options`), and that there was
/// something to compare. A failure shows the first 40 differences, `between` (which
/// servers) and `context` (ferry's log, say).
pub fn assert_snapshots_equal(
    expected: &Snapshot,
    actual: &Snapshot,
    options: &DiffOptions,
    between: &str,
    context: &str,
) {
    let differences = expected.diff(actual, options);
    let shown: Vec<String> = differences.iter().take(40).map(|d| d.to_string()).collect();
    assert!(
        differences.is_empty(),
        "{} differences {between}:\n{}\n{context}",
        differences.len(),
        shown.join("\n")
    );
    assert!(expected.key_count() > 0, "nothing to compare {between}");
}

/// The ways a `POST /stop` that must be refused arrives, each with what ferry answers:
/// no token, a wrong one, and the right one from a browser page of another site (a
/// cross-site form post, which carries that site's `Origin`).
pub fn refused_stops(addr: &str) -> Vec<(&'static str, u16, String)> {
    let bearer = format!("Bearer {CONTROL_TOKEN}");
    let wrong = format!("Bearer {}x", &CONTROL_TOKEN[..CONTROL_TOKEN.len() - 1]);
    let attempts: [(&str, Vec<(&str, &str)>); 4] = [
        ("no token", vec![]),
        ("a wrong token", vec![("Authorization", wrong.as_str())]),
        (
            "a cross-site form post",
            vec![
                ("Origin", "http://attacker.example"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
        ),
        (
            "the right token from another origin",
            vec![
                ("Origin", "http://attacker.example"),
                ("Authorization", bearer.as_str()),
            ],
        ),
    ];
    attempts
        .into_iter()
        .map(|(what, headers)| {
            let (code, body) = http_post(addr, "/stop", &headers);
            (what, code, body)
        })
        .collect()
}
