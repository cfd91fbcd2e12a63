//! kubernetes-validate (PyPI) in its own virtual environment under
//! build/tools/kubernetes-validate: it checks deploy/kubernetes against the JSON schemas of
//! the Kubernetes releases it ships (crates/ferry/tests/it/deploy.rs). Nothing goes into
//! the system's Python but, on a machine without it, Debian's `python3-venv`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::system;

/// Pinned: each release ships the schemas of the Kubernetes releases up to its own
/// number (1.37.0 ships 1.25 to 1.37), and the test validates against the newest.
pub const REQUIREMENT: &str = "kubernetes-validate==1.37.0";
/// Debian's package that makes `python3 -m venv` work (it brings python3 and ensurepip).
const VENV_PACKAGE: &str = "python3-venv";
const DIR: &str = "kubernetes-validate";
/// Written last, holding [`REQUIREMENT`]: a venv without it is an interrupted or older
/// install and is made again.
const MARKER: &str = "installed";

/// The validator's path, installing it first if `tools_dir` does not hold this version.
pub fn ensure(tools_dir: &Path) -> Result<PathBuf> {
    let dir = tools_dir.join(DIR);
    let program = dir.join("bin").join("kubernetes-validate");
    let installed = fs::read_to_string(dir.join(MARKER)).unwrap_or_default();
    if installed.trim() != REQUIREMENT || !program.is_file() {
        install(&dir)?;
    }
    Ok(program)
}

fn install(dir: &Path) -> Result<()> {
    eprintln!("installing {REQUIREMENT} from PyPI into {}", dir.display());
    // A venv holds its own absolute path in its scripts: it is made in place, not
    // beside it and renamed; the marker says when it is complete.
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    if create_venv(dir).is_err() {
        system::install(
            &[VENV_PACKAGE],
            "python3 cannot make a virtual environment (`python3 -m venv`)",
        )?;
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        create_venv(dir)?;
    }
    let pip = dir.join("bin").join("pip");
    run(Command::new(&pip).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        REQUIREMENT,
    ]))?;
    fs::write(dir.join(MARKER), format!("{REQUIREMENT}\n"))
        .with_context(|| format!("cannot write {}", dir.join(MARKER).display()))
}

fn create_venv(dir: &Path) -> Result<()> {
    run(Command::new("python3").arg("-m").arg("venv").arg(dir))
}

fn run(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|line| !line.trim().is_empty());
        bail!(
            "{shown} failed ({}): {}",
            output.status,
            last.unwrap_or("(no output)").trim()
        );
    }
    Ok(())
}
