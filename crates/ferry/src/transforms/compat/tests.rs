//! The policies on hand-built item streams.

use super::*;
use crate::policy::{HashFieldTtlPolicy, ModulePolicy};
use bytes::Bytes;
use ferry_codec::types;
use ferry_codec::{HashField, ModuleId, RdbVersion};

fn target(profile: &str) -> Target {
    Target::from_profile(profile).unwrap()
}

fn policies(hash: HashFieldTtlPolicy, vector: VectorSetPolicy, module: ModulePolicy) -> Policies {
    Policies {
        hash_field_ttl: hash,
        vector_set: vector,
        module,
    }
}

fn hash_policy(hash: HashFieldTtlPolicy) -> Policies {
    policies(hash, VectorSetPolicy::Fail, ModulePolicy::Fail)
}

fn header(key: &str, kind: Kind, encoding: u8, len: Option<u64>) -> KeyHeader {
    KeyHeader {
        db: 0,
        key: Bytes::copy_from_slice(key.as_bytes()),
        expire_at_ms: None,
        idle_secs: None,
        freq: None,
        kind,
        encoding,
        len,
    }
}

fn field(name: &str, ttl: Option<i64>) -> HashField {
    HashField {
        field: Bytes::copy_from_slice(name.as_bytes()),
        value: Bytes::from_static(b"v"),
        expire_at_ms: ttl,
    }
}

/// A whole Redis 7.4+ listpack_ex hash key, its fields in one part per slice.
fn ttl_hash(key: &str, parts: &[&[HashField]]) -> Vec<Item> {
    let total = parts.iter().map(|p| p.len() as u64).sum();
    let mut items = vec![Item::KeyStart(header(
        key,
        Kind::Hash,
        types::REDIS_HASH_LISTPACK_EX,
        Some(total),
    ))];
    items.extend(
        parts
            .iter()
            .map(|p| Item::Part(ValuePart::HashFields(p.to_vec()))),
    );
    items.push(Item::KeyEnd);
    items
}

fn string_key(key: &str) -> Vec<Item> {
    vec![
        Item::KeyStart(header(key, Kind::String, types::STRING, None)),
        Item::Part(ValuePart::String(Bytes::from_static(b"x"))),
        Item::KeyEnd,
    ]
}

fn module_key(key: &str, module: &str) -> Vec<Item> {
    let id = ModuleId::from_name(module, 0).unwrap();
    vec![
        Item::KeyStart(header(key, Kind::Module(id), types::MODULE_2, None)),
        Item::Part(ValuePart::Module(Bytes::from_static(b"\x00"))),
        Item::KeyEnd,
    ]
}

fn module_aux(module: &str) -> Item {
    Item::ModuleAux {
        module: ModuleId::from_name(module, 0).unwrap(),
        when: 2,
        body: Bytes::from_static(b"\x00"),
    }
}

/// A file: header, db 0, the given items, end.
fn stream(body: Vec<Item>) -> Vec<Item> {
    let mut items = vec![Item::Header(RdbVersion::redis(12)), Item::SelectDb(0)];
    items.extend(body);
    items.push(Item::End { checksum: None });
    items
}

/// Runs the items through the transform as the pipeline does (fast path first).
fn run(transform: &mut CompatTransform, items: Vec<Item>) -> Result<Vec<Item>, Error> {
    let mut out = Vec::new();
    for item in items {
        if transform.passes_unchanged(&item)? {
            out.push(item);
        } else {
            transform.apply(item, &mut out)?;
        }
    }
    transform.finish(&mut out)?;
    Ok(out)
}

/// Runs the items through `apply` alone.
fn run_applying(transform: &mut CompatTransform, items: Vec<Item>) -> Result<Vec<Item>, Error> {
    let mut out = Vec::new();
    for item in items {
        transform.apply(item, &mut out)?;
    }
    transform.finish(&mut out)?;
    Ok(out)
}

#[test]
fn the_fast_path_changes_nothing_apply_would_do() {
    let mut body = string_key("s");
    body.extend(ttl_hash("h", &[&[field("a", Some(10)), field("b", None)]]));
    body.extend(module_key("v", "vectorset"));
    body.extend(string_key("t"));
    body.extend(ttl_hash("plain", &[&[field("c", None)]]));
    let input = stream(body);
    for profile in ["valkey-8.1", "redis-8.0"] {
        let make = || {
            CompatTransform::new(
                target(profile),
                policies(
                    HashFieldTtlPolicy::DropField,
                    VectorSetPolicy::Skip,
                    ModulePolicy::Skip,
                ),
                false,
            )
            .unwrap()
        };
        let (mut fast, mut slow) = (make(), make());
        let fast_out = run(&mut fast, input.clone()).unwrap();
        let slow_out = run_applying(&mut slow, input.clone()).unwrap();
        assert_eq!(fast_out, slow_out, "{profile}");
        assert_eq!(fast.report(), slow.report(), "{profile}");
        assert!(keys_in(&fast_out).contains(&"s".to_string()), "{profile}");
    }
}

fn keys_in(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| match item {
            Item::KeyStart(h) => Some(String::from_utf8_lossy(&h.key).into_owned()),
            _ => None,
        })
        .collect()
}

fn fields_in(items: &[Item]) -> Vec<HashField> {
    items
        .iter()
        .filter_map(|item| match item {
            Item::Part(ValuePart::HashFields(f)) => Some(f.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn error_text(err: Error) -> String {
    crate::error::one_line(crate::error::chain(&err))
}

#[test]
fn field_ttls_pass_unchanged_to_a_target_that_has_them() {
    let input = stream(ttl_hash(
        "h",
        &[&[field("a", Some(1_700_000_000_000)), field("b", None)]],
    ));
    for policy in [
        HashFieldTtlPolicy::Fail,
        HashFieldTtlPolicy::Persist,
        HashFieldTtlPolicy::DropField,
    ] {
        for profile in ["valkey-9.0", "redis-8.0"] {
            let mut t = CompatTransform::new(target(profile), hash_policy(policy), false).unwrap();
            assert_eq!(
                run(&mut t, input.clone()).unwrap(),
                input,
                "{policy} {profile}"
            );
            assert!(t.report().is_empty());
        }
    }
}

#[test]
fn fail_names_the_key_the_field_and_the_flag() {
    let input = stream(ttl_hash(
        "user:1",
        &[&[field("plain", None), field("session", Some(5))]],
    ));
    let mut t = CompatTransform::new(
        target("valkey-8.1"),
        hash_policy(HashFieldTtlPolicy::Fail),
        false,
    )
    .unwrap();
    let err = error_text(run(&mut t, input).unwrap_err());
    assert!(err.contains("\"user:1\""), "{err}");
    assert!(err.contains("\"session\""), "{err}");
    assert!(err.contains("valkey-8.1"), "{err}");
    assert!(err.contains("--hash-field-ttl persist"), "{err}");
}

#[test]
fn hashes_without_field_ttls_pass_whatever_the_policy() {
    let plain = vec![
        Item::KeyStart(header("h", Kind::Hash, types::HASH_LISTPACK, Some(2))),
        Item::Part(ValuePart::HashFields(vec![
            field("a", None),
            field("b", None),
        ])),
        Item::KeyEnd,
    ];
    let input = stream(plain);
    for policy in [
        HashFieldTtlPolicy::Fail,
        HashFieldTtlPolicy::Persist,
        HashFieldTtlPolicy::DropField,
    ] {
        let mut t = CompatTransform::new(target("valkey-8.0"), hash_policy(policy), false).unwrap();
        assert_eq!(run(&mut t, input.clone()).unwrap(), input, "{policy}");
        assert!(t.report().is_empty());
    }
}

#[test]
fn persist_keeps_every_field_without_its_ttl() {
    let input = stream(ttl_hash(
        "h",
        &[
            &[field("a", Some(10)), field("b", None)],
            &[field("c", Some(20))],
        ],
    ));
    let mut t = CompatTransform::new(
        target("valkey-8.1"),
        hash_policy(HashFieldTtlPolicy::Persist),
        false,
    )
    .unwrap();
    let out = run(&mut t, input).unwrap();
    let fields = fields_in(&out);
    assert_eq!(
        fields,
        vec![field("a", None), field("b", None), field("c", None)]
    );
    // The count is unchanged, so the header keeps it.
    assert!(matches!(&out[2], Item::KeyStart(h) if h.len == Some(3)));
    let counts = t.report().hash_field_ttl;
    assert_eq!((counts.keys, counts.fields, counts.keys_dropped), (1, 2, 0));
}

#[test]
fn drop_field_leaves_out_volatile_fields_and_forgets_the_count() {
    let input = stream(ttl_hash("h", &[&[field("a", Some(10)), field("b", None)]]));
    let mut t = CompatTransform::new(
        target("valkey-8.1"),
        hash_policy(HashFieldTtlPolicy::DropField),
        false,
    )
    .unwrap();
    let out = run(&mut t, input).unwrap();
    assert_eq!(fields_in(&out), vec![field("b", None)]);
    assert!(matches!(&out[2], Item::KeyStart(h) if h.len.is_none()));
    assert!(matches!(out[out.len() - 2], Item::KeyEnd));
    let counts = t.report().hash_field_ttl;
    assert_eq!((counts.keys, counts.fields, counts.keys_dropped), (1, 1, 0));
}

#[test]
fn drop_field_holds_the_key_until_a_field_survives() {
    // The first part has only volatile fields; the key must still start before the second.
    let input = stream(ttl_hash(
        "h",
        &[&[field("a", Some(10))], &[field("b", None)]],
    ));
    let mut t = CompatTransform::new(
        target("valkey-8.1"),
        hash_policy(HashFieldTtlPolicy::DropField),
        false,
    )
    .unwrap();
    let out = run(&mut t, input).unwrap();
    assert!(matches!(&out[2], Item::KeyStart(h) if &h.key[..] == b"h"));
    assert_eq!(
        out[3],
        Item::Part(ValuePart::HashFields(vec![field("b", None)]))
    );
    assert_eq!(out[4], Item::KeyEnd);
}

#[test]
fn drop_field_drops_a_hash_left_empty_and_counts_it() {
    let mut body = string_key("before");
    body.extend(ttl_hash(
        "all-volatile",
        &[&[field("a", Some(1))], &[field("b", Some(2))]],
    ));
    body.extend(string_key("after"));
    let mut t = CompatTransform::new(
        target("valkey-8.1"),
        hash_policy(HashFieldTtlPolicy::DropField),
        false,
    )
    .unwrap();
    let out = run(&mut t, stream(body)).unwrap();
    assert_eq!(keys_in(&out), ["before", "after"]);
    // Every key that starts also ends: the dropped hash left no stray KeyEnd.
    let ends = out.iter().filter(|i| matches!(i, Item::KeyEnd)).count();
    assert_eq!(ends, 2);
    let counts = t.report().hash_field_ttl;
    assert_eq!((counts.keys, counts.fields, counts.keys_dropped), (1, 2, 1));
    let lines = t.report().lines().join("\n");
    assert!(lines.contains("--hash-field-ttl drop-field"), "{lines}");
}

#[test]
fn an_empty_source_hash_is_kept_under_drop_field() {
    let input = stream(ttl_hash("empty", &[]));
    let mut t = CompatTransform::new(
        target("valkey-8.1"),
        hash_policy(HashFieldTtlPolicy::DropField),
        false,
    )
    .unwrap();
    let out = run(&mut t, input).unwrap();
    assert_eq!(keys_in(&out), ["empty"]);
    assert!(t.report().is_empty());
}

#[test]
fn vector_sets_fail_by_default_on_valkey() {
    let input = stream(module_key("vs", "vectorset"));
    let mut t = CompatTransform::new(target("valkey-9.1"), Policies::default(), false).unwrap();
    let err = error_text(run(&mut t, input).unwrap_err());
    assert!(err.contains("\"vs\" is a vector set"), "{err}");
    assert!(err.contains("--vector-set skip"), "{err}");
}

#[test]
fn vector_sets_pass_to_redis_8() {
    let input = stream(module_key("vs", "vectorset"));
    let mut t = CompatTransform::new(target("redis-8.0"), Policies::default(), false).unwrap();
    assert_eq!(run(&mut t, input.clone()).unwrap(), input);
}

#[test]
fn skipped_vector_sets_and_their_aux_are_counted() {
    let mut body = vec![module_aux("vectorset")];
    body.extend(module_key("vs1", "vectorset"));
    body.extend(string_key("s"));
    body.extend(module_key("vs2", "vectorset"));
    let p = policies(
        HashFieldTtlPolicy::Fail,
        VectorSetPolicy::Skip,
        ModulePolicy::Fail,
    );
    let mut t = CompatTransform::new(target("valkey-8.1"), p, false).unwrap();
    let out = run(&mut t, stream(body)).unwrap();
    assert_eq!(keys_in(&out), ["s"]);
    assert!(!out.iter().any(|i| matches!(i, Item::ModuleAux { .. })));
    let counts = t.report().vector_sets;
    assert_eq!((counts.keys_skipped, counts.aux_dropped), (2, 1));
}

#[test]
fn other_modules_fail_naming_the_module() {
    let input = stream(module_key("doc", "ReJSON-RL"));
    let mut t = CompatTransform::new(target("redis-8.0"), Policies::default(), false).unwrap();
    let err = error_text(run(&mut t, input).unwrap_err());
    assert!(err.contains("'ReJSON-RL'"), "{err}");
    assert!(err.contains("--module skip"), "{err}");
}

#[test]
fn module_aux_fails_with_the_flag_that_drops_it() {
    let input = stream(vec![module_aux("ReJSON-RL")]);
    let mut t = CompatTransform::new(target("valkey-8.1"), Policies::default(), false).unwrap();
    let err = error_text(run(&mut t, input).unwrap_err());
    assert!(
        err.contains("'ReJSON-RL'") && err.contains("--module skip"),
        "{err}"
    );
}

#[test]
fn skipped_modules_are_counted_per_module() {
    let mut body = vec![module_aux("ReJSON-RL")];
    body.extend(module_key("doc1", "ReJSON-RL"));
    body.extend(module_key("doc2", "ReJSON-RL"));
    body.extend(module_key("bloom", "MBbloom--"));
    body.extend(module_key("vs", "vectorset"));
    let p = policies(
        HashFieldTtlPolicy::Fail,
        VectorSetPolicy::Skip,
        ModulePolicy::Skip,
    );
    let mut t = CompatTransform::new(target("valkey-9.0"), p, false).unwrap();
    let out = run(&mut t, stream(body)).unwrap();
    assert!(keys_in(&out).is_empty());
    let report = t.report();
    assert_eq!(
        report.modules["ReJSON-RL"],
        ModuleCounts {
            keys_skipped: 2,
            aux_dropped: 1
        }
    );
    assert_eq!(
        report.modules["MBbloom--"],
        ModuleCounts {
            keys_skipped: 1,
            aux_dropped: 0
        }
    );
    assert_eq!(report.vector_sets.keys_skipped, 1);
    assert_eq!(report.lines().len(), 3, "{:?}", report.lines());
}

#[test]
fn functions_on_rdb_9_fail_with_the_library_count() {
    let mut input = vec![Item::Header(RdbVersion::redis(11))];
    input.push(Item::Function {
        code: Bytes::from_static(b"#!lua name=a\n"),
    });
    input.push(Item::Function {
        code: Bytes::from_static(b"#!lua name=b\n"),
    });
    input.push(Item::SelectDb(0));
    input.push(Item::End { checksum: None });
    let mut t = CompatTransform::new(target("redis-6.0"), Policies::default(), false).unwrap();
    let err = error_text(run(&mut t, input.clone()).unwrap_err());
    assert_eq!(
        err,
        "target redis-6.0 has no functions; the source has 2 function libraries"
    );

    let mut t = CompatTransform::new(target("valkey-8.0"), Policies::default(), false).unwrap();
    assert_eq!(run(&mut t, input).unwrap().len(), 5);
}

#[test]
fn functions_at_the_very_end_are_refused_too() {
    let input = vec![
        Item::Header(RdbVersion::redis(10)),
        Item::Function {
            code: Bytes::from_static(b"#!lua name=a\n"),
        },
    ];
    let target = Target::from_rdb_version(9).unwrap();
    let mut t = CompatTransform::new(target, Policies::default(), false).unwrap();
    let err = error_text(run(&mut t, input).unwrap_err());
    assert!(
        err.contains("RDB 9 has no functions") && err.contains("1 function library"),
        "{err}"
    );
}

#[test]
fn export_refuses_an_existing_file_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.jsonl");
    std::fs::write(&path, b"keep me").unwrap();
    let p = policies(
        HashFieldTtlPolicy::Fail,
        VectorSetPolicy::Export(path.clone()),
        ModulePolicy::Fail,
    );
    assert!(matches!(
        CompatTransform::new(target("valkey-8.1"), p.clone(), false),
        Err(Error::OutputExists { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    // A target with vector sets exports nothing, so the file is not in the way.
    assert!(CompatTransform::new(target("redis-8.0"), p, false).is_ok());
}
