//! Part "fleet": `ferry fleet run` over the same pairs one at a time and four at a time,
//! in the same run. Each pair is a Redis 7.0 source (its own keys) copied into an empty
//! Valkey 8.1, cut over and verified, as the fleet does; the reference is the fleet at
//! concurrency 1, which is one `ferry migrate` + `cutover` + `verify` after another.
//! Wall time and the CPU of the fleet and its migrate children together (rusage of the
//! fleet process, which waits for its children).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _, Result};
use ferry_testkit::{Server, ServerKind};

use super::datasets::{self, thousands, Recipe};
use super::measure;
use super::migrate::no_sync_delay;
use super::table::Table;
use super::{Context, Section};

/// Pairs in the fleet.
const PAIRS: usize = 8;
/// The concurrencies compared: one pair at a time, and the fleet's default.
const CONCURRENCY: [usize; 2] = [1, 4];

struct Run {
    concurrency: usize,
    wall: f64,
    cpu: f64,
    peak_rss_mb: f64,
}

pub fn run(ctx: &Context) -> Result<Section> {
    let keys = if ctx.quick { 20_000 } else { 100_000 };
    let recipe = Recipe::Plain {
        keys,
        value_size: 100,
    };
    let out = ctx.dir.join("out").join("fleet");
    fs::create_dir_all(&out)?;
    println!(
        "starting {PAIRS} Redis 7.0 sources: {} each",
        recipe.describe()
    );
    let mut sources = Vec::with_capacity(PAIRS);
    for _ in 0..PAIRS {
        let source = Server::start(ServerKind::Redis70)?;
        datasets::fill(&source, &mut source.try_client()?, recipe)?;
        no_sync_delay(&source)?;
        sources.push(source);
    }

    let mut runs = Vec::new();
    for round in 0..ctx.runs.max(1) {
        for concurrency in CONCURRENCY {
            let targets: Vec<Server> = (0..PAIRS)
                .map(|_| Server::start(ServerKind::Valkey81))
                .collect::<Result<_>>()?;
            let dir = out.join(format!("run-{round}-{concurrency}"));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir)?;
            let plan = write_plan(&dir, &sources, &targets)?;
            let mut command = Command::new(&ctx.ferry);
            command
                .args(["fleet", "run"])
                .arg(&plan)
                .args(["--concurrency", &concurrency.to_string()]);
            let sample = match measure::run_once(&mut command, &dir.join("stderr.txt"))? {
                Ok(sample) => sample,
                Err(refusal) => bail!(
                    "ferry fleet run --concurrency {concurrency} failed: {}",
                    refusal.reason()
                ),
            };
            for (source, target) in sources.iter().zip(&targets) {
                let copied = datasets::count_keys(&mut target.try_client()?)?;
                let held = datasets::count_keys(&mut source.try_client()?)?;
                if copied != held {
                    bail!("a pair's target holds {copied} keys, its source {held}");
                }
            }
            let run = Run {
                concurrency,
                wall: sample.wall.as_secs_f64(),
                cpu: sample.cpu.as_secs_f64(),
                peak_rss_mb: sample.peak_rss as f64 / 1e6,
            };
            println!(
                "fleet of {PAIRS}, concurrency {concurrency}: {:.2} s, CPU {:.2} s",
                run.wall, run.cpu
            );
            runs.push(run);
        }
    }

    let fastest = |concurrency: usize| {
        runs.iter()
            .filter(|r| r.concurrency == concurrency)
            .min_by(|a, b| a.wall.total_cmp(&b.wall))
            .context("no run")
    };
    let one_at_a_time = fastest(1)?;
    let total_keys = keys * PAIRS as u64;
    let mut table = Table::new(&[
        "",
        ">time (s)",
        ">per pair (s)",
        ">keys/s",
        ">CPU (s)",
        ">keys per CPU-second",
        ">speed vs one at a time",
    ]);
    for concurrency in CONCURRENCY {
        let run = fastest(concurrency)?;
        table.row(vec![
            format!("`ferry fleet run --concurrency {concurrency}`"),
            format!("{:.2}", run.wall),
            format!("{:.2}", run.wall / PAIRS as f64),
            thousands((total_keys as f64 / run.wall) as u64),
            format!("{:.2}", run.cpu),
            thousands((total_keys as f64 / run.cpu) as u64),
            format!("{:.2}×", one_at_a_time.wall / run.wall),
        ]);
    }
    let peak = runs.iter().map(|r| r.peak_rss_mb).fold(0.0, f64::max);
    let mut text = String::new();
    writeln!(
        text,
        "{PAIRS} pairs, each a Redis 7.0 source ({}) and an empty Valkey 8.1, every pair \
         copied, cut over and verified by one `ferry fleet run` (one wave); fastest of {} \
         run(s) per concurrency, alternating, fresh targets each time. CPU: the fleet and its \
         migrate children together. Load average at the start: {}. This machine has 2 cores, \
         shared by the 16 servers too.\n",
        recipe.describe(),
        ctx.runs.max(1),
        ctx.load_at_start
    )?;
    writeln!(text, "{}", table.render())?;
    writeln!(text, "- the fleet process's own peak RSS: {peak:.1} MB.")?;
    println!("\n{}", table.render());
    Ok(Section {
        title: "A fleet of pairs, one at a time and four at a time".to_owned(),
        markdown: text,
    })
}

fn write_plan(dir: &Path, sources: &[Server], targets: &[Server]) -> Result<std::path::PathBuf> {
    let mut plan = String::from("state_dir = \"state\"\n");
    for (index, (source, target)) in sources.iter().zip(targets).enumerate() {
        write!(
            plan,
            "\n[[pair]]\nname = \"pair-{index}\"\nsource = \"{}\"\ntarget = \"{}\"\n",
            source.url(),
            target.url()
        )?;
    }
    let path = dir.join("fleet.toml");
    fs::write(&path, plan)?;
    Ok(path)
}
