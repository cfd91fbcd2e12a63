//! Real servers load what the encoder writes: every server's dataset, decoded and encoded
//! for every server's format, loads into that server and holds the same data, key by key,
//! as the server it came from. Run once with default options (compact encodings) and once
//! with a tiny buffer limit (plain forms written as the parts stream through).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use ferry_codec::decode::Decoder;
use ferry_codec::encode::{EncodeOptions, Encoder};
use ferry_codec::target::Format;
use ferry_codec::{EncodeError, Item, Kind, RdbVersion};
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::{dataset, Server, ServerKind};

/// The format each server writes, so the one it must load.
fn format_of(kind: ServerKind) -> Format {
    Format::new(match kind {
        ServerKind::Redis60 => RdbVersion::redis(9),
        ServerKind::Redis70 => RdbVersion::redis(10),
        ServerKind::Redis80 => RdbVersion::redis(12),
        ServerKind::Valkey80 | ServerKind::Valkey81 => RdbVersion::redis(11),
        ServerKind::Valkey91 => RdbVersion::valkey(80),
    })
}

/// Keys the conversion left out, with the reason.
#[derive(Debug, Default)]
struct Left {
    keys: BTreeSet<(u32, Vec<u8>)>,
    reasons: Vec<String>,
    functions: bool,
}

/// Decodes `source` and encodes it for `format` into `target`, leaving out what the format
/// cannot hold: keys the encoder refuses, module values (the targets have no modules except
/// Redis 8's vector sets) and function libraries before RDB 10.
fn convert(
    source: &Path,
    target: &Path,
    format: Format,
    options: EncodeOptions,
) -> anyhow::Result<Left> {
    let mut left = Left::default();
    let mut encoder = Encoder::new(std::fs::File::create(target)?, format, options);
    let mut current: Option<(u32, Vec<u8>)> = None;
    let mut skipping = false;
    for item in Decoder::new(std::fs::File::open(source)?) {
        let item = item?;
        match &item {
            Item::KeyStart(header) => {
                current = Some((header.db as u32, header.key.to_vec()));
                skipping = matches!(header.kind, Kind::Module(id) if !format.has_builtin_module(&id.name()));
                if skipping {
                    left.keys.insert(current.clone().unwrap());
                    left.reasons
                        .push(format!("module type {}", header.kind.type_name()));
                }
            }
            Item::Function { .. } if !format.has_functions() => {
                left.functions = true;
                continue;
            }
            _ => {}
        }
        if skipping {
            skipping = !matches!(item, Item::KeyEnd);
            continue;
        }
        match encoder.write_item(&item) {
            Ok(()) => {}
            // The key is dropped, the file goes on.
            Err(EncodeError::Unrepresentable { problem, .. }) => {
                left.keys.insert(current.clone().context("a refused key")?);
                left.reasons.push(problem);
            }
            Err(err) => return Err(err.into()),
        }
    }
    encoder.finish()?;
    Ok(left)
}

#[test]
fn every_server_loads_every_dataset_encoded_for_it() -> anyhow::Result<()> {
    for source_kind in ServerKind::all() {
        let source = Server::start(source_kind)?;
        dataset::populate(&source)?;
        let saved = source.save()?;
        let expected = Snapshot::capture(&source)?;
        for target_kind in ServerKind::all() {
            let format = format_of(target_kind);
            let small_buffer = EncodeOptions {
                buffer_limit: 1024,
                ..EncodeOptions::default()
            };
            for (label, options) in [
                ("default", EncodeOptions::default()),
                ("1 KiB buffer", small_buffer),
            ] {
                let context = format!("{source_kind} -> {target_kind} ({format:?}, {label})");
                // The source server's own temporary folder holds the converted file.
                let file = source.dir().join("converted.rdb");
                let left =
                    convert(&saved, &file, format, options).with_context(|| context.clone())?;
                for reason in &left.reasons {
                    let expected_loss = reason.contains("TTL")
                        || reason.starts_with("module type")
                        || (label != "default" && reason.contains("buffer limit"));
                    assert!(expected_loss, "{context}: unexpected refusal: {reason}");
                }
                if !target_kind.has_hash_field_ttl() && source_kind.has_hash_field_ttl() {
                    assert!(
                        left.reasons.iter().any(|r| r.contains("TTL")),
                        "{context}: field TTLs kept?"
                    );
                }
                eprintln!(
                    "{context}: {} of {} keys left out{}",
                    left.keys.len(),
                    expected.key_count(),
                    if left.functions {
                        ", and the function libraries"
                    } else {
                        ""
                    }
                );
                let target =
                    Server::start_with_rdb(target_kind, &file).with_context(|| context.clone())?;
                let actual = Snapshot::capture(&target)?;
                let skipped = left.keys.clone();
                let options = DiffOptions::new()
                    .exclude_keys(move |db, key| skipped.contains(&(db, key.to_vec())));
                let differences: Vec<_> = expected
                    .diff(&actual, &options)
                    .into_iter()
                    // Function libraries are server-wide; RDB 9 has no place for them.
                    .filter(|d| !(left.functions && d.db.is_none()))
                    .collect();
                assert!(differences.is_empty(), "{context}: {differences:#?}");
                assert!(
                    actual.key_count() + left.keys.len() == expected.key_count(),
                    "{context}: {} keys loaded, {} left out, {} in the source",
                    actual.key_count(),
                    left.keys.len(),
                    expected.key_count()
                );
            }
        }
    }
    Ok(())
}
