//! Part "writer": ferry's own cluster writer (`ClusterPipe`: one deep pipeline per primary,
//! commands re-batched by slot) beside redis-rs's cluster clients, the ecosystem's, on the
//! same commands into the same Valkey 8.1 cluster in the same run: `SET key:i <100 B>` for
//! every key, keys/s and the ratio to ferry's. Each writer runs as the release build of
//! `crates/ferry/examples/cluster_writer.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use ferry_testkit::{Cluster, ServerKind};

use super::datasets::thousands;
use super::table::Table;
use super::{Context, Section};

/// Primaries of the target cluster.
const SHARDS: usize = 3;

/// The writers, by the name the example takes, and how the table names them.
const WRITERS: [(&str, &str); 3] = [
    ("ferry", "ferry `ClusterPipe` (batches of 1,000)"),
    (
        "redis-rs-async",
        "redis-rs async cluster client (1,000 requests in flight)",
    ),
    (
        "redis-rs-pipeline",
        "redis-rs blocking cluster pipeline (1,000 per pipeline)",
    ),
];

pub fn run(ctx: &Context) -> Result<Section> {
    let keys: u64 = if ctx.quick { 100_000 } else { 1_000_000 };
    let program = build(&ctx.root)?;
    let cluster = Cluster::start(ServerKind::Valkey81, SHARDS)?;
    let mut best: Vec<Option<Duration>> = vec![None; WRITERS.len()];
    for _ in 0..ctx.runs {
        // Interleaved, so that whatever else loads the machine weighs on each alike.
        for ((name, label), best) in WRITERS.iter().zip(&mut best) {
            empty(&cluster)?;
            let took = write(&program, name, &cluster.url(), keys)?;
            let held = held(&cluster)?;
            if held != keys {
                bail!(
                    "{label}: the cluster holds {} keys of {}",
                    thousands(held),
                    thousands(keys)
                );
            }
            println!("{label}: {:.2} s", took.as_secs_f64());
            *best = Some(best.map_or(took, |b| b.min(took)));
        }
    }
    let ferry = best[0].context("no run")?;
    let mut table = Table::new(&["writer", "time s", "keys/s", "speed vs ferry"]);
    for ((_, label), took) in WRITERS.iter().zip(&best) {
        let took = took.context("no run")?;
        table.row(vec![
            (*label).to_owned(),
            format!("{:.2}", took.as_secs_f64()),
            thousands((keys as f64 / took.as_secs_f64()) as u64),
            format!("{:.2}×", ferry.as_secs_f64() / took.as_secs_f64()),
        ]);
    }
    Ok(Section {
        title: "Cluster writer".to_owned(),
        markdown: format!(
            "{} `SET`s of 100 B into a Valkey 8.1 cluster of {SHARDS} primaries, each \
             writer a release build (fastest of {} runs; a speed above 1.00× is faster than \
             ferry).\n\n{}",
            thousands(keys),
            ctx.runs,
            table.render()
        ),
    })
}

/// `target/release/examples/cluster_writer`.
fn build(root: &Path) -> Result<PathBuf> {
    println!("building the cluster writers (release)");
    let status = Command::new(super::tools::cargo())
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "ferry",
            "--example",
            "cluster_writer",
        ])
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build --release --example cluster_writer failed ({status})");
    }
    Ok(root
        .join("target")
        .join("release")
        .join("examples")
        .join("cluster_writer"))
}

/// Runs one writer; the time it reports.
fn write(program: &Path, name: &str, url: &str, keys: u64) -> Result<Duration> {
    let output = Command::new(program)
        .args([name, url, &keys.to_string()])
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if !output.status.success() {
        bail!(
            "writer {name} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let seconds: f64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .with_context(|| format!("writer {name} printed no time"))?;
    Ok(Duration::from_secs_f64(seconds))
}

fn empty(cluster: &Cluster) -> Result<()> {
    for node in cluster.nodes() {
        redis::cmd("FLUSHALL")
            .arg("SYNC")
            .query::<()>(&mut node.try_client()?)?;
    }
    Ok(())
}

fn held(cluster: &Cluster) -> Result<u64> {
    let mut total = 0;
    for node in cluster.nodes() {
        total += redis::cmd("DBSIZE").query::<u64>(&mut node.try_client()?)?;
    }
    Ok(total)
}
