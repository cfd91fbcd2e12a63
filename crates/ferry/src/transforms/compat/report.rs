//! What the compatibility policies changed, so that nothing is dropped silently.

use crate::display::count;
use crate::policy::{HashFieldTtlPolicy, Policies};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyReport {
    /// The flag values in force, as given on the command line.
    pub policies: Policies,
    pub hash_field_ttl: HashFieldTtlCounts,
    pub vector_sets: VectorSetCounts,
    /// Other module types, by module type name.
    pub modules: BTreeMap<String, ModuleCounts>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HashFieldTtlCounts {
    /// Hashes that had at least one field persisted or dropped.
    pub keys: u64,
    /// Fields persisted (`persist`) or left out (`drop-field`).
    pub fields: u64,
    /// Hashes left out whole because every field had a TTL (`drop-field`).
    pub keys_dropped: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VectorSetCounts {
    pub keys_skipped: u64,
    pub keys_exported: u64,
    pub elements_exported: u64,
    pub aux_dropped: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ModuleCounts {
    pub keys_skipped: u64,
    pub aux_dropped: u64,
}

impl PolicyReport {
    pub fn new(policies: &Policies) -> Self {
        Self {
            policies: policies.clone(),
            ..Self::default()
        }
    }

    /// Whether any policy changed anything.
    pub fn is_empty(&self) -> bool {
        self.hash_field_ttl == HashFieldTtlCounts::default()
            && self.vector_sets == VectorSetCounts::default()
            && self.modules.is_empty()
    }

    pub(super) fn module(&mut self, name: String) -> &mut ModuleCounts {
        self.modules.entry(name).or_default()
    }

    /// One line per policy that acted, e.g.
    /// `--hash-field-ttl persist: 12 fields in 3 keys kept without their TTL`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let hash = &self.hash_field_ttl;
        if hash.fields > 0 {
            let flag = format!("--hash-field-ttl {}", self.policies.hash_field_ttl);
            let fields = count(hash.fields, "field", "fields");
            let keys = count(hash.keys, "hash", "hashes");
            lines.push(
                if self.policies.hash_field_ttl == HashFieldTtlPolicy::Persist {
                    format!("{flag}: {fields} in {keys} kept without their TTL")
                } else {
                    let mut line = format!("{flag}: {fields} with a TTL left out of {keys}");
                    if hash.keys_dropped > 0 {
                        let emptied = count(hash.keys_dropped, "hash", "hashes");
                        let verb = if hash.keys_dropped == 1 {
                            "was"
                        } else {
                            "were"
                        };
                        line +=
                            &format!("; {emptied} had no other field and {verb} left out whole");
                    }
                    line
                },
            );
        }
        let vectors = &self.vector_sets;
        let flag = format!("--vector-set {}", self.policies.vector_set);
        if vectors.keys_skipped > 0 {
            lines.push(format!(
                "{flag}: {} left out",
                count(vectors.keys_skipped, "vector set", "vector sets")
            ));
        }
        if vectors.keys_exported > 0 {
            lines.push(format!(
                "{flag}: {} ({}) exported and left out",
                count(vectors.keys_exported, "vector set", "vector sets"),
                count(vectors.elements_exported, "element", "elements")
            ));
        }
        if vectors.aux_dropped > 0 {
            lines.push(format!(
                "{flag}: {} of vectorset dropped",
                count(
                    vectors.aux_dropped,
                    "module AUX record",
                    "module AUX records"
                )
            ));
        }
        for (name, counts) in &self.modules {
            let mut what = Vec::new();
            if counts.keys_skipped > 0 {
                what.push(format!(
                    "{} left out",
                    count(counts.keys_skipped, "key", "keys")
                ));
            }
            if counts.aux_dropped > 0 {
                what.push(format!(
                    "{} dropped",
                    count(
                        counts.aux_dropped,
                        "module AUX record",
                        "module AUX records"
                    )
                ));
            }
            lines.push(format!(
                "--module {}: module '{name}': {}",
                self.policies.module,
                what.join(", ")
            ));
        }
        lines
    }
}

impl fmt::Display for PolicyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = self.lines();
        if lines.is_empty() {
            return f.write_str("policies: nothing needed changing");
        }
        f.write_str(&lines.join("\n"))
    }
}
