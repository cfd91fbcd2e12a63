//! Part "page": what the status page costs a migration. The same full sync, with
//! `--metrics-addr` both times, alternately with the page closed and open in a headless
//! Chromium (polling `/status` and `/history` every second, drawing its plots), A B A B.
//! One browser serves every run, started before the first: its start-up is not the
//! page's cost. Closed, it shows `about:blank`.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use ferry_testkit::{Server, ServerKind};

use super::datasets::{self, Recipe};
use super::measure;
use super::migrate::{no_sync_delay, IN_SYNC};
use super::table::Table;
use super::{Context, Section};

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
    let (chromium, chromedriver) = crate::tools::browser()?;
    let browser = Browser::start(&chromium, &chromedriver)?;
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
    no_sync_delay(&source)?;

    let mut runs: Vec<Run> = Vec::new();
    for _ in 0..ctx.runs.max(2) {
        for watched in [Watched::Closed, Watched::Open] {
            let target = Server::start(ServerKind::Valkey81)?;
            let run = sync_once(ctx, &browser, &source, &target, watched, false)?;
            println!(
                "{}: {:.2} s to in sync, ferry used {:.2} s of CPU",
                watched.label(),
                run.wall,
                run.cpu
            );
            runs.push(run);
        }
    }

    let mut table = Table::new(&[
        "",
        ">wall, median (s)",
        ">wall, fastest–slowest (s)",
        ">ferry CPU, median (s)",
        ">ferry CPU, least–most (s)",
        ">ferry peak RSS",
    ]);
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for watched in [Watched::Closed, Watched::Open] {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.watched == watched).collect();
        let walls = sorted(mine.iter().map(|r| r.wall));
        let cpus = sorted(mine.iter().map(|r| r.cpu));
        let rss = mine.iter().map(|r| r.peak_rss).max().unwrap_or(0);
        table.row(vec![
            watched.label().to_owned(),
            format!("{:.2}", median(&walls)),
            format!("{:.2}–{:.2}", walls[0], walls[walls.len() - 1]),
            format!("{:.2}", median(&cpus)),
            format!("{:.2}–{:.2}", cpus[0], cpus[cpus.len() - 1]),
            format!("{:.0} MB", rss as f64 / 1e6),
        ]);
        wall.push(walls);
        cpu.push(cpus);
    }
    let mut text = String::new();
    writeln!(
        text,
        "`ferry migrate --metrics-addr` from Redis 7.0 ({}) into an empty Valkey 8.1: time \
         from start to `{IN_SYNC} N` and the CPU ferry used (user + system, until stopped \
         right after), {} runs each, alternating. One headless Chromium on the same 2-core \
         machine, started before the runs, loads the status page when ferry starts \
         listening (\"open\": it polls `/status` and `/history` every second and redraws \
         the plots) or stays on `about:blank` (\"closed\"). The wall time also pays for \
         the browser's own rendering on the same two cores; ferry's CPU time is what \
         serving the page costs ferry.\n",
        recipe.describe(),
        ctx.runs.max(2)
    )?;
    writeln!(text, "{}", table.render())?;
    for (what, values) in [("wall time", &wall), ("ferry CPU time", &cpu)] {
        let (closed, open) = (&values[0], &values[1]);
        let ratio = median(open) / median(closed);
        let spread = closed[closed.len() - 1] / closed[0];
        let verdict = if ratio <= spread { "within" } else { "beyond" };
        let line = format!(
            "{what}, page open / closed, medians: {ratio:.3}× — {verdict} the closed runs' \
             own spread ({spread:.3}×)."
        );
        println!("{line}");
        writeln!(text, "- {line}")?;
    }
    let burst = sync_once(
        ctx,
        &browser,
        &source,
        &Server::start(ServerKind::Valkey81)?,
        Watched::Closed,
        true,
    )?;
    if let Some(served) = burst.status_per_sec {
        let line = format!(
            "ferry's listener answered {served:.0} `GET /status` per second (two clients \
             back to back for 2 s, once in sync, in a run of its own); an open page asks 2 \
             per second."
        );
        println!("{line}");
        writeln!(text, "- {line}")?;
    }
    Ok(Section {
        title: "The status page open vs closed".to_owned(),
        markdown: text,
    })
}

struct Run {
    watched: Watched,
    /// `GET /status` answered per second once in sync, with the page closed.
    status_per_sec: Option<f64>,
    /// Seconds from start to in sync.
    wall: f64,
    /// Seconds of CPU ferry used.
    cpu: f64,
    peak_rss: u64,
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values
}

fn median(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}

/// One full sync, measured.
fn sync_once(
    ctx: &Context,
    browser: &Browser,
    source: &Server,
    target: &Server,
    watched: Watched,
    serve_burst: bool,
) -> Result<Run> {
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
    if watched == Watched::Open {
        browser.goto(&format!("http://{address}/"))?;
    }
    let took = running.wait_for_line(IN_SYNC, SYNC_TIMEOUT)?;
    // Not in the timed runs: the burst would count in ferry's CPU time.
    let status_per_sec = match serve_burst {
        true => Some(requests_per_sec(&address, "/status")?),
        false => None,
    };
    if watched == Watched::Open {
        let shown = browser.phase_shown()?;
        // "…" until the first /status arrives.
        if shown.is_empty() || shown == "…" {
            bail!("the page showed no phase: it was not polling");
        }
        browser.goto("about:blank")?;
    }
    match running.stop(libc::SIGTERM)? {
        Ok(sample) => Ok(Run {
            watched,
            status_per_sec,
            wall: took.as_secs_f64(),
            cpu: sample.cpu.as_secs_f64(),
            peak_rss: sample.peak_rss,
        }),
        Err(refusal) => bail!("ferry migrate failed: {}", refusal.reason()),
    }
}

/// How many `GET path` ferry's listener answers per second, two clients asking back to
/// back for two seconds (one connection per request, as the listener closes each).
fn requests_per_sec(address: &str, path: &str) -> Result<f64> {
    use std::io::{Read, Write};
    const FOR: Duration = Duration::from_secs(2);
    let started = Instant::now();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (address, path) = (address.to_owned(), path.to_owned());
            std::thread::spawn(move || -> Result<u64> {
                let mut answered = 0;
                let mut reply = Vec::new();
                while started.elapsed() < FOR {
                    let mut stream = TcpStream::connect(&address)?;
                    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n")?;
                    reply.clear();
                    stream.read_to_end(&mut reply)?;
                    if !reply.starts_with(b"HTTP/1.1 200") {
                        bail!("GET {path} was not answered 200");
                    }
                    answered += 1;
                }
                Ok(answered)
            })
        })
        .collect();
    let mut answered = 0;
    for client in clients {
        answered += client
            .join()
            .map_err(|_| anyhow::anyhow!("a client panicked"))??;
    }
    Ok(answered as f64 / started.elapsed().as_secs_f64())
}

/// A headless Chromium driven by chromedriver over WebDriver.
struct Browser {
    runtime: tokio::runtime::Runtime,
    client: fantoccini::Client,
    driver: Child,
}

impl Browser {
    fn start(chromium: &std::path::Path, chromedriver: &std::path::Path) -> Result<Browser> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start chromedriver")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if Instant::now() > deadline {
                bail!("chromedriver is not listening on port {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let serde_json::Value::Object(capabilities) = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                // As root Chromium's sandbox refuses to start; the page is our own.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,800"],
            },
        }) else {
            unreachable!("a JSON object")
        };
        let client = runtime
            .block_on(
                fantoccini::ClientBuilder::new(
                    hyper_util::client::legacy::connect::HttpConnector::new(),
                )
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}/")),
            )
            .context("cannot open a Chromium session")?;
        let browser = Browser {
            runtime,
            client,
            driver,
        };
        browser.goto("about:blank")?;
        Ok(browser)
    }

    fn goto(&self, url: &str) -> Result<()> {
        self.runtime
            .block_on(self.client.goto(url))
            .with_context(|| format!("Chromium cannot load {url}"))
    }

    /// The phase the page shows: proof that it polled.
    fn phase_shown(&self) -> Result<String> {
        let value = self
            .runtime
            .block_on(self.client.execute(
                "const e = document.querySelector('[data-field=\"phase\"]'); \
                 return e ? e.textContent : '';",
                Vec::new(),
            ))
            .context("cannot read the page")?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let client = self.client.clone();
        let _ = self.runtime.block_on(client.close());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
