//! Reads build/tools/tools.json, written by `cargo xtask tools`: where promtool, chromium,
//! chromedriver and kubernetes-validate are.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The environment variable `cargo xtask test` sets to the manifest's path.
pub const TOOLS_ENV: &str = "FERRY_TOOLS";

#[derive(Debug, Clone, Deserialize)]
pub struct Tools {
    pub promtool: PathBuf,
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
    /// Absent from a manifest written before it was added (the deploy test then says
    /// to run `cargo xtask tools`); the other tools' tests do not need it.
    #[serde(default)]
    pub kubernetes_validate: Option<PathBuf>,
}

/// The manifest named by `FERRY_TOOLS`; when that is unset, this workspace's
/// build/tools/tools.json if `cargo xtask tools` already made it. Panics with what to run
/// otherwise.
pub fn tools() -> Tools {
    let path = match std::env::var_os(TOOLS_ENV) {
        Some(path) => PathBuf::from(path),
        None => {
            let default =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/tools/tools.json");
            assert!(
                default.is_file(),
                "{TOOLS_ENV} is not set and no tools are installed: run the tests with \
                 `cargo xtask test` (it installs promtool and Chromium and sets {TOOLS_ENV}), \
                 or run `cargo xtask tools` once"
            );
            default
        }
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read the tools manifest {} ({err}): run `cargo xtask tools`",
            path.display()
        )
    });
    serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("malformed tools manifest {} ({err})", path.display()))
}
