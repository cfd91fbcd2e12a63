//! Part "scan": how fast `--mode scan` copies a keyspace with its pacing lifted, beside
//! `--mode replication` on the same data in the same run, and where the time goes: the
//! CPU ferry, the source and the target each spent (`ru_utime + ru_stime` of ferry,
//! `INFO cpu` of the servers) and the source's commands (`INFO commandstats`).

use std::fmt::Write as _;
use std::fs;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use ferry_testkit::{Server, ServerKind};

use super::datasets::{self, thousands, Recipe};
use super::measure;
use super::migrate::{no_sync_delay, IN_SYNC};
use super::table::Table;
use super::{Context, Section};

const SYNC_TIMEOUT: Duration = Duration::from_secs(900);
/// High enough that the pacing never waits: the copy runs as fast as it can.
const UNPACED: &str = "100000000";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Replication,
    Scan,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Replication => "--mode replication",
            Mode::Scan => "--mode scan (unpaced)",
        }
    }

    /// The line ferry prints once the target holds what the source had.
    fn in_sync(self) -> &'static str {
        match self {
            Mode::Replication => IN_SYNC,
            Mode::Scan => "ferry: in sync: every key scanned",
        }
    }
}

struct Run {
    mode: Mode,
    wall: f64,
    ferry_cpu: f64,
    source_cpu: f64,
    target_cpu: f64,
    /// Source commands per key copied, by name, for the scan (SCAN, DUMP, …).
    source_calls: Vec<(String, u64)>,
}

pub fn run(ctx: &Context) -> Result<Section> {
    let keys = if ctx.quick { 50_000 } else { 200_000 };
    let recipe = Recipe::Mixed {
        keys,
        value_size: 100,
    };
    let out = ctx.dir.join("out");
    fs::create_dir_all(&out)?;
    println!("filling Redis 7.0: {}", recipe.describe());
    let source = Server::start(ServerKind::Redis70)?;
    datasets::fill(&source, &mut source.try_client()?, recipe)?;
    no_sync_delay(&source)?;
    let source_keys = datasets::count_keys(&mut source.try_client()?)?;

    let mut runs = Vec::new();
    for _ in 0..ctx.runs.max(1) {
        for mode in [Mode::Replication, Mode::Scan] {
            let target = Server::start(ServerKind::Valkey81)?;
            let run = copy_once(ctx, &source, &target, mode)?;
            let copied = datasets::count_keys(&mut target.try_client()?)?;
            if copied + 10 < source_keys {
                bail!(
                    "{} left the target with {copied} of {source_keys} keys",
                    mode.label()
                );
            }
            println!(
                "{}: {:.2} s; CPU: ferry {:.2} s, source {:.2} s, target {:.2} s",
                mode.label(),
                run.wall,
                run.ferry_cpu,
                run.source_cpu,
                run.target_cpu
            );
            runs.push(run);
        }
    }

    let fastest = |mode: Mode| {
        runs.iter()
            .filter(|r| r.mode == mode)
            .min_by(|a, b| a.wall.total_cmp(&b.wall))
            .context("no run")
    };
    let (replication, scan) = (fastest(Mode::Replication)?, fastest(Mode::Scan)?);
    let mut table = Table::new(&[
        "",
        ">time (s)",
        ">keys/s",
        ">ferry CPU (s)",
        ">source CPU (s)",
        ">target CPU (s)",
    ]);
    for run in [replication, scan] {
        table.row(vec![
            run.mode.label().to_owned(),
            format!("{:.2}", run.wall),
            thousands((source_keys as f64 / run.wall) as u64),
            format!("{:.2}", run.ferry_cpu),
            format!("{:.2}", run.source_cpu),
            format!("{:.2}", run.target_cpu),
        ]);
    }
    let mut text = String::new();
    writeln!(
        text,
        "The same Redis 7.0 ({}, {} keys) copied into an empty Valkey 8.1: time from start \
         to ferry's in-sync line, fastest of {} run(s) each, alternating. Scan mode with \
         `--scan-keys-per-sec {UNPACED}` (its default, 5,000, bounds the load on a managed \
         source). CPU: ferry's own (rusage), the servers' by `INFO cpu` before and after, their \
         children included (the fork that writes the snapshot).\n",
        recipe.describe(),
        thousands(source_keys),
        ctx.runs.max(1)
    )?;
    writeln!(text, "{}", table.render())?;
    let per_key: Vec<String> = scan
        .source_calls
        .iter()
        .map(|(name, calls)| format!("{name} {:.2}", *calls as f64 / source_keys as f64))
        .collect();
    let line = format!(
        "scan / replication: {:.2}× the time; source commands per key in the scan: {}.",
        scan.wall / replication.wall,
        per_key.join(", ")
    );
    println!("\n{}\n{line}", table.render());
    writeln!(text, "- {line}")?;
    Ok(Section {
        title: "Scan mode beside replication".to_owned(),
        markdown: text,
    })
}

fn copy_once(ctx: &Context, source: &Server, target: &Server, mode: Mode) -> Result<Run> {
    let out = ctx.dir.join("out");
    let state = out.join("scan.state");
    let _ = fs::remove_file(&state);
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query::<()>(&mut source.try_client()?)?;
    let (source_before, target_before) = (cpu_seconds(source)?, cpu_seconds(target)?);
    let mut command = Command::new(&ctx.ferry);
    command
        .args(["migrate", "--source"])
        .arg(source.url())
        .arg("--target")
        .arg(target.url());
    match mode {
        Mode::Replication => command.arg("--state").arg(&state),
        Mode::Scan => command.args(["--mode", "scan", "--scan-keys-per-sec", UNPACED]),
    };
    let mut running = measure::spawn(command, &out.join("scan-stderr.txt"))?;
    let took = running.wait_for_line(mode.in_sync(), SYNC_TIMEOUT)?;
    let (source_after, target_after) = (cpu_seconds(source)?, cpu_seconds(target)?);
    let source_calls = match mode {
        Mode::Scan => command_calls(source)?,
        Mode::Replication => Vec::new(),
    };
    match running.stop(libc::SIGTERM)? {
        Ok(sample) => Ok(Run {
            mode,
            wall: took.as_secs_f64(),
            ferry_cpu: sample.cpu.as_secs_f64(),
            source_cpu: source_after - source_before,
            target_cpu: target_after - target_before,
            source_calls,
        }),
        Err(refusal) => bail!(
            "ferry migrate {} failed: {}",
            mode.label(),
            refusal.reason()
        ),
    }
}

/// The CPU a server used, in seconds: its own and its children's (the fork that writes a
/// snapshot for a replica).
fn cpu_seconds(server: &Server) -> Result<f64> {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query(&mut server.try_client()?)?;
    let field = |name: &str| {
        info.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(':')?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    Ok(field("used_cpu_user")
        + field("used_cpu_sys")
        + field("used_cpu_user_children")
        + field("used_cpu_sys_children"))
}

/// The source's calls by command since `CONFIG RESETSTAT`, the most called first.
fn command_calls(server: &Server) -> Result<Vec<(String, u64)>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.try_client()?)?;
    let mut calls: Vec<(String, u64)> = info
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let count = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_uppercase(), count))
        })
        // The bench's own reads and ferry's setup, not the copy.
        .filter(|(name, _)| {
            !["INFO", "CONFIG", "PING", "SELECT"]
                .iter()
                .any(|own| name.starts_with(own))
        })
        .collect();
    calls.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    calls.truncate(5);
    Ok(calls)
}
