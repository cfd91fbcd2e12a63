//! Part "cluster": `ferry migrate` from a standalone Redis or a Redis cluster into a
//! Valkey 8.1 cluster, beside the standalone path on the same keys in the same run: time to
//! in sync, keys/s and keys/s per shard; then `ferry verify` of each copy, which routes its
//! reads by slot too. No native path exists between two clusters (a cluster node cannot
//! follow another cluster), so the reference is ferry's own standalone copy.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use ferry::server::cluster::slot::key_slot;
use ferry_testkit::cluster::slot_ranges;
use ferry_testkit::{Cluster, Server, ServerKind};

use super::datasets::thousands;
use super::measure::{self, Sample};
use super::table::Table;
use super::{Context, Section};

/// ferry's line once the target holds everything the source has sent.
pub(super) const IN_SYNC: &str = "ferry: in sync at offset";
/// The same from a cluster source: every shard (of this worker's share) has caught up.
pub(super) const ALL_SHARDS_IN_SYNC: &str = "ferry: in sync: all";
/// A full sync of the full-size dataset takes seconds; this only catches a hang.
const SYNC_TIMEOUT: Duration = Duration::from_secs(600);
/// Primaries of each cluster.
pub(super) const SHARDS: usize = 3;
/// Bytes of each value: `DEBUG POPULATE`'s size in the codec part.
pub(super) const VALUE_SIZE: usize = 100;
/// Commands per pipeline while filling.
const FILL_BATCH: usize = 1000;

/// Where the keys come from and go to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    StandaloneToStandalone,
    StandaloneToCluster,
    ClusterToCluster,
}

impl Way {
    fn label(self) -> String {
        match self {
            Way::StandaloneToStandalone => "Redis 7.0 → Valkey 8.1".to_owned(),
            Way::StandaloneToCluster => {
                format!("Redis 7.0 → Valkey 8.1 cluster of {SHARDS}")
            }
            Way::ClusterToCluster => {
                format!("Redis 7.0 cluster of {SHARDS} → Valkey 8.1 cluster of {SHARDS}")
            }
        }
    }

    fn target_shards(self) -> usize {
        match self {
            Way::StandaloneToStandalone => 1,
            Way::StandaloneToCluster | Way::ClusterToCluster => SHARDS,
        }
    }

    fn in_sync_line(self) -> &'static str {
        match self {
            Way::ClusterToCluster => ALL_SHARDS_IN_SYNC,
            _ => IN_SYNC,
        }
    }
}

/// The target of one run: a server or a cluster, empty.
pub(super) enum Target {
    Server(Box<Server>),
    Cluster(Cluster),
}

impl Target {
    /// An empty Valkey 8.1: standalone for one shard, else a cluster of `shards` primaries.
    pub(super) fn start(shards: usize) -> Result<Target> {
        Ok(match shards {
            1 => Target::Server(Box::new(Server::start(ServerKind::Valkey81)?)),
            shards => Target::Cluster(Cluster::start(ServerKind::Valkey81, shards)?),
        })
    }

    pub(super) fn url(&self) -> String {
        match self {
            Target::Server(server) => server.url(),
            Target::Cluster(cluster) => cluster.url(),
        }
    }

    /// The server, or the cluster's primaries.
    pub(super) fn nodes(&self) -> Vec<&Server> {
        match self {
            Target::Server(server) => vec![server],
            Target::Cluster(cluster) => cluster.nodes().iter().collect(),
        }
    }

    /// Keys held, ferry's markers left out (on a cluster, one per slot written to).
    pub(super) fn data_keys(&self) -> Result<u64> {
        match self {
            Target::Server(server) => {
                let mut con = server.try_client()?;
                let size: u64 = redis::cmd("DBSIZE").query(&mut con)?;
                let marker: u64 = redis::cmd("EXISTS")
                    .arg("ferry:migrate:applied")
                    .query(&mut con)?;
                Ok(size - marker)
            }
            Target::Cluster(cluster) => {
                let mut keys = 0;
                for node in cluster.nodes() {
                    let mut con = node.try_client()?;
                    keys += redis::cmd("DBSIZE").query::<u64>(&mut con)?;
                    let markers: Vec<Vec<u8>> =
                        redis::Commands::scan_match(&mut con, "ferry:migrate:applied:*")?
                            .collect::<Result<_, _>>()?;
                    keys -= markers.len() as u64;
                }
                Ok(keys)
            }
        }
    }
}

struct Row {
    way: Way,
    keys: u64,
    /// Fastest run.
    best: Duration,
    peak_rss: u64,
    /// `ferry verify` of the copy, fastest run.
    verify: Duration,
}

pub fn run(ctx: &Context) -> Result<Section> {
    let keys = if ctx.quick { 100_000 } else { 1_000_000 };
    let out = ctx.dir.join("out");
    fs::create_dir_all(&out)?;
    let scratch = out.join("cluster-stderr.txt");
    let state = out.join("cluster.state");

    let (source, source_cluster) = sources(keys, Values::Repeated)?;

    let mut rows = Vec::new();
    for way in [
        Way::StandaloneToStandalone,
        Way::StandaloneToCluster,
        Way::ClusterToCluster,
    ] {
        let source_url = match way {
            Way::ClusterToCluster => source_cluster.url(),
            _ => source.url(),
        };
        let mut best: Option<Duration> = None;
        let mut best_verify: Option<Duration> = None;
        let mut peak_rss = 0;
        for _ in 0..ctx.runs {
            let target = Target::start(way.target_shards())?;
            let (took, sample) = ferry_sync(
                ctx,
                (&source_url, &target.url()),
                &[],
                way.in_sync_line(),
                &state,
                &scratch,
            )?;
            let held = target.data_keys()?;
            if held != keys {
                bail!(
                    "{}: the target holds {} keys of {}",
                    way.label(),
                    thousands(held),
                    thousands(keys)
                );
            }
            let verified = verify(ctx, &source_url, &target.url(), &scratch)?.wall;
            println!(
                "{}: in sync in {:.2} s, verified in {:.2} s",
                way.label(),
                took.as_secs_f64(),
                verified.as_secs_f64()
            );
            best = Some(best.map_or(took, |b| b.min(took)));
            best_verify = Some(best_verify.map_or(verified, |b| b.min(verified)));
            peak_rss = peak_rss.max(sample.peak_rss);
        }
        rows.push(Row {
            way,
            keys,
            best: best.context("no run")?,
            peak_rss,
            verify: best_verify.context("no run")?,
        });
    }
    Ok(Section {
        title: "Cluster".to_owned(),
        markdown: render(&rows),
    })
}

/// The values [`fill`] writes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Values {
    /// One byte repeated: the RDB's LZF compression shrinks each value to a few bytes.
    Repeated,
    /// Pseudo-random bytes (the same sequence every time): the RDB holds them at full
    /// size, so its bytes are the data's.
    Incompressible,
}

/// A Redis 7.0 and a Redis 7.0 cluster of [`SHARDS`] primaries, each holding `keys`
/// strings of `values`, with `repl-diskless-sync-delay 0` (a full sync starts at once).
pub(super) fn sources(keys: u64, values: Values) -> Result<(Server, Cluster)> {
    println!(
        "filling Redis 7.0, standalone and a cluster of {SHARDS}: {} keys of {VALUE_SIZE} B \
         each ({})",
        thousands(keys),
        match values {
            Values::Repeated => "one byte repeated",
            Values::Incompressible => "pseudo-random bytes",
        }
    );
    let source = Server::start(ServerKind::Redis70)?;
    fill(&[&source], keys, values)?;
    let source_cluster = Cluster::start(ServerKind::Redis70, SHARDS)?;
    let primaries: Vec<&Server> = source_cluster.nodes().iter().collect();
    fill(&primaries, keys, values)?;
    for node in std::iter::once(&source).chain(primaries) {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("repl-diskless-sync-delay")
            .arg("0")
            .query::<()>(&mut node.try_client()?)?;
    }
    Ok((source, source_cluster))
}

/// Writes `keys` strings of [`VALUE_SIZE`] bytes, each to the node that owns its slot when
/// `nodes` are a cluster's primaries (in slot order, as [`slot_ranges`] gives them).
pub(super) fn fill(nodes: &[&Server], keys: u64, values: Values) -> Result<()> {
    let ranges = slot_ranges(nodes.len());
    let mut connections = Vec::with_capacity(nodes.len());
    for node in nodes {
        connections.push(node.try_client()?);
    }
    let mut pipes: Vec<(redis::Pipeline, usize)> =
        nodes.iter().map(|_| (redis::pipe(), 0)).collect();
    let mut value = vec![b'v'; VALUE_SIZE];
    // xorshift64: cheap, and no byte pattern LZF could shorten.
    let mut random: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..keys {
        if values == Values::Incompressible {
            for chunk in value.chunks_mut(8) {
                random ^= random << 13;
                random ^= random >> 7;
                random ^= random << 17;
                chunk.copy_from_slice(&random.to_le_bytes()[..chunk.len()]);
            }
        }
        let key = format!("key:{i}");
        let owner = if nodes.len() == 1 {
            0
        } else {
            let slot = key_slot(key.as_bytes());
            ranges
                .iter()
                .position(|&(first, last)| (first..=last).contains(&slot))
                .context("a slot outside every range")?
        };
        let (pipe, queued) = &mut pipes[owner];
        pipe.cmd("SET").arg(&key).arg(&value).ignore();
        *queued += 1;
        if *queued == FILL_BATCH {
            pipe.query::<()>(&mut connections[owner])?;
            *pipe = redis::pipe();
            *queued = 0;
        }
    }
    for ((pipe, queued), con) in pipes.iter_mut().zip(&mut connections) {
        if *queued > 0 {
            pipe.query::<()>(con)?;
        }
    }
    Ok(())
}

/// Runs `ferry migrate` (with `args` added) until it prints `in_sync` and stops it: time
/// to in sync, and its sample (CPU and peak RSS over its whole life).
pub(super) fn ferry_sync(
    ctx: &Context,
    (source, target): (&str, &str),
    args: &[&str],
    in_sync: &str,
    state: &Path,
    scratch: &Path,
) -> Result<(Duration, Sample)> {
    // A state file from an earlier run would make this one resume.
    let _ = fs::remove_file(state);
    let mut command = Command::new(&ctx.ferry);
    command
        .arg("migrate")
        .arg("--source")
        .arg(source)
        .arg("--target")
        .arg(target)
        .arg("--state")
        .arg(state)
        .args(args);
    let mut running = measure::spawn(command, scratch)?;
    let took = running.wait_for_line(in_sync, SYNC_TIMEOUT)?;
    match running.stop(libc::SIGTERM)? {
        Ok(sample) => Ok((took, sample)),
        Err(refusal) => bail!("ferry migrate failed: {}", refusal.reason()),
    }
}

/// One `ferry verify` round of the whole copy; it must find both sides equal.
pub(super) fn verify(ctx: &Context, source: &str, target: &str, scratch: &Path) -> Result<Sample> {
    let mut command = Command::new(&ctx.ferry);
    command
        .arg("verify")
        .arg("--source")
        .arg(source)
        .arg("--target")
        .arg(target)
        .arg("--rounds")
        .arg("1");
    match measure::run_once(&mut command, scratch)? {
        Ok(sample) => Ok(sample),
        Err(refusal) => bail!("ferry verify failed: {}", refusal.reason()),
    }
}

fn render(rows: &[Row]) -> String {
    let reference = rows
        .iter()
        .find(|row| row.way == Way::StandaloneToStandalone)
        .map(|row| row.best.as_secs_f64());
    let mut table = Table::new(&[
        "ferry migrate",
        ">keys",
        ">time to in sync s",
        ">keys/s",
        ">keys/s per target shard",
        ">time vs standalone",
        ">peak RSS MB",
        ">verify s",
        ">verify keys/s",
    ]);
    for row in rows {
        let seconds = row.best.as_secs_f64();
        let rate = row.keys as f64 / seconds.max(1e-9);
        table.row(vec![
            row.way.label(),
            thousands(row.keys),
            format!("{seconds:.2}"),
            thousands(rate as u64),
            thousands((rate / row.way.target_shards() as f64) as u64),
            reference
                .map(|r| format!("{:.2}×", seconds / r))
                .unwrap_or_default(),
            format!("{:.1}", row.peak_rss as f64 / 1e6),
            format!("{:.2}", row.verify.as_secs_f64()),
            thousands((row.keys as f64 / row.verify.as_secs_f64().max(1e-9)) as u64),
        ]);
    }
    format!(
        "The same {} keys ({VALUE_SIZE} B strings) from Redis 7.0 (standalone, or a cluster \
         of {SHARDS} primaries with the keys in their slots; `repl-diskless-sync-delay 0`) \
         into an empty Valkey 8.1, standalone or a cluster of {SHARDS} primaries; fastest \
         run; then one `ferry verify` round of the copy. All servers and ferry share this \
         machine's 2 cores, so shards add no capacity here: the per-shard figure is the \
         cost of the routing, not a scaling result.\n\n{}",
        rows.first().map(|r| thousands(r.keys)).unwrap_or_default(),
        table.render()
    )
}
