//! Part "cutover": the write-pause window `ferry cutover` causes while `redis-benchmark`
//! writes to the source, and the window of the `ferry rollback` that follows (the
//! reverse migration under the same load on Valkey), Redis 7.0 and 8.0 → Valkey 8.1.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use ferry_testkit::{Server, ServerKind};
use serde_json::Value;

use super::datasets::{self, Recipe};
use super::table::Table;
use super::{Context, Section};

const IN_SYNC: &str = "ferry: in sync at offset";
const SERVING: &str = "serving /metrics and /status on http://";
const WAIT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(20);
/// How long the load runs before the switch, so ferry streams under it.
const WARM_UP: Duration = Duration::from_secs(2);
const REDIS8_POLICY: [&str; 4] = ["--hash-field-ttl", "persist", "--vector-set", "skip"];
/// The target for the write-pause window on this machine.
const TARGET_MS: f64 = 1000.0;

/// The load: what the README quotes.
fn load_args() -> Vec<&'static str> {
    vec![
        "-t",
        "set,lpush,incr",
        "-n",
        "100000000",
        "-c",
        "8",
        "-P",
        "16",
        "-q",
    ]
}

struct Switch {
    pause_ms: f64,
    /// The step that took longest while paused, and its time.
    longest: (String, f64),
}

struct Row {
    label: String,
    cutover: Vec<Switch>,
    rollback: Vec<Switch>,
}

pub fn run(ctx: &Context) -> Result<Section> {
    let keys = if ctx.quick { 10_000 } else { 100_000 };
    let recipe = Recipe::Mixed {
        keys,
        value_size: 100,
    };
    let out = ctx.dir.join("out").join("cutover");
    fs::create_dir_all(&out)?;
    let mut rows = Vec::new();
    for (kind, policy) in [
        (ServerKind::Redis70, &[][..]),
        (ServerKind::Redis80, &REDIS8_POLICY[..]),
    ] {
        let mut row = Row {
            label: format!("{} → valkey-8.1", kind.name()),
            cutover: Vec::new(),
            rollback: Vec::new(),
        };
        for _ in 0..ctx.runs {
            let (cutover, rollback) = one_run(ctx, kind, policy, recipe, &out)?;
            println!(
                "{}: cutover pause {:.1} ms, rollback pause {:.1} ms",
                row.label, cutover.pause_ms, rollback.pause_ms
            );
            row.cutover.push(cutover);
            row.rollback.push(rollback);
        }
        rows.push(row);
    }
    let mut table = Table::new(&[
        "switch",
        "pause ms (best)",
        "pause ms (worst)",
        "longest step in the worst (ms)",
    ]);
    let mut worst_of_all: f64 = 0.0;
    for row in &rows {
        for (what, switches) in [("cutover", &row.cutover), ("rollback", &row.rollback)] {
            let best = switches.iter().map(|s| s.pause_ms).fold(f64::MAX, f64::min);
            let worst = switches
                .iter()
                .max_by(|a, b| a.pause_ms.total_cmp(&b.pause_ms))
                .context("no run")?;
            worst_of_all = worst_of_all.max(worst.pause_ms);
            let label = if what == "cutover" {
                format!("`ferry cutover` {}", row.label)
            } else {
                format!(
                    "`ferry rollback` valkey-8.1 → {}",
                    row.label.split(' ').next().unwrap_or("")
                )
            };
            table.row(vec![
                label,
                format!("{best:.0}"),
                format!("{:.0}", worst.pause_ms),
                format!("{} {:.0}", worst.longest.0, worst.longest.1),
            ]);
        }
    }
    let rendered = table.render();
    println!("\n{rendered}");
    let mut text = String::new();
    writeln!(
        text,
        "Write-pause window (CLIENT PAUSE sent → CLIENT UNPAUSE answered) of `ferry cutover \
         --keep-rollback` and then `ferry rollback`, each with `redis-benchmark {}` \
         running against the server being left (and a verify sample of 100 keys). Sources \
         hold {}. {} run(s) each.\n",
        load_args().join(" "),
        recipe.describe(),
        ctx.runs
    )?;
    writeln!(text, "{rendered}")?;
    writeln!(
        text,
        "- Longest window {worst_of_all:.0} ms (target: under {TARGET_MS:.0} ms) — {}.",
        if worst_of_all < TARGET_MS {
            "met"
        } else {
            "NOT met"
        }
    )?;
    Ok(Section {
        title: "Cutover (ferry cutover, ferry rollback)".to_string(),
        markdown: text,
    })
}

/// A background process with stdout and stderr in files.
struct Proc {
    child: Child,
    stdout: std::path::PathBuf,
    stderr: std::path::PathBuf,
}

impl Proc {
    fn spawn(mut command: Command, dir: &Path, name: &str) -> Result<Proc> {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let child = command
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout)?)
            .stderr(fs::File::create(&stderr)?)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Proc {
            child,
            stdout,
            stderr,
        })
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for a stderr line containing `needle`; returns the rest of that line.
    fn wait_for(&mut self, needle: &str) -> Result<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.stderr();
            if let Some(rest) = text
                .lines()
                .find_map(|l| l.split_once(needle).map(|(_, r)| r))
            {
                return Ok(rest.trim().to_string());
            }
            if self.child.try_wait()?.is_some() || Instant::now() > deadline {
                bail!("no {needle:?} from ferry:\n{text}");
            }
            sleep(POLL);
        }
    }

    /// The first stdout line, as JSON (cutover's report).
    fn report(&mut self) -> Result<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = fs::read_to_string(&self.stdout).unwrap_or_default();
            if let Some(line) = text.lines().next().filter(|_| text.contains('\n')) {
                return serde_json::from_str(line).context("the cutover's JSON report");
            }
            if self.child.try_wait()?.is_some() || Instant::now() > deadline {
                bail!("no report from ferry cutover:\n{}", self.stderr());
            }
            sleep(POLL);
        }
    }

    fn wait_exit(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!("ferry did not exit:\n{}", self.stderr());
            }
            sleep(POLL);
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn load(server: &Server) -> Result<Proc> {
    let mut command = server.benchmark_command();
    command.args(load_args());
    let dir = std::env::temp_dir();
    Proc::spawn(
        command,
        &dir,
        &format!("ferry-bench-load-{}", server.port()),
    )
}

fn switch_of(report: &Value) -> Result<Switch> {
    if report["ok"] != true {
        bail!("the switch failed: {}", report["error"]);
    }
    let pause_ms = report["pause_window_ms"]
        .as_f64()
        .context("no pause window")?;
    let mut longest = (String::new(), 0.0);
    let mut paused = false;
    for step in report["steps"].as_array().context("no steps")? {
        let name = step["step"].as_str().unwrap_or_default();
        paused |= name == "pause";
        let ms = step["ms"].as_f64().unwrap_or_default();
        if paused && ms > longest.1 {
            longest = (name.to_string(), ms);
        }
    }
    Ok(Switch { pause_ms, longest })
}

/// The runs' control token (POST /stop), passed in the environment as an operator would.
const CONTROL_TOKEN_VAR: &str = "FERRY_BENCH_CONTROL_TOKEN";
const CONTROL_TOKEN: &str = "bench-control-token-0123456789";
const CONTROL_TOKEN_FLAG: [&str; 2] = ["--control-token-env", CONTROL_TOKEN_VAR];

fn one_run(
    ctx: &Context,
    kind: ServerKind,
    policy: &[&str],
    recipe: Recipe,
    out: &Path,
) -> Result<(Switch, Switch)> {
    let source = Server::start(kind)?;
    datasets::fill(&source, &mut source.try_client()?, recipe)?;
    let target = Server::start(ServerKind::Valkey81)?;
    let state = out.join("migrate.state");
    let rollback_state = out.join("rollback.state");
    let _ = fs::remove_file(&state);
    let _ = fs::remove_file(&rollback_state);

    let mut migrate = Command::new(&ctx.ferry);
    migrate
        .arg("migrate")
        .args(["--source", &source.url(), "--target", &target.url()])
        .arg("--state")
        .arg(&state)
        .args(["--metrics-addr", "127.0.0.1:0"])
        .args(CONTROL_TOKEN_FLAG)
        .env(CONTROL_TOKEN_VAR, CONTROL_TOKEN)
        .args(policy);
    let mut migrate = Proc::spawn(migrate, out, "migrate")?;
    let status = migrate.wait_for(SERVING)?;
    migrate.wait_for(IN_SYNC)?;

    let source_load = load(&source)?;
    sleep(WARM_UP);
    let mut cutover = Command::new(&ctx.ferry);
    cutover
        .arg("cutover")
        .args(["--source", &source.url(), "--target", &target.url()])
        .args(["--status", &status, "--json", "--keep-rollback"])
        .arg("--rollback-state")
        .arg(&rollback_state)
        .args(["--rollback-metrics-addr", "127.0.0.1:0"])
        .args(CONTROL_TOKEN_FLAG)
        .env(CONTROL_TOKEN_VAR, CONTROL_TOKEN)
        .args(policy);
    let mut cutover = Proc::spawn(cutover, out, "cutover")?;
    let forward = switch_of(&cutover.report()?)?;
    drop(source_load);
    migrate.wait_exit()?;

    let reverse_status = cutover.wait_for(SERVING)?;
    cutover.wait_for(IN_SYNC)?;
    let target_load = load(&target)?;
    sleep(WARM_UP);
    let output = Command::new(&ctx.ferry)
        .arg("rollback")
        .args(["--source", &target.url(), "--target", &source.url()])
        .args(["--status", &reverse_status, "--json"])
        .args(CONTROL_TOKEN_FLAG)
        .env(CONTROL_TOKEN_VAR, CONTROL_TOKEN)
        .output()
        .context("cannot run ferry rollback")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(text.lines().next().unwrap_or_default())
        .with_context(|| {
            format!(
                "no rollback report: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    let back = switch_of(&report)?;
    drop(target_load);
    cutover.wait_exit()?;
    Ok((forward, back))
}
