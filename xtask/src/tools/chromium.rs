//! Chromium and chromedriver for the browser tests: Debian's `chromium` and `chromium-driver`
//! packages, a documented test prerequisite that this installs into the system when it is
//! missing (as root, or through passwordless sudo: `system.rs`).
//!
//! Why the system and not a private folder like the servers: a server runs through its
//! bundled loader (`ld.so --library-path … program`), but Chromium starts its renderer, GPU
//! and utility processes by re-executing its own binary, and those children would run
//! without that loader prefix, against the host's libraries.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::system;

/// The packages to install: the browser, its WebDriver server, and one font so pages have
/// real glyphs in screenshots.
pub const PACKAGES: [&str; 3] = ["chromium", "chromium-driver", "fonts-dejavu-core"];

/// The browser and its driver, as found on PATH.
pub struct Browser {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

/// Finds chromium and chromedriver, installing the packages first if either is missing.
pub fn ensure() -> Result<Browser> {
    if let Some(browser) = find() {
        return Ok(browser);
    }
    system::install(&PACKAGES, "chromium and chromedriver are not on PATH")?;
    find().with_context(|| {
        format!(
            "chromium or chromedriver is still not on PATH after installing {}",
            PACKAGES.join(" ")
        )
    })
}

fn find() -> Option<Browser> {
    Some(Browser {
        chromium: on_path("chromium")?,
        chromedriver: on_path("chromedriver")?,
    })
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_only_when_executable() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("some-browser");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        assert!(!is_executable(&program));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(is_executable(&program));
        assert!(!is_executable(dir.path()));
    }
}
