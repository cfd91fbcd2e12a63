//! promtool from Debian's `prometheus` package, unpacked under build/tools/prometheus with
//! our private apt state: nothing is installed into the system. promtool is a Go program
//! that needs nothing beyond its own file.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::debian::{archive, find_deb, remove_dir_if_exists, unpack, Apt};

const PACKAGE: &str = "prometheus";
/// The suite whose package we take (any current Debian release carries one).
const SUITE: &str = "bookworm";
const PROGRAM: &str = "usr/bin/promtool";

/// promtool's path, installing it first if `tools_dir` does not hold it yet.
pub fn ensure(tools_dir: &Path) -> Result<PathBuf> {
    let dir = tools_dir.join(PACKAGE);
    let program = dir.join(PROGRAM);
    if !program.is_file() {
        install(tools_dir, &dir)?;
    }
    Ok(program)
}

fn install(tools_dir: &Path, dir: &Path) -> Result<()> {
    let archive = archive::discover()?;
    eprintln!(
        "installing promtool from Debian {SUITE}'s {PACKAGE} package at {} (from apt's sources)",
        archive.uri
    );
    let apt = Apt::new(tools_dir.join(".apt"));
    apt.prepare(&archive, &[SUITE])?;
    let warnings = apt.update()?;
    let available = apt.madison(&[PACKAGE.to_string()])?;
    let version = available
        .get(PACKAGE)
        .and_then(|versions| versions.iter().find(|v| v.suite == SUITE))
        .map(|v| v.version.clone())
        .with_context(|| {
            let warned = warnings
                .first()
                .map(|w| format!(" (apt-get update warned: {w})"));
            format!(
                "Debian {SUITE} carries no {PACKAGE} package{}",
                warned.unwrap_or_default()
            )
        })?;
    apt.download(&[(PACKAGE.to_string(), version.clone())], |_| {
        "promtool".to_string()
    })?;
    let deb = find_deb(&apt.debs_dir(), PACKAGE, &version)
        .with_context(|| format!("{PACKAGE}={version} was not downloaded"))?;
    // Unpacked beside its final place and renamed at the end: a present program means a
    // complete install, even after an interrupted run.
    let partial = dir.with_extension("partial");
    remove_dir_if_exists(&partial)?;
    fs::create_dir_all(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    unpack(&deb, &partial).context("promtool")?;
    remove_dir_if_exists(dir)?;
    fs::rename(&partial, dir).with_context(|| format!("cannot rename {}", partial.display()))?;
    apt.drop_cache();
    Ok(())
}
