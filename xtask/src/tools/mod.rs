//! `cargo xtask tools`: the programs the tests drive besides the servers — promtool
//! (unpacked from Debian's `prometheus` package under build/tools), Chromium with
//! chromedriver (system packages, see `chromium.rs`) and kubernetes-validate (PyPI, in a
//! venv under build/tools) — named with their versions in build/tools/tools.json, which
//! tests find through `FERRY_TOOLS`.

mod chromium;
mod kubernetes_validate;
mod promtool;
mod system;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// build/tools/tools.json (read by crates/ferry/tests/it/support/tools.rs).
#[derive(Serialize)]
struct Manifest {
    promtool: String,
    chromium: String,
    chromedriver: String,
    kubernetes_validate: String,
    versions: Versions,
}

/// Each program's `--version` line.
#[derive(Serialize)]
struct Versions {
    promtool: String,
    chromium: String,
    chromedriver: String,
    kubernetes_validate: String,
}

/// Makes sure every tool is there, rewrites the manifest and prints the versions. Returns
/// the manifest's absolute path.
pub fn ensure(repo_root: &Path) -> Result<PathBuf> {
    let dir = repo_root.join("build").join("tools");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;

    let promtool = promtool::ensure(&dir)?;
    let browser = chromium::ensure()?;
    let validator = kubernetes_validate::ensure(&dir)?;
    let manifest = Manifest {
        versions: Versions {
            promtool: version_line(&promtool)?,
            chromium: version_line(&browser.chromium)?,
            chromedriver: version_line(&browser.chromedriver)?,
            kubernetes_validate: format!("kubernetes-validate {}", version_line(&validator)?),
        },
        promtool: promtool.display().to_string(),
        chromium: browser.chromium.display().to_string(),
        chromedriver: browser.chromedriver.display().to_string(),
        kubernetes_validate: validator.display().to_string(),
    };

    let path = dir.join("tools.json");
    let temporary = dir.join("tools.json.tmp");
    let text = serde_json::to_string_pretty(&manifest)?;
    fs::write(&temporary, text + "\n").context("cannot write the tools manifest")?;
    fs::rename(&temporary, &path).context("cannot write the tools manifest")?;

    for (name, version, program) in [
        ("promtool", &manifest.versions.promtool, &manifest.promtool),
        ("chromium", &manifest.versions.chromium, &manifest.chromium),
        (
            "chromedriver",
            &manifest.versions.chromedriver,
            &manifest.chromedriver,
        ),
        (
            "k8s-validate",
            &manifest.versions.kubernetes_validate,
            &manifest.kubernetes_validate,
        ),
    ] {
        println!("{name:<12} {version} ({program})");
    }
    eprintln!("tools ready: {}", path.display());
    Ok(path)
}

/// Chromium and chromedriver, installed first if missing (for the bench's page part).
pub fn browser() -> Result<(PathBuf, PathBuf)> {
    let browser = chromium::ensure()?;
    Ok((browser.chromium, browser.chromedriver))
}

/// The first line `program --version` prints: proof that it runs here.
fn version_line(program: &Path) -> Result<String> {
    let output = Command::new(program)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if !output.status.success() {
        bail!(
            "`{} --version` failed: {}",
            program.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // Some programs print their version on stderr (Go's older flag libraries).
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    stdout
        .lines()
        .chain(stderr.lines())
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_string)
        .with_context(|| format!("`{} --version` printed nothing", program.display()))
}
