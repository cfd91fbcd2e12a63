//! What a verification found: a summary, the differing keys with what differs, and the
//! keys that policies changed on purpose. Rendered as text or as JSON (stable field names).

use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// At most this many differing keys are listed (the rest are counted); it also bounds
/// the keys later rounds re-check, hence verify's memory.
pub const MAX_LISTED: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffKind {
    /// On the source, not on the target.
    Missing,
    /// On the target, not on the source.
    Extra,
    Type,
    Ttl,
    Value,
}

impl DiffKind {
    pub fn name(self) -> &'static str {
        match self {
            DiffKind::Missing => "missing",
            DiffKind::Extra => "extra",
            DiffKind::Type => "type",
            DiffKind::Ttl => "ttl",
            DiffKind::Value => "value",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: DiffKind,
    /// Source first, then target: "element 1204: \"a\" vs \"b\"".
    pub detail: String,
}

impl Finding {
    pub fn new(kind: DiffKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

/// The result of comparing one key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyOutcome {
    Equal,
    /// Equal as far as compared: a module type verify cannot read.
    TypeOnly,
    /// Different only in ways a migration policy asked for; the reason names the policy.
    Excused(&'static str),
    Differs(Vec<Finding>),
    /// Equal in its data; a counter the source does not replicate differs (the note says
    /// which), so a replica of the source would differ the same way.
    Noted(&'static str),
    /// On neither side any more (expired or deleted while verify ran).
    Gone,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyDifference {
    pub db: u32,
    /// Its type (the source's; the target's for a key only there).
    #[serde(rename = "type")]
    pub type_name: String,
    /// The key as printable text (non-UTF-8 bytes as \xNN).
    pub key: String,
    #[serde(skip)]
    pub raw_key: Vec<u8>,
    pub findings: Vec<Finding>,
}

impl KeyDifference {
    pub fn kinds(&self) -> Vec<DiffKind> {
        let mut kinds: Vec<DiffKind> = self.findings.iter().map(|f| f.kind).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub keys_compared: u64,
    pub equal: u64,
    pub differing: u64,
    pub policy_excused: u64,
    /// Module values compared by type only.
    pub type_only: u64,
    /// Differing keys per kind; a key with several kinds counts under each.
    pub missing: u64,
    pub extra: u64,
    #[serde(rename = "type")]
    pub type_: u64,
    pub ttl: u64,
    pub value: u64,
}

/// Keys of one type in one database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub compared: u64,
    pub equal: u64,
    pub differing: u64,
    pub policy_excused: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub summary: Summary,
    /// Rounds run (the first compares everything, later ones re-check differences).
    pub rounds: u32,
    /// `Some(n)` when only a sample of about n keys was compared.
    pub sampled: Option<u64>,
    pub differences: Vec<KeyDifference>,
    /// Keys that differed in an earlier round and were equal when re-checked (writes in
    /// flight on a live source).
    pub settled: u64,
    /// Differing keys beyond [`MAX_LISTED`], counted but not listed.
    pub unlisted_differences: u64,
    /// Policy-excused keys per reason.
    pub excused: BTreeMap<String, u64>,
    /// Equal keys with a counter the source does not replicate, per note.
    pub notes: BTreeMap<String, u64>,
    /// Copies of ferry's marker key (`ferry:migrate:applied`, migrate's record of what it
    /// applied) left out of the comparison: ferry's bookkeeping, not the application's data.
    pub ferry_markers_skipped: u64,
    /// Keys compared per database and type.
    pub by_database: BTreeMap<u32, BTreeMap<String, Tally>>,
    /// What each side was ("source: cluster of 3 primaries (…)"), shown in the text when
    /// a side is a cluster; not part of the JSON.
    #[serde(skip)]
    pub sides: Vec<String>,
}

impl VerifyReport {
    /// Whether nothing differs.
    pub fn is_clean(&self) -> bool {
        self.summary.differing == 0
    }

    /// Adds one compared key's outcome.
    pub fn record(&mut self, db: u32, type_name: &str, key: &[u8], outcome: KeyOutcome) {
        if outcome == KeyOutcome::Gone {
            return;
        }
        let tally = self.tally(db, type_name);
        tally.compared += 1;
        match &outcome {
            KeyOutcome::Differs(_) => tally.differing += 1,
            KeyOutcome::Excused(_) => tally.policy_excused += 1,
            _ => tally.equal += 1,
        }
        let summary = &mut self.summary;
        match outcome {
            KeyOutcome::Gone => return,
            KeyOutcome::Equal => summary.equal += 1,
            KeyOutcome::TypeOnly => {
                summary.equal += 1;
                summary.type_only += 1;
            }
            KeyOutcome::Noted(note) => {
                summary.equal += 1;
                *self.notes.entry(note.to_owned()).or_default() += 1;
            }
            KeyOutcome::Excused(reason) => {
                summary.policy_excused += 1;
                *self.excused.entry(reason.to_owned()).or_default() += 1;
            }
            KeyOutcome::Differs(findings) => {
                summary.differing += 1;
                let difference = KeyDifference {
                    db,
                    type_name: type_name.to_owned(),
                    key: printable(key),
                    raw_key: key.to_vec(),
                    findings,
                };
                for kind in difference.kinds() {
                    *self.kind_count(kind) += 1;
                }
                if self.differences.len() < MAX_LISTED {
                    self.differences.push(difference);
                } else {
                    self.unlisted_differences += 1;
                }
            }
        }
        self.summary.keys_compared += 1;
    }

    fn tally(&mut self, db: u32, type_name: &str) -> &mut Tally {
        let types = self.by_database.entry(db).or_default();
        if !types.contains_key(type_name) {
            types.insert(type_name.to_owned(), Tally::default());
        }
        types.get_mut(type_name).expect("inserted above")
    }

    /// Takes back a listed difference before it is re-checked.
    pub fn unrecord(&mut self, difference: &KeyDifference) {
        let tally = self.tally(difference.db, &difference.type_name);
        tally.compared = tally.compared.saturating_sub(1);
        tally.differing = tally.differing.saturating_sub(1);
        let s = &mut self.summary;
        s.keys_compared = s.keys_compared.saturating_sub(1);
        s.differing = s.differing.saturating_sub(1);
        for kind in difference.kinds() {
            let count = self.kind_count(kind);
            *count = count.saturating_sub(1);
        }
    }

    fn kind_count(&mut self, kind: DiffKind) -> &mut u64 {
        let s = &mut self.summary;
        match kind {
            DiffKind::Missing => &mut s.missing,
            DiffKind::Extra => &mut s.extra,
            DiffKind::Type => &mut s.type_,
            DiffKind::Ttl => &mut s.ttl,
            DiffKind::Value => &mut s.value,
        }
    }

    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let s = &self.summary;
        let scope = match self.sampled {
            Some(n) => format!("sample of {n} keys"),
            None => "all keys".to_owned(),
        };
        writeln!(
            out,
            "verified {scope} in {} round{}: {} compared, {} equal, {} differing, {} policy-excused",
            self.rounds,
            if self.rounds == 1 { "" } else { "s" },
            s.keys_compared,
            s.equal,
            s.differing,
            s.policy_excused
        )?;
        for side in &self.sides {
            writeln!(out, "{side}")?;
        }
        if s.differing > 0 {
            writeln!(
                out,
                "differing: {} missing, {} extra, {} type, {} ttl, {} value",
                s.missing, s.extra, s.type_, s.ttl, s.value
            )?;
        }
        if self.settled > 0 {
            writeln!(
                out,
                "settled: {} keys differed in an earlier round, then matched",
                self.settled
            )?;
        }
        for (reason, count) in &self.excused {
            writeln!(out, "policy-excused: {count} ({reason})")?;
        }
        for (note, count) in &self.notes {
            writeln!(out, "note: {count} key(s): {note}")?;
        }
        if s.type_only > 0 {
            writeln!(
                out,
                "note: {} module value(s) compared by type only",
                s.type_only
            )?;
        }
        if self.ferry_markers_skipped > 0 {
            writeln!(
                out,
                "note: ferry's marker keys ({}…) not compared (migrate's record of what it applied)",
                crate::state::marker::KEY
            )?;
        }
        for difference in &self.differences {
            let kinds: Vec<&str> = difference.kinds().iter().map(|k| k.name()).collect();
            writeln!(
                out,
                "db{} {} [{}]",
                difference.db,
                quoted(&difference.key),
                kinds.join(",")
            )?;
            for finding in &difference.findings {
                writeln!(out, "  {}: {}", finding.kind.name(), finding.detail)?;
            }
        }
        if self.unlisted_differences > 0 {
            writeln!(
                out,
                "… and {} more differing keys not listed",
                self.unlisted_differences
            )?;
        }
        Ok(())
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Bytes as text: UTF-8 as is, anything else as \xNN.
pub fn printable(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => bytes.escape_ascii().to_string(),
    }
}

/// A value for a detail line, shortened: values can be megabytes.
pub fn excerpt(bytes: &[u8]) -> String {
    const MAX: usize = 40;
    let text = printable(bytes.get(..MAX).unwrap_or(bytes));
    if bytes.len() > MAX {
        format!("{:?}… ({} bytes)", text, bytes.len())
    } else {
        format!("{text:?}")
    }
}

fn quoted(key: &str) -> String {
    format!("{key:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_outcomes_and_rechecks() {
        let mut report = VerifyReport::default();
        report.record(0, "string", b"a", KeyOutcome::Equal);
        report.record(0, "string", b"gone", KeyOutcome::Gone);
        report.record(0, "string", b"h", KeyOutcome::Excused("field TTLs removed"));
        report.record(
            1,
            "list",
            b"l",
            KeyOutcome::Differs(vec![
                Finding::new(DiffKind::Ttl, "x"),
                Finding::new(DiffKind::Value, "y"),
                Finding::new(DiffKind::Value, "z"),
            ]),
        );
        let s = &report.summary;
        assert_eq!((s.keys_compared, s.equal, s.differing), (3, 1, 1));
        assert_eq!((s.ttl, s.value, s.policy_excused), (1, 1, 1));
        let listed = report.differences.remove(0);
        report.unrecord(&listed);
        assert!(report.is_clean());
        assert_eq!(report.summary.keys_compared, 2);
        let strings = report.by_database[&0]["string"];
        assert_eq!(
            (strings.compared, strings.equal, strings.policy_excused),
            (2, 1, 1)
        );
        assert_eq!(report.by_database[&1]["list"].compared, 0);
    }

    /// The JSON field names are an interface (scripts, cutover logs): changing one must
    /// be a decision, so they are spelled out here.
    #[test]
    fn json_field_names_are_stable() {
        let mut report = VerifyReport::default();
        report.record(
            0,
            "string",
            b"k",
            KeyOutcome::Differs(vec![Finding::new(DiffKind::Ttl, "d")]),
        );
        report.record(0, "string", b"h", KeyOutcome::Excused("why"));
        report.record(0, "string", b"s", KeyOutcome::Noted("counter"));
        let json = report.to_json();
        let names = |value: &serde_json::Value| {
            let mut names: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
            names.sort();
            names
        };
        assert_eq!(
            names(&json),
            [
                "by_database",
                "differences",
                "excused",
                "ferry_markers_skipped",
                "notes",
                "rounds",
                "sampled",
                "settled",
                "summary",
                "unlisted_differences"
            ]
        );
        assert_eq!(
            names(&json["summary"]),
            [
                "differing",
                "equal",
                "extra",
                "keys_compared",
                "missing",
                "policy_excused",
                "ttl",
                "type",
                "type_only",
                "value"
            ]
        );
        assert_eq!(
            names(&json["differences"][0]),
            ["db", "findings", "key", "type"]
        );
        assert_eq!(json["differences"][0]["findings"][0]["kind"], "ttl");
        assert_eq!(json["excused"]["why"], 1);
        assert_eq!(json["by_database"]["0"]["string"]["policy_excused"], 1);
    }

    #[test]
    fn text_names_the_key_and_kind() {
        let mut report = VerifyReport {
            rounds: 1,
            ..VerifyReport::default()
        };
        report.record(
            2,
            "list",
            b"k\xff",
            KeyOutcome::Differs(vec![Finding::new(DiffKind::Missing, "list")]),
        );
        let mut text = Vec::new();
        report.write_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("1 differing"), "{text}");
        assert!(text.contains("db2 \"k\\\\xff\" [missing]"), "{text}");
    }
}
