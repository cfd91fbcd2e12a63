//! The text form of an inspect report: one screen for a person.

use super::{InspectReport, TargetCheck};
use crate::display::{count, plain_or_quoted, size};
use base64::Engine;
use serde_json::Value;
use std::fmt::Write;

const WIDTH: usize = 100;

pub fn render(report: &InspectReport) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, report);
    out
}

fn write_report(out: &mut String, r: &InspectReport) -> std::fmt::Result {
    let version = if r.flavor == "valkey" {
        format!("Valkey RDB {}", r.rdb_version)
    } else {
        format!("RDB {}", r.rdb_version)
    };
    write!(out, "{}: {}, {version} ({})", r.file, size(r.size), r.magic)?;
    match &r.producer {
        Some(producer) => writeln!(out, ", written by {producer}")?,
        None => writeln!(out)?,
    }
    let aux: Vec<String> = r
        .aux
        .iter()
        .map(|f| format!("{}={}", json_text(&f.key), json_text(&f.value)))
        .collect();
    write_wrapped(out, "aux:", &aux)?;
    if !r.module_aux.is_empty() {
        let modules: Vec<String> = r
            .module_aux
            .iter()
            .map(|(name, n)| format!("{name} ({n})"))
            .collect();
        writeln!(out, "module aux: {}", modules.join(", "))?;
    }
    if r.functions > 0 {
        writeln!(
            out,
            "functions: {}",
            count(r.functions, "library", "libraries")
        )?;
    }

    writeln!(out, "keys: {}, {} with expiry", r.keys, r.keys_with_expiry)?;
    let db_width = r
        .databases
        .iter()
        .map(|d| d.keys.to_string().len())
        .max()
        .unwrap_or(1);
    for db in &r.databases {
        writeln!(
            out,
            "  db{:<4} {:>db_width$} {}  {} with expiry",
            db.db,
            db.keys,
            if db.keys == 1 { "key " } else { "keys" },
            db.keys_with_expiry
        )?;
    }

    if !r.types.is_empty() {
        writeln!(out, "types:")?;
        let labels: Vec<String> = r
            .types
            .iter()
            .map(|t| format!("{} ({})", t.type_name, t.encoding))
            .collect();
        let label_width = labels.iter().map(String::len).max().unwrap_or(0);
        let keys_width = r
            .types
            .iter()
            .map(|t| t.keys.to_string().len())
            .max()
            .unwrap_or(1);
        for (label, t) in labels.iter().zip(&r.types) {
            writeln!(
                out,
                "  {label:<label_width$}  {:>keys_width$} {}  {:>9}",
                t.keys,
                if t.keys == 1 { "key " } else { "keys" },
                size(t.bytes)
            )?;
        }
    }
    if r.hash_field_ttl.keys > 0 {
        writeln!(
            out,
            "hash fields with TTL: {} in {}",
            r.hash_field_ttl.fields,
            count(r.hash_field_ttl.keys, "hash", "hashes")
        )?;
    }
    match &r.checksum {
        Some(sum) => writeln!(out, "checksum: {sum} (verified)")?,
        None => writeln!(out, "checksum: none stored")?,
    }

    writeln!(out)?;
    writeln!(out, "features the targets can't load:")?;
    for check in &r.targets {
        write_target(out, check)?;
    }
    Ok(())
}

fn write_target(out: &mut String, check: &TargetCheck) -> std::fmt::Result {
    let convert = if check.needs_convert {
        format!(", needs ferry convert --to {}", check.profile)
    } else {
        String::new()
    };
    if check.cannot_load.is_empty() {
        return writeln!(
            out,
            "  {} ({}{convert}): nothing",
            check.profile, check.format
        );
    }
    writeln!(out, "  {} ({}{convert}):", check.profile, check.format)?;
    let width = check
        .cannot_load
        .iter()
        .map(|b| b.description.len())
        .max()
        .unwrap_or(0);
    for blocker in &check.cannot_load {
        let remedy = match (blocker.handled_by.as_deref(), blocker.feature) {
            (Some(flags), _) => flags,
            (None, "duplicate-member" | "nan-score") => "no flag: no server loads it",
            (None, _) => "no flag: choose a newer target",
        };
        writeln!(out, "    {:<width$}  {remedy}", blocker.description)?;
    }
    Ok(())
}

/// `label item item ...`, wrapped with an indent when it would pass [`WIDTH`].
fn write_wrapped(out: &mut String, label: &str, items: &[String]) -> std::fmt::Result {
    if items.is_empty() {
        return Ok(());
    }
    let mut line = label.to_owned();
    let mut on_line = 0;
    for item in items {
        if on_line > 0 && line.len() + 1 + item.len() > WIDTH {
            writeln!(out, "{line}")?;
            line = " ".repeat(label.len());
            on_line = 0;
        }
        line.push(' ');
        line.push_str(item);
        on_line += 1;
    }
    writeln!(out, "{line}")
}

/// Text back from [`crate::display::json_bytes`]' JSON form.
fn json_text(value: &Value) -> String {
    match value {
        Value::String(text) => plain_or_quoted(text.as_bytes()),
        other => {
            let raw = other
                .get("base64")
                .and_then(Value::as_str)
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .unwrap_or_default();
            plain_or_quoted(&raw)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::build_report;
    use super::super::census::Census;
    use super::*;
    use bytes::Bytes;
    use ferry_codec::{HashField, Item, KeyHeader, Kind, ModuleId, RdbVersion, ValuePart};

    fn key(db: u64, name: &str, kind: Kind, encoding: u8, expiry: Option<i64>) -> Item {
        Item::KeyStart(KeyHeader {
            db,
            key: Bytes::copy_from_slice(name.as_bytes()),
            expire_at_ms: expiry,
            idle_secs: None,
            freq: None,
            kind,
            encoding,
            len: None,
        })
    }

    /// A hand-built Redis 8 file with the features inspect reports on.
    fn sample() -> Census {
        let vectorset = ModuleId::from_name("vectorset", 0).unwrap();
        let ttl_field = HashField {
            field: Bytes::from_static(b"f"),
            value: Bytes::new(),
            expire_at_ms: Some(9),
        };
        let items = vec![
            Item::Header(RdbVersion::redis(12)),
            Item::Aux {
                key: Bytes::from_static(b"redis-ver"),
                value: Bytes::from_static(b"8.0.2"),
            },
            Item::Aux {
                key: Bytes::from_static(b"odd"),
                value: Bytes::from_static(b"\xff x"),
            },
            Item::Function {
                code: Bytes::from_static(b"#!lua name=lib\n"),
            },
            Item::SelectDb(0),
            Item::ResizeDb {
                keys: 3,
                expires: 1,
            },
            key(0, "s", Kind::String, 0, Some(1)),
            Item::Part(ValuePart::String(Bytes::from_static(b"v"))),
            Item::KeyEnd,
            key(0, "h", Kind::Hash, 25, None),
            Item::Part(ValuePart::HashFields(vec![ttl_field])),
            Item::KeyEnd,
            key(0, "vs", Kind::Module(vectorset), 7, None),
            Item::Part(ValuePart::Module(Bytes::from_static(b"\0"))),
            Item::KeyEnd,
            Item::SelectDb(5),
            key(5, "s2", Kind::String, 0, None),
            Item::Part(ValuePart::String(Bytes::from_static(b"v"))),
            Item::KeyEnd,
            Item::End {
                checksum: Some(0xabc),
            },
        ];
        let mut census = Census::default();
        for (position, item) in items.iter().enumerate() {
            // Ten bytes per item, so every key takes 30 (start, part, end).
            census.observe(item, position as u64 * 10, position as u64 * 10 + 10);
        }
        census
    }

    #[test]
    fn report_counts_what_the_file_holds() {
        let report = build_report("dump.rdb".into(), 1000, &sample());
        assert_eq!(report.magic, "REDIS0012");
        assert_eq!(report.producer.as_deref(), Some("redis 8.0.2"));
        assert_eq!(
            (report.keys, report.keys_with_expiry, report.functions),
            (4, 1, 1)
        );
        assert_eq!(report.databases.len(), 2);
        assert_eq!(report.databases[0].resize_hint.map(|h| h.keys), Some(3));
        let hash = report.types.iter().find(|t| t.type_name == "hash").unwrap();
        assert_eq!(
            (hash.encoding, hash.keys, hash.bytes),
            ("listpack_ex", 1, 30)
        );
        let strings = report
            .types
            .iter()
            .find(|t| t.type_name == "string")
            .unwrap();
        assert_eq!((strings.keys, strings.bytes), (2, 60));
        assert_eq!(
            (report.hash_field_ttl.keys, report.hash_field_ttl.fields),
            (1, 1)
        );
        assert_eq!(report.vector_sets, 1);
        assert_eq!(report.checksum.as_deref(), Some("0000000000000abc"));
        let v81 = report
            .targets
            .iter()
            .find(|t| t.profile == "valkey-8.1")
            .unwrap();
        assert!(v81.needs_convert);
        assert_eq!(v81.cannot_load.len(), 2);
        let v90 = report
            .targets
            .iter()
            .find(|t| t.profile == "valkey-9.0")
            .unwrap();
        assert_eq!(v90.cannot_load.len(), 1);
    }

    #[test]
    fn text_names_types_flags_and_odd_bytes() {
        let text = render(&build_report("dump.rdb".into(), 1000, &sample()));
        assert!(text.starts_with("dump.rdb: 1.0 KB, RDB 12 (REDIS0012), written by redis 8.0.2\n"));
        assert!(text.contains("hash (listpack_ex)"), "{text}");
        assert!(text.contains("vectorset (module)"), "{text}");
        assert!(text.contains("odd=\"\\xff x\""), "{text}");
        assert!(
            text.contains("--hash-field-ttl persist|drop-field"),
            "{text}"
        );
        assert!(text.contains("--vector-set skip|export=PATH"), "{text}");
        assert!(text.lines().count() < 40, "{text}");
    }

    #[test]
    fn json_has_the_documented_top_level_fields() {
        let report = build_report("dump.rdb".into(), 1000, &sample());
        let json = serde_json::to_value(&report).unwrap();
        for field in [
            "file",
            "size",
            "magic",
            "flavor",
            "rdb_version",
            "producer",
            "aux",
            "module_aux",
            "functions",
            "keys",
            "keys_with_expiry",
            "databases",
            "types",
            "hash_field_ttl",
            "vector_sets",
            "modules",
            "slot_info_records",
            "checksum",
            "targets",
        ] {
            assert!(json.get(field).is_some(), "missing {field}");
        }
        assert_eq!(json["types"][0]["type"], "hash");
        assert_eq!(json["aux"][1]["value"]["base64"], "/yB4");
    }
}
