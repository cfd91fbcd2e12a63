//! Part "migrate": how long `ferry migrate` takes to bring an empty Valkey 8.1 in sync with
//! a live source, beside Valkey's own replication of the same data in the same run, and
//! how far behind ferry stays under a write load.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _, Result};
use ferry_testkit::{Cluster, Server, ServerKind};

use super::datasets::{self, thousands, Recipe};
use super::measure::{self, Sample};
use super::table::Table;
use super::{Context, Section};

/// ferry's line once the target holds everything the source has sent.
pub(super) const IN_SYNC: &str = "ferry: in sync at offset";
/// A full sync of the full-size dataset takes seconds; this only catches a hang.
const SYNC_TIMEOUT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(10);
/// How often the lag is sampled under the write load.
const LAG_EVERY: Duration = Duration::from_millis(50);
/// Redis 8 types Valkey 8.1 lacks: field TTLs persisted, vector sets left out.
const REDIS8_POLICY: [&str; 4] = ["--hash-field-ttl", "persist", "--vector-set", "skip"];
/// The target: ferry's sync time is within this multiple of native replication's.
const TARGET_RATIO: f64 = 2.0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    Native,
    FerryFrom70,
    FerryFrom80,
}

impl Way {
    fn label(self) -> &'static str {
        match self {
            Way::Native => "Valkey 8.1 REPLICAOF Redis 7.0 (native)",
            Way::FerryFrom70 => "ferry migrate, Redis 7.0 → Valkey 8.1",
            Way::FerryFrom80 => "ferry migrate, Redis 8.0 → Valkey 8.1 (persist, skip)",
        }
    }
}

struct Row {
    way: Way,
    source_keys: u64,
    /// Fastest run.
    best: Duration,
    /// ferry only: the largest peak RSS of any run.
    peak_rss: Option<u64>,
    target_keys: u64,
}

pub fn run(ctx: &Context) -> Result<Section> {
    let keys = if ctx.quick { 100_000 } else { 1_000_000 };
    let recipe = Recipe::Mixed {
        keys,
        value_size: 100,
    };
    let tag = if ctx.quick { "100k" } else { "1m" };
    let redis8_file = datasets::ensure(&ctx.dir, &format!("redis8-{tag}"), recipe)?;
    let out = ctx.dir.join("out");
    fs::create_dir_all(&out)?;
    let scratch = out.join("migrate-stderr.txt");
    let state = out.join("migrate.state");

    println!("filling Redis 7.0: {}", recipe.describe());
    let redis70 = Server::start(ServerKind::Redis70)?;
    datasets::fill(&redis70, &mut redis70.try_client()?, recipe)?;
    no_sync_delay(&redis70)?;
    let redis80 = Server::start_with_rdb(ServerKind::Redis80, &redis8_file.path)?;
    no_sync_delay(&redis80)?;

    let mut rows = Vec::new();
    let mut lag = None;
    let mut catch_up = None;
    for way in [Way::Native, Way::FerryFrom70, Way::FerryFrom80] {
        let source = if way == Way::FerryFrom80 {
            &redis80
        } else {
            &redis70
        };
        let source_keys = datasets::count_keys(&mut source.try_client()?)?;
        let mut best: Option<Duration> = None;
        let mut peak_rss: Option<u64> = None;
        let mut target_keys = 0;
        for _ in 0..ctx.runs {
            let target = Server::start(ServerKind::Valkey81)?;
            let took = if way == Way::Native {
                native_sync(source, &target)?
            } else {
                let policy: &[&str] = if way == Way::FerryFrom80 {
                    &REDIS8_POLICY
                } else {
                    &[]
                };
                let (took, sample, _) =
                    ferry_sync(ctx, source, &target, policy, &state, &scratch, false)?;
                peak_rss = Some(peak_rss.unwrap_or(0).max(sample.peak_rss));
                took
            };
            target_keys = data_keys(&target)?;
            println!(
                "{}: {:.2} s, {} of {} keys on the target",
                way.label(),
                took.as_secs_f64(),
                thousands(target_keys),
                thousands(source_keys)
            );
            best = Some(best.map_or(took, |b| b.min(took)));
        }
        if way == Way::FerryFrom70 {
            // One more run, not timed: the lag under a write load once in sync.
            let target = Server::start(ServerKind::Valkey81)?;
            let (_, sample, measured) =
                ferry_sync(ctx, source, &target, &[], &state, &scratch, true)?;
            let mut measured = measured.context("no lag measured")?;
            measured.peak_rss = sample.peak_rss;
            lag = Some(measured);
            catch_up = Some(measure_catch_up(ctx, source, &target, &state, &scratch)?);
        }
        rows.push(Row {
            way,
            source_keys,
            best: best.context("no run")?,
            peak_rss,
            target_keys,
        });
    }

    let sync_table = sync_table(&rows);
    println!("\n{sync_table}");
    let mut text = String::new();
    writeln!(
        text,
        "The same data (Redis 8.0's is the cached {}.rdb: {}; Redis 7.0 is filled with the \
         same recipe) synced into an empty Valkey 8.1 on loopback, every source with \
         `repl-diskless-sync-delay 0`. Native: time from `REPLICAOF` to \
         `master_link_status:up` with `master_sync_in_progress:0`. ferry: time from start to \
         its `{IN_SYNC} N` line; peak RSS is ferry's (ru_maxrss) over the whole run (full \
         sync, then idle streaming until stopped), the largest of all runs. Fastest of {} run(s).\n",
        redis8_file.name,
        recipe.describe(),
        ctx.runs
    )?;
    writeln!(text, "{sync_table}")?;
    let native = rows
        .iter()
        .find(|r| r.way == Way::Native)
        .map(|r| r.best.as_secs_f64());
    for row in rows.iter().filter(|r| r.way != Way::Native) {
        if let Some(native) = native {
            let ratio = row.best.as_secs_f64() / native;
            let line =
                format!(
                "{}: {ratio:.2}× native replication's time (target: within {TARGET_RATIO}×) — {}.",
                row.way.label(),
                if ratio <= TARGET_RATIO { "met" } else { "NOT met" }
            );
            println!("{line}");
            writeln!(text, "- {line}")?;
        }
    }
    if let Some(lag) = lag {
        let rendered = lag.render();
        println!("\n{rendered}");
        writeln!(text, "\n{rendered}")?;
    }
    if let Some(catch_up) = catch_up {
        let rendered = catch_up.render();
        println!("\n{rendered}");
        writeln!(text, "\n{rendered}")?;
    }
    Ok(Section {
        title: "Live migration (ferry migrate)".to_string(),
        markdown: text,
    })
}

/// Keys on a target, without the one ferry keeps there to record what it applied.
fn data_keys(target: &Server) -> Result<u64> {
    let mut con = target.try_client()?;
    let keys = datasets::count_keys(&mut con)?;
    let marker: u64 = redis::cmd("EXISTS")
        .arg("ferry:migrate:applied")
        .query(&mut con)?;
    Ok(keys - marker)
}

pub(super) fn no_sync_delay(server: &Server) -> Result<()> {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("repl-diskless-sync-delay")
        .arg("0")
        .query::<()>(&mut server.try_client()?)
        .with_context(|| format!("CONFIG SET repl-diskless-sync-delay 0 on {}", server.kind()))
}

/// Valkey's own replication: REPLICAOF until the link is up and the load is done; the
/// replica is detached again so the source serves one replica at a time.
pub(super) fn native_sync(source: &Server, replica: &Server) -> Result<Duration> {
    let mut con = replica.try_client()?;
    let started = Instant::now();
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(source.port())
        .query::<()>(&mut con)?;
    loop {
        let info = info(&mut con, "replication")?;
        if field(&info, "master_link_status") == Some("up")
            && field(&info, "master_sync_in_progress") == Some("0")
        {
            break;
        }
        if started.elapsed() > SYNC_TIMEOUT {
            bail!(
                "Valkey 8.1 not in sync after {SYNC_TIMEOUT:?}; log:\n{}",
                replica.log_tail(10)
            );
        }
        sleep(POLL);
    }
    let took = started.elapsed();
    redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query::<()>(&mut con)?;
    Ok(took)
}

/// Runs `ferry migrate` until in sync (optionally measuring the lag under a write load
/// after that), then stops it with SIGTERM: time to in sync, ferry's sample, the lag.
fn ferry_sync(
    ctx: &Context,
    source: &Server,
    target: &Server,
    policy: &[&str],
    state: &Path,
    scratch: &Path,
    measure_lag: bool,
) -> Result<(Duration, Sample, Option<Lag>)> {
    // A state file from an earlier run would make this one resume.
    let _ = fs::remove_file(state);
    let mut command = Command::new(&ctx.ferry);
    command
        .arg("migrate")
        .arg("--source")
        .arg(source.url())
        .arg("--target")
        .arg(target.url())
        .arg("--state")
        .arg(state)
        .args(policy);
    let mut running = measure::spawn(command, scratch)?;
    let took = running.wait_for_line(IN_SYNC, SYNC_TIMEOUT)?;
    let lag = if measure_lag {
        Some(measure_lag_under_load(ctx, source, state)?)
    } else {
        None
    };
    match running.stop(libc::SIGTERM)? {
        Ok(sample) => Ok((took, sample, lag)),
        Err(refusal) => bail!("ferry migrate failed: {}", refusal.reason()),
    }
}

/// Applying a backlog flat out: the stream throughput, where batching and ferry's
/// per-batch transaction (MULTI, marker, EXEC) show, beside a native replica catching up
/// on the same load.
struct CatchUp {
    load: String,
    stream_bytes: i64,
    native: Duration,
    ferry: Duration,
    /// ferry into a Valkey 8.1 cluster of 3 (per-slot transactions and markers).
    into_cluster: Duration,
}

impl CatchUp {
    fn render(&self) -> String {
        let mb = self.stream_bytes as f64 / 1e6;
        let mut text = format!(
            "Catching up on a backlog: `{}` ran against Redis 7.0 while the follower was \
             paused ({mb:.1} MB of replication stream, then one sentinel SET); time from \
             resuming until the sentinel is on the follower. Native: a Valkey 8.1 replica \
             paused with SIGSTOP, then continued. ferry: stopped with SIGTERM, then started \
             again with the same `--state` (a partial resync; its start-up is included); \
             into a cluster of 3 Valkey 8.1 primaries on the same machine (from a Redis 7.0 \
             holding as many plain keys in database 0), each slot's share of a batch is one \
             transaction with that slot's marker.\n\n",
            self.load
        );
        let mut table = Table::new(&["follower", ">catch-up s", ">MB/s", ">vs native"]);
        for (name, took) in [
            ("Valkey 8.1 replica (native)", self.native),
            ("ferry migrate", self.ferry),
            ("ferry migrate into a cluster of 3", self.into_cluster),
        ] {
            let seconds = took.as_secs_f64();
            table.row(vec![
                name.to_string(),
                format!("{seconds:.2}"),
                format!("{:.1}", mb / seconds.max(1e-9)),
                format!("{:.2}×", seconds / self.native.as_secs_f64().max(1e-9)),
            ]);
        }
        text.push_str(&table.render());
        text
    }
}

const SENTINEL: &str = "bench:catch-up:done";

/// Runs the load against `source` while `pause` holds the follower, then times `resume`
/// until the sentinel written after the load is on `follower`.
fn time_catch_up(
    ctx: &Context,
    source: &Server,
    follower: &[&Server],
    pause: impl FnOnce() -> Result<()>,
    resume: impl FnOnce() -> Result<()>,
) -> Result<(Duration, i64)> {
    let mut con = source.try_client()?;
    redis::cmd("DEL").arg(SENTINEL).query::<()>(&mut con)?;
    // On a cluster follower the sentinel is on the node serving its slot: any of them.
    // One connection per node for the whole wait: the polls are what is timed.
    let mut on_follower = follower
        .iter()
        .map(|node| node.try_client())
        .collect::<Result<Vec<_>, _>>()?;
    let mut has_sentinel = || -> Result<bool> {
        for con in on_follower.iter_mut() {
            let found: redis::RedisResult<bool> = redis::cmd("EXISTS").arg(SENTINEL).query(con);
            match found {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                // Another node's slot.
                Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(false)
    };
    let deadline = Instant::now() + SYNC_TIMEOUT;
    while has_sentinel()? {
        if Instant::now() > deadline {
            bail!("the follower kept the old sentinel");
        }
        sleep(POLL);
    }
    pause()?;
    let start_offset = master_repl_offset(&mut con)?;
    let status = source
        .benchmark_command()
        .args(load_args(ctx.quick))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("cannot run redis-benchmark")?;
    if !status.success() {
        bail!("redis-benchmark failed: {status}");
    }
    redis::cmd("SET")
        .arg(SENTINEL)
        .arg(1)
        .query::<()>(&mut con)?;
    let stream_bytes = master_repl_offset(&mut con)? - start_offset;
    let started = Instant::now();
    resume()?;
    while !has_sentinel()? {
        if started.elapsed() > SYNC_TIMEOUT {
            bail!("the follower did not catch up within {SYNC_TIMEOUT:?}");
        }
        sleep(POLL);
    }
    Ok((started.elapsed(), stream_bytes))
}

fn measure_catch_up(
    ctx: &Context,
    source: &Server,
    target: &Server,
    state: &Path,
    scratch: &Path,
) -> Result<CatchUp> {
    follow_settings(source)?;
    println!("catch-up after a paused follower: ferry migrate");
    // ferry was stopped after the lag run; the state file resumes it. First, so that it
    // has only its own load to catch up on.
    let (ferry, stream_bytes, _) =
        ferry_catch_up(ctx, source, &target.url(), &[target], state, scratch)?;

    println!("catch-up after a paused follower: ferry migrate into a cluster of 3");
    // A cluster has database 0 only: its source holds the same number of plain keys there
    // (the mixed dataset spans databases); the load is the same.
    let db0 = Server::start(ServerKind::Redis70)?;
    let keys = datasets::count_keys(&mut source.try_client()?)?;
    datasets::fill(
        &db0,
        &mut db0.try_client()?,
        Recipe::Plain {
            keys,
            value_size: 100,
        },
    )?;
    no_sync_delay(&db0)?;
    follow_settings(&db0)?;
    let cluster = Cluster::start(ServerKind::Valkey81, 3)?;
    let cluster_state = state.with_extension("cluster.state");
    let _ = fs::remove_file(&cluster_state);
    let mut command = Command::new(&ctx.ferry);
    command
        .arg("migrate")
        .arg("--source")
        .arg(db0.url())
        .arg("--target")
        .arg(cluster.url())
        .arg("--state")
        .arg(&cluster_state)
        .arg("--flush-target");
    let mut first = measure::spawn(command, scratch)?;
    first.wait_for_line(IN_SYNC, SYNC_TIMEOUT)?;
    if let Err(refusal) = first.stop(libc::SIGTERM)? {
        bail!(
            "ferry migrate into the cluster failed: {}",
            refusal.reason()
        );
    }
    let nodes: Vec<&Server> = cluster.nodes().iter().collect();
    let (into_cluster, _, _) =
        ferry_catch_up(ctx, &db0, &cluster.url(), &nodes, &cluster_state, scratch)?;
    drop(cluster);
    println!("catch-up after a paused follower: native replica");
    let (native, _) = native_catch_up(ctx, source)?;

    Ok(CatchUp {
        load: load_line(ctx.quick),
        stream_bytes,
        native,
        ferry,
        into_cluster,
    })
}

/// A Valkey 8.1 replica of `source`, in sync, then paused with SIGSTOP during the load and
/// continued: [`time_catch_up`]'s time, and the CPU the replica used meanwhile (INFO cpu).
pub(super) fn native_catch_up(ctx: &Context, source: &Server) -> Result<(Duration, Duration)> {
    let replica = Server::start(ServerKind::Valkey81)?;
    native_follow(source, &replica)?;
    let signal = |pid: u32, name: &str| -> Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{name} {pid} failed");
        }
        Ok(())
    };
    let cpu_before = server_cpu(&replica)?;
    let (took, _) = time_catch_up(
        ctx,
        source,
        &[&replica],
        || signal(replica.pid(), "STOP"),
        || signal(replica.pid(), "CONT"),
    )?;
    Ok((took, server_cpu(&replica)?.saturating_sub(cpu_before)))
}

/// The CPU time a server has used so far, by its own account (INFO cpu: user + system,
/// children left out).
pub(super) fn server_cpu(server: &Server) -> Result<Duration> {
    let info = info(&mut server.try_client()?, "cpu")?;
    let mut seconds = 0.0;
    for name in ["used_cpu_user", "used_cpu_sys"] {
        seconds += field(&info, name)
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("no {name} in INFO cpu"))?;
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The whole load must fit the backlog (a partial resync), and the paused follower's
/// output buffer on the source must not be cut.
pub(super) fn follow_settings(source: &Server) -> Result<()> {
    let mut con = source.try_client()?;
    for (name, value) in [
        ("repl-backlog-size", "512mb"),
        ("client-output-buffer-limit", "replica 0 0 0"),
    ] {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query::<()>(&mut con)
            .with_context(|| format!("CONFIG SET {name}"))?;
    }
    Ok(())
}

/// [`time_catch_up`] for ferry stopped with its `state` in sync: resumed with it into
/// `target_url` (checked on `nodes`), then stopped again. Its sample covers that run
/// (start-up, partial resync, the backlog).
pub(super) fn ferry_catch_up(
    ctx: &Context,
    source: &Server,
    target_url: &str,
    nodes: &[&Server],
    state: &Path,
    scratch: &Path,
) -> Result<(Duration, i64, Sample)> {
    let mut running = None;
    let start = |running: &mut Option<measure::Running>| -> Result<()> {
        let mut command = Command::new(&ctx.ferry);
        command
            .arg("migrate")
            .arg("--source")
            .arg(source.url())
            .arg("--target")
            .arg(target_url)
            .arg("--state")
            .arg(state);
        *running = Some(measure::spawn(command, scratch)?);
        Ok(())
    };
    let (took, stream_bytes) =
        time_catch_up(ctx, source, nodes, || Ok(()), || start(&mut running))?;
    let running = running.context("ferry did not start")?;
    if !running.stderr().contains("partial resync accepted") {
        bail!(
            "ferry did not resume with a partial resync:\n{}",
            running.stderr()
        );
    }
    match running.stop(libc::SIGTERM)? {
        Ok(sample) => Ok((took, stream_bytes, sample)),
        Err(refusal) => bail!("ferry migrate failed: {}", refusal.reason()),
    }
}

/// REPLICAOF until the replica is in sync, and it stays a replica.
fn native_follow(source: &Server, replica: &Server) -> Result<()> {
    let mut con = replica.try_client()?;
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(source.port())
        .query::<()>(&mut con)?;
    let started = Instant::now();
    loop {
        let info = info(&mut con, "replication")?;
        if field(&info, "master_link_status") == Some("up")
            && field(&info, "master_sync_in_progress") == Some("0")
        {
            return Ok(());
        }
        if started.elapsed() > SYNC_TIMEOUT {
            bail!("the replica did not sync");
        }
        sleep(POLL);
    }
}

/// One moment of the load: the source's offset and the offset ferry's state file records.
struct Point {
    at: Instant,
    source: i64,
    applied: Option<i64>,
}

struct Lag {
    load: String,
    load_seconds: f64,
    /// Source offset minus the state file's offset, every [`LAG_EVERY`].
    sampled: Vec<i64>,
    /// At each state-file write: the bytes and the time the applied offset trailed the
    /// source by (the file's mtime says when the offset in it was current).
    at_saves: Vec<(f64, f64)>,
    stream_bytes: i64,
    catch_up: f64,
    /// ferry's peak RSS over that run (full sync, then the stream under the load).
    peak_rss: u64,
}

/// Requests of each of the load's tests (`-n`).
fn load_requests(quick: bool) -> u64 {
    if quick {
        100_000
    } else {
        1_000_000
    }
}

fn load_args(quick: bool) -> Vec<String> {
    let n = load_requests(quick).to_string();
    ["-t", "set,lpush,incr", "-n", &n, "-P", "16", "-q"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The load as a command line, for the reports.
pub(super) fn load_line(quick: bool) -> String {
    format!("redis-benchmark {}", load_args(quick).join(" "))
}

/// Commands the load sends (its three tests, `-n` times each), and the sentinel after it.
pub(super) fn load_commands(quick: bool) -> u64 {
    3 * load_requests(quick) + 1
}

/// Deletes what the load and [`time_catch_up`] leave on `source` (redis-benchmark's
/// default key names without `-r`), so the next full sync copies the same keys.
pub(super) fn clear_load(source: &Server) -> Result<()> {
    redis::cmd("DEL")
        .arg(SENTINEL)
        .arg("key:__rand_int__")
        .arg("counter:__rand_int__")
        .arg("mylist")
        .query::<()>(&mut source.try_client()?)
        .context("deleting the load's keys")
}

/// Runs `redis-benchmark` against the source while ferry streams, sampling the lag.
fn measure_lag_under_load(ctx: &Context, source: &Server, state: &Path) -> Result<Lag> {
    let mut con = source.try_client()?;
    let args = load_args(ctx.quick);
    let mut load = source.benchmark_command();
    load.args(&args).stdout(Stdio::null()).stderr(Stdio::null());
    let shown = load_line(ctx.quick);
    println!("lag under `{shown}`");
    let start_offset = master_repl_offset(&mut con)?;
    let started = Instant::now();
    let started_wall = SystemTime::now();
    let mut child = load.spawn().context("cannot start redis-benchmark")?;
    let mut points = Vec::new();
    let mut saves: Vec<(SystemTime, i64)> = Vec::new();
    // When the load ended and the source's offset then; sampling goes on until ferry's
    // state file records that offset.
    let mut load_end: Option<(Instant, i64)> = None;
    let caught_up = loop {
        if load_end.is_none() && child.try_wait()?.is_some() {
            load_end = Some((Instant::now(), master_repl_offset(&mut con)?));
        }
        let source_offset = master_repl_offset(&mut con)?;
        let applied = read_state(state);
        if let Some((mtime, offset)) = applied {
            if saves.last().is_none_or(|(t, _)| *t != mtime) && mtime >= started_wall {
                saves.push((mtime, offset));
            }
        }
        points.push(Point {
            at: Instant::now(),
            source: source_offset,
            applied: applied.map(|(_, o)| o),
        });
        if let Some((ended, end_offset)) = load_end {
            if applied.is_some_and(|(_, o)| o >= end_offset) {
                break ended.elapsed();
            }
            if ended.elapsed() > SYNC_TIMEOUT {
                bail!("ferry did not apply offset {end_offset} within {SYNC_TIMEOUT:?}");
            }
        }
        sleep(LAG_EVERY);
    };
    let (ended, end_offset) = load_end.context("the load never ended")?;
    let load_seconds = ended.duration_since(started).as_secs_f64();
    let catch_up = caught_up.as_secs_f64();
    let sampled = points
        .iter()
        .filter_map(|p| Some(p.source - p.applied?))
        .collect();
    let at_saves = saves
        .iter()
        .filter_map(|(mtime, applied)| {
            let since = mtime.duration_since(started_wall).ok()?;
            let at = started + since;
            let source = source_offset_at(&points, at)?;
            let behind = (source - *applied as f64).max(0.0);
            // Nothing unapplied means no lag, however long ago the source last wrote.
            let behind_ms = if behind < 1.0 {
                0.0
            } else {
                time_since_source_passed(&points, *applied, at)?
            };
            Some((behind, behind_ms))
        })
        .collect();
    Ok(Lag {
        load: shown,
        load_seconds,
        sampled,
        at_saves,
        stream_bytes: end_offset - start_offset,
        catch_up,
        peak_rss: 0,
    })
}

/// The source's offset at `at`, interpolated between samples.
fn source_offset_at(points: &[Point], at: Instant) -> Option<f64> {
    let after = points.iter().position(|p| p.at >= at)?;
    let next = &points[after];
    let Some(before) = after.checked_sub(1).map(|i| &points[i]) else {
        return Some(next.source as f64);
    };
    let span = next.at.duration_since(before.at).as_secs_f64();
    let part = at.duration_since(before.at).as_secs_f64() / span.max(1e-9);
    Some(before.source as f64 + (next.source - before.source) as f64 * part)
}

/// Milliseconds from when the source's offset went past `offset` (the oldest write ferry
/// had not applied) to `at`, interpolated between samples.
fn time_since_source_passed(points: &[Point], offset: i64, at: Instant) -> Option<f64> {
    let reached = points.iter().position(|p| p.source > offset)?;
    let next = &points[reached];
    let when = match reached.checked_sub(1).map(|i| &points[i]) {
        None => next.at,
        Some(before) => {
            let part =
                (offset - before.source) as f64 / (next.source - before.source).max(1) as f64;
            before.at
                + next
                    .at
                    .duration_since(before.at)
                    .mul_f64(part.clamp(0.0, 1.0))
        }
    };
    Some(at.saturating_duration_since(when).as_secs_f64() * 1000.0)
}

impl Lag {
    fn render(&self) -> String {
        let mut text = format!(
            "Lag while ferry streams Redis 7.0 → Valkey 8.1 under `{}` against the source \
             ({:.1} s, {:.1} MB of replication stream, {:.1} MB/s). ferry's applied offset \
             comes from its `--state` file, which it rewrites every second, so a sample \
             taken between writes includes up to 1 s of the file's age; the second row \
             takes the file's own write time (mtime) and the source's offset at that moment \
             (interpolated between 50 ms samples), so it is ferry's true lag at those \
             instants, in bytes and in how long ago the source wrote the applied offset. \
             Samples run from the start of the load until the state file records the source's final offset, {:.2} s after the load ended (the file is written every second). ferry's peak RSS over this run (full sync, then \
             the stream under the load): {:.1} MB.\n\n",
            self.load,
            self.load_seconds,
            self.stream_bytes as f64 / 1e6,
            self.stream_bytes as f64 / 1e6 / self.load_seconds.max(1e-9),
            self.catch_up,
            self.peak_rss as f64 / 1e6
        );
        let mut table = Table::new(&[
            "lag",
            ">samples",
            ">p50 bytes",
            ">p99 bytes",
            ">max bytes",
            ">p50 ms",
            ">p99 ms",
        ]);
        let sampled: Vec<f64> = self.sampled.iter().map(|b| *b as f64).collect();
        table.row(vec![
            "source offset − state file, every 50 ms".to_string(),
            sampled.len().to_string(),
            bytes(percentile(&sampled, 0.50)),
            bytes(percentile(&sampled, 0.99)),
            bytes(percentile(&sampled, 1.0)),
            "—".to_string(),
            "—".to_string(),
        ]);
        let at_bytes: Vec<f64> = self.at_saves.iter().map(|(b, _)| *b).collect();
        let at_ms: Vec<f64> = self.at_saves.iter().map(|(_, ms)| *ms).collect();
        table.row(vec![
            "at each state-file write (true lag)".to_string(),
            at_bytes.len().to_string(),
            bytes(percentile(&at_bytes, 0.50)),
            bytes(percentile(&at_bytes, 0.99)),
            bytes(percentile(&at_bytes, 1.0)),
            millis(percentile(&at_ms, 0.50)),
            millis(percentile(&at_ms, 0.99)),
        ]);
        text.push_str(&table.render());
        text
    }
}

fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len().checked_sub(1)?;
    let index = ((last as f64) * q).round() as usize;
    sorted.get(index.min(last)).copied()
}

fn bytes(value: Option<f64>) -> String {
    value.map_or("—".to_string(), |v| thousands(v.round() as u64))
}

fn millis(value: Option<f64>) -> String {
    value.map_or("—".to_string(), |v| format!("{v:.0}"))
}

fn sync_table(rows: &[Row]) -> String {
    let native = rows
        .iter()
        .find(|r| r.way == Way::Native)
        .map(|r| r.best.as_secs_f64());
    let mut table = Table::new(&[
        "how",
        ">source keys",
        ">target keys",
        ">time to in sync s",
        ">keys/s",
        ">vs native",
        ">peak RSS MB",
    ]);
    for row in rows {
        let seconds = row.best.as_secs_f64();
        table.row(vec![
            row.way.label().to_string(),
            thousands(row.source_keys),
            thousands(row.target_keys),
            format!("{seconds:.2}"),
            thousands((row.source_keys as f64 / seconds.max(1e-9)) as u64),
            native.map_or("—".to_string(), |n| format!("{:.2}×", seconds / n)),
            row.peak_rss
                .map_or("—".to_string(), |b| format!("{:.1}", b as f64 / 1e6)),
        ]);
    }
    table.render()
}

fn info(con: &mut redis::Connection, section: &str) -> Result<String> {
    Ok(redis::cmd("INFO").arg(section).query(con)?)
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

pub fn master_repl_offset(con: &mut redis::Connection) -> Result<i64> {
    let info = info(con, "replication")?;
    field(&info, "master_repl_offset")
        .and_then(|v| v.parse().ok())
        .context("no master_repl_offset in INFO replication")
}

/// The state file's write time and applied offset (see crates/ferry/src/state.rs); `None`
/// while it is missing or records no resumable position.
pub fn read_state(path: &Path) -> Option<(SystemTime, i64)> {
    let mtime = fs::metadata(path).ok()?.modified().ok()?;
    let value: serde_json::Value = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    value.get("replid")?.as_str()?;
    Some((mtime, value.get("offset")?.as_i64()?))
}
