//! Debian packages a test prerequisite needs in the system (Chromium for the browser
//! tests, Python's venv for kubernetes-validate): installed with apt-get when missing, as
//! root or through passwordless sudo, and named in a one-line refusal otherwise.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// How to get missing packages.
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

/// The apt-get commands that install `packages`, each behind `prefix`; the downloaded
/// packages are removed after (CI machines have little disk to spare for the build).
fn install_commands(prefix: &[&str], packages: &[&str]) -> Vec<Vec<String>> {
    let mut install = vec![
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
    ];
    install.extend(packages);
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

fn refusal(missing: &str, packages: &[&str]) -> String {
    format!(
        "{missing} and this user can neither install them (not root, no passwordless \
         sudo): as root run `apt-get install {}`",
        packages.join(" ")
    )
}

/// Installs `packages` into the system; `missing` says what is missing that they bring
/// (for the refusal, e.g. "chromium and chromedriver are not on PATH").
pub fn install(packages: &[&str], missing: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let sudo = !root
        && Command::new("sudo")
            .args(["-n", "true"])
            .output()
            .is_ok_and(|output| output.status.success());
    let prefix = match plan(root, sudo) {
        Plan::Install { prefix } => prefix,
        Plan::Refuse => bail!("{}", refusal(missing, packages)),
    };
    eprintln!(
        "installing a test prerequisite into the system: {}",
        packages.join(" ")
    );
    for argv in install_commands(&prefix, packages) {
        let status = Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .with_context(|| format!("cannot run {}", argv.join(" ")))?;
        if !status.success() {
            bail!("`{}` failed ({status})", argv.join(" "));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_packages_are_installed_as_root_or_through_sudo_and_refused_otherwise() {
        assert_eq!(plan(true, false), Plan::Install { prefix: vec![] });
        assert_eq!(plan(true, true), Plan::Install { prefix: vec![] });
        assert_eq!(
            plan(false, true),
            Plan::Install {
                prefix: vec!["sudo", "-n"]
            }
        );
        assert_eq!(plan(false, false), Plan::Refuse);
        let refusal = refusal(
            "chromium and chromedriver are not on PATH",
            &["chromium", "chromium-driver", "fonts-dejavu-core"],
        );
        assert!(!refusal.contains('\n'), "{refusal}");
        assert!(
            refusal.starts_with("chromium and chromedriver are not on PATH and this user"),
            "{refusal}"
        );
        assert!(
            refusal.contains("apt-get install chromium chromium-driver fonts-dejavu-core"),
            "{refusal}"
        );
    }

    #[test]
    fn the_install_updates_the_lists_installs_without_questions_or_recommends_then_cleans() {
        let packages = ["chromium", "chromium-driver", "fonts-dejavu-core"];
        let commands = install_commands(&["sudo", "-n"], &packages);
        assert_eq!(commands[0], ["sudo", "-n", "apt-get", "update"]);
        assert_eq!(
            commands[1].join(" "),
            "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y \
             --no-install-recommends chromium chromium-driver fonts-dejavu-core"
        );
        assert_eq!(commands[2], ["sudo", "-n", "apt-get", "clean"]);
        assert_eq!(install_commands(&[], &packages)[0], ["apt-get", "update"]);
    }
}
