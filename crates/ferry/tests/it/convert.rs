//! `ferry convert` and `ferry inspect` on files our own encoder makes: what goes in comes
//! out, in the target's format, with exactly the changes the policy flags ask for.

use crate::support::{ferry_in, files_in};
use bytes::Bytes;
use ferry_codec::types::{MODULE_OP_EOF, MODULE_OP_STRING, MODULE_OP_UINT};
use ferry_codec::{
    write_len, write_string, Decoder, EncodeOptions, Encoder, Format, HashField, Item, KeyHeader,
    Kind, ModuleId, RdbVersion, ScoredMember, ValuePart,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

// ---- building fixtures -------------------------------------------------------------------

fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn header(db: u64, key: &str, kind: Kind, len: Option<u64>) -> KeyHeader {
    KeyHeader {
        db,
        key: bytes(key),
        expire_at_ms: None,
        idle_secs: None,
        freq: None,
        kind,
        encoding: 0,
        len,
    }
}

fn key(header: KeyHeader, parts: Vec<ValuePart>) -> Vec<Item> {
    let mut items = vec![Item::KeyStart(header)];
    items.extend(parts.into_iter().map(Item::Part));
    items.push(Item::KeyEnd);
    items
}

fn field(name: &str, value: &str, ttl: Option<i64>) -> HashField {
    HashField {
        field: bytes(name),
        value: bytes(value),
        expire_at_ms: ttl,
    }
}

/// Far in the future, so no server would expire it while a test looks.
const LATER: i64 = 4_000_000_000_000;

fn hash(db: u64, name: &str, fields: Vec<HashField>) -> Vec<Item> {
    let len = fields.len() as u64;
    key(
        header(db, name, Kind::Hash, Some(len)),
        vec![ValuePart::HashFields(fields)],
    )
}

fn typed_uint(out: &mut Vec<u8>, value: u64) {
    write_len(out, MODULE_OP_UINT);
    write_len(out, value);
}

fn typed_string(out: &mut Vec<u8>, value: &[u8]) {
    write_len(out, MODULE_OP_STRING);
    write_string(out, value, false);
}

/// A Redis 8 vector set body (fp32, M 16, with attributes), laid out as the server saves it.
/// Each element is stored normalized with its L2 norm in the last graph parameter.
fn vector_set_body(elements: &[(&str, [f32; 2], f32, &str)]) -> Bytes {
    let mut out = Vec::new();
    typed_uint(&mut out, 2); // dim
    typed_uint(&mut out, elements.len() as u64);
    typed_uint(&mut out, 16 << 8); // fp32, M 16
    typed_uint(&mut out, 2); // attributes present
    for (name, normalized, l2, attributes) in elements {
        typed_string(&mut out, name.as_bytes());
        typed_string(&mut out, attributes.as_bytes());
        let raw: Vec<u8> = normalized.iter().flat_map(|v| v.to_le_bytes()).collect();
        typed_string(&mut out, &raw);
        typed_uint(&mut out, 1);
        typed_uint(&mut out, u64::from(l2.to_bits()));
    }
    write_len(&mut out, MODULE_OP_EOF);
    Bytes::from(out)
}

fn vector_set(db: u64, name: &str, body: Bytes) -> Vec<Item> {
    let id = ModuleId::from_name("vectorset", 0).unwrap();
    key(
        header(db, name, Kind::Module(id), None),
        vec![ValuePart::Module(body)],
    )
}

/// Plain data every target can hold, in two databases.
fn plain_keys() -> Vec<Item> {
    let mut items = vec![Item::SelectDb(0)];
    let mut expiring = header(0, "session", Kind::String, None);
    expiring.expire_at_ms = Some(LATER);
    items.extend(key(expiring, vec![ValuePart::String(bytes("token"))]));
    items.extend(key(
        header(0, "queue", Kind::List, Some(3)),
        vec![ValuePart::ListElements(vec![
            bytes("a"),
            bytes("b"),
            bytes("12345"),
        ])],
    ));
    items.extend(key(
        header(0, "tags", Kind::Set, Some(2)),
        vec![ValuePart::SetMembers(vec![bytes("red"), bytes("blue")])],
    ));
    items.extend(key(
        header(0, "scores", Kind::SortedSet, Some(2)),
        vec![ValuePart::SortedSetMembers(vec![
            ScoredMember {
                member: bytes("alice"),
                score: 1.5,
            },
            ScoredMember {
                member: bytes("bob"),
                score: -3.0,
            },
        ])],
    ));
    items.extend(hash(
        0,
        "user:1",
        vec![field("name", "ann", None), field("age", "41", None)],
    ));
    items.push(Item::SelectDb(2));
    items.extend(key(
        header(2, "other-db", Kind::String, None),
        vec![ValuePart::String(bytes("x"))],
    ));
    items
}

fn field_ttl_keys() -> Vec<Item> {
    let mut items = hash(
        0,
        "mixed",
        vec![
            field("keep", "1", None),
            field("volatile", "2", Some(LATER)),
        ],
    );
    items.extend(hash(
        0,
        "all-volatile",
        vec![
            field("a", "1", Some(LATER)),
            field("b", "2", Some(LATER + 1)),
        ],
    ));
    items
}

/// Writes `body` as a file in `format`, with a header, AUX fields and an end.
fn write_rdb(path: &Path, format: Format, functions: &[&str], body: Vec<Item>) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = Encoder::new(file, format, EncodeOptions::default());
    let mut items = vec![
        Item::Header(format.version),
        Item::Aux {
            key: bytes("redis-ver"),
            value: bytes("8.0.2"),
        },
        Item::Aux {
            key: bytes("redis-bits"),
            value: bytes("64"),
        },
    ];
    items.extend(
        functions
            .iter()
            .map(|code| Item::Function { code: bytes(code) }),
    );
    items.extend(body);
    items.push(Item::End { checksum: None });
    for item in &items {
        encoder.write_item(item).unwrap();
    }
    encoder.finish().unwrap();
}

fn redis_8() -> Format {
    Format::from_profile("redis-8.0").unwrap()
}

// ---- reading results ---------------------------------------------------------------------

/// A key's content, independent of encoding and part boundaries.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    String(Bytes),
    List(Vec<Bytes>),
    Set(Vec<Bytes>),
    SortedSet(Vec<(Bytes, u64)>),
    Hash(Vec<HashField>),
    Module(String, Bytes),
    Other,
}

#[derive(Debug, Clone, PartialEq)]
struct Key {
    expire_at_ms: Option<i64>,
    value: Value,
}

struct Decoded {
    version: RdbVersion,
    keys: BTreeMap<(u64, Bytes), Key>,
    functions: Vec<Bytes>,
    aux: Vec<(Bytes, Bytes)>,
    module_aux: usize,
}

fn decode(path: &Path) -> Decoded {
    let file = std::fs::File::open(path).unwrap();
    let mut decoded = Decoded {
        version: RdbVersion::redis(0),
        keys: BTreeMap::new(),
        functions: Vec::new(),
        aux: Vec::new(),
        module_aux: 0,
    };
    let mut current: Option<(KeyHeader, Value)> = None;
    for item in Decoder::new(std::io::BufReader::new(file)) {
        match item.unwrap() {
            Item::Header(version) => decoded.version = version,
            Item::Aux { key, value } => decoded.aux.push((key, value)),
            Item::ModuleAux { .. } => decoded.module_aux += 1,
            Item::Function { code } => decoded.functions.push(code),
            Item::KeyStart(header) => {
                let value = match header.kind {
                    Kind::String => Value::String(Bytes::new()),
                    Kind::List => Value::List(Vec::new()),
                    Kind::Set => Value::Set(Vec::new()),
                    Kind::SortedSet => Value::SortedSet(Vec::new()),
                    Kind::Hash => Value::Hash(Vec::new()),
                    Kind::Module(id) => Value::Module(id.name(), Bytes::new()),
                    Kind::Stream => Value::Other,
                    _ => Value::Other,
                };
                current = Some((header, value));
            }
            Item::Part(part) => {
                let (_, value) = current.as_mut().unwrap();
                match (value, part) {
                    (Value::String(s), ValuePart::String(v)) => *s = v,
                    (Value::List(l), ValuePart::ListElements(v)) => l.extend(v),
                    (Value::Set(s), ValuePart::SetMembers(v)) => s.extend(v),
                    (Value::SortedSet(z), ValuePart::SortedSetMembers(v)) => {
                        z.extend(v.into_iter().map(|m| (m.member, m.score.to_bits())))
                    }
                    (Value::Hash(h), ValuePart::HashFields(v)) => h.extend(v),
                    (Value::Module(_, b), ValuePart::Module(v)) => *b = v,
                    _ => {}
                }
            }
            Item::KeyEnd => {
                let (header, mut value) = current.take().unwrap();
                match &mut value {
                    Value::Set(s) => s.sort(),
                    Value::SortedSet(z) => z.sort(),
                    Value::Hash(h) => h.sort_by(|a, b| a.field.cmp(&b.field)),
                    _ => {}
                }
                let key = Key {
                    expire_at_ms: header.expire_at_ms,
                    value,
                };
                decoded.keys.insert((header.db, header.key), key);
            }
            _ => {}
        }
    }
    decoded
}

fn key_names(decoded: &Decoded) -> Vec<String> {
    decoded
        .keys
        .keys()
        .map(|(_, k)| String::from_utf8_lossy(k).into_owned())
        .collect()
}

fn hash_of(decoded: &Decoded, name: &str) -> Vec<HashField> {
    match &decoded.keys[&(0, bytes(name))].value {
        Value::Hash(fields) => fields.clone(),
        other => panic!("{name} is {other:?}"),
    }
}

// ---- running the binary ------------------------------------------------------------------

fn succeeded(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ferry failed: {stderr}");
    assert!(
        stderr.is_empty(),
        "no progress bar or noise off a terminal: {stderr:?}"
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failed(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("ferry: "), "{stderr}");
    stderr
}

// ---- tests -------------------------------------------------------------------------------

#[test]
fn plain_data_survives_every_target_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    write_rdb(
        &dir.path().join("in.rdb"),
        redis_8(),
        &["#!lua name=lib\nredis.register_function('f', function() return 1 end)"],
        plain_keys(),
    );
    let source = decode(&dir.path().join("in.rdb"));
    for profile in [
        "valkey-8.0",
        "valkey-8.1",
        "valkey-9.0",
        "valkey-9.1",
        "redis-7.0",
    ] {
        let out = format!("{profile}.rdb");
        let summary = succeeded(&ferry_in(
            &["convert", "in.rdb", &out, "--to", profile],
            dir.path(),
        ));
        assert!(summary.contains("6 keys (db0 5, db2 1)"), "{summary}");
        let converted = decode(&dir.path().join(&out));
        assert_eq!(
            converted.version,
            Format::from_profile(profile).unwrap().version
        );
        assert_eq!(converted.keys, source.keys, "{profile}");
        assert_eq!(converted.functions, source.functions, "{profile}");
        assert_eq!(converted.aux, source.aux, "{profile}");
    }
}

#[test]
fn rdb_version_9_takes_plain_data_but_refuses_functions() {
    let dir = tempfile::tempdir().unwrap();
    write_rdb(&dir.path().join("plain.rdb"), redis_8(), &[], plain_keys());
    succeeded(&ferry_in(
        &["convert", "plain.rdb", "old.rdb", "--rdb-version", "9"],
        dir.path(),
    ));
    let converted = decode(&dir.path().join("old.rdb"));
    assert_eq!(converted.version, RdbVersion::redis(9));
    assert_eq!(converted.keys, decode(&dir.path().join("plain.rdb")).keys);

    write_rdb(
        &dir.path().join("fn.rdb"),
        redis_8(),
        &["#!lua name=a\n", "#!lua name=b\n"],
        plain_keys(),
    );
    let err = failed(&ferry_in(
        &["convert", "fn.rdb", "fn6.rdb", "--to", "redis-6.0"],
        dir.path(),
    ));
    assert!(
        err.contains("redis-6.0 has no functions") && err.contains("2 function libraries"),
        "{err}"
    );
    assert!(
        !files_in(dir.path()).iter().any(|f| f.starts_with("fn6")),
        "no output left behind"
    );
}

#[test]
fn field_ttls_fail_by_default_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = plain_keys();
    body.extend(field_ttl_keys());
    write_rdb(&dir.path().join("in.rdb"), redis_8(), &[], body);
    let err = failed(&ferry_in(
        &["convert", "in.rdb", "out.rdb", "--to", "valkey-8.1"],
        dir.path(),
    ));
    assert!(err.contains("--hash-field-ttl"), "{err}");
    assert!(
        err.contains("\"mixed\"") || err.contains("\"all-volatile\""),
        "{err}"
    );
    assert_eq!(files_in(dir.path()), ["in.rdb"]);
}

#[test]
fn field_ttls_are_kept_exactly_by_targets_that_have_them() {
    let dir = tempfile::tempdir().unwrap();
    write_rdb(&dir.path().join("in.rdb"), redis_8(), &[], field_ttl_keys());
    let source = decode(&dir.path().join("in.rdb"));
    for profile in ["valkey-9.0", "valkey-9.1"] {
        let out = format!("{profile}.rdb");
        let args = [
            "convert",
            "in.rdb",
            &out,
            "--to",
            profile,
            "--hash-field-ttl",
            "drop-field",
        ];
        let summary = succeeded(&ferry_in(&args, dir.path()));
        assert_eq!(summary.lines().count(), 1, "no policy acted: {summary}");
        assert_eq!(
            decode(&dir.path().join(&out)).keys,
            source.keys,
            "{profile}"
        );
    }
}

#[test]
fn persist_keeps_fields_without_their_ttl() {
    let dir = tempfile::tempdir().unwrap();
    write_rdb(&dir.path().join("in.rdb"), redis_8(), &[], field_ttl_keys());
    let args = [
        "convert",
        "in.rdb",
        "out.rdb",
        "--to",
        "valkey-8.1",
        "--hash-field-ttl",
        "persist",
    ];
    let summary = succeeded(&ferry_in(&args, dir.path()));
    assert!(
        summary.contains("--hash-field-ttl persist: 3 fields in 2 hashes"),
        "{summary}"
    );
    let out = decode(&dir.path().join("out.rdb"));
    assert_eq!(out.version, RdbVersion::redis(11));
    assert_eq!(
        hash_of(&out, "mixed"),
        [field("keep", "1", None), field("volatile", "2", None)]
    );
    assert_eq!(
        hash_of(&out, "all-volatile"),
        [field("a", "1", None), field("b", "2", None)]
    );
}

#[test]
fn drop_field_leaves_out_volatile_fields_and_emptied_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = plain_keys();
    body.extend(field_ttl_keys());
    write_rdb(&dir.path().join("in.rdb"), redis_8(), &[], body);
    let args = [
        "convert",
        "in.rdb",
        "out.rdb",
        "--to",
        "valkey-8.0",
        "--hash-field-ttl",
        "drop-field",
    ];
    let summary = succeeded(&ferry_in(&args, dir.path()));
    assert!(summary.contains("7 keys"), "{summary}");
    assert!(
        summary.contains("3 fields with a TTL left out of 2 hashes; 1 hash had no other field"),
        "{summary}"
    );
    let out = decode(&dir.path().join("out.rdb"));
    assert_eq!(hash_of(&out, "mixed"), [field("keep", "1", None)]);
    assert!(!key_names(&out).contains(&"all-volatile".to_owned()));
    assert_eq!(out.keys.len(), 7);
}

#[test]
fn vector_sets_fail_skip_or_export() {
    let dir = tempfile::tempdir().unwrap();
    let body = vector_set_body(&[
        ("e1", [0.6, 0.8], 2.0, r#"{"color":"red"}"#),
        ("e2", [1.0, 0.0], 0.5, ""),
    ]);
    let mut items = plain_keys();
    items.extend(vector_set(0, "vs", body.clone()));
    write_rdb(&dir.path().join("in.rdb"), redis_8(), &[], items);

    let err = failed(&ferry_in(
        &["convert", "in.rdb", "a.rdb", "--to", "valkey-9.1"],
        dir.path(),
    ));
    assert!(
        err.contains("\"vs\" is a vector set") && err.contains("--vector-set"),
        "{err}"
    );

    // Redis 8 has them built in: passed through byte for byte.
    succeeded(&ferry_in(
        &["convert", "in.rdb", "r8.rdb", "--to", "redis-8.0"],
        dir.path(),
    ));
    let r8 = decode(&dir.path().join("r8.rdb"));
    assert_eq!(
        r8.keys[&(0, bytes("vs"))].value,
        Value::Module("vectorset".into(), body)
    );

    let args = [
        "convert",
        "in.rdb",
        "skip.rdb",
        "--to",
        "valkey-9.1",
        "--vector-set",
        "skip",
    ];
    let summary = succeeded(&ferry_in(&args, dir.path()));
    assert!(
        summary.contains("--vector-set skip: 1 vector set left out"),
        "{summary}"
    );
    assert!(!key_names(&decode(&dir.path().join("skip.rdb"))).contains(&"vs".to_owned()));

    let args = [
        "convert",
        "in.rdb",
        "exp.rdb",
        "--to",
        "valkey-8.1",
        "--vector-set",
        "export=vs.jsonl",
    ];
    let summary = succeeded(&ferry_in(&args, dir.path()));
    assert!(
        summary.contains("1 vector set (2 elements) exported"),
        "{summary}"
    );
    assert_eq!(decode(&dir.path().join("exp.rdb")).keys.len(), 6);
    let mut lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("vs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // JSON numbers come back as f64; the exporter wrote f32s, which round-trip exactly.
    let vectors: Vec<Vec<f32>> = lines
        .iter_mut()
        .map(|line| {
            let vector = line.as_object_mut().unwrap().remove("vector").unwrap();
            vector
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    assert_eq!(vectors, [vec![0.6f32 * 2.0, 0.8f32 * 2.0], vec![0.5, 0.0]]);
    assert_eq!(
        lines,
        [
            serde_json::json!({"db": 0, "key": "vs", "element": "e1",
                               "attributes": {"color": "red"}, "quantization": "fp32"}),
            serde_json::json!({"db": 0, "key": "vs", "element": "e2", "attributes": null,
                               "quantization": "fp32"}),
        ]
    );
}

#[test]
fn other_modules_fail_or_skip_with_their_aux() {
    let dir = tempfile::tempdir().unwrap();
    let json = ModuleId::from_name("ReJSON-RL", 3).unwrap();
    let mut module_body = Vec::new();
    typed_string(&mut module_body, b"{}");
    write_len(&mut module_body, MODULE_OP_EOF);
    let mut items = vec![Item::ModuleAux {
        module: json,
        when: 2,
        body: Bytes::from(module_body.clone()),
    }];
    items.extend(plain_keys());
    items.extend(key(
        header(0, "doc", Kind::Module(json), None),
        vec![ValuePart::Module(Bytes::from(module_body))],
    ));
    write_rdb(&dir.path().join("in.rdb"), redis_8(), &[], items);

    let err = failed(&ferry_in(
        &["convert", "in.rdb", "a.rdb", "--to", "valkey-8.1"],
        dir.path(),
    ));
    assert!(
        err.contains("'ReJSON-RL'") && err.contains("--module skip"),
        "{err}"
    );

    let args = [
        "convert",
        "in.rdb",
        "b.rdb",
        "--to",
        "valkey-8.1",
        "--module",
        "skip",
    ];
    let summary = succeeded(&ferry_in(&args, dir.path()));
    assert!(
        summary.contains("module 'ReJSON-RL': 1 key left out, 1 module AUX record dropped"),
        "{summary}"
    );
    let out = decode(&dir.path().join("b.rdb"));
    assert_eq!(out.module_aux, 0);
    assert_eq!(out.keys.len(), 6);
}

#[test]
fn force_replaces_an_existing_output() {
    let dir = tempfile::tempdir().unwrap();
    write_rdb(&dir.path().join("in.rdb"), redis_8(), &[], plain_keys());
    std::fs::write(dir.path().join("out.rdb"), b"old").unwrap();
    succeeded(&ferry_in(
        &[
            "convert",
            "in.rdb",
            "out.rdb",
            "--to",
            "valkey-8.1",
            "--force",
        ],
        dir.path(),
    ));
    assert_eq!(decode(&dir.path().join("out.rdb")).keys.len(), 6);
    assert_eq!(files_in(dir.path()), ["in.rdb", "out.rdb"]);
}

#[test]
fn no_compress_writes_long_strings_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let long = "abc".repeat(1000);
    let items = key(
        header(0, "long", Kind::String, None),
        vec![ValuePart::String(bytes(&long))],
    );
    write_rdb(&dir.path().join("in.rdb"), redis_8(), &[], items);
    succeeded(&ferry_in(
        &["convert", "in.rdb", "lzf.rdb", "--to", "valkey-8.1"],
        dir.path(),
    ));
    succeeded(&ferry_in(
        &[
            "convert",
            "in.rdb",
            "raw.rdb",
            "--to",
            "valkey-8.1",
            "--no-compress",
        ],
        dir.path(),
    ));
    let size = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len();
    assert!(
        size("raw.rdb") > 3000 && size("lzf.rdb") < 1000,
        "{} {}",
        size("raw.rdb"),
        size("lzf.rdb")
    );
    assert_eq!(
        decode(&dir.path().join("raw.rdb")).keys,
        decode(&dir.path().join("lzf.rdb")).keys
    );
}

#[test]
fn a_file_cut_anywhere_fails_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = plain_keys();
    body.extend(field_ttl_keys());
    write_rdb(&dir.path().join("whole.rdb"), redis_8(), &[], body);
    let whole = std::fs::read(dir.path().join("whole.rdb")).unwrap();
    for cut in (1..whole.len()).step_by(7) {
        std::fs::write(dir.path().join("cut.rdb"), &whole[..cut]).unwrap();
        let err = failed(&ferry_in(&["inspect", "cut.rdb"], dir.path()));
        assert!(err.contains("cut.rdb"), "cut at {cut}: {err}");
        let args = ["convert", "cut.rdb", "out.rdb", "--to", "valkey-9.0"];
        failed(&ferry_in(&args, dir.path()));
        assert_eq!(
            files_in(dir.path()),
            ["cut.rdb", "whole.rdb"],
            "cut at {cut}"
        );
    }
}

#[test]
fn inspect_reports_contents_and_what_each_valkey_cannot_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = plain_keys();
    body.extend(field_ttl_keys());
    body.extend(vector_set(
        0,
        "vs",
        vector_set_body(&[("e", [1.0, 0.0], 1.0, "")]),
    ));
    write_rdb(
        &dir.path().join("in.rdb"),
        redis_8(),
        &["#!lua name=lib\n"],
        body,
    );

    let text = succeeded(&ferry_in(&["inspect", "in.rdb"], dir.path()));
    assert!(
        text.contains("RDB 12 (REDIS0012), written by redis 8.0.2"),
        "{text}"
    );
    assert!(text.contains("functions: 1 library"), "{text}");
    assert!(text.contains("keys: 9, 1 with expiry"), "{text}");
    assert!(text.contains("vectorset (module)"), "{text}");
    assert!(
        text.contains("hash fields with TTL: 3 in 2 hashes"),
        "{text}"
    );
    assert!(
        text.contains("valkey-8.1 (RDB 11, needs ferry convert --to valkey-8.1):"),
        "{text}"
    );
    assert!(
        text.contains("--hash-field-ttl persist|drop-field"),
        "{text}"
    );
    assert!(text.contains("--vector-set skip|export=PATH"), "{text}");

    let json: serde_json::Value = serde_json::from_str(&succeeded(&ferry_in(
        &["inspect", "--json", "in.rdb"],
        dir.path(),
    )))
    .unwrap();
    assert_eq!(json["rdb_version"], 12);
    assert_eq!(json["keys"], 9);
    assert_eq!(json["functions"], 1);
    assert_eq!(
        json["hash_field_ttl"],
        serde_json::json!({"keys": 2, "fields": 3})
    );
    let size = std::fs::metadata(dir.path().join("in.rdb")).unwrap().len();
    let type_bytes: u64 = json["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["bytes"].as_u64().unwrap())
        .sum();
    assert!(
        type_bytes < size,
        "key bytes {type_bytes} within the file's {size}"
    );
    let targets = json["targets"].as_array().unwrap();
    let features = |profile: &str| -> Vec<String> {
        let target = targets.iter().find(|t| t["profile"] == profile).unwrap();
        target["cannot_load"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["feature"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(features("valkey-8.0"), ["hash-field-ttl", "vector-set"]);
    assert_eq!(features("valkey-9.1"), ["vector-set"]);
}
