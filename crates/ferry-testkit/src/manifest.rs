//! Reads build/servers/servers.json, written by `cargo xtask servers`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::ServerKind;

/// The environment variable `cargo xtask test` sets to the manifest's path.
pub const MANIFEST_ENV: &str = "FERRY_SERVERS";

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub servers: Vec<ServerEntry>,
}

/// How to run one installed server and its tools. Each argv is a prefix: append arguments.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerEntry {
    /// "redis-8.0", as `ServerKind::name`.
    pub name: String,
    /// "redis" or "valkey".
    pub product: String,
    /// Upstream version, e.g. "8.0.2".
    pub version: String,
    /// The server's full `--version` line.
    pub version_output: String,
    /// Debian package version of the binary.
    pub package_version: String,
    pub suite: String,
    pub dir: PathBuf,
    pub server: Vec<String>,
    pub cli: Vec<String>,
    pub benchmark: Vec<String>,
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the server manifest {} (run `cargo xtask servers`)",
                path.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("malformed server manifest {}", path.display()))
    }

    pub fn entry(&self, kind: ServerKind) -> Result<&ServerEntry> {
        self.servers
            .iter()
            .find(|entry| entry.name == kind.name())
            .with_context(|| {
                format!("{kind} is not in the server manifest (run `cargo xtask servers`)")
            })
    }
}

/// The manifest named by `FERRY_SERVERS`. When that is unset, the default location in this
/// workspace (build/servers/servers.json) is used if `cargo xtask servers` already made it.
pub fn servers_manifest() -> Result<Manifest> {
    if let Some(path) = std::env::var_os(MANIFEST_ENV) {
        return Manifest::read(Path::new(&path));
    }
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/servers/servers.json");
    if default.is_file() {
        return Manifest::read(&default);
    }
    bail!(
        "{MANIFEST_ENV} is not set and no servers are installed: run the tests with \
         `cargo xtask test` (it installs the Redis/Valkey servers and sets {MANIFEST_ENV})"
    )
}
