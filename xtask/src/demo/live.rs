//! The demo's main act: `ferry migrate` from a Redis 8.0 under a write load into an empty
//! Valkey 8.1, until in sync; then the writes stop, ferry applies the source's last
//! offset, stops, and both servers are compared key by key.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{sleep, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ferry_testkit::expect::{after_policies, Expected, FieldTtl, VectorSets};
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::workload::{forget_unreplicated_group_state, Workload};
use ferry_testkit::Server;

use crate::bench::migrate::{master_repl_offset, read_state};

const IN_SYNC: &str = "ferry: in sync at offset";
const IN_SYNC_TIMEOUT: Duration = Duration::from_secs(180);
/// How long ferry streams the live load once in sync, before the writes stop.
const STREAMING: Duration = Duration::from_secs(3);
/// Short TTLs of the load run out on both sides; the source's deletions then follow.
const SETTLE: Duration = ferry_testkit::workload::SHORT_TTLS_PASSED;

/// What the act produced, for the comparison.
pub struct Migrated {
    pub expected: Expected,
    pub source: Snapshot,
    pub target: Snapshot,
}

/// `ferry migrate` with its stderr shown as it comes and kept for waiting on lines.
struct RunningFerry {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl RunningFerry {
    fn start(command: &mut Command) -> Result<RunningFerry> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start ferry migrate")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                println!("    {line}");
                if let Ok(mut lines) = sink.lock() {
                    lines.push(line);
                }
            }
        });
        Ok(RunningFerry {
            child,
            lines,
            reader: Some(reader),
        })
    }

    fn has_line(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .is_ok_and(|lines| lines.iter().any(|l| l.contains(needle)))
    }

    fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.has_line(needle) {
            if let Some(status) = self.child.try_wait()? {
                sleep(Duration::from_millis(100));
                if self.has_line(needle) {
                    return Ok(());
                }
                bail!("ferry migrate ended ({status}) before {needle:?}");
            }
            if Instant::now() > deadline {
                bail!("no {needle:?} from ferry migrate within {timeout:?}");
            }
            sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGTERM, as Ctrl-C would: ferry records the applied offset and exits.
    fn stop(mut self) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: plain syscall on our own unreaped child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = self.child.wait()?;
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        if !status.success() {
            bail!("ferry migrate exited with {status}");
        }
        Ok(())
    }
}

impl Drop for RunningFerry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Paths<'a> {
    pub root: &'a Path,
    pub ferry: &'a Path,
    pub state: PathBuf,
    pub exported: PathBuf,
}

pub fn run(paths: &Paths, redis: &Server, valkey: &Server) -> Result<Migrated> {
    let rel = |path: &Path| super::relative(paths.root, path);
    let _ = std::fs::remove_file(&paths.state);
    let _ = std::fs::remove_file(&paths.exported);

    super::step("a write load starts on Redis 8.0 (every type, field TTLs, vector sets)");
    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::spawn(redis.url(), redis.kind(), stop.clone());
    sleep(Duration::from_millis(500));
    println!("writing to {} about 2,000 operations/s", redis.url());

    super::step("ferry migrate, until in sync");
    let mut command = Command::new(paths.ferry);
    command
        .current_dir(paths.root)
        .arg("migrate")
        .arg("--source")
        .arg(redis.url())
        .arg("--target")
        .arg(valkey.url())
        .arg("--state")
        .arg(rel(&paths.state))
        .args(["--hash-field-ttl", "persist", "--vector-set"])
        .arg(format!("export={}", rel(&paths.exported).display()));
    super::show(paths.root, &command);
    let started = Instant::now();
    let mut ferry = RunningFerry::start(&mut command)?;
    ferry.wait_for(IN_SYNC, IN_SYNC_TIMEOUT)?;
    println!(
        "in sync {:.1} s after the start{}; streaming the live writes for {} s",
        started.elapsed().as_secs_f64(),
        sync_delay_note(redis)?,
        STREAMING.as_secs()
    );
    sleep(STREAMING);

    super::step("the writes stop; ferry applies the source's last offset");
    stop.store(true, Ordering::Relaxed);
    let stats = load
        .join()
        .map_err(|_| anyhow::anyhow!("the write load panicked"))?;
    println!("the load sent {} operations", stats.total());
    sleep(SETTLE);
    let last = wait_applied(redis, &paths.state)?;
    println!(
        "{} records offset {last}, Redis 8.0's master_repl_offset",
        rel(&paths.state).display()
    );
    // Reading Redis expires due keys lazily and replicates their DELs: ferry applies
    // those too before Valkey is read (it holds expiries for exactly those DELs).
    let source = Snapshot::capture(redis)?;
    wait_applied(redis, &paths.state)?;
    ferry.stop()?;

    let mut expected = after_policies(&source, FieldTtl::Persist, VectorSets::Remove);
    let mut target = Snapshot::capture(valkey)?;
    forget_unreplicated_group_state(&mut expected.snapshot);
    forget_unreplicated_group_state(&mut target);
    Ok(Migrated {
        expected,
        source,
        target,
    })
}

/// Waits until ferry's state file records Redis's current replication offset; returns it.
fn wait_applied(redis: &Server, state: &Path) -> Result<i64> {
    let last = master_repl_offset(&mut redis.try_client()?)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_state(state).is_none_or(|(_, applied)| applied < last) {
        if Instant::now() > deadline {
            bail!("ferry did not apply the source's offset {last} within 60 s");
        }
        sleep(Duration::from_millis(50));
    }
    Ok(last)
}

/// Redis waits `repl-diskless-sync-delay` (5 s by default) for more replicas before it
/// starts a snapshot: most of the time to in sync on a small dataset.
fn sync_delay_note(redis: &Server) -> Result<String> {
    let reply: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("repl-diskless-sync-delay")
        .query(&mut redis.try_client()?)?;
    Ok(match reply.get(1).map(String::as_str) {
        Some(delay) if delay != "0" => {
            format!(" (of which Redis's repl-diskless-sync-delay {delay} s before its snapshot)")
        }
        _ => String::new(),
    })
}

/// The options of the comparison (none needed: TTLs are absolute on both sides).
pub fn diff_options() -> DiffOptions {
    DiffOptions::new()
}
