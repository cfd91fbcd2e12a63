//! What the source holds and uses, from a live server or an RDB file.

use serde::Serialize;
use std::collections::BTreeMap;

/// Example keys, commands or users kept per finding.
pub const MAX_EXAMPLES: usize = 5;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceFacts {
    /// The URL (without password) or the file path.
    pub origin: String,
    /// `live` or `rdb`.
    pub mode: &'static str,
    /// `redis 8.0.2`, from `INFO server` or the file's AUX fields.
    pub server: Option<String>,
    /// The RDB version the source writes (live: from a DUMP of one scanned key).
    pub rdb_version: Option<u16>,
    pub used_memory: Option<u64>,
    pub keys: u64,
    /// Keys per database.
    pub databases: BTreeMap<u64, u64>,
    /// Keys per type (`TYPE` names: string, hash, vectorset, ReJSON-RL, …).
    pub types: BTreeMap<String, u64>,
    /// Hashes with at least one field TTL (`fields` counts those fields).
    pub field_ttl: Tally,
    pub vector_sets: Tally,
    /// Keys of other module types, by type name.
    pub module_types: BTreeMap<String, Tally>,
    /// Function libraries: (name, code).
    #[serde(skip)]
    pub functions: Vec<(String, String)>,
    pub function_libraries: u64,
    /// Live only from here on. Calls per command from `INFO commandstats`.
    pub command_calls: BTreeMap<String, u64>,
    /// `ACL LIST` lines: (user, rule).
    #[serde(skip)]
    pub acl_rules: Vec<(String, String)>,
    /// Loaded modules from `MODULE LIST`.
    pub modules: Vec<String>,
    /// Connected clients per `lib-name lib-ver` (Redis 7.2+ clients report them).
    pub client_libs: BTreeMap<String, u64>,
    #[serde(skip)]
    pub config: BTreeMap<String, String>,
    /// `master` or `slave`.
    pub role: Option<String>,
    pub cluster_enabled: Option<bool>,
    pub aof_enabled: Option<bool>,
    /// The `save` setting (RDB snapshots).
    pub rdb_save: Option<String>,
    /// Checks the source refused: (what, its answer).
    #[serde(skip)]
    pub unchecked: Vec<(String, String)>,
}

/// Keys of one kind: how many, and the first few names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub keys: u64,
    /// Hash fields with a TTL (field TTL tally only).
    #[serde(skip_serializing_if = "is_zero")]
    pub fields: u64,
    pub examples: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Tally {
    pub fn add(&mut self, key: &str, fields: u64) {
        self.keys += 1;
        self.fields += fields;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(key.to_owned());
        }
    }
}
