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
    /// A cluster source: how many primaries were read (every one, their facts summed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_primaries: Option<usize>,
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

impl SourceFacts {
    /// Adds what another primary of the same cluster holds and uses: counts are summed,
    /// lists joined without repeats; the server, its version and settings stay the first
    /// primary's. `node` names the primary in its refused checks.
    pub fn add_primary(&mut self, other: SourceFacts, node: &str) {
        self.server = self.server.take().or(other.server);
        self.rdb_version = self.rdb_version.or(other.rdb_version);
        self.used_memory = match (self.used_memory, other.used_memory) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.keys += other.keys;
        sum_into(&mut self.databases, other.databases);
        sum_into(&mut self.types, other.types);
        self.field_ttl.absorb(other.field_ttl);
        self.vector_sets.absorb(other.vector_sets);
        for (name, tally) in other.module_types {
            self.module_types.entry(name).or_default().absorb(tally);
        }
        // Functions are loaded on every primary: the same library is counted once.
        for (name, code) in other.functions {
            if !self.functions.iter().any(|(known, _)| *known == name) {
                self.functions.push((name, code));
            }
        }
        self.function_libraries = self.function_libraries.max(self.functions.len() as u64);
        sum_into(&mut self.command_calls, other.command_calls);
        for rule in other.acl_rules {
            if !self.acl_rules.contains(&rule) {
                self.acl_rules.push(rule);
            }
        }
        for module in other.modules {
            if !self.modules.contains(&module) {
                self.modules.push(module);
            }
        }
        sum_into(&mut self.client_libs, other.client_libs);
        if self.config.is_empty() {
            self.config = other.config;
        }
        self.role = self.role.take().or(other.role);
        self.aof_enabled = self.aof_enabled.or(other.aof_enabled);
        self.rdb_save = self.rdb_save.take().or(other.rdb_save);
        self.unchecked.extend(
            other
                .unchecked
                .into_iter()
                .map(|(what, answer)| (format!("{what} on {node}"), answer)),
        );
    }
}

fn sum_into<K: Ord>(into: &mut BTreeMap<K, u64>, from: BTreeMap<K, u64>) {
    for (key, n) in from {
        *into.entry(key).or_default() += n;
    }
}

impl Tally {
    fn absorb(&mut self, other: Tally) {
        self.keys += other.keys;
        self.fields += other.fields;
        let room = MAX_EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
    }

    pub fn add(&mut self, key: &str, fields: u64) {
        self.keys += 1;
        self.fields += fields;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(key.to_owned());
        }
    }
}
