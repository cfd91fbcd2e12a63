//! What a target can do: its commands, modules, settings and the RDB version it writes,
//! probed from a live server. The same probe generates the built-in profiles
//! (`cargo xtask profiles`), so a profile is exactly what the real release reported.

use super::client::{self, connect, dump_rdb_version, items, pairs, query, text};
use super::error::ProbeError;
use crate::error::Error;
use crate::url::ServerUrl;
use redis::{Connection, Value};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The profile name (`valkey-8.1`) or the probed URL without its password.
    pub name: String,
    /// `redis` or `valkey`.
    pub product: String,
    /// The release, e.g. `8.1.4`.
    pub version: String,
    /// The RDB version its DUMP payloads carry (80 and up: Valkey's numbering); `None`
    /// when the probe was refused.
    pub rdb_version: Option<u16>,
    /// Lower-case command names from `COMMAND`, subcommands as `parent|sub`.
    pub commands: BTreeSet<String>,
    /// Loaded modules from `MODULE LIST`.
    pub modules: BTreeSet<String>,
    /// Every setting from `CONFIG GET *`, with the value the server reported; secret ones
    /// (`requirepass`, …) read `(redacted)` ([`super::redact`]).
    pub config: BTreeMap<String, String>,
    /// Hash fields with their own TTL (HPEXPIRE in the command table).
    pub hash_field_ttl: bool,
    /// Vector sets (VADD in the command table).
    pub vector_sets: bool,
    /// Probes the server refused: (what, its answer). Empty in generated profiles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchecked: Vec<(String, String)>,
}

impl Capabilities {
    /// Whether the command table is known (a refused `COMMAND` leaves it empty).
    pub fn knows_commands(&self) -> bool {
        !self.commands.is_empty()
    }

    /// Whether the target has a command as `INFO commandstats` or a script names it:
    /// `hexpire`, or `config|get` (checked by parent only when the table lists no
    /// subcommands for it).
    pub fn has_command(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        if self.commands.contains(&name) {
            return true;
        }
        match name.split_once('|') {
            Some((parent, _)) => {
                let prefix = format!("{parent}|");
                self.commands.contains(parent)
                    && !self.commands.iter().any(|c| c.starts_with(&prefix))
            }
            None => false,
        }
    }

    /// Whether the target stores keys of a module data type (by `TYPE` name).
    pub fn has_module_type(&self, type_name: &str) -> bool {
        if type_name == "vectorset" {
            return self.vector_sets;
        }
        module_of_type(type_name).is_some_and(|module| {
            self.modules
                .iter()
                .any(|loaded| loaded.eq_ignore_ascii_case(module))
        })
    }
}

/// The module that registers a well-known data type, by the type's 9-character name.
pub fn module_of_type(type_name: &str) -> Option<&'static str> {
    const KNOWN: &[(&str, &str)] = &[
        ("ReJSON-RL", "ReJSON"),
        ("TSDB-TYPE", "timeseries"),
        ("MBbloom--", "bf"),
        ("MBbloomCF", "bf"),
        ("CMSk-TYPE", "bf"),
        ("TopK-TYPE", "bf"),
        ("TDIS-TYPE", "bf"),
        ("graphdata", "graph"),
        ("ft_invidx", "search"),
        ("vectorset", "vectorset"),
    ];
    KNOWN
        .iter()
        .find(|(name, _)| *name == type_name)
        .map(|(_, module)| *module)
}

/// Probes the live target at `url`; an unreachable server or failed login is an error,
/// a refused probe only a gap in the result.
pub fn probe_url(url: &ServerUrl) -> Result<Capabilities, Error> {
    let mut con = connect(url)?;
    let mut found = probe(&mut con, &url.to_string());
    fill_from_profile(&mut found);
    Ok(found)
}

/// When the target refused `COMMAND`, its release's built-in profile (if any) stands in for
/// the command table; the gap stays listed, saying so.
fn fill_from_profile(found: &mut Capabilities) {
    if found.knows_commands() {
        return;
    }
    let Some(profile) = super::profiles::for_release(&found.product, &found.version) else {
        return;
    };
    found.commands = profile.commands;
    found.hash_field_ttl = profile.hash_field_ttl;
    found.vector_sets = profile.vector_sets;
    for (what, reason) in &mut found.unchecked {
        if what == "COMMAND" {
            reason.push_str(&format!(
                " (used the {} profile's command table)",
                profile.name
            ));
        }
    }
}

pub fn probe(con: &mut Connection, name: &str) -> Capabilities {
    let mut unchecked = Vec::new();
    let mut note = |what: &str, err: ProbeError| unchecked.push((what.to_owned(), err.line()));

    let (product, version) = match client::info(con, "server") {
        Ok(server) => client::product(&server),
        Err(err) => {
            note("INFO server", err);
            (String::new(), String::new())
        }
    };
    let commands = match query(con, &["COMMAND"]) {
        Ok(reply) => {
            let mut names = BTreeSet::new();
            for entry in items(&reply) {
                command_names(entry, &mut names);
            }
            names
        }
        Err(err) => {
            note("COMMAND", err);
            BTreeSet::new()
        }
    };
    let modules = match query(con, &["MODULE", "LIST"]) {
        Ok(reply) => module_names(&reply),
        Err(err) => {
            note("MODULE LIST", err);
            BTreeSet::new()
        }
    };
    let config = match query(con, &["CONFIG", "GET", "*"]) {
        Ok(reply) => {
            let mut config = pairs(&reply)
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), text(v).unwrap_or_default()))
                .collect();
            super::redact::redact(&mut config);
            config
        }
        Err(err) => {
            note("CONFIG GET", err);
            BTreeMap::new()
        }
    };
    let rdb_version = match probe_dump(con) {
        Ok(version) => Some(version),
        Err(err) => {
            note("DUMP (RDB version)", err);
            None
        }
    };
    Capabilities {
        name: name.to_owned(),
        product,
        version,
        rdb_version,
        hash_field_ttl: commands.contains("hpexpire"),
        vector_sets: commands.contains("vadd"),
        commands,
        modules,
        config,
        unchecked,
    }
}

/// The name of a `COMMAND` entry and of its subcommands (entry 10 from Redis 7 on).
fn command_names(entry: &Value, names: &mut BTreeSet<String>) {
    let fields = items(entry);
    if let Some(name) = fields.first().and_then(text) {
        names.insert(name.to_ascii_lowercase());
    }
    if let Some(subcommands) = fields.get(9) {
        for sub in items(subcommands) {
            command_names(sub, names);
        }
    }
}

fn module_names(reply: &Value) -> BTreeSet<String> {
    items(reply)
        .iter()
        .filter_map(|module| {
            pairs(module)
                .into_iter()
                .find(|(k, _)| k == "name")
                .and_then(|(_, v)| text(v))
        })
        .collect()
}

/// Writes a short-lived key, DUMPs it and reads the version from the payload's footer.
fn probe_dump(con: &mut Connection) -> Result<u16, ProbeError> {
    let key = format!("ferry:assess:probe:{}", std::process::id());
    query(con, &["SET", &key, "probe", "PX", "10000"])?;
    let dumped = query(con, &["DUMP", &key]);
    // The key expires by itself should DEL be refused.
    let _ = query(con, &["DEL", &key]);
    match dumped? {
        Value::BulkString(payload) => dump_rdb_version(&payload).ok_or(ProbeError::DumpTooShort),
        other => Err(ProbeError::DumpReply(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(commands: &[&str]) -> Capabilities {
        Capabilities {
            name: "t".into(),
            product: "valkey".into(),
            version: "9.1.0".into(),
            rdb_version: Some(80),
            commands: commands.iter().map(|c| c.to_string()).collect(),
            modules: BTreeSet::new(),
            config: BTreeMap::new(),
            hash_field_ttl: false,
            vector_sets: false,
            unchecked: Vec::new(),
        }
    }

    #[test]
    fn subcommands_are_checked_where_the_table_lists_them() {
        let target = caps(&["config", "config|get", "client"]);
        assert!(target.has_command("CONFIG|GET"));
        assert!(!target.has_command("config|rewrite"));
        // A table without subcommands (Redis 6) cannot tell: the parent decides.
        assert!(target.has_command("client|no-touch"));
        assert!(!target.has_command("hexpire"));
    }
}
