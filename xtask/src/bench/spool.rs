//! Part "spool": the full-sync loop a small replica output buffer causes, and
//! `--spool-dir`'s way out. One Redis 7.0 source with `client-output-buffer-limit replica
//! 8mb 4mb 5` and a steady write load of about 1.5 MB/s; the target behind a link of
//! 3 MB/s (the testkit's proxy): enough for the writes, not for them and a load at once.
//! Side by side, each for at most a window: Valkey's own replication (a Valkey 8.1 replica
//! behind the same link), `ferry migrate` without a spool, and with one. For each: the full
//! syncs the source served, whether and when it was in sync, ferry's peak memory, and the
//! spool's largest size on disk.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use ferry_testkit::workload::spawn_heavy_writes;
use ferry_testkit::{FaultProxy, Server, ServerKind};

use super::datasets::{self, thousands, Recipe};
use super::measure;
use super::migrate::{no_sync_delay, IN_SYNC};
use super::table::Table;
use super::{Context, Section};

const LINK_BYTES_PER_SEC: u64 = 3 << 20;
const BUFFER_LIMIT: &str = "replica 8mb 4mb 5";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Native,
    Ferry,
    Spooled,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::Native => "Valkey 8.1 replica (REPLICAOF)",
            Route::Ferry => "ferry migrate",
            Route::Spooled => "ferry migrate --spool-dir",
        }
    }
}

struct Outcome {
    path: Route,
    full_syncs: u64,
    in_sync_after: Option<f64>,
    /// ferry ended by itself before it was in sync: after how long.
    gave_up_after: Option<f64>,
    peak_rss: Option<u64>,
    spool_peak: Option<u64>,
}

pub fn run(ctx: &Context) -> Result<Section> {
    let keys = if ctx.quick { 300_000 } else { 600_000 };
    let window = Duration::from_secs(if ctx.quick { 60 } else { 120 });
    let recipe = Recipe::Mixed {
        keys,
        value_size: 100,
    };
    let out = ctx.dir.join("out");
    fs::create_dir_all(&out)?;
    let mut outcomes = Vec::new();
    for path in [Route::Native, Route::Ferry, Route::Spooled] {
        // A source of its own each time: its counters and backlog start from nothing.
        println!("filling Redis 7.0 ({BUFFER_LIMIT}): {}", recipe.describe());
        let source = Server::start_with_args(
            ServerKind::Redis70,
            &["--client-output-buffer-limit", BUFFER_LIMIT],
        )?;
        datasets::fill(&source, &mut source.try_client()?, recipe)?;
        no_sync_delay(&source)?;
        let stop = Arc::new(AtomicBool::new(false));
        let writer = spawn_heavy_writes(source.try_client()?, stop.clone());
        let outcome = match path {
            Route::Native => native(&source, window),
            _ => ferry(ctx, &source, path, window, &out),
        };
        stop.store(true, Ordering::Relaxed);
        let written = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the writer panicked"))?;
        let outcome = outcome?;
        println!(
            "{}: {} full sync(s), {}; {} writes meanwhile",
            path.label(),
            outcome.full_syncs,
            outcome
                .in_sync_after
                .map_or("never in sync".to_owned(), |s| format!(
                    "in sync after {s:.1} s"
                )),
            thousands(written)
        );
        outcomes.push(outcome);
    }

    let mut table = Table::new(&[
        "",
        ">full syncs",
        ">in sync after (s)",
        ">peak RSS (MB)",
        ">spool on disk, peak (MB)",
    ]);
    for outcome in &outcomes {
        table.row(vec![
            outcome.path.label().to_owned(),
            outcome.full_syncs.to_string(),
            match (outcome.in_sync_after, outcome.gave_up_after) {
                (Some(after), _) => format!("{after:.1}"),
                (None, Some(after)) => format!("never: ferry gave up after {after:.0} s"),
                (None, None) => format!("not in {} s", window.as_secs()),
            },
            outcome
                .peak_rss
                .map_or("—".to_owned(), |b| format!("{:.0}", b as f64 / 1e6)),
            outcome
                .spool_peak
                .map_or("—".to_owned(), |b| format!("{:.1}", b as f64 / 1e6)),
        ]);
    }
    let mut text = String::new();
    writeln!(
        text,
        "Redis 7.0 with `client-output-buffer-limit {BUFFER_LIMIT}` ({}), written at about \
         1.5 MB/s throughout; the target (or the native replica) behind a {} MB/s link. Each \
         path on a source of its own, for at most {} s: the full syncs the source served \
         (`sync_full`), the time to ferry's in-sync line (the replica's link up and loaded), \
         ferry's peak RSS (ru_maxrss) and the spool's largest size on disk (sampled every \
         100 ms).\n",
        recipe.describe(),
        LINK_BYTES_PER_SEC >> 20,
        window.as_secs()
    )?;
    writeln!(text, "{}", table.render())?;
    println!("\n{}", table.render());
    Ok(Section {
        title: "A full sync under a small replica buffer, with and without a spool".to_owned(),
        markdown: text,
    })
}

fn info_field(server: &Server, section: &str, field: &str) -> Result<String> {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(&mut server.try_client()?)?;
    Ok(info
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_default()
        .trim()
        .to_owned())
}

fn full_syncs(source: &Server) -> Result<u64> {
    Ok(info_field(source, "stats", "sync_full")?
        .parse()
        .unwrap_or(0))
}

fn native(source: &Server, window: Duration) -> Result<Outcome> {
    let replica = Server::start(ServerKind::Valkey81)?;
    let link = FaultProxy::start(source.port())?;
    link.set_rate(Some(LINK_BYTES_PER_SEC));
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(link.port())
        .query::<()>(&mut replica.try_client()?)?;
    let started = Instant::now();
    let mut in_sync_after = None;
    while started.elapsed() < window {
        let up = info_field(&replica, "replication", "master_link_status")? == "up";
        let loading = info_field(&replica, "replication", "master_sync_in_progress")? == "1";
        if up && !loading {
            in_sync_after = Some(started.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Outcome {
        path: Route::Native,
        full_syncs: full_syncs(source)?,
        in_sync_after,
        gave_up_after: None,
        peak_rss: None,
        spool_peak: None,
    })
}

fn ferry(
    ctx: &Context,
    source: &Server,
    path: Route,
    window: Duration,
    out: &Path,
) -> Result<Outcome> {
    let target = Server::start(ServerKind::Valkey81)?;
    let link = FaultProxy::start(target.port())?;
    link.set_rate(Some(LINK_BYTES_PER_SEC));
    let state = out.join("spool-bench.state");
    let spool = out.join("spool-bench");
    let _ = fs::remove_file(&state);
    let _ = fs::remove_dir_all(&spool);
    let mut command = Command::new(&ctx.ferry);
    command
        .args(["migrate", "--source"])
        .arg(source.url())
        .arg("--target")
        .arg(link.url())
        .arg("--state")
        .arg(&state);
    if path == Route::Spooled {
        command.arg("--spool-dir").arg(&spool);
    }
    let mut running = measure::spawn(command, &out.join("spool-stderr.txt"))?;
    let mut spool_peak = 0u64;
    let mut in_sync_after = None;
    while running.elapsed() < window && !running.has_exited() {
        spool_peak = spool_peak.max(folder_bytes(&spool));
        if running.stderr().contains(IN_SYNC) {
            in_sync_after = Some(running.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let gave_up_after =
        (in_sync_after.is_none() && running.has_exited()).then(|| running.elapsed().as_secs_f64());
    let full_syncs = full_syncs(source)?;
    let sample = running.stop(libc::SIGTERM)?;
    let peak_rss = sample.ok().map(|sample| sample.peak_rss);
    Ok(Outcome {
        path,
        full_syncs,
        in_sync_after,
        gave_up_after,
        peak_rss,
        spool_peak: (path == Route::Spooled).then_some(spool_peak),
    })
}

fn folder_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.metadata().ok())
                .map(|meta| meta.len())
                .sum()
        })
        .unwrap_or(0)
}
