//! The checks `cargo xtask test` runs before the tests: formatting, clippy and the docs, with
//! warnings as errors.
//!
//! They run first because they fail in seconds to minutes where the suite takes far longer,
//! and because CI runs `cargo xtask test`: a green run then means the code is formatted,
//! lint-free and documents cleanly, not only that the tests passed. They always cover the
//! whole workspace, whatever packages the tests are narrowed to.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Skips the gates, for local iteration on a change that is not finished yet.
pub const SKIP_FLAG: &str = "--no-gates";

struct Gate {
    /// Named in the failure line.
    name: &'static str,
    /// An environment variable the command needs.
    env: Option<(&'static str, &'static str)>,
    /// Cargo's arguments, split at spaces.
    args: &'static str,
    /// How to fix a failure, when a command does it.
    fix: Option<&'static str>,
}

const GATES: &[Gate] = &[
    Gate {
        name: "formatting",
        env: None,
        args: "fmt --all --check",
        fix: Some("cargo fmt --all"),
    },
    Gate {
        name: "clippy",
        env: None,
        args: "clippy --workspace --all-targets -- -D warnings",
        fix: None,
    },
    Gate {
        name: "docs",
        env: Some(("RUSTDOCFLAGS", "-D warnings")),
        args: "doc --workspace --no-deps",
        fix: None,
    },
];

impl Gate {
    /// The command as a person would type it.
    fn command_line(&self) -> String {
        let env = self
            .env
            .map(|(key, value)| format!("{key}=\"{value}\" "))
            .unwrap_or_default();
        format!("{env}cargo {}", self.args)
    }
}

/// `args` without [`SKIP_FLAG`], and whether it was there. Only arguments before a `--`
/// count: the ones after it belong to the test binaries.
pub fn take_skip_flag(args: &[String]) -> (bool, Vec<String>) {
    let end = args
        .iter()
        .position(|arg| arg == "--")
        .unwrap_or(args.len());
    let skip = args[..end].iter().any(|arg| arg == SKIP_FLAG);
    let rest = args
        .iter()
        .enumerate()
        .filter(|(i, arg)| *i >= end || *arg != SKIP_FLAG)
        .map(|(_, arg)| arg.clone())
        .collect();
    (skip, rest)
}

/// Runs the gates in order; the first that fails ends the run with one line saying which.
pub fn run(root: &Path, cargo: &OsStr) -> Result<()> {
    eprintln!("gate: cargo xtask layers");
    crate::layers::run(root).context("the layers gate failed; the tests did not run")?;
    for gate in GATES {
        let command_line = gate.command_line();
        eprintln!("gate: {command_line}");
        let mut command = Command::new(cargo);
        command.current_dir(root).args(gate.args.split(' '));
        if let Some((key, value)) = gate.env {
            command.env(key, value);
        }
        let status = command
            .status()
            .with_context(|| format!("cannot run {command_line}"))?;
        if !status.success() {
            let fix = gate
                .fix
                .map(|fix| format!(" (`{fix}` fixes it)"))
                .unwrap_or_default();
            bail!(
                "the {} gate failed: `{command_line}`{fix}; the tests did not run",
                gate.name
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn the_skip_flag_counts_only_before_a_double_dash() {
        let (skip, rest) = take_skip_flag(&strings(&["-p", "ferry-codec", "--no-gates"]));
        assert!(skip);
        assert_eq!(rest, strings(&["-p", "ferry-codec"]));
        let (skip, rest) = take_skip_flag(&strings(&["--", "--no-gates"]));
        assert!(!skip);
        assert_eq!(rest, strings(&["--", "--no-gates"]));
    }

    #[test]
    fn the_docs_gate_reads_as_typed() {
        let docs = GATES.iter().find(|gate| gate.name == "docs").unwrap();
        assert_eq!(
            docs.command_line(),
            "RUSTDOCFLAGS=\"-D warnings\" cargo doc --workspace --no-deps"
        );
    }
}
