//! Real servers load what the encoder writes: every server's dataset, decoded and encoded
//! for every server's format, loads into that server and holds the same data, key by key,
//! as the server it came from. Run once with default options (compact encodings) and once
//! with a tiny buffer limit (plain forms written as the parts stream through).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use bytes::Bytes;
use ferry_codec::{
    Decoder, EncodeError, EncodeOptions, Encoder, Format, HashField, Item, KeyHeader, Kind,
    RdbVersion, ScoredMember, ValuePart,
};
use ferry_testkit::snapshot::{
    DiffOptions, HashField as SnapshotField, Snapshot, Value as SnapshotValue,
};
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

/// Values real datasets rarely hold, built by hand: scores the server prints as text inside
/// listpacks, members given out of order, list elements too big for shared nodes, intset
/// extremes, field TTLs in every layout, long strings.
fn edge_keys(format: Format) -> Vec<(KeyHeader, Vec<ValuePart>)> {
    let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    let key = |name: &str, kind: Kind| KeyHeader {
        db: 0,
        key: b(name),
        expire_at_ms: None,
        idle_secs: None,
        freq: None,
        kind,
        encoding: 0,
        len: None,
    };
    let scores = [
        f64::INFINITY,
        1e300,
        -2.5e-300,
        0.1,
        -0.0,
        4611686018427387904.0,
        9.3e18,
        1.0 / 3.0,
        f64::NEG_INFINITY,
        -7.0,
        0.0,
    ];
    let zset = |n: usize| {
        ValuePart::SortedSetMembers(
            (0..n)
                .map(|i| ScoredMember {
                    member: b(&format!("m{}", (i * 7919) % n)),
                    score: scores[i % scores.len()],
                })
                .collect(),
        )
    };
    let noise: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut keys: Vec<(KeyHeader, Vec<ValuePart>)> = vec![
        (key("z:packed", Kind::SortedSet), vec![zset(scores.len())]),
        (key("z:plain", Kind::SortedSet), vec![zset(200)]),
        (
            key("l:big elements", Kind::List),
            vec![ValuePart::ListElements(vec![
                b("first"),
                Bytes::from(vec![b'x'; 20_000]),
                b("12345"),
                Bytes::from(vec![b'y'; 8190]),
                b("last"),
            ])],
        ),
        (
            key("s:extreme ints", Kind::Set),
            vec![ValuePart::SetMembers(vec![
                b(&i64::MIN.to_string()),
                b(&i64::MAX.to_string()),
                b("0"),
                b("-1"),
            ])],
        ),
        (
            key("s:strings", Kind::Set),
            vec![ValuePart::SetMembers(vec![b("a"), b(""), b("007")])],
        ),
        (
            key("str:long", Kind::String),
            vec![ValuePart::String(Bytes::from("abcdef".repeat(30_000)))],
        ),
        (
            key("str:noise", Kind::String),
            vec![ValuePart::String(Bytes::from(noise))],
        ),
        (
            KeyHeader {
                expire_at_ms: Some(dataset::FAR_FUTURE_MS + 123),
                ..key("str:expiring", Kind::String)
            },
            vec![ValuePart::String(b("soon"))],
        ),
    ];
    // As if read from plain encodings, which give their element counts up front.
    for (header, parts) in &mut keys {
        let count: usize = parts.iter().map(element_count).sum();
        header.len = Some(count as u64);
        header.encoding = match header.kind {
            Kind::List => ferry_codec::types::LIST,
            Kind::Set => ferry_codec::types::SET,
            Kind::SortedSet => ferry_codec::types::ZSET_2,
            _ => ferry_codec::types::STRING,
        };
    }
    if format.has_hash_field_ttl() {
        let fields = |n: usize| {
            ValuePart::HashFields(
                (0..n)
                    .map(|i| HashField {
                        field: b(&format!("f{i}")),
                        value: b(&format!("v{i}")),
                        // Out of order, some equal, some without.
                        expire_at_ms: (i % 4 != 0)
                            .then_some(dataset::FAR_FUTURE_MS + ((n - i) % 5) as i64 * 1000),
                    })
                    .collect(),
            )
        };
        let with_len = |name: &str, n: usize| KeyHeader {
            len: Some(n as u64),
            encoding: ferry_codec::types::REDIS_HASH_METADATA,
            ..key(name, Kind::Hash)
        };
        keys.push((with_len("h:ttl small", 10), vec![fields(10)]));
        keys.push((with_len("h:ttl big", 600), vec![fields(600)]));
        // Announced count: written as it streams when the buffer is small.
        let streamed = KeyHeader {
            len: Some(3000),
            encoding: ferry_codec::types::REDIS_HASH_METADATA,
            ..key("h:ttl streamed", Kind::Hash)
        };
        keys.push((
            streamed,
            (0..30)
                .map(|_| fields(100))
                .enumerate()
                .map(|(k, part)| rename(part, k))
                .collect(),
        ));
    }
    keys
}

fn element_count(part: &ValuePart) -> usize {
    match part {
        ValuePart::ListElements(e) | ValuePart::SetMembers(e) => e.len(),
        ValuePart::SortedSetMembers(m) => m.len(),
        ValuePart::HashFields(f) => f.len(),
        _ => 1,
    }
}

/// Makes the fields of part `k` distinct from the other parts'.
fn rename(part: ValuePart, k: usize) -> ValuePart {
    match part {
        ValuePart::HashFields(fields) => ValuePart::HashFields(
            fields
                .into_iter()
                .map(|f| HashField {
                    field: Bytes::from(format!("p{k}:{}", String::from_utf8_lossy(&f.field))),
                    ..f
                })
                .collect(),
        ),
        other => other,
    }
}

/// What the server should answer for a key built by [`edge_keys`].
fn expected_value(parts: &[ValuePart]) -> SnapshotValue {
    let mut list = vec![];
    let mut set = BTreeSet::new();
    let mut zset = vec![];
    let mut hash = vec![];
    for part in parts {
        match part {
            ValuePart::String(s) => return SnapshotValue::String(s.to_vec()),
            ValuePart::ListElements(e) => list.extend(e.iter().map(|e| e.to_vec())),
            ValuePart::SetMembers(m) => set.extend(m.iter().map(|m| m.to_vec())),
            ValuePart::SortedSetMembers(m) => {
                zset.extend(m.iter().map(|m| (m.member.to_vec(), m.score)))
            }
            ValuePart::HashFields(f) => hash.extend(f.iter().map(|f| SnapshotField {
                field: f.field.to_vec(),
                value: f.value.to_vec(),
                expire_at_ms: f.expire_at_ms,
            })),
            other => panic!("no edge key has {other:?}"),
        }
    }
    if !list.is_empty() {
        SnapshotValue::List(list)
    } else if !set.is_empty() {
        SnapshotValue::Set(set.into_iter().collect())
    } else if !zset.is_empty() {
        // Rank order: by score, ties by member bytes.
        zset.sort_by(|a: &(Vec<u8>, f64), b| {
            a.1.partial_cmp(&b.1).unwrap().then_with(|| a.0.cmp(&b.0))
        });
        SnapshotValue::SortedSet(zset)
    } else {
        hash.sort_by(|a, b| a.field.cmp(&b.field));
        SnapshotValue::Hash(hash)
    }
}

#[test]
fn every_server_loads_hand_made_edge_values() -> anyhow::Result<()> {
    let work = Server::start(ServerKind::Valkey91)?;
    for target_kind in ServerKind::all() {
        let format = format_of(target_kind);
        let keys = edge_keys(format);
        let small_buffer = EncodeOptions {
            buffer_limit: 1024,
            ..EncodeOptions::default()
        };
        for (label, options) in [
            ("default", EncodeOptions::default()),
            ("1 KiB buffer", small_buffer),
        ] {
            let context = format!("{target_kind} ({label})");
            let file = work.dir().join("edge.rdb");
            let mut encoder = Encoder::new(std::fs::File::create(&file)?, format, options);
            encoder.write_item(&Item::Header(format.version))?;
            for (header, parts) in &keys {
                encoder.write_item(&Item::KeyStart(header.clone()))?;
                for part in parts {
                    encoder.write_item(&Item::Part(part.clone()))?;
                }
                encoder.write_item(&Item::KeyEnd)?;
            }
            encoder.write_item(&Item::End { checksum: None })?;
            encoder.finish()?;
            let target =
                Server::start_with_rdb(target_kind, &file).with_context(|| context.clone())?;
            let snapshot = Snapshot::capture(&target)?;
            assert_eq!(snapshot.key_count(), keys.len(), "{context}");
            for (header, parts) in &keys {
                let entry = snapshot
                    .get(0, &header.key)
                    .with_context(|| format!("{context}: {:?}", header.key))?;
                let name = String::from_utf8_lossy(&header.key);
                let expected = expected_value(parts);
                // Scores compare exactly: the text forms must parse back to the same doubles.
                assert_eq!(entry.value, expected, "{context}: {name}");
                let ttl_error = entry
                    .expire_at_ms
                    .zip(header.expire_at_ms)
                    .map(|(a, e)| (a - e).abs());
                assert_eq!(
                    entry.expire_at_ms.is_some(),
                    header.expire_at_ms.is_some(),
                    "{context}: {name}"
                );
                assert!(
                    ttl_error.unwrap_or(0) <= snapshot.ttl_precision_ms as i64,
                    "{context}: {name}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn every_server_restores_dump_payloads_encoded_for_it() -> anyhow::Result<()> {
    for target_kind in ServerKind::all() {
        let format = format_of(target_kind);
        let server = Server::start(target_kind)?;
        let mut con = server.client();
        let keys = edge_keys(format);
        for (header, parts) in &keys {
            let payload = ferry_codec::dump::encode(format, header, parts)?;
            redis::cmd("RESTORE")
                .arg(&header.key[..])
                .arg(0)
                .arg(payload)
                .query::<()>(&mut con)
                .with_context(|| format!("{target_kind}: RESTORE {:?}", header.key))?;
        }
        let snapshot = Snapshot::capture(&server)?;
        assert_eq!(snapshot.key_count(), keys.len(), "{target_kind}");
        for (header, parts) in &keys {
            let entry = snapshot.get(0, &header.key).context("a restored key")?;
            assert_eq!(
                entry.value,
                expected_value(parts),
                "{target_kind}: {:?}",
                header.key
            );
        }
    }
    Ok(())
}
