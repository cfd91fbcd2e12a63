//! Part "relay": how long a Valkey 8.1 replica takes to reach `master_link_status:up`
//! through `ferry relay` from Redis 8.0, beside the same Valkey replicating natively from
//! Redis 7.0 on the same data, in the same run; and ferry's peak memory meanwhile.

use std::fmt::Write as _;
use std::fs;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use ferry_testkit::{Server, ServerKind};

use super::datasets::{self, thousands, Recipe};
use super::measure;
use super::table::Table;
use super::{Context, Section};

const SYNC_TIMEOUT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(10);
/// Redis 8 types Valkey 8.1 lacks: field TTLs persisted, vector sets left out.
const REDIS8_POLICY: [&str; 4] = ["--hash-field-ttl", "persist", "--vector-set", "skip"];
/// The target: the relayed sync within this multiple of native replication's time.
const TARGET_RATIO: f64 = 1.2;

struct Row {
    label: &'static str,
    source_keys: u64,
    target_keys: u64,
    best: Duration,
    peak_rss: Option<u64>,
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
    let scratch = out.join("relay-stderr.txt");

    println!("filling Redis 7.0: {}", recipe.describe());
    let redis70 = Server::start(ServerKind::Redis70)?;
    datasets::fill(&redis70, &mut redis70.try_client()?, recipe)?;
    no_sync_delay(&redis70)?;
    let redis80 = Server::start_with_rdb(ServerKind::Redis80, &redis8_file.path)?;
    no_sync_delay(&redis80)?;

    let mut native = Row {
        label: "Valkey 8.1 REPLICAOF Redis 7.0 (native)",
        source_keys: datasets::count_keys(&mut redis70.try_client()?)?,
        target_keys: 0,
        best: Duration::MAX,
        peak_rss: None,
    };
    // The source's own speed: Redis 8.0 replicating to Redis 8.0, for reference.
    let mut redis8_native = Row {
        label: "Redis 8.0 REPLICAOF Redis 8.0 (the source's own replication)",
        source_keys: datasets::count_keys(&mut redis80.try_client()?)?,
        target_keys: 0,
        best: Duration::MAX,
        peak_rss: None,
    };
    let mut relayed = Row {
        label: "Valkey 8.1 REPLICAOF ferry relay ← Redis 8.0 (persist, skip)",
        source_keys: datasets::count_keys(&mut redis80.try_client()?)?,
        target_keys: 0,
        best: Duration::MAX,
        peak_rss: Some(0),
    };
    // Alternate the ways, so that a busy moment of the machine hits both alike.
    for _ in 0..ctx.runs {
        let replica = Server::start(ServerKind::Valkey81)?;
        let took = replicate(&replica, redis70.port())?;
        native.target_keys = datasets::count_keys(&mut replica.try_client()?)?;
        native.best = native.best.min(took);
        println!("{}: {:.2} s", native.label, took.as_secs_f64());
        drop(replica);

        let replica = Server::start(ServerKind::Redis80)?;
        let took = replicate(&replica, redis80.port())?;
        redis8_native.target_keys = datasets::count_keys(&mut replica.try_client()?)?;
        redis8_native.best = redis8_native.best.min(took);
        println!("{}: {:.2} s", redis8_native.label, took.as_secs_f64());
        drop(replica);

        let mut command = Command::new(&ctx.ferry);
        command
            .args([
                "relay",
                "--source",
                &redis80.url(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(REDIS8_POLICY);
        let mut running = measure::spawn(command, &scratch)?;
        let port = loop {
            if let Some(port) = listening_port(&running.stderr()) {
                break port;
            }
            if running.has_exited() || running.elapsed() > Duration::from_secs(30) {
                bail!("ferry relay did not start listening:\n{}", running.stderr());
            }
            sleep(POLL);
        };
        let replica = Server::start(ServerKind::Valkey81)?;
        let took = replicate(&replica, port)?;
        relayed.target_keys = datasets::count_keys(&mut replica.try_client()?)?;
        relayed.best = relayed.best.min(took);
        drop(replica);
        let sample = match running.stop(libc::SIGTERM)? {
            Ok(sample) => sample,
            Err(refusal) => bail!("ferry relay failed: {}", refusal.reason()),
        };
        relayed.peak_rss = relayed.peak_rss.map(|p| p.max(sample.peak_rss));
        println!(
            "{}: {:.2} s, peak RSS {:.1} MB",
            relayed.label,
            took.as_secs_f64(),
            sample.peak_rss as f64 / 1e6
        );
    }

    let mut table = Table::new(&[
        "way",
        ">source keys",
        ">replica keys",
        ">to link up (best)",
        ">ferry peak RSS",
    ]);
    for row in [&native, &redis8_native, &relayed] {
        table.row(vec![
            row.label.to_string(),
            thousands(row.source_keys),
            thousands(row.target_keys),
            format!("{:.2} s", row.best.as_secs_f64()),
            row.peak_rss
                .map_or("—".to_string(), |p| format!("{:.1} MB", p as f64 / 1e6)),
        ]);
    }
    let rendered = table.render();
    println!("\n{rendered}");
    let ratio = relayed.best.as_secs_f64() / native.best.as_secs_f64().max(1e-9);
    let verdict = format!(
        "relay: {ratio:.2}× native replication's time (target: within {TARGET_RATIO}×) — {}.",
        if ratio <= TARGET_RATIO {
            "met"
        } else {
            "NOT met"
        }
    );
    let own = relayed.best.as_secs_f64() / redis8_native.best.as_secs_f64().max(1e-9);
    let reference = format!(
        "relay: {own:.2}× Redis 8.0's own replication of the same data (the source's snapshot \
         speed bounds the relay)."
    );
    println!("{verdict}\n{reference}");
    let mut text = String::new();
    writeln!(
        text,
        "An empty Valkey 8.1 replicates the same data (Redis 8.0's is the cached {}.rdb: {}; \
         Redis 7.0 is filled with the same recipe) on loopback, sources with \
         `repl-diskless-sync-delay 0`. Time from `REPLICAOF` to `master_link_status:up` \
         with `master_sync_in_progress:0`; through ferry, the source's snapshot is decoded, \
         converted to RDB 11 and streamed to the replica as it arrives. Peak RSS is ferry's \
         (ru_maxrss) over its whole run, the largest of all runs. Fastest of {} run(s), \
         the three ways alternating. Redis 8.0 replicating to itself is the reference for \
         how fast this source produces its snapshot.\n",
        redis8_file.name,
        recipe.describe(),
        ctx.runs
    )?;
    writeln!(text, "{rendered}")?;
    writeln!(text, "- {verdict}\n- {reference}")?;
    Ok(Section {
        title: "Relay (ferry relay)".to_string(),
        markdown: text,
    })
}

fn listening_port(stderr: &str) -> Option<u16> {
    let rest = stderr.split("listening on ").nth(1)?;
    let address = rest.split(':').nth(1)?;
    address
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

fn no_sync_delay(server: &Server) -> Result<()> {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("repl-diskless-sync-delay")
        .arg("0")
        .query::<()>(&mut server.try_client()?)
        .with_context(|| format!("CONFIG SET repl-diskless-sync-delay 0 on {}", server.kind()))
}

/// REPLICAOF 127.0.0.1 `port` until the link is up and loading is done.
fn replicate(replica: &Server, port: u16) -> Result<Duration> {
    let mut con = replica.try_client()?;
    let started = Instant::now();
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(port)
        .query::<()>(&mut con)?;
    loop {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut con)?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .map(str::trim)
                .map(str::to_string)
        };
        if field("master_link_status").as_deref() == Some("up")
            && field("master_sync_in_progress").as_deref() == Some("0")
        {
            return Ok(started.elapsed());
        }
        if started.elapsed() > SYNC_TIMEOUT {
            bail!(
                "Valkey 8.1 not in sync after {SYNC_TIMEOUT:?}; log:\n{}",
                replica.log_tail(10)
            );
        }
        sleep(POLL);
    }
}
