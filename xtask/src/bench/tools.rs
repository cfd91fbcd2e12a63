//! The programs the benchmark and the demo run: ferry itself (release build) and the peer
//! RDB parser it is compared with.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Overrides the ferry binary (e.g. a stand-in while developing the harness).
pub const FERRY_BIN_ENV: &str = "FERRY_BIN";
/// The peer: the `rdb` crate's command-line parser, pinned.
pub const PEER_CRATE: &str = "rdb";
pub const PEER_VERSION: &str = "0.4.0";

/// Builds `target/release/ferry` and checks that it is the real CLI (it has `inspect` and
/// `convert`), unless `FERRY_BIN` names another binary to use.
pub fn ferry(root: &Path) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(FERRY_BIN_ENV) {
        let path = PathBuf::from(path);
        println!("using {} from {FERRY_BIN_ENV}", path.display());
        return Ok(path);
    }
    println!("building ferry (release)");
    let status = Command::new(cargo())
        .current_dir(root)
        .args(["build", "--release", "-p", "ferry"])
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p ferry failed ({status})");
    }
    let binary = root.join("target").join("release").join("ferry");
    let help = Command::new(&binary)
        .arg("--help")
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let text = String::from_utf8_lossy(&help.stdout);
    if !(text.contains("inspect") && text.contains("convert")) {
        bail!(
            "{} has no `inspect`/`convert` commands yet (is the CLI merged?)",
            binary.display()
        );
    }
    Ok(binary)
}

/// `build/tools/bin/rdb`, installed with `cargo install` the first time.
pub fn peer(root: &Path) -> Result<PathBuf> {
    let tools = root.join("build").join("tools");
    let binary = tools.join("bin").join(PEER_CRATE);
    // cargo install records what it installed; a different version means reinstalling.
    let recorded = fs::read_to_string(tools.join(".crates.toml")).unwrap_or_default();
    if binary.is_file() && recorded.contains(&format!("\"{PEER_CRATE} {PEER_VERSION} ")) {
        return Ok(binary);
    }
    println!("installing the peer: cargo install {PEER_CRATE} --version {PEER_VERSION}");
    let status = Command::new(cargo())
        .args(["install", PEER_CRATE, "--version", PEER_VERSION, "--locked"])
        .arg("--root")
        .arg(&tools)
        .status()
        .context("cannot run cargo install")?;
    if !status.success() || !binary.is_file() {
        bail!("cargo install {PEER_CRATE} --version {PEER_VERSION} failed ({status})");
    }
    Ok(binary)
}

pub fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}
