//! Chromium and chromedriver for the browser tests: Debian's `chromium` and `chromium-driver`
//! packages, a documented test prerequisite that this installs into the system when it is
//! missing (as root, or through passwordless sudo).
//!
//! Why the system and not a private folder like the servers: a server runs through its
//! bundled loader (`ld.so --library-path … program`), but Chromium starts its renderer, GPU
//! and utility processes by re-executing its own binary, and those children would run
//! without that loader prefix, against the host's libraries.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The packages to install: the browser, its WebDriver server, and one font so pages have
/// real glyphs in screenshots.
pub const PACKAGES: [&str; 3] = ["chromium", "chromium-driver", "fonts-dejavu-core"];

/// The browser and its driver, as found on PATH.
pub struct Browser {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

/// How to get a missing browser.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// Install the packages, with this prefix before each apt-get command (empty as root).
    Install { prefix: Vec<&'static str> },
    /// Neither root nor passwordless sudo: say what to install.
    Refuse,
}

fn plan(root: bool, passwordless_sudo: bool) -> Plan {
    match (root, passwordless_sudo) {
        (true, _) => Plan::Install { prefix: Vec::new() },
        (false, true) => Plan::Install {
            prefix: vec!["sudo", "-n"],
        },
        (false, false) => Plan::Refuse,
    }
}

/// The apt-get commands that install [`PACKAGES`], each behind `prefix`; the downloaded
/// packages are removed after (CI machines have little disk to spare for the build).
fn install_commands(prefix: &[&str]) -> Vec<Vec<String>> {
    let mut install = vec![
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
    ];
    install.extend(PACKAGES);
    [vec!["apt-get", "update"], install, vec!["apt-get", "clean"]]
        .into_iter()
        .map(|command| {
            prefix
                .iter()
                .chain(&command)
                .map(|word| word.to_string())
                .collect()
        })
        .collect()
}

fn refusal() -> String {
    format!(
        "chromium and chromedriver are not on PATH and this user can neither install them \
         (not root, no passwordless sudo): as root run `apt-get install {}`",
        PACKAGES.join(" ")
    )
}

/// Finds chromium and chromedriver, installing the packages first if either is missing.
pub fn ensure() -> Result<Browser> {
    if let Some(browser) = find() {
        return Ok(browser);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let sudo = !root
        && Command::new("sudo")
            .args(["-n", "true"])
            .output()
            .is_ok_and(|output| output.status.success());
    let prefix = match plan(root, sudo) {
        Plan::Install { prefix } => prefix,
        Plan::Refuse => bail!("{}", refusal()),
    };
    eprintln!(
        "installing the browser tests' prerequisite into the system: {}",
        PACKAGES.join(" ")
    );
    for argv in install_commands(&prefix) {
        let status = Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .with_context(|| format!("cannot run {}", argv.join(" ")))?;
        if !status.success() {
            bail!("`{}` failed ({status})", argv.join(" "));
        }
    }
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
    fn a_missing_browser_is_installed_as_root_or_through_sudo_and_refused_otherwise() {
        assert_eq!(plan(true, false), Plan::Install { prefix: vec![] });
        assert_eq!(plan(true, true), Plan::Install { prefix: vec![] });
        assert_eq!(
            plan(false, true),
            Plan::Install {
                prefix: vec!["sudo", "-n"]
            }
        );
        assert_eq!(plan(false, false), Plan::Refuse);
        let refusal = refusal();
        assert!(!refusal.contains('\n'), "{refusal}");
        assert!(
            refusal.contains("apt-get install chromium chromium-driver fonts-dejavu-core"),
            "{refusal}"
        );
    }

    #[test]
    fn the_install_updates_the_lists_installs_without_questions_or_recommends_then_cleans() {
        let commands = install_commands(&["sudo", "-n"]);
        assert_eq!(commands[0], ["sudo", "-n", "apt-get", "update"]);
        assert_eq!(
            commands[1].join(" "),
            "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y \
             --no-install-recommends chromium chromium-driver fonts-dejavu-core"
        );
        assert_eq!(commands[2], ["sudo", "-n", "apt-get", "clean"]);
        assert_eq!(install_commands(&[])[0], ["apt-get", "update"]);
    }

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
