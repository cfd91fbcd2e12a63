//! `cargo xtask chaos [--minutes N] [--seed S] [--only standalone|cluster]`: a soak of
//! ferry under the faults operators meet, not part of the suite. Each scenario runs a
//! migration under a write load while seeded random faults fire; then the load stops and
//! the run must end equal, by `ferry verify` and by the test kit's own key-by-key
//! comparison. Results go to build/chaos/results.md; the exit code is 1 when a scenario
//! did not end equal.

mod cluster;
mod record;
mod standalone;
mod supervisor;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ferry_testkit::rng::Rng;
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::workload::{forget_unreplicated_group_state, SHORT_TTLS_PASSED};

use record::{FaultLog, Outcome};
use supervisor::Supervised;

pub const USAGE: &str =
    "usage: cargo xtask chaos [--minutes N] [--seed S] [--only standalone|cluster]

  --minutes N   faults fire for N minutes in all, split between the scenarios (default 10)
  --seed S      the faults' random sequence (default: from the clock; printed)
  --only NAME   one scenario: standalone or cluster

FERRY_BIN=PATH soaks that ferry binary instead of building target/release/ferry.";

/// What every scenario gets.
pub struct Soak {
    pub dir: PathBuf,
    pub ferry: PathBuf,
}

struct Options {
    minutes: f64,
    seed: u64,
    only: Option<String>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        minutes: 10.0,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |t| t.as_secs()),
        only: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--minutes" => {
                let text = value("--minutes")?;
                options.minutes = text
                    .parse()
                    .ok()
                    .filter(|m: &f64| *m > 0.0)
                    .with_context(|| format!("--minutes {text:?}: expected a positive number"))?;
            }
            "--seed" => {
                let text = value("--seed")?;
                options.seed = text
                    .parse()
                    .with_context(|| format!("--seed {text:?}: expected a whole number"))?;
            }
            "--only" => {
                let name = value("--only")?;
                if name != "standalone" && name != "cluster" {
                    bail!("--only {name:?}: expected standalone or cluster");
                }
                options.only = Some(name.clone());
            }
            other => bail!("unknown chaos option {other:?}\n\n{USAGE}"),
        }
    }
    Ok(options)
}

pub fn run(root: &Path, manifest: &Path, args: &[String]) -> Result<bool> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(true);
    }
    let options = parse(args)?;
    // The test kit finds the servers through this variable.
    std::env::set_var(ferry_testkit::MANIFEST_ENV, manifest);
    let dir = root.join("build").join("chaos");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let soak = Soak {
        dir,
        ferry: crate::bench::tools::ferry(root)?,
    };
    let mut rng = Rng::new(options.seed);
    let scenarios: Vec<&str> = match options.only.as_deref() {
        Some(name) => vec![name],
        None => vec!["standalone", "cluster"],
    };
    let minutes = options.minutes / scenarios.len() as f64;
    println!(
        "chaos: seed {}, {minutes:.1} minutes per scenario",
        options.seed
    );
    let mut outcomes = Vec::new();
    for name in scenarios {
        println!("\n== chaos {name} ==");
        let outcome = match name {
            "standalone" => standalone::run(&soak, minutes, &mut rng),
            _ => cluster::run(&soak, minutes, &mut rng),
        }
        .with_context(|| format!("chaos scenario {name}"))?;
        println!(
            "{}: {} faults, {} full syncs, equal {:.1} s after the load stopped: verify {}, {} differences",
            outcome.name,
            outcome.faults.total(),
            outcome.full_syncs,
            outcome.time_to_equal.as_secs_f64(),
            if outcome.verify_exit == 0 { "clean".to_string() } else { format!("exit {}", outcome.verify_exit) },
            outcome.differences.len()
        );
        outcomes.push(outcome);
    }
    let report = format!(
        "# ferry chaos soak\n\nMeasured by `cargo xtask chaos --minutes {} --seed {}`.\n\n{}",
        options.minutes,
        options.seed,
        record::markdown(&outcomes, options.seed)
    );
    let path = soak.dir.join("results.md");
    fs::write(&path, report).with_context(|| format!("cannot write {}", path.display()))?;
    println!("\nresults written to {}", path.display());
    Ok(outcomes.iter().all(Outcome::clean))
}

/// Between two faults: 5 to 20 s of the load alone, ferry watched all along.
fn pause_between_faults(
    rng: &mut Rng,
    ferry: &mut Supervised,
    faults: &mut FaultLog,
) -> Result<()> {
    wait_for(Duration::from_secs(5 + rng.below(16)), ferry, faults)
}

/// Waits `span`, restarting ferry whenever it exits by itself.
fn wait_for(span: Duration, ferry: &mut Supervised, faults: &mut FaultLog) -> Result<()> {
    let until = Instant::now() + span;
    while Instant::now() < until {
        watch(ferry, faults)?;
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Restarts ferry if it exited by itself, and logs the exit (an outcome, not a fault).
fn watch(ferry: &mut Supervised, faults: &mut FaultLog) -> Result<bool> {
    let exited = ferry.check()?;
    if let Some(line) = &exited {
        faults.event(format!("ferry exited by itself: {line}"));
    }
    Ok(exited.is_some())
}

/// Exits while settling after which ferry is taken as unable to catch up by itself.
const EXITS_WHILE_SETTLING: u32 = 5;

/// `ferry verify` between the two, in rounds; its exit code (0: equal).
fn verify(soak: &Soak, source: &str, target: &str) -> Result<i32> {
    let out = Command::new(&soak.ferry)
        .args([
            "verify", "--source", source, "--target", target, "--rounds", "5",
        ])
        .output()
        .context("cannot run ferry verify")?;
    let code = out.status.code().unwrap_or(-1);
    let report = soak
        .dir
        .join(format!("verify-{}.txt", source.replace([':', '/'], "_")));
    let mut text = out.stdout;
    text.extend_from_slice(&out.stderr);
    fs::write(&report, text).with_context(|| format!("cannot write {}", report.display()))?;
    Ok(code)
}

/// After the load: reads the source (which makes it expire due keys and replicate their
/// DELs), takes the position it reached (`position`), waits until ferry applied it
/// (`reached`), reads the target and compares key by key. Up to three tries, for a ferry
/// that was restarting when the load stopped. Returns the differences (as lines) and the
/// keys compared.
fn settle<P: std::fmt::Debug>(
    ferry: &mut Supervised,
    faults: &mut FaultLog,
    capture_source: impl Fn() -> Result<Snapshot>,
    position: impl Fn() -> Result<P>,
    reached: impl Fn(&P) -> bool,
    capture_target: impl Fn() -> Result<Snapshot>,
) -> Result<(Vec<String>, usize)> {
    std::thread::sleep(SHORT_TTLS_PASSED);
    let mut last = (Vec::new(), 0);
    for _ in 0..3 {
        let mut expected = capture_source()?;
        let wanted = position()?;
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut exits = 0;
        while !reached(&wanted) {
            if Instant::now() > deadline {
                faults.event(format!("ferry did not reach {wanted:?} within 180 s"));
                break;
            }
            if watch(ferry, faults)? {
                exits += 1;
                if exits >= EXITS_WHILE_SETTLING {
                    faults.event(format!(
                        "ferry exited {exits} times without catching up; comparing as it is"
                    ));
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut actual = capture_target()?;
        forget_unreplicated_group_state(&mut expected);
        forget_unreplicated_group_state(&mut actual);
        let differences: Vec<String> = expected
            .diff(&actual, &DiffOptions::new())
            .iter()
            .map(|d| d.to_string())
            .collect();
        last = (differences, expected.key_count());
        if last.0.is_empty() {
            break;
        }
        faults.event(format!("{} differences; comparing again", last.0.len()));
        std::thread::sleep(Duration::from_secs(2));
    }
    Ok(last)
}
