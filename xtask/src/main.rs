//! Project chores: `cargo xtask servers|tools|test|demo|bench`.

mod bench;
mod chaos;
mod debian;
mod demo;
mod gates;
mod layers;
mod profiles;
mod servers;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  servers        install the Redis/Valkey test servers under build/servers and print their versions
  tools          the tests' tools, named in build/tools/tools.json: promtool (from
                 Debian's prometheus package, unpacked under build/tools), chromium with
                 chromedriver, a test prerequisite: when they are not on PATH this installs
                 them into the system (`apt-get install --no-install-recommends chromium
                 chromium-driver fonts-dejavu-core`, as root or through passwordless sudo),
                 and kubernetes-validate from PyPI in a venv under build/tools (with
                 Debian's python3-venv installed the same way where `python3 -m venv`
                 fails)
  test [ARGS]    gates first (cargo fmt --check, clippy and doc over the workspace, warnings
                 as errors; the layers check), then install the servers and the tools and
                 run `cargo test --workspace [ARGS]` against them (each crate's integration
                 tests are one binary, `it`, a module per file: `cargo xtask test -p ferry
                 --test it migrate_sync::`); --no-gates skips the gates (local iteration only)
  demo           act 1: Valkey 8.1 refuses a Redis 8.0 file, ferry inspects and converts it;
                 act 2: ferry migrate brings an empty Valkey 8.1 in sync with that Redis 8.0
                 under a write load, and both sides are compared key by key
  layers         check crates/ferry/src's imports against the table in docs/architecture.md
  profiles       write crates/ferry/profiles/*.json (ferry assess --to) from the real servers
  bench [ARGS]   measure ferry beside its peers (--quick, --only PART; parts: codec,
                 migrate; results in build/bench/results.md)
  chaos [ARGS]   soak: migrations under a write load while faults fire (--minutes N,
                 --seed S, --only standalone|cluster; results in build/chaos/results.md)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode> {
    let Some((command, rest)) = args.split_first() else {
        println!("{USAGE}");
        return Ok(ExitCode::FAILURE);
    };
    match command.as_str() {
        "servers" => {
            servers::ensure(&repo_root())?;
            Ok(ExitCode::SUCCESS)
        }
        "tools" => {
            tools::ensure(&repo_root())?;
            Ok(ExitCode::SUCCESS)
        }
        "test" => test(rest),
        "layers" => {
            layers::run(&repo_root())?;
            Ok(ExitCode::SUCCESS)
        }
        "demo" => {
            let root = repo_root();
            let manifest = servers::ensure(&root)?;
            demo::run(&root, &manifest)
        }
        "profiles" => {
            let root = repo_root();
            servers::ensure(&root)?;
            profiles::generate(&root)?;
            Ok(ExitCode::SUCCESS)
        }
        "bench" => {
            let root = repo_root();
            let manifest = servers::ensure(&root)?;
            bench::run(&root, &manifest, rest)?;
            Ok(ExitCode::SUCCESS)
        }
        "chaos" => {
            let root = repo_root();
            let manifest = servers::ensure(&root)?;
            let equal = chaos::run(&root, &manifest, rest)?;
            Ok(if equal {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        // Internal: runs one measured process for `bench` (see bench::measure).
        bench::measure::HELPER => {
            bench::measure::helper(rest)?;
            Ok(ExitCode::SUCCESS)
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

/// Runs the gates, installs the servers and the tools, then runs the workspace tests with
/// `FERRY_SERVERS` and `FERRY_TOOLS` pointing at them.
fn test(extra: &[String]) -> Result<ExitCode> {
    let root = repo_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let (skip_gates, extra) = gates::take_skip_flag(extra);
    if !skip_gates {
        gates::run(&root, &cargo)?;
    }
    let manifest = servers::ensure(&root)?;
    let tools = tools::ensure(&root)?;
    // `--workspace` would override a package selection given by the caller.
    let selects_packages = extra
        .iter()
        .take_while(|arg| *arg != "--")
        .any(|arg| arg.starts_with("-p") || arg.starts_with("--package"));
    let mut command = Command::new(cargo);
    // Every failing test binary (unit tests, and each crate's one `it`) is reported, not
    // only the first one.
    command.current_dir(&root).args(["test", "--no-fail-fast"]);
    if !selects_packages {
        command.arg("--workspace");
    }
    let status = command
        .args(&extra)
        .env("FERRY_SERVERS", &manifest)
        .env("FERRY_TOOLS", &tools)
        .status()
        .context("cannot run cargo test")?;
    // The tests' own exit code decides; a signal death counts as failure.
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

fn repo_root() -> PathBuf {
    // xtask lives one level below the repository root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
