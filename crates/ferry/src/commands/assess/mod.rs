//! `ferry assess (--source URL | --rdb FILE) [--target URL | --to PROFILE]`: what a Redis
//! workload uses that the target lacks, and whether it can move (see docs/assess.md).

pub mod capabilities;
mod client;
mod error;
mod findings;
mod live;
pub mod profiles;
mod rdb;
pub mod redact;
mod render;
mod source;
mod verdict;

pub use capabilities::Capabilities;
pub use findings::{Finding, Severity};
pub use source::SourceFacts;
pub use verdict::Verdict;

use crate::connection::{SourceConnectionArgs, TargetConnectionArgs};
use crate::error::Error;
use crate::output_file::OutputFile;
use clap::{ArgGroup, Args, ValueEnum};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("from").required(true).args(["source", "rdb"])))]
#[command(group(ArgGroup::new("against").args(["target", "to"])))]
pub struct AssessArgs {
    /// The live Redis server to assess, e.g. redis://user@host:6379 (rediss:// for TLS;
    /// the password with --source-password-file or -env).
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// An RDB file to assess instead of a live server (data findings only).
    #[arg(long, value_name = "FILE")]
    pub rdb: Option<PathBuf>,
    /// The live target server; its capabilities are probed (read-only but for one
    /// short-lived probe key).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// The target release, from the built-in profiles: redis-6.0, redis-7.0, redis-8.0,
    /// valkey-8.0, valkey-8.1, valkey-9.1 (default: valkey-9.1).
    #[arg(long, value_name = "PROFILE")]
    pub to: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
    /// Write the report to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The most commands per second the key scan sends to the source.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_ops_per_sec: u32,
    /// Assess only the keys and databases a migration with these flags would move.
    #[command(flatten)]
    pub filters: crate::filter::FilterArgs,
    #[command(flatten)]
    pub source_connection: SourceConnectionArgs,
    #[command(flatten)]
    pub target_connection: TargetConnectionArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
}

/// The whole assessment; `--format json` prints it (schema in docs/assess.md).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Bumped only on an incompatible change; fields may be added at any time.
    pub schema: u32,
    pub verdict: Verdict,
    /// One sentence on why.
    pub verdict_reason: String,
    pub source: SourceFacts,
    pub target: Capabilities,
    pub findings: Vec<Finding>,
    /// What could not be checked, on either side; non-empty means a partial report.
    pub unchecked: Vec<Unchecked>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unchecked {
    /// `source` or `target`.
    pub side: &'static str,
    /// What was not checked, e.g. `CONFIG GET`.
    pub check: String,
    /// The server's answer or why it was not tried.
    pub reason: String,
}

pub fn run(args: AssessArgs, out: &mut dyn Write) -> Result<(), Error> {
    let report = assess(&args)?;
    let text = match args.format {
        ReportFormat::Text => render::text(&report),
        ReportFormat::Json => render::json(&report),
        ReportFormat::Markdown => render::markdown(&report),
    };
    match &args.out {
        Some(path) => write_file(path, &text),
        None => out.write_all(text.as_bytes()).map_err(Error::Stdout),
    }
}

/// Builds the report the arguments ask for.
pub fn assess(args: &AssessArgs) -> Result<Report, Error> {
    let target = match (&args.target, &args.to) {
        (Some(url), _) => capabilities::probe_url(&crate::commands::primary_now(
            args.target_connection.settings().resolve(url, "--target")?,
        )?)?,
        (None, Some(name)) => profiles::load(name)?,
        (None, None) => profiles::load(profiles::DEFAULT)?,
    };
    let scope = args
        .filters
        .scope()
        .map_err(|e| Error::Usage(e.to_string()))?;
    let source = match (&args.source, &args.rdb) {
        (Some(url), _) => live::probe(
            &crate::commands::primary_now(
                args.source_connection.settings().resolve(url, "--source")?,
            )?,
            args.max_ops_per_sec,
            &scope,
        )?,
        (None, Some(path)) => rdb::probe(path, &scope)?,
        (None, None) => {
            return Err(Error::Usage(
                "give one of --source URL and --rdb FILE".into(),
            ))
        }
    };
    Ok(build(source, target))
}

/// Findings and verdict for what the source uses against what the target has.
pub fn build(source: SourceFacts, target: Capabilities) -> Report {
    let findings = findings::find(&source, &target);
    let (verdict, verdict_reason) = verdict::decide(&findings, &source);
    let unchecked = source
        .unchecked
        .iter()
        .map(|(check, reason)| Unchecked {
            side: "source",
            check: check.clone(),
            reason: reason.clone(),
        })
        .chain(target.unchecked.iter().map(|(check, reason)| Unchecked {
            side: "target",
            check: check.clone(),
            reason: reason.clone(),
        }))
        .collect();
    Report {
        schema: 1,
        verdict,
        verdict_reason,
        source,
        target,
        findings,
        unchecked,
    }
}

fn write_file(path: &std::path::Path, text: &str) -> Result<(), Error> {
    let (output, mut file) = OutputFile::create(path, true)?;
    file.write_all(text.as_bytes())
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })?;
    output.commit(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, Command};

    #[test]
    fn one_source_and_at_most_one_target() {
        assert!(parse(["ferry", "assess"]).is_err());
        assert!(parse(["ferry", "assess", "--source", "redis://h", "--rdb", "f"]).is_err());
        assert!(parse(["ferry", "assess", "--rdb", "f", "--to", "a", "--target", "b"]).is_err());
        let cli = parse(["ferry", "assess", "--rdb", "f", "--format", "markdown"]).unwrap();
        let Command::Assess(args) = cli.command else {
            panic!("not assess")
        };
        assert_eq!(args.format, ReportFormat::Markdown);
        assert_eq!(args.max_ops_per_sec, 1000);
    }

    #[test]
    fn help_lists_every_profile() {
        let help = crate::cli::command()
            .find_subcommand_mut("assess")
            .unwrap()
            .render_help()
            .to_string();
        for name in profiles::names() {
            assert!(help.contains(name), "{name} missing from {help}");
        }
        assert!(help.contains(&format!("default: {}", profiles::DEFAULT)));
    }

    #[test]
    fn module_keys_block_unless_the_target_loads_the_module() {
        let mut source = SourceFacts {
            keys: 10,
            ..SourceFacts::default()
        };
        source
            .module_types
            .entry("ReJSON-RL".into())
            .or_default()
            .add("doc:1", 0);
        let mut target = profiles::load("valkey-9.1").unwrap();
        let report = build(source.clone(), target.clone());
        assert_eq!(report.findings[0].id, "module:ReJSON-RL");
        assert_eq!(report.findings[0].severity, Severity::Blocker);
        assert_eq!(report.findings[0].examples, ["doc:1"]);
        assert_eq!(report.verdict, Verdict::Split);
        target.modules.insert("ReJSON".into());
        assert!(build(source, target).findings.is_empty());
    }
}
