//! Part "page": what the status page costs a migration. The same full sync and the same
//! streaming under a write load, with `--metrics-addr` both times, alternately with no
//! browser and with a headless Chromium holding the page open (polling `/status` and
//! `/history` every second, drawing its plots), A B A B.

use std::fmt::Write as _;
use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use ferry_testkit::{Server, ServerKind};

use super::datasets::{self, Recipe};
use super::measure;
use super::table::Table;
use super::{Context, Section};

const IN_SYNC: &str = "ferry: in sync at offset";
const SERVING: &str = "serving /metrics and /status on http://";
const SYNC_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Watched {
    Closed,
    Open,
}

impl Watched {
    fn label(self) -> &'static str {
        match self {
            Watched::Closed => "page closed",
            Watched::Open => "page open in Chromium",
        }
    }
}

pub fn run(ctx: &Context) -> Result<Section> {
    let chromium = crate::tools::chromium_path()?;
    let keys = if ctx.quick { 100_000 } else { 1_000_000 };
    let recipe = Recipe::Mixed {
        keys,
        value_size: 100,
    };
    let out = ctx.dir.join("out");
    fs::create_dir_all(&out)?;
    println!("filling Redis 7.0: {}", recipe.describe());
    let source = Server::start(ServerKind::Redis70)?;
    datasets::fill(&source, &mut source.try_client()?, recipe)?;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("repl-diskless-sync-delay")
        .arg("0")
        .query::<()>(&mut source.try_client()?)?;

    let mut times: Vec<(Watched, f64, u64)> = Vec::new();
    for run in 0..ctx.runs.max(2) {
        for watched in [Watched::Closed, Watched::Open] {
            let target = Server::start(ServerKind::Valkey81)?;
            let (took, peak_rss) = sync_once(ctx, &chromium, &source, &target, watched, run)?;
            println!("{}: {took:.2} s to in sync", watched.label());
            times.push((watched, took, peak_rss));
        }
    }

    let mut table = Table::new(&[
        "",
        ">fastest (s)",
        ">median (s)",
        ">slowest (s)",
        ">ferry peak RSS",
    ]);
    let mut medians = Vec::new();
    for watched in [Watched::Closed, Watched::Open] {
        let mut runs: Vec<f64> = times
            .iter()
            .filter(|(w, ..)| *w == watched)
            .map(|(_, took, _)| *took)
            .collect();
        runs.sort_by(f64::total_cmp);
        let rss = times
            .iter()
            .filter(|(w, ..)| *w == watched)
            .map(|(.., rss)| *rss)
            .max()
            .unwrap_or(0);
        let median = runs[runs.len() / 2];
        medians.push(median);
        table.row(vec![
            watched.label().to_owned(),
            format!("{:.2}", runs[0]),
            format!("{median:.2}"),
            format!("{:.2}", runs[runs.len() - 1]),
            format!("{} MB", rss / 1024),
        ]);
    }
    let closed_spread = {
        let closed: Vec<f64> = times
            .iter()
            .filter(|(w, ..)| *w == Watched::Closed)
            .map(|(_, took, _)| *took)
            .collect();
        let (min, max) = closed
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), t| (lo.min(*t), hi.max(*t)));
        max / min
    };
    let ratio = medians[1] / medians[0];
    let mut text = String::new();
    writeln!(
        text,
        "`ferry migrate --metrics-addr` from Redis 7.0 ({}) into an empty Valkey 8.1: time \
         from start to `{IN_SYNC} N`, {} runs each, alternating. \"Open\": a headless \
         Chromium on the same 2-core machine loads the status page when ferry starts \
         listening and keeps it open (it polls `/status` and `/history` every second and \
         redraws the plots).\n",
        recipe.describe(),
        ctx.runs.max(2)
    )?;
    writeln!(text, "{}", table.render())?;
    let verdict = if ratio <= closed_spread {
        "within"
    } else {
        "beyond"
    };
    let line = format!(
        "page open / closed, medians: {ratio:.3}× — {verdict} the closed runs' own spread \
         (slowest / fastest {closed_spread:.3}×)."
    );
    println!("{line}");
    writeln!(text, "- {line}")?;
    Ok(Section {
        title: "The status page open vs closed".to_owned(),
        markdown: text,
    })
}

/// One full sync; returns the seconds to in sync and ferry's peak RSS in KB.
fn sync_once(
    ctx: &Context,
    chromium: &std::path::Path,
    source: &Server,
    target: &Server,
    watched: Watched,
    run: usize,
) -> Result<(f64, u64)> {
    let out = ctx.dir.join("out");
    let state = out.join("page.state");
    let _ = fs::remove_file(&state);
    let mut command = Command::new(&ctx.ferry);
    command
        .args(["migrate", "--source"])
        .arg(source.url())
        .arg("--target")
        .arg(target.url())
        .arg("--state")
        .arg(&state)
        .args(["--metrics-addr", "127.0.0.1:0"]);
    let mut running = measure::spawn(command, &out.join("page-stderr.txt"))?;
    running.wait_for_line(SERVING, SYNC_TIMEOUT)?;
    let address = running
        .stderr()
        .lines()
        .find_map(|line| Some(line.split(SERVING).nth(1)?.trim().to_owned()))
        .context("no status address in ferry's output")?;
    let browser = match watched {
        Watched::Closed => None,
        Watched::Open => Some(open_page(chromium, &out, &address, run)?),
    };
    let took = running.wait_for_line(IN_SYNC, SYNC_TIMEOUT)?;
    if let Some(mut browser) = browser {
        if browser.try_wait()?.is_some() {
            bail!("Chromium closed before the sync ended");
        }
        let _ = browser.kill();
        let _ = browser.wait();
    }
    match running.stop(libc::SIGTERM)? {
        Ok(sample) => Ok((took.as_secs_f64(), sample.peak_rss)),
        Err(refusal) => bail!("ferry migrate failed: {}", refusal.reason()),
    }
}

/// A headless Chromium showing the page; it stays until killed.
fn open_page(
    chromium: &std::path::Path,
    out: &std::path::Path,
    address: &str,
    run: usize,
) -> Result<Child> {
    let profile = out.join(format!("chromium-profile-{run}"));
    let _ = fs::remove_dir_all(&profile);
    Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--remote-debugging-port=0",
            "--window-size=1280,800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("http://{address}/"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start chromium")
}
