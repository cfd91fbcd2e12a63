//! What a live source holds and uses. Read-only, and gentle: keys are found by SCAN, and
//! the scan's commands stay under `--max-ops-per-sec`. A check the server refuses (a
//! renamed or ACL-denied command) becomes an "unchecked" entry, never an error.

use super::client::{self, connect, items, pairs, query, text};
use super::error::ProbeError;
use super::rdb::library_name;
use super::source::SourceFacts;
use crate::error::Error;
use crate::filter::Scope;
use crate::server::cluster::blocking;
use crate::url::ServerUrl;
use ferry_codec::ValuePart;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use redis::{Connection, Value};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Keys asked for per SCAN call.
const SCAN_COUNT: usize = 1000;

/// What the server at `url` holds and uses; for a cluster node, what the whole cluster
/// does: every primary is read in turn (with the URL's credentials and TLS) and the facts
/// summed, so that keys and commands on other shards are not missed.
///
/// Under a scope (`--match`, `--db`, ...) only the kept keys of kept databases are
/// counted and examined.
pub fn probe(url: &ServerUrl, max_ops_per_sec: u32, scope: &Scope) -> Result<SourceFacts, Error> {
    let entry = probe_node(url, max_ops_per_sec, scope)?;
    if entry.cluster_enabled != Some(true) {
        return Ok(entry);
    }
    let mut con = connect(url)?;
    let map = blocking::primaries(&mut con, &url.host, url.tls.is_some()).map_err(|why| {
        Error::Connect {
            url: url.to_string(),
            source: why.into(),
        }
    })?;
    let mut entry = Some(entry);
    let mut whole: Option<SourceFacts> = None;
    for node in &map.nodes {
        let mut node_url = url.clone();
        node_url.host = node.host.clone();
        node_url.port = node.port;
        let address = node_url.address();
        // The node named in the URL was read already, when it is a primary.
        let facts = match entry
            .take_if(|e| e.role.as_deref() == Some("master") && address == url.address())
        {
            Some(facts) => facts,
            None => probe_node(&node_url, max_ops_per_sec, scope)?,
        };
        match whole.as_mut() {
            None => whole = Some(facts),
            Some(whole) => whole.add_primary(facts, &address),
        }
    }
    let mut whole = whole.ok_or_else(|| Error::Connect {
        url: url.to_string(),
        source: "the cluster has no primary".into(),
    })?;
    whole.origin = url.to_string();
    whole.cluster_primaries = Some(map.nodes.len());
    Ok(whole)
}

fn probe_node(url: &ServerUrl, max_ops_per_sec: u32, scope: &Scope) -> Result<SourceFacts, Error> {
    let mut con = connect(url)?;
    let mut facts = SourceFacts {
        origin: url.to_string(),
        mode: "live",
        ..SourceFacts::default()
    };
    let info = match client::info(&mut con, "everything") {
        Ok(info) => info,
        Err(err) => {
            facts.unchecked.push(("INFO".into(), err.line()));
            BTreeMap::new()
        }
    };
    read_info(&mut facts, &info);
    read_config(&mut con, &mut facts);
    read_functions(&mut con, &mut facts);
    read_acl(&mut con, &mut facts);
    read_modules(&mut con, &mut facts);
    read_clients(&mut con, &mut facts);
    let mut databases = keyspace(&info);
    databases.retain(|(db, _)| scope.keeps_db(*db));
    let mut scan = Scan::new(max_ops_per_sec, databases.iter().map(|(_, d)| d.keys).sum());
    scan.scope = scope.clone();
    let field_ttls_possible = has_command(&mut con, "hpexpiretime");
    // INFO's per-database `subexpiry` proved unreliable (off by a few after HPERSIST), so
    // every hash is checked where the server has field TTLs at all.
    for (db, _) in &databases {
        if let Err(err) = scan.database(&mut con, &mut facts, *db, field_ttls_possible) {
            facts
                .unchecked
                .push((format!("SCAN of database {db}"), err.line()));
        }
    }
    scan.finish();
    if facts.rdb_version.is_none() {
        facts
            .unchecked
            .push(("DUMP (RDB version)".into(), "no key could be dumped".into()));
    }
    Ok(facts)
}

fn read_info(facts: &mut SourceFacts, info: &BTreeMap<String, String>) {
    if info.is_empty() {
        return;
    }
    let (product, version) = client::product(info);
    facts.server = Some(format!("{product} {version}"));
    facts.used_memory = info.get("used_memory").and_then(|v| v.parse().ok());
    facts.role = info.get("role").cloned();
    facts.cluster_enabled = info.get("cluster_enabled").map(|v| v == "1");
    facts.aof_enabled = info.get("aof_enabled").map(|v| v == "1");
    for (field, value) in info {
        let Some(name) = field.strip_prefix("cmdstat_") else {
            continue;
        };
        let calls = value
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        facts.command_calls.insert(name.to_ascii_lowercase(), calls);
    }
    if !info.keys().any(|k| k.starts_with("cmdstat_")) {
        facts.unchecked.push((
            "INFO commandstats".into(),
            "the server reported no command statistics".into(),
        ));
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct DbCounts {
    keys: u64,
}

/// Databases from `INFO keyspace` (`db0:keys=3,expires=0,avg_ttl=0`);
/// database 0 alone when INFO was refused.
fn keyspace(info: &BTreeMap<String, String>) -> Vec<(u64, DbCounts)> {
    if info.is_empty() {
        return vec![(0, DbCounts::default())];
    }
    info.iter()
        .filter_map(|(field, value)| {
            let db = field.strip_prefix("db")?.parse().ok()?;
            let get = |name: &str| {
                value
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .and_then(|n| n.parse().ok())
            };
            Some((
                db,
                DbCounts {
                    keys: get("keys").unwrap_or(0),
                },
            ))
        })
        .collect()
}

fn read_config(con: &mut Connection, facts: &mut SourceFacts) {
    match query(con, &["CONFIG", "GET", "*"]) {
        Ok(reply) => {
            facts.config = pairs(&reply)
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), text(v).unwrap_or_default()))
                .collect();
            // Findings quote settings the target lacks (`primaryauth` for a Redis target).
            super::redact::redact(&mut facts.config);
            facts.rdb_save = facts.config.get("save").cloned();
        }
        Err(err) => facts.unchecked.push(("CONFIG GET".into(), err.line())),
    }
}

fn read_functions(con: &mut Connection, facts: &mut SourceFacts) {
    match query(con, &["FUNCTION", "LIST", "WITHCODE"]) {
        Ok(reply) => {
            for library in items(&reply) {
                let fields = pairs(library);
                let field = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .and_then(|(_, v)| text(v))
                };
                let code = field("library_code").unwrap_or_default();
                let name = field("library_name").unwrap_or_else(|| library_name(&code));
                facts.functions.push((name, code));
            }
            facts.function_libraries = facts.functions.len() as u64;
        }
        // Before Redis 7 there are no functions to find.
        Err(err) if err.is_unknown_command() && !facts.command_calls.contains_key("function") => {}
        Err(err) => facts.unchecked.push(("FUNCTION LIST".into(), err.line())),
    }
}

fn read_acl(con: &mut Connection, facts: &mut SourceFacts) {
    match query(con, &["ACL", "LIST"]) {
        Ok(reply) => {
            for line in items(&reply).iter().filter_map(text) {
                let user = line.split_whitespace().nth(1).unwrap_or("?").to_owned();
                facts.acl_rules.push((user, line));
            }
        }
        Err(err) => facts.unchecked.push(("ACL LIST".into(), err.line())),
    }
}

fn read_modules(con: &mut Connection, facts: &mut SourceFacts) {
    match query(con, &["MODULE", "LIST"]) {
        Ok(reply) => {
            facts.modules = items(&reply)
                .iter()
                .filter_map(|module| {
                    pairs(module)
                        .into_iter()
                        .find(|(k, _)| k == "name")
                        .and_then(|(_, v)| text(v))
                })
                .collect();
        }
        Err(err) => facts.unchecked.push(("MODULE LIST".into(), err.line())),
    }
}

/// Client libraries by `lib-name`/`lib-ver` (reported by clients to Redis 7.2+), leaving
/// out this connection.
fn read_clients(con: &mut Connection, facts: &mut SourceFacts) {
    let own_id = query(con, &["CLIENT", "ID"])
        .ok()
        .and_then(|v| client::int(&v));
    match query(con, &["CLIENT", "LIST"]) {
        Ok(reply) => {
            for line in text(&reply).unwrap_or_default().lines() {
                let field = |name: &str| {
                    line.split_whitespace()
                        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                        .filter(|v| !v.is_empty())
                };
                if own_id.is_some() && field("id").and_then(|v| v.parse().ok()) == own_id {
                    continue;
                }
                let lib = match (field("lib-name"), field("lib-ver")) {
                    (Some(name), Some(ver)) => format!("{name} {ver}"),
                    (Some(name), None) => name.to_owned(),
                    _ => "unreported".to_owned(),
                };
                *facts.client_libs.entry(lib).or_default() += 1;
            }
        }
        Err(err) => facts.unchecked.push(("CLIENT LIST".into(), err.line())),
    }
}

fn has_command(con: &mut Connection, name: &str) -> bool {
    query(con, &["COMMAND", "INFO", name])
        .map(|reply| {
            items(&reply)
                .iter()
                .any(|entry| !matches!(entry, Value::Nil))
        })
        .unwrap_or(false)
}

/// The key scan: paced, with a progress bar for a person at a terminal.
struct Scan {
    max_ops_per_sec: u32,
    started: Instant,
    ops: u64,
    bar: Option<ProgressBar>,
    /// Keys it leaves out are not examined.
    scope: Scope,
}

impl Scan {
    fn new(max_ops_per_sec: u32, total_keys: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total_keys), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "scanning {bar:30} {pos}/{len} keys {per_sec} eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Self {
            max_ops_per_sec: max_ops_per_sec.max(1),
            started: Instant::now(),
            ops: 0,
            bar,
            scope: Scope::default(),
        }
    }

    /// Counts `n` commands about to be sent, sleeping first if that would go over the rate.
    fn pace(&mut self, n: u64) {
        self.ops += n;
        let due = Duration::from_secs_f64(self.ops as f64 / f64::from(self.max_ops_per_sec));
        let elapsed = self.started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn database(
        &mut self,
        con: &mut Connection,
        facts: &mut SourceFacts,
        db: u64,
        check_ttls: bool,
    ) -> Result<(), ProbeError> {
        query(con, &["SELECT", &db.to_string()])?;
        let mut cursor = "0".to_owned();
        loop {
            self.pace(1);
            let count = SCAN_COUNT.to_string();
            let reply = query(con, &["SCAN", &cursor, "COUNT", &count])?;
            let parts = items(&reply);
            cursor = parts.first().and_then(text).ok_or(ProbeError::ScanReply)?;
            let keys: Vec<Vec<u8>> = parts
                .get(1)
                .map(items)
                .unwrap_or_default()
                .iter()
                .filter_map(|k| match k {
                    Value::BulkString(bytes) if self.scope.keeps_key(bytes) => Some(bytes.clone()),
                    _ => None,
                })
                .collect();
            self.keys(con, facts, db, &keys, check_ttls)?;
            if cursor == "0" {
                return Ok(());
            }
        }
    }

    fn keys(
        &mut self,
        con: &mut Connection,
        facts: &mut SourceFacts,
        db: u64,
        keys: &[Vec<u8>],
        check_ttls: bool,
    ) -> Result<(), ProbeError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.pace(keys.len() as u64);
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("TYPE").arg(key);
        }
        let types: Vec<String> = pipe.query(con)?;
        let mut hashes = Vec::new();
        for (key, type_name) in keys.iter().zip(&types) {
            // The key expired or was deleted between SCAN and TYPE.
            if type_name == "none" {
                continue;
            }
            facts.keys += 1;
            *facts.databases.entry(db).or_default() += 1;
            *facts.types.entry(type_name.clone()).or_default() += 1;
            let name = crate::display::plain_or_quoted(key);
            match type_name.as_str() {
                "vectorset" => facts.vector_sets.add(&name, 0),
                "hash" if check_ttls => hashes.push((key.as_slice(), name)),
                "string" | "list" | "set" | "zset" | "stream" | "hash" => {}
                module => facts
                    .module_types
                    .entry(module.to_owned())
                    .or_default()
                    .add(&name, 0),
            }
            if facts.rdb_version.is_none() && type_name == "string" {
                self.pace(1);
                if let Ok(Value::BulkString(payload)) = query_bytes(con, "DUMP", key) {
                    facts.rdb_version = client::dump_rdb_version(&payload);
                }
            }
        }
        self.field_ttls(con, facts, &hashes)?;
        if let Some(bar) = &self.bar {
            bar.inc(keys.len() as u64);
        }
        Ok(())
    }
}

/// Fields of a DUMPed hash that carry a TTL, read by the codec. Only the hash encodings
/// that can hold field TTLs are decoded; the rest answer 0 from their type byte.
fn ttl_fields_in_dump(key: &[u8], payload: &[u8]) -> Result<u64, ProbeError> {
    use ferry_codec::types::{
        REDIS_HASH_LISTPACK_EX, REDIS_HASH_LISTPACK_EX_PRE_GA, REDIS_HASH_METADATA,
        REDIS_HASH_METADATA_PRE_GA, VALKEY_HASH_2,
    };
    let split = ferry_codec::dump::split_payload(payload).map_err(ProbeError::Payload)?;
    let may_have_ttls = [
        REDIS_HASH_METADATA,
        REDIS_HASH_LISTPACK_EX,
        REDIS_HASH_METADATA_PRE_GA,
        REDIS_HASH_LISTPACK_EX_PRE_GA,
        VALKEY_HASH_2,
    ];
    if !may_have_ttls.contains(&split.type_byte) {
        return Ok(0);
    }
    let (_, parts) = ferry_codec::dump::decode(bytes::Bytes::copy_from_slice(key), payload)
        .map_err(|source| ProbeError::Decode {
            key: crate::display::plain_or_quoted(key),
            source,
        })?;
    Ok(parts
        .iter()
        .map(|part| match part {
            ValuePart::HashFields(fields) => {
                fields.iter().filter(|f| f.expire_at_ms.is_some()).count() as u64
            }
            _ => 0,
        })
        .sum())
}

impl Scan {
    /// Hashes with field TTLs among `hashes`, found by DUMP and the codec rather than by
    /// HPEXPIRETIME: the field-TTL commands would show up in the very `INFO commandstats`
    /// that assess reads, as calls the workload never made.
    fn field_ttls(
        &mut self,
        con: &mut Connection,
        facts: &mut SourceFacts,
        hashes: &[(&[u8], String)],
    ) -> Result<(), ProbeError> {
        if hashes.is_empty() {
            return Ok(());
        }
        // A plain listpack holds no field TTLs (with them it is `listpackex`): those small,
        // common hashes need no DUMP.
        self.pace(hashes.len() as u64);
        let mut pipe = redis::pipe();
        for (key, _) in hashes {
            pipe.cmd("OBJECT").arg("ENCODING").arg(*key);
        }
        let encodings: Vec<Option<String>> = pipe.query(con)?;
        let hashes: Vec<&(&[u8], String)> = hashes
            .iter()
            .zip(encodings)
            .filter(|(_, encoding)| encoding.as_deref().is_some_and(|e| e != "listpack"))
            .map(|(hash, _)| hash)
            .collect();
        if hashes.is_empty() {
            return Ok(());
        }
        self.pace(hashes.len() as u64);
        let mut pipe = redis::pipe();
        for (key, _) in &hashes {
            pipe.cmd("DUMP").arg(*key);
        }
        let payloads: Vec<Option<Vec<u8>>> = pipe.query(con)?;
        for ((key, name), payload) in hashes.into_iter().zip(payloads) {
            // Deleted since TYPE.
            let Some(payload) = payload else { continue };
            match ttl_fields_in_dump(key, &payload) {
                Ok(0) => {}
                Ok(fields) => facts.field_ttl.add(name, fields),
                // One undecodable hash leaves the count incomplete, not the report.
                Err(err) => {
                    if !facts
                        .unchecked
                        .iter()
                        .any(|(what, _)| what == "hash field TTLs")
                    {
                        facts.unchecked.push(("hash field TTLs".into(), err.line()));
                    }
                }
            }
        }
        Ok(())
    }
}

fn query_bytes(con: &mut Connection, command: &str, key: &[u8]) -> redis::RedisResult<Value> {
    redis::cmd(command).arg(key).query(con)
}
