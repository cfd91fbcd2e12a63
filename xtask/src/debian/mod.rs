//! Debian packages without touching the system: a private apt state that downloads `.deb`
//! files from the archive this machine's apt sources name, and `dpkg -x` to unpack them into
//! a folder of ours. Shared by `cargo xtask servers` and `cargo xtask tools`.

pub mod apt;
pub mod archive;

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

pub use apt::{find_deb, Apt};

/// Unpacks `deb`'s files into `dir` (no maintainer scripts run, nothing is registered).
pub fn unpack(deb: &Path, dir: &Path) -> Result<()> {
    let output = Command::new("dpkg")
        .arg("-x")
        .arg(deb)
        .arg(dir)
        .output()
        .context("cannot run dpkg")?;
    if !output.status.success() {
        bail!(
            "dpkg -x {} failed: {}",
            deb.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Removes `dir` and everything in it; a missing `dir` is fine.
pub fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("cannot remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}
