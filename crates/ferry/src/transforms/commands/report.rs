//! What the policies changed in the command stream, so that nothing is lost silently.
//! The snapshot's counterpart is [`crate::transforms::compat::PolicyReport`]; this one
//! counts commands and fields, since the stream carries changes rather than keys.

use crate::display::count;
use crate::policy::{Policies, VectorSetPolicy};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CommandReport {
    /// The flag values in force, as given on the command line.
    pub policies: Policies,
    pub hash_field_ttl: HashTtlCommandCounts,
    pub vector_sets: VectorCommandCounts,
    /// The run reads the vector sets these commands changed again when it stops, so the
    /// export file is current then (migrate), rather than as of the full sync (relay).
    #[serde(skip)]
    pub export_refreshed_at_stop: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HashTtlCommandCounts {
    /// `persist`: fields written (HSETEX) without the TTL the source gave them.
    pub fields_written_without_ttl: u64,
    /// `persist`: fields whose new TTL (HPEXPIREAT) was not applied.
    pub field_ttls_ignored: u64,
    /// `drop-field`: fields deleted on the target because the source gave them a TTL.
    pub fields_dropped: u64,
    /// `drop-field`: HPERSIST commands skipped. Fields they made persistent on the source
    /// stay dropped on the target: the stream does not carry their values. (HPERSIST names
    /// every field it was given, also those that had no TTL, so this counts commands.)
    pub persists_skipped: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VectorCommandCounts {
    /// Vector-set commands not applied (`skip` and `export=PATH`), by command name.
    pub commands_skipped: BTreeMap<String, u64>,
}

impl CommandReport {
    pub fn new(policies: &Policies) -> Self {
        Self {
            policies: policies.clone(),
            ..Self::default()
        }
    }

    /// Whether any policy changed anything.
    pub fn is_empty(&self) -> bool {
        self.hash_field_ttl == HashTtlCommandCounts::default()
            && self.vector_sets.commands_skipped.is_empty()
    }

    pub(super) fn vector_command_skipped(&mut self, name: &str) {
        *self
            .vector_sets
            .commands_skipped
            .entry(name.to_owned())
            .or_default() += 1;
    }

    /// One line per policy that acted, e.g.
    /// `--hash-field-ttl persist: 12 fields written without their TTL`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let hash = &self.hash_field_ttl;
        let mut hash_parts = Vec::new();
        if hash.fields_written_without_ttl > 0 {
            hash_parts.push(format!(
                "{} written without their TTL",
                fields(hash.fields_written_without_ttl)
            ));
        }
        if hash.field_ttls_ignored > 0 {
            hash_parts.push(format!(
                "the new TTL of {} ignored",
                fields(hash.field_ttls_ignored)
            ));
        }
        if hash.fields_dropped > 0 {
            hash_parts.push(format!(
                "{} deleted because the source gave them a TTL",
                fields(hash.fields_dropped)
            ));
        }
        if hash.persists_skipped > 0 {
            hash_parts.push(format!(
                "{} skipped, so fields made persistent on the source stay dropped",
                count(hash.persists_skipped, "HPERSIST", "HPERSISTs")
            ));
        }
        if !hash_parts.is_empty() {
            lines.push(format!(
                "--hash-field-ttl {}: {}",
                self.policies.hash_field_ttl,
                hash_parts.join("; ")
            ));
        }
        let skipped = &self.vector_sets.commands_skipped;
        if !skipped.is_empty() {
            let total = skipped.values().sum();
            let by_name: Vec<String> = skipped.iter().map(|(n, c)| format!("{n} {c}")).collect();
            let mut line = format!(
                "--vector-set {}: {} skipped ({})",
                self.policies.vector_set,
                count(total, "vector-set command", "vector-set commands"),
                by_name.join(", ")
            );
            if let VectorSetPolicy::Export(_) = self.policies.vector_set {
                line.push_str(if self.export_refreshed_at_stop {
                    "; the export file is brought up to date from the source when the run stops"
                } else {
                    "; the export file holds the vector sets as of the full sync"
                });
            }
            lines.push(line);
        }
        lines
    }
}

fn fields(n: u64) -> String {
    count(n, "field", "fields")
}

impl fmt::Display for CommandReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = self.lines();
        if lines.is_empty() {
            return f.write_str("policies: no replicated command needed changing");
        }
        f.write_str(&lines.join("\n"))
    }
}
