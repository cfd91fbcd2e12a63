//! The verdict rubric: migrate, migrate-with-changes, split or stay.

use super::findings::{Finding, Severity};
use super::source::SourceFacts;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Nothing found that needs a change.
    Migrate,
    /// Only warnings: each handled by a ferry policy or a small change.
    MigrateWithChanges,
    /// Blockers confined to some keys or commands: move the rest, keep those on Redis.
    Split,
    /// Blockers across the workload.
    Stay,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Migrate => "migrate",
            Verdict::MigrateWithChanges => "migrate-with-changes",
            Verdict::Split => "split",
            Verdict::Stay => "stay",
        }
    }
}

/// Blockers are "across the workload" when they hold more than this share of the keys or
/// of the command calls.
pub const STAY_SHARE: f64 = 0.5;

/// The verdict and one sentence on why.
pub fn decide(findings: &[Finding], source: &SourceFacts) -> (Verdict, String) {
    let blockers: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Blocker)
        .collect();
    let warnings = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    if blockers.is_empty() {
        return if warnings == 0 {
            (
                Verdict::Migrate,
                "nothing found that the target lacks".into(),
            )
        } else {
            (
                Verdict::MigrateWithChanges,
                format!("{warnings} warning(s), each handled by a ferry flag or a small change"),
            )
        };
    }
    let blocked_keys: u64 = blockers
        .iter()
        .filter(|f| f.unit == "keys")
        .map(|f| f.count)
        .sum();
    let blocked_calls: u64 = blockers
        .iter()
        .filter(|f| f.unit == "calls")
        .map(|f| f.count)
        .sum();
    let all_calls: u64 = source.command_calls.values().sum();
    let key_share = share(blocked_keys, source.keys);
    let call_share = share(blocked_calls, all_calls);
    let detail = format!(
        "blockers hold {:.1}% of the keys and {:.1}% of the command calls",
        key_share * 100.0,
        call_share * 100.0
    );
    if key_share > STAY_SHARE || call_share > STAY_SHARE {
        (Verdict::Stay, format!("{detail}: across the workload"))
    } else {
        (
            Verdict::Split,
            format!("{detail}: move the rest, keep those on Redis"),
        )
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        if part > 0 {
            1.0
        } else {
            0.0
        }
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(severity: Severity, unit: &'static str, count: u64) -> Finding {
        Finding {
            id: "x".into(),
            severity,
            unit,
            count,
            summary: String::new(),
            examples: Vec::new(),
            advice: String::new(),
        }
    }

    fn source(keys: u64, calls: u64) -> SourceFacts {
        let mut facts = SourceFacts {
            keys,
            ..SourceFacts::default()
        };
        facts.command_calls.insert("get".into(), calls);
        facts
    }

    #[test]
    fn the_rubric() {
        let s = source(100, 1000);
        assert_eq!(decide(&[], &s).0, Verdict::Migrate);
        let info = finding(Severity::Info, "clients", 3);
        assert_eq!(decide(&[info], &s).0, Verdict::Migrate);
        let warning = finding(Severity::Warning, "keys", 100);
        assert_eq!(
            decide(std::slice::from_ref(&warning), &s).0,
            Verdict::MigrateWithChanges
        );
        let few = finding(Severity::Blocker, "keys", 10);
        assert_eq!(decide(&[warning, few], &s).0, Verdict::Split);
        let many = finding(Severity::Blocker, "keys", 60);
        assert_eq!(decide(&[many], &s).0, Verdict::Stay);
        let calls = finding(Severity::Blocker, "calls", 501);
        assert_eq!(decide(&[calls], &s).0, Verdict::Stay);
    }
}
