//! Findings: each thing the source uses that the target lacks (or that is worth knowing),
//! with a stable id, a severity, counts, examples and advice. Ids: docs/assess.md.

use super::capabilities::module_of_type;
use super::source::{SourceFacts, MAX_EXAMPLES};
use super::Capabilities;
use crate::display::count;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Data or calls that cannot move as they are.
    Blocker,
    /// Moves with a policy flag or a small change.
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Blocker => "blocker",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable id: `hash-field-ttl`, `vector-set`, `module:<type>`, `command:<name>`, …
    pub id: String,
    pub severity: Severity,
    /// What the count counts: `keys`, `calls`, `libraries`, `users`, `clients`, `settings`.
    pub unit: &'static str,
    pub count: u64,
    /// One line for people: `12 hashes with field TTLs (340 fields)`.
    pub summary: String,
    /// At most five keys, commands, libraries or users.
    pub examples: Vec<String>,
    /// What to do: the ferry policy flag that applies, or the rewrite.
    pub advice: String,
}

const FIELD_TTL_COMMANDS: &[&str] = &[
    "hexpire",
    "hpexpire",
    "hexpireat",
    "hpexpireat",
    "httl",
    "hpttl",
    "hexpiretime",
    "hpexpiretime",
    "hpersist",
    "hsetex",
    "hgetex",
    "hgetdel",
];

pub fn find(source: &SourceFacts, target: &Capabilities) -> Vec<Finding> {
    let mut found = Vec::new();
    data(source, target, &mut found);
    commands(source, target, &mut found);
    scripts(source, target, &mut found);
    acl(source, target, &mut found);
    rdb_version(source, target, &mut found);
    config(source, target, &mut found);
    server(source, &mut found);
    found.sort_by(|a, b| (a.severity, &a.id).cmp(&(b.severity, &b.id)));
    found
}

fn data(source: &SourceFacts, target: &Capabilities, found: &mut Vec<Finding>) {
    let ttl = &source.field_ttl;
    if ttl.keys > 0 {
        let summary = format!(
            "{} with field TTLs ({})",
            count(ttl.keys, "hash", "hashes"),
            count(ttl.fields, "field", "fields")
        );
        let (severity, advice) = if target.hash_field_ttl {
            (
                Severity::Info,
                "the target keeps field TTLs; nothing to change".to_owned(),
            )
        } else {
            (
                Severity::Blocker,
                "ferry moves them only with --hash-field-ttl persist (fields never expire) or \
                 drop-field; to keep the expiry, rewrite expiring fields as keys of their own \
                 with a TTL, or move to Valkey 9.0+"
                    .to_owned(),
            )
        };
        found.push(Finding {
            id: "hash-field-ttl".into(),
            severity,
            unit: "keys",
            count: ttl.keys,
            summary,
            examples: ttl.examples.clone(),
            advice,
        });
    }
    let vectors = &source.vector_sets;
    if vectors.keys > 0 {
        let (severity, advice) = if target.vector_sets {
            (
                Severity::Info,
                "the target has vector sets; nothing to change".to_owned(),
            )
        } else {
            (
                Severity::Blocker,
                "move them to a vector store: --vector-set export=PATH writes their elements \
                 as JSON Lines and leaves the keys out (or skip); keep vector search on Redis \
                 otherwise"
                    .to_owned(),
            )
        };
        found.push(Finding {
            id: "vector-set".into(),
            severity,
            unit: "keys",
            count: vectors.keys,
            summary: count(vectors.keys, "vector set", "vector sets"),
            examples: vectors.examples.clone(),
            advice,
        });
    }
    for (type_name, tally) in &source.module_types {
        if target.has_module_type(type_name) {
            continue;
        }
        let module = module_of_type(type_name).unwrap_or("its module");
        found.push(Finding {
            id: format!("module:{type_name}"),
            severity: Severity::Blocker,
            unit: "keys",
            count: tally.keys,
            summary: format!(
                "{} of module type '{type_name}'",
                count(tally.keys, "key", "keys")
            ),
            examples: tally.examples.clone(),
            advice: format!(
                "the target lacks {module}: --module skip leaves these keys out; keep them on \
                 Redis or load a compatible module on the target"
            ),
        });
    }
    let types_found: Vec<&str> = source
        .module_types
        .keys()
        .filter_map(|t| module_of_type(t))
        .collect();
    for module in &source.modules {
        // Built into a release as modules: vector sets (Redis 8), the Lua engine (Valkey 9).
        let covered = ["vectorset", "lua"].contains(&module.as_str())
            || types_found.iter().any(|m| m.eq_ignore_ascii_case(module))
            || target
                .modules
                .iter()
                .any(|m| m.eq_ignore_ascii_case(module));
        if covered {
            continue;
        }
        found.push(Finding {
            id: format!("module:{module}"),
            severity: Severity::Warning,
            unit: "keys",
            count: 0,
            summary: format!("module '{module}' is loaded but the target lacks it"),
            examples: Vec::new(),
            advice: "no keys of its types were found; calls to its commands are listed as \
                     command: findings"
                .into(),
        });
    }
}

fn commands(source: &SourceFacts, target: &Capabilities, found: &mut Vec<Finding>) {
    if !target.knows_commands() {
        return;
    }
    for (name, calls) in &source.command_calls {
        if *calls == 0 || target.has_command(name) {
            continue;
        }
        found.push(Finding {
            id: format!("command:{name}"),
            severity: Severity::Blocker,
            unit: "calls",
            count: *calls,
            summary: format!(
                "{name} called {}; the target lacks it",
                count(*calls, "time", "times")
            ),
            examples: vec![name.clone()],
            advice: command_advice(name),
        });
    }
}

fn command_advice(name: &str) -> String {
    let base = name.split('|').next().unwrap_or(name);
    if FIELD_TTL_COMMANDS.contains(&base) {
        "rewrite field TTLs as keys of their own with a TTL, or move to Valkey 9.0+".into()
    } else if base.starts_with('v') && base.len() > 1 && base != "valkey" {
        "vector search stays on Redis or moves to a vector store (--vector-set export=PATH \
         exports the data)"
            .into()
    } else if base.contains('.') {
        "a module command: load the module on the target or keep these calls on Redis".into()
    } else {
        "change the code that calls it, or keep that part of the workload on Redis".into()
    }
}

/// Commands a script names: `redis.call('CMD', …)`, `server.pcall("cmd", …)`.
pub fn called_commands(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for marker in [".call(", ".pcall("] {
        let mut rest = code;
        while let Some(at) = rest.find(marker) {
            rest = &rest[at + marker.len()..];
            let trimmed = rest.trim_start();
            let Some(quote) = trimmed.chars().next().filter(|c| *c == '\'' || *c == '"') else {
                continue;
            };
            let inner = &trimmed[1..];
            if let Some(end) = inner.find(quote) {
                let name = inner[..end].to_ascii_lowercase();
                if !name.is_empty() && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    names
}

fn scripts(source: &SourceFacts, target: &Capabilities, found: &mut Vec<Finding>) {
    if !target.knows_commands() {
        return;
    }
    if source.function_libraries > 0 && !target.has_command("function") {
        found.push(Finding {
            id: "functions".into(),
            severity: Severity::Blocker,
            unit: "libraries",
            count: source.function_libraries,
            summary: count(
                source.function_libraries,
                "function library",
                "function libraries",
            ),
            examples: source
                .functions
                .iter()
                .take(MAX_EXAMPLES)
                .map(|(n, _)| n.clone())
                .collect(),
            advice: "the target has no functions (Redis 7.0+): rewrite them as EVAL scripts".into(),
        });
    }
    let mut uses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (library, code) in &source.functions {
        for command in called_commands(code) {
            if !target.has_command(&command) {
                uses.entry(command).or_default().push(library.clone());
            }
        }
    }
    for (command, libraries) in uses {
        found.push(Finding {
            id: format!("function-uses:{command}"),
            severity: Severity::Blocker,
            unit: "libraries",
            count: libraries.len() as u64,
            summary: format!(
                "{} call {command}, which the target lacks",
                count(
                    libraries.len() as u64,
                    "function library",
                    "function libraries"
                )
            ),
            examples: libraries.into_iter().take(MAX_EXAMPLES).collect(),
            advice: format!(
                "rewrite those functions without {command}; {}",
                command_advice(&command)
            ),
        });
    }
}

fn acl(source: &SourceFacts, target: &Capabilities, found: &mut Vec<Finding>) {
    if !target.knows_commands() {
        return;
    }
    let mut uses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (user, rule) in &source.acl_rules {
        for token in rule.split_whitespace() {
            let Some(command) = token.strip_prefix('+').or_else(|| token.strip_prefix('-')) else {
                continue;
            };
            if command.starts_with('@') || command.is_empty() {
                continue;
            }
            let command = command.to_ascii_lowercase();
            if !target.has_command(&command) {
                let users = uses.entry(command).or_default();
                if !users.contains(user) {
                    users.push(user.clone());
                }
            }
        }
    }
    for (command, users) in uses {
        found.push(Finding {
            id: format!("acl-uses:{command}"),
            severity: Severity::Warning,
            unit: "users",
            count: users.len() as u64,
            summary: format!(
                "ACL rules of {} name {command}, which the target lacks",
                count(users.len() as u64, "user", "users")
            ),
            examples: users.into_iter().take(MAX_EXAMPLES).collect(),
            advice: format!("remove {command} from those rules before loading them on the target"),
        });
    }
}

/// Whether a server writing version `target` reads files of version `source` (80 and up
/// are Valkey's numbers; Valkey 9 still reads Redis files up to 11).
pub fn reads(target: u16, source: u16) -> bool {
    match (target >= 80, source >= 80) {
        (false, false) | (true, true) => source <= target,
        (true, false) => source <= 11,
        (false, true) => false,
    }
}

fn rdb_version(source: &SourceFacts, target: &Capabilities, found: &mut Vec<Finding>) {
    let (Some(from), Some(to)) = (source.rdb_version, target.rdb_version) else {
        return;
    };
    if reads(to, from) {
        return;
    }
    found.push(Finding {
        id: "rdb-version".into(),
        severity: Severity::Warning,
        unit: "keys",
        count: source.keys,
        summary: format!("the source writes RDB {from}, which the target (RDB {to}) cannot read"),
        examples: Vec::new(),
        advice: format!(
            "a replica, RESTORE or file load fails as is; ferry convert --to {} (or ferry \
             migrate) rewrites the data for it",
            target.name
        ),
    });
}

fn config(source: &SourceFacts, target: &Capabilities, found: &mut Vec<Finding>) {
    if source.config.is_empty() || target.config.is_empty() {
        return;
    }
    let defaults = source.server.as_deref().and_then(|server| {
        let (product, version) = server.split_once(' ')?;
        super::profiles::for_release(product, version)
    });
    for (name, value) in &source.config {
        if target.config.contains_key(name) {
            continue;
        }
        let default = defaults.as_ref().and_then(|p| p.config.get(name));
        if default == Some(value) {
            continue;
        }
        let severity = if defaults.is_some() {
            Severity::Warning
        } else {
            Severity::Info
        };
        found.push(Finding {
            id: format!("config:{name}"),
            severity,
            unit: "settings",
            count: 1,
            summary: format!("setting {name} = '{value}' is unknown to the target"),
            examples: vec![format!("{name} {value}")],
            advice: "remove it from the target's configuration; the target refuses to start \
                     with unknown settings"
                .into(),
        });
    }
}

fn server(source: &SourceFacts, found: &mut Vec<Finding>) {
    let clients: u64 = source.client_libs.values().sum();
    if clients > 0 {
        found.push(Finding {
            id: "client-lib".into(),
            severity: Severity::Info,
            unit: "clients",
            count: clients,
            summary: format!("{} connected", count(clients, "client", "clients")),
            examples: source
                .client_libs
                .iter()
                .take(MAX_EXAMPLES)
                .map(|(lib, n)| format!("{lib} ×{n}"))
                .collect(),
            advice: "Valkey speaks the same protocol; check each library's support notes".into(),
        });
    }
    if source.cluster_enabled == Some(true) {
        found.push(Finding {
            id: "cluster".into(),
            severity: Severity::Info,
            unit: "keys",
            count: source.keys,
            summary: match source.cluster_primaries {
                Some(n) => format!("the source is a cluster of {n} primaries (all read)"),
                None => "the source runs in cluster mode".into(),
            },
            examples: Vec::new(),
            advice: "ferry migrate reads every primary and writes a Valkey cluster of any \
                     shard count (or one server); ferry cutover does not switch clusters: \
                     verify, then move clients by hand"
                .into(),
        });
    }
    if let Some(role) = source.role.as_deref().filter(|r| *r != "master") {
        found.push(Finding {
            id: "replication".into(),
            severity: Severity::Info,
            unit: "keys",
            count: source.keys,
            summary: format!("the source is a {role}"),
            examples: Vec::new(),
            advice: "assessing a replica is safe; migrate from it or from its primary".into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_name_their_commands_in_any_quoting() {
        let code =
            "redis.call('HEXPIRE', k, 10)\nlocal x = server.pcall( \"vadd\", k)\nredis.call(cmd)";
        assert_eq!(called_commands(code), ["hexpire", "vadd"]);
    }

    #[test]
    fn version_rules_follow_the_readers() {
        assert!(reads(11, 10));
        assert!(!reads(11, 12));
        assert!(reads(80, 11));
        assert!(!reads(80, 12));
        assert!(!reads(12, 80));
    }
}
