//! `ferry inspect FILE [--json]`: what an RDB file holds and what each Valkey release
//! cannot load from it; for an AOF (`aof.rs`), that of its base's RDB part and the
//! commands of each of its files.

mod aof;
mod census;
mod targets;
mod text;

pub use census::Census;
pub use targets::{Blocker, TargetCheck};

use crate::cli::InspectArgs;
use crate::display::json_bytes;
use crate::error::Error;
use crate::progress::InputProgress;
use crate::sources::file::{RdbFileSource, Visit};
use crate::sources::Source;
use crate::target::valkey_targets;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;

/// The document `ferry inspect --json` prints. Stable: later releases only add fields.
///
/// ```json
/// {
///   "file": "dump.rdb", "size": 1234,
///   "magic": "REDIS0012", "flavor": "redis", "rdb_version": 12,
///   "producer": "redis 8.0.2",
///   "aux": [{"key": "redis-ver", "value": "8.0.2"}, ...],
///   "module_aux": {"vectorset": 1},
///   "functions": 2,
///   "keys": 1204, "keys_with_expiry": 37,
///   "databases": [{"db": 0, "keys": 1200, "keys_with_expiry": 35,
///                  "resize_hint": {"keys": 1200, "expires": 35}}],
///   "types": [{"type": "hash", "encoding": "listpack_ex", "type_byte": 25,
///              "keys": 10, "bytes": 12000}],
///   "hash_field_ttl": {"keys": 10, "fields": 34},
///   "vector_sets": 2,
///   "modules": {"ReJSON-RL": 3},
///   "slot_info_records": 0,
///   "checksum": "1a2b3c4d5e6f7081",
///   "targets": [{"profile": "valkey-8.1", "format": "RDB 11", "needs_convert": true,
///                "cannot_load": [{"feature": "hash-field-ttl", "count": 10,
///                                 "description": "10 hashes with field TTLs (34 fields)",
///                                 "handled_by": "--hash-field-ttl persist|drop-field"}]}]
/// }
/// ```
///
/// Byte strings (AUX keys and values) are JSON strings, or `{"base64": "..."}` when not
/// UTF-8. `producer` is null without a `redis-ver`/`valkey-ver` AUX field; `checksum` (hex,
/// already verified) is null when the file stores none. `types` is sorted by type, then
/// encoding; `bytes` counts each key's whole record. `modules` counts keys of module types
/// other than vector sets. `targets` holds one entry per Valkey profile; `feature` is one
/// of `hash-field-ttl`, `vector-set`, `module` (with a `module` name) or `functions`, and
/// `handled_by` is null when no flag can handle it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InspectReport {
    pub file: String,
    pub size: u64,
    pub magic: String,
    pub flavor: &'static str,
    pub rdb_version: u16,
    pub producer: Option<String>,
    pub aux: Vec<AuxField>,
    pub module_aux: BTreeMap<String, u64>,
    pub functions: u64,
    pub keys: u64,
    pub keys_with_expiry: u64,
    pub databases: Vec<DatabaseStats>,
    pub types: Vec<TypeStats>,
    pub hash_field_ttl: FieldTtlStats,
    pub vector_sets: u64,
    pub modules: BTreeMap<String, u64>,
    pub slot_info_records: u64,
    pub checksum: Option<String>,
    pub targets: Vec<TargetCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuxField {
    pub key: Value,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseStats {
    pub db: u64,
    pub keys: u64,
    pub keys_with_expiry: u64,
    pub resize_hint: Option<ResizeHint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ResizeHint {
    pub keys: u64,
    pub expires: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeStats {
    #[serde(rename = "type")]
    pub type_name: String,
    pub encoding: &'static str,
    pub type_byte: u8,
    pub keys: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FieldTtlStats {
    pub keys: u64,
    pub fields: u64,
}

pub fn run(args: InspectArgs, out: &mut dyn Write) -> Result<(), Error> {
    if aof::is_aof(&args.file) {
        let report = aof::report(&args.file)?;
        return print(&report, aof::render, args.json, out);
    }
    let mut source = RdbFileSource::open(&args.file)?;
    let progress = InputProgress::new(source.total_bytes());
    let census = take_census(&mut source, &progress);
    progress.finish();
    let census = census?;
    let before = source.bytes_read();
    let size = source.total_bytes().unwrap_or(before);
    let report = build_report(args.file.display().to_string(), size, &census);
    // Bytes after the RDB's checksum: an AOF with an RDB preamble (Redis before 7.0).
    if before < size {
        let report = aof::report_after_rdb(&args.file, before, report)?;
        return print(&report, aof::render, args.json, out);
    }
    print(&report, text::render, args.json, out)
}

fn print<R: Serialize>(
    report: &R,
    render: fn(&R) -> String,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let written = if json {
        serde_json::to_writer_pretty(&mut *out, report)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        out.write_all(render(report).as_bytes())
    };
    written.map_err(Error::Stdout)
}

fn take_census(source: &mut RdbFileSource, progress: &InputProgress) -> Result<Census, Error> {
    let mut census = Census::default();
    let mut before = 0;
    let mut items = 0u32;
    source.visit_all(|item, after| {
        let visit = if census.observe(item, before, after) {
            Visit::Continue
        } else {
            Visit::SkipValue
        };
        before = after;
        items = items.wrapping_add(1);
        if items & 1023 == 0 {
            progress.set(after);
        }
        visit
    })?;
    Ok(census)
}

pub fn build_report(file: String, size: u64, census: &Census) -> InspectReport {
    let version = census.version.unwrap_or(ferry_codec::RdbVersion::redis(0));
    InspectReport {
        file,
        size,
        magic: String::from_utf8_lossy(&version.magic()).into_owned(),
        flavor: match version.flavor {
            ferry_codec::Flavor::Redis => "redis",
            ferry_codec::Flavor::Valkey => "valkey",
        },
        rdb_version: version.number,
        producer: census.producer(),
        aux: census
            .aux
            .iter()
            .map(|(key, value)| AuxField {
                key: json_bytes(key),
                value: json_bytes(value),
            })
            .collect(),
        module_aux: census.module_aux.clone(),
        functions: census.functions,
        keys: census.total_keys(),
        keys_with_expiry: census.keys_with_expiry(),
        databases: census
            .databases
            .iter()
            .map(|(db, counts)| DatabaseStats {
                db: *db,
                keys: counts.keys,
                keys_with_expiry: counts.keys_with_expiry,
                resize_hint: counts
                    .resize_hint
                    .map(|(keys, expires)| ResizeHint { keys, expires }),
            })
            .collect(),
        types: census
            .types()
            .iter()
            .map(|(key, counts)| TypeStats {
                type_name: key.type_name.clone(),
                encoding: key.encoding,
                type_byte: key.type_byte,
                keys: counts.keys,
                bytes: counts.bytes,
            })
            .collect(),
        hash_field_ttl: FieldTtlStats {
            keys: census.field_ttl_keys,
            fields: census.field_ttl_fields,
        },
        vector_sets: census.vector_sets,
        modules: census.module_keys.clone(),
        slot_info_records: census.slot_info_records,
        checksum: census.end.flatten().map(|sum| format!("{sum:016x}")),
        targets: valkey_targets()
            .iter()
            .map(|target| targets::check(census, target))
            .collect(),
    }
}
