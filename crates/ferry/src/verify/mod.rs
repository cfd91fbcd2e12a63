//! `ferry verify`: proves a target holds what the source holds. Every key of every
//! database is compared in both directions by type, TTL and value (lengths first, then
//! full values in bounded windows); policy changes are counted as such; on a live source
//! later rounds re-check the keys that differed so in-flight writes settle.
//!
//! [`run`] is the entry point for the CLI and for cutover, which uses a sample
//! ([`run_sampled`]).

mod cluster;
mod compare;
mod endpoint;
pub mod error;
pub mod html;
mod limiter;
mod node;
mod policy;
mod reply;
pub mod report;
mod rounds;
mod walk;

pub use error::{Role, VerifyError};
pub use report::{DiffKind, Finding, KeyDifference, Summary, VerifyReport};

use crate::error::Error;
use crate::filter::Scope;
use crate::policy::Policies;
use crate::url::ServerUrl;
use compare::{Pair, Settings};
use endpoint::Endpoint;
use std::time::Duration;

/// What to compare and how.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Their passwords never appear in output.
    pub source: ServerUrl,
    pub target: ServerUrl,
    /// Compare about this many random keys instead of all.
    pub sample: Option<u64>,
    /// Rounds in all (at least 1); later rounds re-check only differing keys.
    pub rounds: u32,
    pub round_pause: Duration,
    /// Expiry times may differ this much (key and hash field TTLs).
    pub ttl_tolerance_ms: u64,
    /// Commands per second to each server; `None` for no limit.
    pub max_ops_per_sec: Option<u32>,
    /// The policies the migration ran with.
    pub policies: Policies,
    /// The scope the migration ran with: only its keys are compared.
    pub scope: Scope,
}

impl VerifyOptions {
    pub const DEFAULT_ROUNDS: u32 = 3;
    pub const DEFAULT_ROUND_PAUSE: Duration = Duration::from_millis(500);
    pub const DEFAULT_TTL_TOLERANCE_MS: u64 = 1000;

    pub fn new(source: ServerUrl, target: ServerUrl) -> Self {
        Self {
            source,
            target,
            sample: None,
            rounds: Self::DEFAULT_ROUNDS,
            round_pause: Self::DEFAULT_ROUND_PAUSE,
            ttl_tolerance_ms: Self::DEFAULT_TTL_TOLERANCE_MS,
            max_ops_per_sec: None,
            policies: Policies::default(),
            scope: Scope::default(),
        }
    }
}

/// Compares the two servers. Differences are in the report (`is_clean()`), not an error;
/// errors are connection or protocol failures.
pub fn run(options: &VerifyOptions) -> Result<VerifyReport, Error> {
    let mut pair = Pair {
        source: Endpoint::connect(Role::Source, &options.source, options.max_ops_per_sec)?,
        target: Endpoint::connect(Role::Target, &options.target, options.max_ops_per_sec)?,
        settings: Settings {
            ttl_tolerance_ms: options.ttl_tolerance_ms,
            policies: options.policies.clone(),
            scope: options.scope.clone(),
        },
    };
    let mut report = VerifyReport {
        sampled: options.sample,
        ..VerifyReport::default()
    };
    if pair.source.is_cluster() || pair.target.is_cluster() {
        report.sides = vec![
            format!("source: {}", pair.source.describe()),
            format!("target: {}", pair.target.describe()),
        ];
    }
    match options.sample {
        Some(n) => walk::sample(&mut pair, n, &mut report)?,
        None => walk::everything(&mut pair, &mut report)?,
    }
    rounds::settle(
        &mut pair,
        &mut report,
        options.rounds.max(1),
        options.round_pause,
    )?;
    Ok(report)
}

/// [`run`] on about `keys` random keys: the quick check cutover makes during its pause.
pub fn run_sampled(options: &VerifyOptions, keys: u64) -> Result<VerifyReport, Error> {
    run(&VerifyOptions {
        sample: Some(keys),
        ..options.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_urls() {
        let url = |text: &str| ServerUrl::parse(text).unwrap();
        let options = VerifyOptions::new(url("redis://:pw1@a:1"), url("redis://u:pw2@b:2"));
        let text = format!("{options:?}");
        assert!(!text.contains("pw1") && !text.contains("pw2"), "{text}");
    }
}
