//! Part "sizing": ferry's work per CPU-second (keys and MB per second of ferry's own CPU
//! time, user + system) and per wall-second, for a full sync, a stream catch-up and a
//! verify round into a standalone Valkey 8.1 and a cluster of 3, beside Valkey's own
//! replica where one exists; then a Redis 7.0 cluster copied by one process and by three
//! `--shards K/N` workers at once. docs/sizing.md turns these figures into a sizing guide.
//! CPU time is the figure that holds on a shared machine: wall time moves with the load.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use ferry_testkit::{Server, ServerKind};

use super::cluster::{self, Target, Values, ALL_SHARDS_IN_SYNC, IN_SYNC, SHARDS, VALUE_SIZE};
use super::datasets::thousands;
use super::measure::{self, Sample};
use super::migrate::{self, server_cpu};
use super::table::Table;
use super::{Context, Section};

/// Workers of the split cluster copy: one per source primary.
const WORKERS: usize = SHARDS;
/// How a worker's last line begins when it was stopped by a signal, not by a cutover.
const STOPPED_BEFORE_CUTOVER: &str = "stopped before a cutover";

/// The smallest `--max-memory-mb` ferry takes, beside the default 64.
const SMALL_MEMORY_MB: &str = "16";
/// Three workers reaching in sync take seconds; this only catches a hang.
const WORKERS_TIMEOUT: Duration = Duration::from_secs(600);

/// One measured piece of work: how much, how long, and whose CPU.
#[derive(Clone, Copy)]
struct Work {
    /// Keys copied or compared, or stream commands applied.
    items: u64,
    /// RDB bytes of the dataset, or replication stream bytes.
    bytes: u64,
    wall: Duration,
    /// ferry's CPU (the sum over workers); `None` for Valkey's own replica.
    ferry_cpu: Option<Duration>,
    /// The target's CPU meanwhile (INFO cpu of its primaries), or the native replica's.
    target_cpu: Duration,
    /// ferry's peak RSS (the largest of the workers').
    peak_rss: Option<u64>,
}

impl Work {
    /// The CPU the figures per CPU-second divide by: ferry's, or the native replica's.
    fn cpu(&self) -> Duration {
        self.ferry_cpu.unwrap_or(self.target_cpu)
    }

    /// Everything the copying side used: ferry and the target, or the native replica.
    fn follower_cpu(&self) -> Duration {
        self.ferry_cpu.unwrap_or_default() + self.target_cpu
    }
}

/// The same measurement over the runs.
#[derive(Default)]
struct Runs(Vec<Work>);

/// What counts of [`Runs`]: CPU figures from the run that used the least CPU (ferry's, or
/// the native replica's), the one others' work disturbed least; wall figures from the
/// fastest run, as the other parts report.
#[derive(Clone, Copy)]
struct Best {
    least_cpu: Work,
    fastest_wall: Duration,
}

impl Runs {
    fn best(&self) -> Result<Best> {
        let least_cpu = *self.0.iter().min_by_key(|w| w.cpu()).context("no run")?;
        let fastest_wall = self.0.iter().map(|w| w.wall).min().context("no run")?;
        Ok(Best {
            least_cpu,
            fastest_wall,
        })
    }
}

/// Every measurement of the part.
#[derive(Default)]
struct Measured {
    native_sync: Runs,
    sync: [Runs; 2],
    verify: [Runs; 2],
    native_catch_up: Runs,
    catch_up: [Runs; 2],
    /// The standalone full sync again with `--max-memory-mb` [`SMALL_MEMORY_MB`].
    small_memory: Runs,
    one_process: Runs,
    workers: Runs,
}

/// Standalone, then cluster: the index into [`Measured`]'s pairs.
const TARGETS: [(usize, &str); 2] = [(1, "Valkey 8.1"), (SHARDS, "Valkey 8.1 cluster of 3")];

pub fn run(ctx: &Context) -> Result<Section> {
    let keys = if ctx.quick { 100_000 } else { 1_000_000 };
    let out = ctx.dir.join("out");
    fs::create_dir_all(&out)?;
    let (state, scratch) = (out.join("sizing.state"), out.join("sizing-stderr.txt"));
    let files = (state.as_path(), scratch.as_path());

    let (source, source_cluster) = cluster::sources(keys, Values::Incompressible)?;
    let primaries: Vec<&Server> = source_cluster.nodes().iter().collect();
    migrate::follow_settings(&source)?;
    let dataset = (keys, rdb_size(&[&source])?);
    let cluster_dataset = (keys, rdb_size(&primaries)?);
    let (source_url, cluster_url) = (source.url(), source_cluster.url());
    let from_source = (source_url.as_str(), IN_SYNC);
    let from_cluster = (cluster_url.as_str(), ALL_SHARDS_IN_SYNC);

    let mut m = Measured::default();
    // The ways alternate within each run, so the machine's other work spreads over all.
    for run in 1..=ctx.runs {
        println!("run {run} of {}", ctx.runs);
        m.native_sync.0.push(native_sync(&source, dataset)?);
        for (index, (shards, name)) in TARGETS.iter().enumerate() {
            let (target, sync) = full_sync(ctx, from_source, *shards, &[], files, dataset)?;
            m.sync[index].0.push(sync);
            m.verify[index]
                .0
                .push(verify(ctx, &source_url, &target, files.1, dataset)?);
            m.catch_up[index]
                .0
                .push(catch_up(ctx, &source, &target, files)?);
            migrate::clear_load(&source)?;
            println!("into {name}: full sync, verify and catch-up measured");
        }
        let (took, cpu) = migrate::native_catch_up(ctx, &source)?;
        m.native_catch_up.0.push(Work {
            items: migrate::load_commands(ctx.quick),
            bytes: 0,
            wall: took,
            ferry_cpu: None,
            target_cpu: cpu,
            peak_rss: None,
        });
        migrate::clear_load(&source)?;
        let small_memory = ["--max-memory-mb", SMALL_MEMORY_MB];
        let (_, small) = full_sync(ctx, from_source, 1, &small_memory, files, dataset)?;
        m.small_memory.0.push(small);

        let (_, one) = full_sync(ctx, from_cluster, SHARDS, &[], files, cluster_dataset)?;
        m.one_process.0.push(one);
        let target = Target::start(SHARDS)?;
        let split = workers(ctx, &cluster_url, &target, &out)?;
        m.workers.0.push(checked(split, cluster_dataset, &target)?);
        println!("cluster source: one process and {WORKERS} workers measured");
    }
    // The native catch-up's stream is the same load's: take its size from ferry's runs.
    let stream_bytes = m.catch_up[0].best()?.least_cpu.bytes;
    for work in &mut m.native_catch_up.0 {
        work.bytes = stream_bytes;
    }

    let markdown = render(ctx, keys, &m)?;
    println!("\n{markdown}");
    Ok(Section {
        title: "Per core, and workers (sizing)".to_owned(),
        markdown,
    })
}

/// The dataset's size as RDB files (SAVE on each node): the bytes a full sync moves.
fn rdb_size(nodes: &[&Server]) -> Result<u64> {
    let mut bytes = 0;
    for node in nodes {
        let path = node.save()?;
        bytes += fs::metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
    }
    Ok(bytes)
}

/// The CPU all of `nodes` have used so far.
fn nodes_cpu(nodes: &[&Server]) -> Result<Duration> {
    let mut total = Duration::ZERO;
    for node in nodes {
        total += server_cpu(node)?;
    }
    Ok(total)
}

/// Valkey 8.1 `REPLICAOF` the source, in a fresh replica: its time and CPU.
fn native_sync(source: &Server, (keys, rdb_bytes): (u64, u64)) -> Result<Work> {
    let replica = Server::start(ServerKind::Valkey81)?;
    let before = server_cpu(&replica)?;
    let wall = migrate::native_sync(source, &replica)?;
    Ok(Work {
        items: keys,
        bytes: rdb_bytes,
        wall,
        ferry_cpu: None,
        target_cpu: server_cpu(&replica)?.saturating_sub(before),
        peak_rss: None,
    })
}

/// `ferry migrate` (with `args`) from `source` until it prints `in_sync`, into a fresh
/// empty target of `shards` primaries: the target, and the figures once it is seen to
/// hold every key.
fn full_sync(
    ctx: &Context,
    (source, in_sync): (&str, &str),
    shards: usize,
    args: &[&str],
    (state, scratch): (&Path, &Path),
    dataset: (u64, u64),
) -> Result<(Target, Work)> {
    let target = Target::start(shards)?;
    let before = nodes_cpu(&target.nodes())?;
    let (took, sample) =
        cluster::ferry_sync(ctx, (source, &target.url()), args, in_sync, state, scratch)?;
    let target_cpu = nodes_cpu(&target.nodes())?.saturating_sub(before);
    let work = checked((took, sample, target_cpu), dataset, &target)?;
    Ok((target, work))
}

/// A full sync's figures, once the target is seen to hold every key of the `dataset`
/// (keys, RDB bytes).
fn checked(
    (wall, sample, target_cpu): (Duration, Sample, Duration),
    (keys, bytes): (u64, u64),
    target: &Target,
) -> Result<Work> {
    let held = target.data_keys()?;
    if held != keys {
        bail!(
            "the target holds {} keys of {}",
            thousands(held),
            thousands(keys)
        );
    }
    Ok(Work {
        items: keys,
        bytes,
        wall,
        ferry_cpu: Some(sample.cpu),
        target_cpu,
        peak_rss: Some(sample.peak_rss),
    })
}

/// One `ferry verify` round of the copy.
fn verify(
    ctx: &Context,
    source: &str,
    target: &Target,
    scratch: &Path,
    (keys, bytes): (u64, u64),
) -> Result<Work> {
    let before = nodes_cpu(&target.nodes())?;
    let sample = cluster::verify(ctx, source, &target.url(), scratch)?;
    Ok(Work {
        items: keys,
        bytes,
        wall: sample.wall,
        ferry_cpu: Some(sample.cpu),
        target_cpu: nodes_cpu(&target.nodes())?.saturating_sub(before),
        peak_rss: Some(sample.peak_rss),
    })
}

/// ferry, stopped in sync, resumed after the load's backlog built up (as in the migrate
/// part).
fn catch_up(
    ctx: &Context,
    source: &Server,
    target: &Target,
    (state, scratch): (&Path, &Path),
) -> Result<Work> {
    let nodes = target.nodes();
    let before = nodes_cpu(&nodes)?;
    let (wall, stream_bytes, sample) =
        migrate::ferry_catch_up(ctx, source, &target.url(), &nodes, state, scratch)?;
    Ok(Work {
        items: migrate::load_commands(ctx.quick),
        bytes: u64::try_from(stream_bytes).unwrap_or(0),
        wall,
        ferry_cpu: Some(sample.cpu),
        target_cpu: nodes_cpu(&nodes)?.saturating_sub(before),
        peak_rss: Some(sample.peak_rss),
    })
}

/// [`WORKERS`] `ferry migrate --shards K/N` processes started at once: the time until the
/// last is in sync, the sum of their CPU, the largest peak RSS.
fn workers(
    ctx: &Context,
    source: &str,
    target: &Target,
    out: &Path,
) -> Result<(Duration, Sample, Duration)> {
    let before = nodes_cpu(&target.nodes())?;
    let started = Instant::now();
    let mut running = Vec::new();
    for index in 0..WORKERS {
        let state = out.join(format!("sizing-worker-{index}.state"));
        let _ = fs::remove_file(&state);
        let mut command = std::process::Command::new(&ctx.ferry);
        command
            .arg("migrate")
            .arg("--source")
            .arg(source)
            .arg("--target")
            .arg(target.url())
            .arg("--state")
            .arg(&state)
            .arg("--shards")
            .arg(format!("{index}/{WORKERS}"));
        let scratch = out.join(format!("sizing-worker-{index}-stderr.txt"));
        running.push(measure::spawn(command, &scratch)?);
    }
    // Polled together: a line is timed when it appears, whichever worker prints it.
    let mut in_sync: Vec<Option<Duration>> = vec![None; WORKERS];
    while in_sync.iter().any(Option::is_none) {
        for (worker, done) in running.iter_mut().zip(in_sync.iter_mut()) {
            if done.is_none() && worker.stderr().contains(ALL_SHARDS_IN_SYNC) {
                *done = Some(started.elapsed());
            } else if done.is_none() && worker.has_exited() {
                bail!("a worker ended before in sync:\n{}", worker.stderr());
            }
        }
        if started.elapsed() > WORKERS_TIMEOUT {
            bail!("the workers were not all in sync after {WORKERS_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let slowest = in_sync.iter().flatten().max().copied().unwrap_or_default();
    let mut total = Sample {
        wall: slowest,
        peak_rss: 0,
        cpu: Duration::ZERO,
    };
    for worker in running {
        match worker.stop(libc::SIGTERM)? {
            Ok(sample) => {
                total.cpu += sample.cpu;
                total.peak_rss = total.peak_rss.max(sample.peak_rss);
            }
            // A worker stopped by a signal rather than a cutover exits 1 on purpose (a
            // scheduler is to start it again): the end this measurement asks for.
            Err(refusal) if refusal.stderr_tail.contains(STOPPED_BEFORE_CUTOVER) => {
                total.cpu += refusal.sample.cpu;
                total.peak_rss = total.peak_rss.max(refusal.sample.peak_rss);
            }
            Err(refusal) => bail!("a worker failed: {}", refusal.reason()),
        }
    }
    let target_cpu = nodes_cpu(&target.nodes())?.saturating_sub(before);
    Ok((slowest, total, target_cpu))
}

fn seconds(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn per_second(amount: f64, d: Duration) -> f64 {
    amount / d.as_secs_f64().max(1e-9)
}

fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// The per-core table's columns, in [`row`]'s order.
const PER_CORE_COLUMNS: [&str; 14] = [
    "work",
    ">keys or commands",
    ">MB",
    ">wall s",
    ">per wall-s",
    ">MB per wall-s",
    ">ferry CPU s",
    ">target CPU s",
    ">cores used",
    ">per CPU-s",
    ">MB per CPU-s",
    ">peak RSS MB",
    ">wall vs native",
    ">CPU (ferry + target) vs native",
];

/// One row of the per-core table.
fn row(table: &mut Table, what: &str, best: Best, reference: Option<Best>) {
    let work = best.least_cpu;
    let cpu = work.cpu();
    let wall = best.fastest_wall;
    let ratio = |ours: f64, theirs: f64| format!("{:.2}×", ours / theirs.max(1e-9));
    table.row(vec![
        what.to_owned(),
        thousands(work.items),
        format!("{:.1}", megabytes(work.bytes)),
        seconds(wall),
        thousands(per_second(work.items as f64, wall) as u64),
        format!("{:.1}", per_second(megabytes(work.bytes), wall)),
        work.ferry_cpu.map_or("—".to_owned(), seconds),
        seconds(work.target_cpu),
        work.ferry_cpu.map_or("—".to_owned(), |c| {
            format!("{:.2}", c.as_secs_f64() / work.wall.as_secs_f64().max(1e-9))
        }),
        thousands(per_second(work.items as f64, cpu) as u64),
        format!("{:.1}", per_second(megabytes(work.bytes), cpu)),
        work.peak_rss
            .map_or("—".to_owned(), |b| format!("{:.1}", megabytes(b))),
        reference.map_or(String::new(), |r| {
            ratio(wall.as_secs_f64(), r.fastest_wall.as_secs_f64())
        }),
        reference.map_or(String::new(), |r| {
            ratio(
                work.follower_cpu().as_secs_f64(),
                r.least_cpu.follower_cpu().as_secs_f64(),
            )
        }),
    ]);
}

/// A row for each of [`TARGETS`]; `reference` (the native replica) stands beside the
/// standalone one only.
fn per_target(
    table: &mut Table,
    what: &str,
    runs: &[Runs; 2],
    reference: Option<Best>,
) -> Result<()> {
    for (index, (_, name)) in TARGETS.iter().enumerate() {
        let reference = reference.filter(|_| index == 0);
        row(
            table,
            &format!("{what} {name}"),
            runs[index].best()?,
            reference,
        );
    }
    Ok(())
}

fn render(ctx: &Context, keys: u64, m: &Measured) -> Result<String> {
    let mut text = String::new();
    writeln!(
        text,
        "`cargo xtask bench{quick} --only sizing --runs {runs}`; load average {load} (1 min) \
         at the start. Per core means per CPU-second: work divided by the CPU time ferry's \
         process used (user + system, from wait4's rusage), so it holds however busy the \
         machine is; per wall-second figures are given beside them and move with the load. \
         The same {keys} keys (strings of {VALUE_SIZE} pseudo-random bytes, which the \
         RDB cannot compress) in Redis 7.0, standalone and a cluster of {SHARDS} primaries (`repl-diskless-sync-delay 0`); MB are RDB bytes \
         (the sources' `SAVE` files: {rdb:.1} MB standalone) for a full sync and a verify \
         round, replication stream bytes for the catch-up. Of {runs} run(s), wall figures \
         are the fastest run's, CPU figures (and peak RSS) those of the run that used the \
         least CPU. Target CPU: INFO cpu of the target's primaries over the \
         same span (for the native rows, the replica's own, which is the whole follower's \
         cost there). Cores used: ferry's CPU ÷ wall within that run. ferry runs with the default \
         `--max-memory-mb 64` but in the row that names another; peak RSS is ru_maxrss.\n",
        runs = ctx.runs,
        quick = if ctx.quick { " --quick" } else { "" },
        load = ctx.load_at_start,
        keys = thousands(keys),
        rdb = megabytes(m.sync[0].best()?.least_cpu.bytes),
    )?;
    let mut table = Table::new(&PER_CORE_COLUMNS);
    let native_sync = m.native_sync.best()?;
    row(
        &mut table,
        "full sync: Valkey 8.1 REPLICAOF (native)",
        native_sync,
        Some(native_sync),
    );
    per_target(&mut table, "full sync: ferry →", &m.sync, Some(native_sync))?;
    row(
        &mut table,
        &format!("full sync: ferry → Valkey 8.1, `--max-memory-mb {SMALL_MEMORY_MB}`"),
        m.small_memory.best()?,
        Some(native_sync),
    );
    let native_catch_up = m.native_catch_up.best()?;
    row(
        &mut table,
        "stream catch-up: Valkey 8.1 replica (native)",
        native_catch_up,
        Some(native_catch_up),
    );
    per_target(
        &mut table,
        "stream catch-up: ferry →",
        &m.catch_up,
        Some(native_catch_up),
    )?;
    per_target(&mut table, "verify, 1 round: Redis 7.0 ↔", &m.verify, None)?;
    text.push_str(&table.render());
    writeln!(
        text,
        "\nStream catch-up: `{}` against the standalone Redis 7.0 while ferry was stopped \
         (in sync, with its `--state`), then ferry started again (a partial resync, its \
         start-up included) until the sentinel written after the load is on the target; \
         commands = the load's requests + the sentinel. Native: a Valkey 8.1 replica \
         paused with SIGSTOP, then continued; its MB is the same load's stream.\n",
        migrate::load_line(ctx.quick)
    )?;

    let one = m.one_process.best()?;
    let split = m.workers.best()?;
    let mut workers = Table::new(&[
        "Redis 7.0 cluster of 3 → Valkey 8.1 cluster of 3",
        ">wall s (last in sync)",
        ">ferry CPU s (sum)",
        ">target CPU s",
        ">keys per CPU-s",
        ">MB per CPU-s",
        ">peak RSS MB (per process)",
        ">wall vs one",
        ">CPU vs one",
    ]);
    for (name, best) in [
        ("one `ferry migrate`".to_owned(), one),
        (
            format!(
                "{WORKERS} workers, `--shards 0/{WORKERS}` … `{}/{WORKERS}` at once",
                WORKERS - 1
            ),
            split,
        ),
    ] {
        let work = best.least_cpu;
        let cpu = work.cpu();
        workers.row(vec![
            name,
            seconds(best.fastest_wall),
            seconds(cpu),
            seconds(work.target_cpu),
            thousands(per_second(work.items as f64, cpu) as u64),
            format!("{:.1}", per_second(megabytes(work.bytes), cpu)),
            work.peak_rss
                .map_or("—".to_owned(), |b| format!("{:.1}", megabytes(b))),
            format!(
                "{:.2}×",
                best.fastest_wall.as_secs_f64() / one.fastest_wall.as_secs_f64().max(1e-9)
            ),
            format!(
                "{:.2}×",
                cpu.as_secs_f64() / one.least_cpu.cpu().as_secs_f64().max(1e-9)
            ),
        ]);
    }
    writeln!(
        text,
        "The cluster source ({:.1} MB of RDB over its {SHARDS} primaries) copied by one \
         process and by {WORKERS} worker processes started together, each following the \
         primary dealt to it; wall = until the last worker printed `in sync: all`, CPU = \
         the sum of the workers'. This machine has {} cores shared by the {SHARDS} source \
         primaries, the {SHARDS} target primaries and ferry: workers cannot run faster here; \
         what this shows is the split's CPU overhead (CPU vs one).\n",
        megabytes(one.least_cpu.bytes),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    )?;
    text.push_str(&workers.render());
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ferry_run(wall: u64, cpu: u64) -> Work {
        Work {
            items: 1_000_000,
            bytes: 100_000_000,
            wall: ms(wall),
            ferry_cpu: Some(ms(cpu)),
            target_cpu: ms(500),
            peak_rss: Some(20_000_000),
        }
    }

    #[test]
    fn cpu_figures_come_from_the_least_cpu_run_and_wall_from_the_fastest() {
        let runs = Runs(vec![
            ferry_run(3000, 1500),
            ferry_run(2000, 1800),
            ferry_run(4000, 1000),
        ]);
        let best = runs.best().unwrap();
        assert_eq!(best.fastest_wall, ms(2000));
        assert_eq!(best.least_cpu.cpu(), ms(1000));
        assert!(Runs::default().best().is_err());
    }

    #[test]
    fn a_row_divides_the_work_by_ferrys_cpu_and_compares_all_follower_cpu_with_native() {
        let best = Runs(vec![ferry_run(2000, 1000), ferry_run(4000, 800)])
            .best()
            .unwrap();
        let native = Runs(vec![Work {
            ferry_cpu: None,
            target_cpu: ms(650),
            peak_rss: None,
            ..ferry_run(1000, 0)
        }])
        .best()
        .unwrap();
        let mut table = Table::new(&PER_CORE_COLUMNS);
        row(&mut table, "ferry", best, Some(native));
        let rendered = table.render();
        let cells: Vec<&str> = rendered
            .lines()
            .nth(2)
            .unwrap()
            .split('|')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            cells,
            [
                "ferry",
                "1,000,000",
                "100.0",
                // The fastest wall, and its rates.
                "2.00",
                "500,000",
                "50.0",
                // The least-CPU run: 0.8 s of ferry's CPU over its own 4 s.
                "0.80",
                "0.50",
                "0.20",
                "1,250,000",
                "125.0",
                "20.0",
                "2.00×",
                // (0.8 + 0.5) / 0.65: ferry and the target against the native replica.
                "2.00×",
            ]
        );
    }
}
