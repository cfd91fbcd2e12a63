//! Round trips through the decoder: what goes in as items comes back as the same logical
//! values, in the encoding the target server would use.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::decode::dump::decode_payload;
use crate::decode::Decoder;
use crate::model::{
    HashField, ModuleId, PendingEntry, RdbVersion, ScoredMember, StreamConsumer, StreamGroup,
    StreamId, StreamMeta,
};
use crate::{crc64, listpack};

const FORMATS: [u16; 5] = [9, 10, 11, 12, 80];

fn format(number: u16) -> Format {
    Format::from_rdb_version(number).expect("a known format")
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn header(key: &str, kind: Kind) -> KeyHeader {
    KeyHeader {
        db: 0,
        key: b(key),
        expire_at_ms: None,
        idle_secs: None,
        freq: None,
        kind,
        encoding: 0,
        len: None,
    }
}

/// A logical value, compared regardless of encoding and part boundaries.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    String(Bytes),
    List(Vec<Bytes>),
    Set(Vec<Bytes>),
    /// Sorted by member; scores compare with `==` (so -0 equals 0, as for the server).
    Zset(Vec<(Bytes, f64)>),
    Hash(BTreeMap<Bytes, (Bytes, Option<i64>)>),
    Stream {
        nodes: Vec<(StreamId, Bytes)>,
        meta: StreamMeta,
        groups: Vec<StreamGroup>,
    },
    Module(Bytes),
}

impl Value {
    fn kind(&self) -> Kind {
        match self {
            Value::String(_) => Kind::String,
            Value::List(_) => Kind::List,
            Value::Set(_) => Kind::Set,
            Value::Zset(_) => Kind::SortedSet,
            Value::Hash(_) => Kind::Hash,
            Value::Stream { .. } => Kind::Stream,
            Value::Module(_) => Kind::Module(test_module()),
        }
    }

    /// The value as parts of at most `per_part` elements.
    fn parts(&self, per_part: usize) -> Vec<ValuePart> {
        let per_part = per_part.max(1);
        match self {
            Value::String(s) => vec![ValuePart::String(s.clone())],
            Value::List(v) => v
                .chunks(per_part)
                .map(|c| ValuePart::ListElements(c.to_vec()))
                .collect(),
            Value::Set(v) => v
                .chunks(per_part)
                .map(|c| ValuePart::SetMembers(c.to_vec()))
                .collect(),
            Value::Zset(v) => v
                .chunks(per_part)
                .map(|c| {
                    ValuePart::SortedSetMembers(
                        c.iter()
                            .map(|(m, s)| ScoredMember {
                                member: m.clone(),
                                score: *s,
                            })
                            .collect(),
                    )
                })
                .collect(),
            Value::Hash(map) => {
                let fields: Vec<HashField> = map
                    .iter()
                    .map(|(f, (v, e))| HashField {
                        field: f.clone(),
                        value: v.clone(),
                        expire_at_ms: *e,
                    })
                    .collect();
                fields
                    .chunks(per_part)
                    .map(|c| ValuePart::HashFields(c.to_vec()))
                    .collect()
            }
            Value::Stream {
                nodes,
                meta,
                groups,
            } => {
                let mut parts: Vec<ValuePart> = nodes
                    .iter()
                    .map(|(id, lp)| ValuePart::StreamNode {
                        master_id: *id,
                        listpack: lp.clone(),
                    })
                    .collect();
                parts.push(ValuePart::StreamMeta(meta.clone()));
                parts.extend(groups.iter().cloned().map(ValuePart::StreamGroup));
                parts
            }
            Value::Module(body) => vec![ValuePart::Module(body.clone())],
        }
    }

    fn from_parts(kind: Kind, parts: &[ValuePart]) -> Value {
        let mut value = match kind {
            Kind::String => Value::String(Bytes::new()),
            Kind::List => Value::List(vec![]),
            Kind::Set => Value::Set(vec![]),
            Kind::SortedSet => Value::Zset(vec![]),
            Kind::Hash => Value::Hash(BTreeMap::new()),
            Kind::Stream => Value::Stream {
                nodes: vec![],
                meta: StreamMeta::default(),
                groups: vec![],
            },
            Kind::Module(_) => Value::Module(Bytes::new()),
        };
        for part in parts {
            match (&mut value, part) {
                (Value::String(s), ValuePart::String(p)) => *s = p.clone(),
                (Value::List(v), ValuePart::ListElements(p)) => v.extend(p.iter().cloned()),
                (Value::Set(v), ValuePart::SetMembers(p)) => v.extend(p.iter().cloned()),
                (Value::Zset(v), ValuePart::SortedSetMembers(p)) => {
                    v.extend(p.iter().map(|m| (m.member.clone(), m.score)))
                }
                (Value::Hash(map), ValuePart::HashFields(p)) => {
                    for f in p {
                        map.insert(f.field.clone(), (f.value.clone(), f.expire_at_ms));
                    }
                }
                (
                    Value::Stream { nodes, .. },
                    ValuePart::StreamNode {
                        master_id,
                        listpack,
                    },
                ) => nodes.push((*master_id, listpack.clone())),
                (Value::Stream { meta, .. }, ValuePart::StreamMeta(m)) => *meta = m.clone(),
                (Value::Stream { groups, .. }, ValuePart::StreamGroup(g)) => groups.push(g.clone()),
                (Value::Module(body), ValuePart::Module(p)) => *body = p.clone(),
                (value, part) => panic!("part {part:?} in {value:?}"),
            }
        }
        value.normalized()
    }

    /// Sets and sorted sets compare as sets.
    fn normalized(mut self) -> Value {
        match &mut self {
            Value::Set(v) => v.sort(),
            Value::Zset(v) => v.sort_by(|a, b| a.0.cmp(&b.0)),
            _ => {}
        }
        self
    }
}

fn test_module() -> ModuleId {
    ModuleId::from_name("ferrytest", 3).unwrap()
}

/// A decoded key: its header (with the type byte the encoder chose) and value.
#[derive(Debug)]
struct Decoded {
    header: KeyHeader,
    value: Value,
}

fn items_for(keys: &[(KeyHeader, Value)], per_part: usize) -> Vec<Item> {
    let mut items = vec![Item::Header(RdbVersion::redis(11))];
    for (h, v) in keys {
        items.push(Item::KeyStart(h.clone()));
        items.extend(v.parts(per_part).into_iter().map(Item::Part));
        items.push(Item::KeyEnd);
    }
    items.push(Item::End { checksum: None });
    items
}

fn encode(format: Format, options: EncodeOptions, items: &[Item]) -> Result<Vec<u8>, EncodeError> {
    let mut encoder = Encoder::new(Vec::new(), format, options);
    for item in items {
        encoder.write_item(item)?;
    }
    let written = encoder.bytes_written();
    let out = encoder.finish()?;
    assert_eq!(written, out.len() as u64);
    Ok(out)
}

fn decode(bytes: &[u8]) -> (Vec<Item>, Vec<Decoded>) {
    let mut decoder = Decoder::new(bytes);
    let mut top = vec![];
    let mut keys = vec![];
    let mut current: Option<(KeyHeader, Vec<ValuePart>)> = None;
    while let Some(item) = decoder.next_item().expect("the encoder's output decodes") {
        match item {
            Item::KeyStart(h) => current = Some((h, vec![])),
            Item::Part(p) => current.as_mut().expect("a part inside a key").1.push(p),
            Item::KeyEnd => {
                let (header, parts) = current.take().expect("a key to end");
                let value = Value::from_parts(header.kind, &parts);
                keys.push(Decoded { header, value });
            }
            other => top.push(other),
        }
    }
    (top, keys)
}

fn round_trip(number: u16, keys: &[(KeyHeader, Value)]) -> Vec<Decoded> {
    let bytes = encode(
        format(number),
        EncodeOptions::default(),
        &items_for(keys, 100),
    )
    .unwrap();
    let (_, decoded) = decode(&bytes);
    assert_eq!(decoded.len(), keys.len());
    for ((h, v), d) in keys.iter().zip(&decoded) {
        assert_eq!(d.header.key, h.key);
        assert_eq!(
            d.value,
            expected_after(number, v),
            "RDB {number}, key {:?}",
            h.key
        );
    }
    decoded
}

/// What a value reads back as from a file of format `number`: streams lose what their type
/// does not store, and the decoder fills it in the way the server does.
fn expected_after(number: u16, value: &Value) -> Value {
    let Value::Stream {
        nodes,
        meta,
        groups,
    } = value
    else {
        return value.clone().normalized();
    };
    let stream_type = format(number).stream_type();
    let mut meta = meta.clone();
    let mut groups = groups.clone();
    if stream_type == crate::types::STREAM_LISTPACKS {
        meta.max_deleted_id = StreamId::default();
        meta.entries_added = meta.length;
        meta.first_id = first_entry_id(nodes).unwrap_or(StreamId {
            ms: u64::MAX,
            seq: u64::MAX,
        });
    }
    for g in &mut groups {
        if stream_type == crate::types::STREAM_LISTPACKS {
            g.entries_read = None;
        } else if g.entries_read.is_none() {
            // The test groups' last-delivered IDs lie inside their streams, where the server
            // cannot estimate the read counter and stores -1.
            g.entries_read = Some(u64::MAX);
        }
        for c in &mut g.consumers {
            if stream_type < crate::types::STREAM_LISTPACKS_3 {
                c.active_time_ms = None;
            } else if c.active_time_ms.is_none() {
                c.active_time_ms = Some(c.seen_time_ms);
            }
        }
    }
    Value::Stream {
        nodes: nodes.clone(),
        meta,
        groups,
    }
}

/// A stream node with `ids` (each with field "f" and a value), as the server lays it out:
/// master entry (count, deleted, fields, 0), then entries with flags, ID deltas, values and
/// their entry length.
fn stream_node(master: StreamId, ids: &[StreamId]) -> Bytes {
    let mut lp = listpack::ListpackBuilder::new();
    lp.push_int(ids.len() as i64);
    lp.push_int(0);
    lp.push_int(1);
    lp.push(b"f");
    lp.push_int(0);
    for id in ids {
        lp.push_int(2); // same fields as the master entry
        lp.push_int((id.ms - master.ms) as i64);
        lp.push_int(id.seq.wrapping_sub(master.seq) as i64);
        lp.push(format!("v{}", id.ms).as_bytes());
        lp.push_int(4);
    }
    Bytes::from(lp.finish())
}

fn first_entry_id(nodes: &[(StreamId, Bytes)]) -> Option<StreamId> {
    // Test streams put their master ID on their first entry.
    nodes.first().map(|(id, _)| *id)
}

fn sample_stream(groups_with_counters: bool) -> Value {
    let id = |ms, seq| StreamId { ms, seq };
    let nodes = vec![
        (
            id(100, 0),
            stream_node(id(100, 0), &[id(100, 0), id(101, 0)]),
        ),
        (
            id(200, 0),
            stream_node(id(200, 0), &[id(200, 0), id(205, 1)]),
        ),
    ];
    let meta = StreamMeta {
        length: 4,
        last_id: id(205, 1),
        first_id: id(100, 0),
        max_deleted_id: id(50, 0),
        entries_added: 6,
    };
    let groups = vec![StreamGroup {
        name: b("readers"),
        last_delivered: id(101, 0),
        entries_read: groups_with_counters.then_some(4),
        pending: vec![
            PendingEntry {
                id: id(100, 0),
                delivery_time_ms: 1_700_000_000_000,
                delivery_count: 2,
            },
            PendingEntry {
                id: id(101, 0),
                delivery_time_ms: 1_700_000_000_500,
                delivery_count: 1,
            },
        ],
        consumers: vec![
            StreamConsumer {
                name: b("alice"),
                seen_time_ms: 1_700_000_001_000,
                active_time_ms: groups_with_counters.then_some(1_700_000_000_900),
                pending: vec![id(100, 0)],
            },
            StreamConsumer {
                name: b("bob"),
                seen_time_ms: 1_700_000_002_000,
                active_time_ms: None,
                pending: vec![id(101, 0)],
            },
        ],
    }];
    Value::Stream {
        nodes,
        meta,
        groups,
    }
}

fn list_of(n: usize, element: impl Fn(usize) -> String) -> Value {
    Value::List((0..n).map(|i| b(&element(i))).collect())
}

fn set_of(n: usize, member: impl Fn(usize) -> String) -> Value {
    Value::Set((0..n).map(|i| b(&member(i))).collect())
}

fn zset_of(n: usize, member: impl Fn(usize) -> (String, f64)) -> Value {
    Value::Zset(
        (0..n)
            .map(|i| {
                let (m, s) = member(i);
                (b(&m), s)
            })
            .collect(),
    )
    .normalized()
}

fn hash_of(n: usize, field: impl Fn(usize) -> (String, String, Option<i64>)) -> Value {
    Value::Hash(
        (0..n)
            .map(|i| {
                let (f, v, e) = field(i);
                (b(&f), (b(&v), e))
            })
            .collect(),
    )
}

fn type_of(number: u16, key: (KeyHeader, Value)) -> u8 {
    round_trip(number, &[key]).remove(0).header.encoding
}

#[test]
fn owned_items_encode_exactly_as_borrowed_ones() {
    let keys: Vec<_> = [
        ("s", Value::String(b("a string value"))),
        ("l", list_of(300, |i| format!("e{i}"))),
        ("t", set_of(3, |i| format!("m{i}"))),
    ]
    .into_iter()
    .map(|(key, value)| (header(key, value.kind()), value))
    .collect();
    let items = items_for(&keys, 100);
    let borrowed = encode(format(11), EncodeOptions::default(), &items).unwrap();
    let mut encoder = Encoder::new(Vec::new(), format(11), EncodeOptions::default());
    for item in items {
        encoder.write_owned(item).unwrap();
    }
    assert_eq!(encoder.finish().unwrap(), borrowed);
}

#[test]
fn strings_round_trip_in_every_format() {
    let long = "abc".repeat(40_000);
    for number in FORMATS {
        let keys: Vec<_> = ["", "12345", "-7", "not a number", &long, "01"]
            .iter()
            .enumerate()
            .map(|(i, s)| (header(&format!("s{i}"), Kind::String), Value::String(b(s))))
            .collect();
        for d in round_trip(number, &keys) {
            assert_eq!(d.header.encoding, crate::types::STRING);
        }
    }
}

#[test]
fn lists_are_quicklists_of_the_targets_node_type() {
    for number in FORMATS {
        let small = (header("l", Kind::List), list_of(10, |i| format!("e{i}")));
        let expected = if number >= 10 {
            crate::types::LIST_QUICKLIST_2
        } else {
            crate::types::LIST_QUICKLIST
        };
        assert_eq!(type_of(number, small), expected);
        // Several nodes, integers, and elements too big for a shared node.
        let big = "x".repeat(20_000);
        let mixed = list_of(3000, |i| match i % 500 {
            0 => big.clone(),
            1 => i.to_string(),
            _ => format!("element number {i}"),
        });
        round_trip(number, &[(header("l", Kind::List), mixed)]);
    }
}

#[test]
fn quicklist_nodes_hold_at_most_8_kib_and_big_elements_get_their_own() {
    let items = items_for(
        &[(
            header("l", Kind::List),
            list_of(2000, |i| format!("element {i:010}")),
        )],
        100,
    );
    for number in [9, 11, 12] {
        let bytes = encode(format(number), EncodeOptions::default(), &items).unwrap();
        let mut decoder = Decoder::new(&bytes[..]);
        let mut nodes = 0;
        while let Some(item) = decoder.next_item().unwrap() {
            if let Item::KeyStart(h) = &item {
                nodes = h.len.unwrap();
            }
        }
        // 2000 elements of 16 bytes (+ about 2 bytes of entry overhead) need 5 nodes of 8 KiB.
        assert!((4..=6).contains(&nodes), "RDB {number}: {nodes} nodes");
    }
    let big = list_of(3, |i| {
        if i == 1 {
            "y".repeat(9000)
        } else {
            "small".into()
        }
    });
    let bytes = encode(
        format(12),
        EncodeOptions::default(),
        &items_for(&[(header("l", Kind::List), big)], 10),
    )
    .unwrap();
    let mut decoder = Decoder::new(&bytes[..]);
    while let Some(item) = decoder.next_item().unwrap() {
        if let Item::KeyStart(h) = &item {
            assert_eq!(h.len, Some(3), "small, plain, small");
        }
    }
}

#[test]
fn sets_pick_intset_listpack_or_plain_like_the_server() {
    use crate::types::{SET, SET_INTSET, SET_LISTPACK};
    for number in FORMATS {
        let ints = (
            header("s", Kind::Set),
            set_of(512, |i| (i as i64 * 7919 - 100_000).to_string()),
        );
        assert_eq!(type_of(number, ints), SET_INTSET);
        let too_many_ints = (header("s", Kind::Set), set_of(513, |i| i.to_string()));
        assert_eq!(type_of(number, too_many_ints), SET);
        let not_canonical = (header("s", Kind::Set), set_of(3, |i| format!("0{i}")));
        let listpack_or_plain = if number >= 11 { SET_LISTPACK } else { SET };
        assert_eq!(type_of(number, not_canonical), listpack_or_plain);
        let strings = (header("s", Kind::Set), set_of(128, |i| format!("m{i}")));
        assert_eq!(type_of(number, strings), listpack_or_plain);
        let many = (header("s", Kind::Set), set_of(129, |i| format!("m{i}")));
        assert_eq!(type_of(number, many), SET);
        let long = (
            header("s", Kind::Set),
            set_of(2, |i| format!("{i}{}", "m".repeat(64))),
        );
        assert_eq!(type_of(number, long), SET);
        let extremes = (
            header("s", Kind::Set),
            set_of(2, |i| [i64::MIN, i64::MAX][i].to_string()),
        );
        assert_eq!(type_of(number, extremes), SET_INTSET);
    }
}

#[test]
fn sorted_sets_pick_packed_or_zset2_and_keep_every_score() {
    use crate::types::{ZSET_2, ZSET_LISTPACK, ZSET_ZIPLIST};
    let scores = [
        0.0,
        -0.0,
        1.5,
        -3.0,
        1e300,
        -2.5e-300,
        f64::INFINITY,
        f64::NEG_INFINITY,
        4611686018427387904.0,
        9.3e18,
        1.0 / 3.0,
    ];
    for number in FORMATS {
        let packed = if number >= 10 {
            ZSET_LISTPACK
        } else {
            ZSET_ZIPLIST
        };
        let small = (
            header("z", Kind::SortedSet),
            zset_of(scores.len(), |i| (format!("m{i}"), scores[i])),
        );
        assert_eq!(type_of(number, small), packed);
        let many = (
            header("z", Kind::SortedSet),
            zset_of(129, |i| (format!("m{i}"), scores[i % scores.len()])),
        );
        assert_eq!(type_of(number, many), ZSET_2);
        let long = (
            header("z", Kind::SortedSet),
            zset_of(1, |_| ("m".repeat(65), 1.0)),
        );
        assert_eq!(type_of(number, long), ZSET_2);
    }
}

#[test]
fn packed_sorted_sets_are_ordered_by_score_then_member() {
    let value = zset_of(5, |i| {
        (
            ["b", "a", "d", "c", "e"][i].to_string(),
            [2.0, 2.0, 0.5, -1.0, 2.0][i],
        )
    });
    let bytes = encode(
        format(11),
        EncodeOptions::default(),
        &items_for(&[(header("z", Kind::SortedSet), value)], 10),
    )
    .unwrap();
    let mut decoder = Decoder::new(&bytes[..]);
    while let Some(item) = decoder.next_item().unwrap() {
        if let Item::Part(ValuePart::SortedSetMembers(members)) = item {
            let order: Vec<_> = members.iter().map(|m| m.member.clone()).collect();
            assert_eq!(order, vec![b("c"), b("d"), b("a"), b("b"), b("e")]);
        }
    }
}

#[test]
fn hashes_pick_packed_or_plain() {
    use crate::types::{HASH, HASH_LISTPACK, HASH_ZIPLIST};
    for number in FORMATS {
        let packed = if number >= 10 {
            HASH_LISTPACK
        } else {
            HASH_ZIPLIST
        };
        let small = (
            header("h", Kind::Hash),
            hash_of(512, |i| (format!("f{i}"), i.to_string(), None)),
        );
        assert_eq!(type_of(number, small), packed);
        let many = (
            header("h", Kind::Hash),
            hash_of(513, |i| (format!("f{i}"), i.to_string(), None)),
        );
        assert_eq!(type_of(number, many), HASH);
        let long_value = (
            header("h", Kind::Hash),
            hash_of(2, |i| (format!("f{i}"), "v".repeat(65), None)),
        );
        assert_eq!(type_of(number, long_value), HASH);
    }
}

#[test]
fn hash_field_ttls_use_the_targets_own_types() {
    use crate::types::{REDIS_HASH_LISTPACK_EX, REDIS_HASH_METADATA, VALKEY_HASH_2};
    let ttl =
        |i: usize| (!i.is_multiple_of(3)).then_some(1_900_000_000_000 + (i as i64 % 7) * 1000);
    let small = || {
        (
            header("h", Kind::Hash),
            hash_of(20, |i| (format!("f{i}"), format!("v{i}"), ttl(i))),
        )
    };
    let big = || {
        (
            header("h", Kind::Hash),
            hash_of(600, |i| (format!("f{i}"), format!("v{i}"), ttl(i))),
        )
    };
    assert_eq!(type_of(80, small()), VALKEY_HASH_2);
    assert_eq!(type_of(80, big()), VALKEY_HASH_2);
    assert_eq!(type_of(12, small()), REDIS_HASH_LISTPACK_EX);
    assert_eq!(type_of(12, big()), REDIS_HASH_METADATA);
}

#[test]
fn field_ttls_on_a_format_without_them_refuse_only_that_key() {
    let with_ttl = hash_of(2, |i| {
        (format!("f{i}"), "v".into(), Some(1_900_000_000_000))
    });
    let plain = hash_of(2, |i| (format!("f{i}"), "v".into(), None));
    let keys = [
        (header("ttl", Kind::Hash), with_ttl),
        (header("plain", Kind::Hash), plain.clone()),
    ];
    for number in [9, 10, 11] {
        let mut encoder = Encoder::new(Vec::new(), format(number), EncodeOptions::default());
        let mut refused = vec![];
        for item in items_for(&keys, 10) {
            if let Err(err) = encoder.write_item(&item) {
                refused.push(err.to_string());
            }
        }
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].contains("\"ttl\"") && refused[0].contains("TTL"),
            "{}",
            refused[0]
        );
        let (_, decoded) = decode(&encoder.finish().unwrap());
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].header.key, b("plain"));
        assert_eq!(decoded[0].value, plain);
    }
}

#[test]
fn redis_field_expiries_outside_its_range_are_clamped_or_refused() {
    let past = hash_of(2, |i| (format!("f{i}"), "v".into(), Some([0, -5][i])));
    let decoded = round_trip_lossy(12, past);
    let Value::Hash(map) = decoded else { panic!() };
    assert!(map.values().all(|(_, e)| *e == Some(1)), "{map:?}");

    let far = hash_of(1, |_| ("f".into(), "v".into(), Some(1 << 50)));
    let err = encode(
        format(12),
        EncodeOptions::default(),
        &items_for(&[(header("far", Kind::Hash), far)], 10),
    );
    assert!(matches!(err, Err(EncodeError::Unrepresentable { .. })));

    let on_valkey = hash_of(2, |i| (format!("f{i}"), "v".into(), Some([0, -5][i])));
    let Value::Hash(map) = round_trip_lossy(80, on_valkey) else {
        panic!()
    };
    assert!(map.values().all(|(_, e)| *e == Some(0)), "{map:?}");
}

fn round_trip_lossy(number: u16, value: Value) -> Value {
    let kind = value.kind();
    let bytes = encode(
        format(number),
        EncodeOptions::default(),
        &items_for(&[(header("k", kind), value)], 10),
    )
    .unwrap();
    decode(&bytes).1.remove(0).value
}

#[test]
fn streams_use_the_targets_stream_type() {
    use crate::types::{STREAM_LISTPACKS, STREAM_LISTPACKS_2, STREAM_LISTPACKS_3};
    for (number, expected) in [
        (9, STREAM_LISTPACKS),
        (10, STREAM_LISTPACKS_2),
        (11, STREAM_LISTPACKS_3),
        (80, STREAM_LISTPACKS_3),
    ] {
        for complete in [true, false] {
            let key = (header("st", Kind::Stream), sample_stream(complete));
            assert_eq!(type_of(number, key), expected);
        }
    }
    let empty = Value::Stream {
        nodes: vec![],
        meta: StreamMeta {
            length: 0,
            last_id: StreamId { ms: 5, seq: 0 },
            ..Default::default()
        },
        groups: vec![],
    };
    for number in FORMATS {
        round_trip(
            number,
            &[(header("empty stream", Kind::Stream), empty.clone())],
        );
    }
}

#[test]
fn module_values_pass_through() {
    // A module body: one unsigned (opcode 2) 300, one string (opcode 5) "hi", EOF (0).
    let body = Bytes::from_static(&[2, 0x41, 0x2C, 5, 2, b'h', b'i', 0]);
    for number in FORMATS {
        let d = round_trip(
            number,
            &[(
                header("mod", Kind::Module(test_module())),
                Value::Module(body.clone()),
            )],
        );
        assert_eq!(d[0].header.encoding, crate::types::MODULE_2);
        assert_eq!(d[0].header.kind, Kind::Module(test_module()));
    }
}

#[test]
fn key_attributes_and_databases_survive() {
    let mut h = header("k", Kind::String);
    h.expire_at_ms = Some(1_900_000_000_123);
    h.idle_secs = Some(5000);
    let mut other_db = header("k2", Kind::String);
    other_db.db = 3;
    other_db.freq = Some(17);
    for number in FORMATS {
        let keys = [
            (h.clone(), Value::String(b("v"))),
            (other_db.clone(), Value::String(b("w"))),
        ];
        let d = round_trip(number, &keys);
        assert_eq!(d[0].header.expire_at_ms, h.expire_at_ms);
        assert_eq!(d[0].header.idle_secs, h.idle_secs);
        assert_eq!(d[0].header.db, 0);
        assert_eq!(d[1].header.db, 3);
        assert_eq!(d[1].header.freq, Some(17));
    }
}

#[test]
fn file_records_follow_the_target() {
    let module = test_module();
    let items = vec![
        Item::Header(RdbVersion::redis(12)),
        Item::Aux {
            key: b("redis-ver"),
            value: b("7.4.0"),
        },
        Item::ModuleAux {
            module,
            when: 2,
            body: Bytes::from_static(&[5, 1, b'x', 0]),
        },
        Item::SelectDb(0),
        Item::ResizeDb {
            keys: 1,
            expires: 0,
        },
        Item::SlotInfo {
            slot: 7,
            keys: 1,
            expires: 0,
        },
        Item::KeyStart(header("k", Kind::String)),
        Item::Part(ValuePart::String(b("v"))),
        Item::KeyEnd,
        Item::End { checksum: None },
    ];
    for number in FORMATS {
        let bytes = encode(format(number), EncodeOptions::default(), &items).unwrap();
        assert_eq!(&bytes[..9], &format(number).version.magic());
        let (body, stored) = bytes.split_at(bytes.len() - 8);
        assert_eq!(
            stored,
            crc64::checksum(body).to_le_bytes(),
            "the CRC covers everything up to it"
        );
        let (top, _) = decode(&bytes);
        let slot_info = top.iter().any(|i| matches!(i, Item::SlotInfo { .. }));
        assert_eq!(slot_info, number == 12);
        assert!(top.contains(&Item::Aux {
            key: b("redis-ver"),
            value: b("7.4.0")
        }));
        assert!(top.contains(&Item::ModuleAux {
            module,
            when: 2,
            body: Bytes::from_static(&[5, 1, b'x', 0])
        }));
        assert!(top.contains(&Item::ResizeDb {
            keys: 1,
            expires: 0
        }));
    }
}

#[test]
fn functions_need_rdb_10() {
    let items = [
        Item::Header(RdbVersion::redis(11)),
        Item::Function {
            code: b("#!lua name=lib\n"),
        },
    ];
    let mut old = Encoder::new(Vec::new(), format(9), EncodeOptions::default());
    old.write_item(&items[0]).unwrap();
    assert!(matches!(
        old.write_item(&items[1]),
        Err(EncodeError::Unrepresentable { .. })
    ));
    for number in [10, 11, 12, 80] {
        let mut all = items.to_vec();
        all.push(Item::End { checksum: None });
        let (top, _) = decode(&encode(format(number), EncodeOptions::default(), &all).unwrap());
        assert!(top.contains(&items[1]));
    }
}

#[test]
fn items_out_of_order_are_refused() {
    let mut encoder = Encoder::new(Vec::new(), format(11), EncodeOptions::default());
    assert!(matches!(
        encoder.write_item(&Item::SelectDb(0)),
        Err(EncodeError::Sequence(_))
    ));
    encoder
        .write_item(&Item::Header(RdbVersion::redis(11)))
        .unwrap();
    assert!(matches!(
        encoder.write_item(&Item::Header(RdbVersion::redis(11))),
        Err(EncodeError::Sequence(_))
    ));
    assert!(matches!(
        encoder.write_item(&Item::KeyEnd),
        Err(EncodeError::Sequence(_))
    ));
    assert!(matches!(
        encoder.write_item(&Item::Part(ValuePart::String(b("v")))),
        Err(EncodeError::Sequence(_))
    ));
    encoder
        .write_item(&Item::KeyStart(header("k", Kind::List)))
        .unwrap();
    assert!(matches!(
        encoder.write_item(&Item::SelectDb(1)),
        Err(EncodeError::Sequence(_))
    ));
    // A part of the wrong kind drops the key; the rest of it is ignored.
    assert!(matches!(
        encoder.write_item(&Item::Part(ValuePart::SetMembers(vec![b("a")]))),
        Err(EncodeError::Sequence(_))
    ));
    encoder
        .write_item(&Item::Part(ValuePart::ListElements(vec![b("a")])))
        .unwrap();
    encoder.write_item(&Item::KeyEnd).unwrap();
    let unfinished = Encoder::new(Vec::new(), format(11), EncodeOptions::default());
    assert!(matches!(unfinished.finish(), Err(EncodeError::Sequence(_))));
    encoder.write_item(&Item::End { checksum: None }).unwrap();
    assert!(matches!(
        encoder.write_item(&Item::KeyEnd),
        Err(EncodeError::Sequence(_))
    ));
    let (_, keys) = decode(&encoder.finish().unwrap());
    assert!(keys.is_empty());
}

#[test]
fn values_no_server_would_load_are_refused() {
    let cases = [
        (header("empty list", Kind::List), Value::List(vec![])),
        (
            header("empty hash", Kind::Hash),
            Value::Hash(BTreeMap::new()),
        ),
        (
            header("dup ints", Kind::Set),
            Value::Set(vec![b("1"), b("2"), b("1")]),
        ),
        (
            header("dup strings", Kind::Set),
            Value::Set(vec![b("a"), b("a")]),
        ),
        (
            header("dup members", Kind::SortedSet),
            Value::Zset(vec![(b("a"), 1.0), (b("a"), 2.0)]),
        ),
        (
            header("nan", Kind::SortedSet),
            Value::Zset(vec![(b("a"), f64::NAN)]),
        ),
    ];
    for number in FORMATS {
        for (h, v) in &cases {
            if h.key == "dup strings" && number < 11 {
                // A plain set there: its loader refuses the duplicate itself.
                continue;
            }
            let err = encode(
                format(number),
                EncodeOptions::default(),
                &items_for(&[(h.clone(), v.clone())], 10),
            );
            match err {
                Err(EncodeError::Unrepresentable { key, .. }) => {
                    assert_eq!(key.as_bytes(), &h.key[..])
                }
                other => panic!("RDB {number} {:?}: {other:?}", h.key),
            }
        }
    }
}

#[test]
fn duplicate_hash_fields_are_refused_whatever_the_form() {
    let field = |f: &str, v: &str| HashField {
        field: b(f),
        value: b(v),
        expire_at_ms: None,
    };
    let long = "v".repeat(100);
    for fields in [
        vec![field("f", "1"), field("f", "2")],
        vec![field("f", &long), field("g", "1"), field("f", "2")],
    ] {
        for number in FORMATS {
            let items = [
                Item::Header(RdbVersion::redis(11)),
                Item::KeyStart(header("dup fields", Kind::Hash)),
                Item::Part(ValuePart::HashFields(fields.clone())),
                Item::KeyEnd,
            ];
            let mut encoder = Encoder::new(Vec::new(), format(number), EncodeOptions::default());
            let results: Vec<_> = items.iter().map(|i| encoder.write_item(i)).collect();
            assert!(
                matches!(results[3], Err(EncodeError::Unrepresentable { .. })),
                "RDB {number}: {results:?}"
            );
        }
    }
}

#[test]
fn dump_payloads_round_trip_with_the_targets_version() {
    let values = [
        (
            header("s", Kind::String),
            Value::String(b("hello hello hello hello hello")),
        ),
        (header("l", Kind::List), list_of(300, |i| format!("e{i}"))),
        (
            header("z", Kind::SortedSet),
            zset_of(3, |i| (format!("m{i}"), i as f64 / 2.0)),
        ),
        (header("st", Kind::Stream), sample_stream(true)),
    ];
    for number in FORMATS {
        for (h, v) in &values {
            let payload = dump::encode_payload(format(number), h, &v.parts(50)).unwrap();
            let version =
                u16::from_le_bytes([payload[payload.len() - 10], payload[payload.len() - 9]]);
            assert_eq!(version, number);
            let (decoded_header, parts) = decode_payload(h.key.clone(), &payload).unwrap();
            assert_eq!(
                Value::from_parts(decoded_header.kind, &parts),
                expected_after(number, v)
            );
        }
    }
    let ttl = hash_of(1, |_| ("f".into(), "v".into(), Some(1_900_000_000_000)));
    assert!(dump::encode_payload(format(11), &header("h", Kind::Hash), &ttl.parts(10)).is_err());
}

/// Values over the buffer limit stream in their plain form, counted by the source.
#[test]
fn values_over_the_buffer_limit_stream_in_plain_form() {
    use crate::types::{
        HASH, LIST, LIST_QUICKLIST, LIST_QUICKLIST_2, REDIS_HASH_METADATA, SET, VALKEY_HASH_2,
        ZSET_2,
    };
    let options = EncodeOptions {
        compress: true,
        buffer_limit: 1024,
        ..EncodeOptions::default()
    };
    let with_len = |key: &str, kind, encoding, len: usize| KeyHeader {
        encoding,
        len: Some(len as u64),
        ..header(key, kind)
    };
    let list = list_of(10_000, |i| format!("element {i}"));
    let ttl = |i: usize| i.is_multiple_of(2).then_some(1_900_000_000_000 + i as i64);
    let cases: Vec<(u16, KeyHeader, Value, u8)> = FORMATS
        .iter()
        .flat_map(|&number| {
            let ttl_hash_type = match number {
                80 => VALKEY_HASH_2,
                12 => REDIS_HASH_METADATA,
                _ => HASH,
            };
            let hash_with_ttls = hash_of(3000, |i| {
                (
                    format!("f{i}"),
                    i.to_string(),
                    if number >= 12 { ttl(i) } else { None },
                )
            });
            [
                (
                    number,
                    with_len("list", Kind::List, LIST, 10_000),
                    list.clone(),
                    LIST,
                ),
                (
                    number,
                    with_len("set", Kind::Set, SET, 5000),
                    set_of(5000, |i| format!("m{i}")),
                    SET,
                ),
                (
                    number,
                    with_len("zset", Kind::SortedSet, ZSET_2, 3000),
                    zset_of(3000, |i| (format!("m{i}"), i as f64 * 0.5)),
                    ZSET_2,
                ),
                (
                    number,
                    with_len("hash", Kind::Hash, HASH, 3000),
                    hash_of(3000, |i| (format!("f{i}"), "v".into(), None)),
                    HASH,
                ),
                (
                    number,
                    with_len("ttl hash", Kind::Hash, REDIS_HASH_METADATA, 3000),
                    hash_with_ttls,
                    ttl_hash_type,
                ),
            ]
        })
        .collect();
    for (number, h, value, expected_type) in cases {
        let bytes = encode(
            format(number),
            options.clone(),
            &items_for(&[(h.clone(), value.clone())], 100),
        )
        .unwrap();
        let (_, decoded) = decode(&bytes);
        assert_eq!(
            decoded[0].header.encoding, expected_type,
            "RDB {number} {:?}",
            h.key
        );
        assert_eq!(
            decoded[0].value,
            value.normalized(),
            "RDB {number} {:?}",
            h.key
        );
    }
    // A quicklist source streams node for node.
    for number in FORMATS {
        let nodes = 100;
        let h = with_len("ql", Kind::List, LIST_QUICKLIST_2, nodes);
        let bytes = encode(
            format(number),
            options.clone(),
            &items_for(&[(h, list.clone())], 10_000 / nodes),
        )
        .unwrap();
        let (_, decoded) = decode(&bytes);
        let expected = if number >= 10 {
            LIST_QUICKLIST_2
        } else {
            LIST_QUICKLIST
        };
        assert_eq!(decoded[0].header.encoding, expected);
        assert_eq!(decoded[0].header.len, Some(nodes as u64));
        assert_eq!(decoded[0].value, list);
    }
}

#[test]
fn big_streams_stream_their_nodes() {
    let Value::Stream { meta, groups, .. } = sample_stream(true) else {
        unreachable!()
    };
    let many: Vec<_> = (0..100u64)
        .map(|k| {
            let id = |ms| StreamId { ms, seq: 0 };
            let master = id(100 + k * 10);
            (master, stream_node(master, &[master, id(master.ms + 1)]))
        })
        .collect();
    let meta = StreamMeta {
        length: 200,
        last_id: StreamId { ms: 1091, seq: 0 },
        ..meta
    };
    let value = Value::Stream {
        nodes: many.clone(),
        meta,
        groups,
    };
    let h = KeyHeader {
        len: Some(many.len() as u64),
        ..header("st", Kind::Stream)
    };
    let options = EncodeOptions {
        compress: false,
        buffer_limit: 1024,
        ..EncodeOptions::default()
    };
    for number in FORMATS {
        let bytes = encode(
            format(number),
            options.clone(),
            &items_for(&[(h.clone(), value.clone())], 1),
        )
        .unwrap();
        let (_, decoded) = decode(&bytes);
        assert_eq!(decoded[0].value, expected_after(number, &value));
    }
}

#[test]
fn a_streamed_value_without_a_count_is_refused_before_anything_is_written() {
    let options = EncodeOptions {
        compress: true,
        buffer_limit: 1024,
        ..EncodeOptions::default()
    };
    let keys = [
        (
            header("no count", Kind::Set),
            set_of(500, |i| format!("m{i}")),
        ),
        (header("after", Kind::String), Value::String(b("ok"))),
    ];
    let mut encoder = Encoder::new(Vec::new(), format(11), options);
    let mut errors = vec![];
    for item in items_for(&keys, 10) {
        if let Err(err) = encoder.write_item(&item) {
            errors.push(err);
        }
    }
    assert_eq!(errors.len(), 1);
    assert!(
        matches!(&errors[0], EncodeError::Unrepresentable { key, problem } if key == "no count" && problem.contains("buffer limit"))
    );
    let (_, decoded) = decode(&encoder.finish().unwrap());
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0].header.key, b("after"));
}

#[test]
fn a_streamed_value_shorter_than_announced_stops_the_encoder() {
    let options = EncodeOptions {
        compress: true,
        buffer_limit: 1024,
        ..EncodeOptions::default()
    };
    let h = KeyHeader {
        len: Some(600),
        encoding: crate::types::SET,
        ..header("short", Kind::Set)
    };
    let mut encoder = Encoder::new(Vec::new(), format(11), options);
    let items = items_for(&[(h, set_of(500, |i| format!("m{i}")))], 10);
    let mut result = Ok(());
    for item in &items {
        result = encoder.write_item(item);
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(EncodeError::Sequence(ref m)) if m.contains("600")));
    assert!(encoder.write_item(&Item::End { checksum: None }).is_err());
    assert!(encoder.finish().is_err());
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(Bytes::from),
        2 => any::<i64>().prop_map(|i| Bytes::from(i.to_string())),
        1 => proptest::collection::vec(any::<u8>(), 60..70).prop_map(Bytes::from),
        1 => (1usize..10_000).prop_map(|n| Bytes::from("r".repeat(n))),
    ]
}

fn arb_score() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("no NaN", |s| !s.is_nan()),
        (-1000i64..1000).prop_map(|i| i as f64),
        (-1000i64..1000).prop_map(|i| i as f64 / 8.0),
    ]
}

fn arb_value(with_ttls: bool) -> impl Strategy<Value = Value> {
    use proptest::collection::vec;
    // Around the servers' thresholds: 128 entries for packed forms, 512 for intsets.
    let sizes = prop_oneof![1usize..10, 120usize..135, 505usize..520];
    let ttl = proptest::option::weighted(if with_ttls { 0.3 } else { 0.0 }, 1i64..(1 << 47));
    let int_member = any::<i64>().prop_map(|i| Bytes::from(i.to_string()));
    // Collections are drawn as vectors and deduplicated: exact-size sets of short random
    // strings would almost never come out of proptest's own set strategies.
    (0..6u8, sizes).prop_flat_map(move |(kind, n)| -> BoxedStrategy<Value> {
        let unique = |v: Vec<Bytes>| {
            v.into_iter()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        match kind {
            0 => arb_bytes().prop_map(Value::String).boxed(),
            1 => vec(arb_bytes(), n..=n).prop_map(Value::List).boxed(),
            2 => vec(arb_bytes(), n..=n)
                .prop_map(move |v| Value::Set(unique(v)))
                .boxed(),
            3 => vec(int_member.clone(), n..=n)
                .prop_map(move |v| Value::Set(unique(v)))
                .boxed(),
            4 => vec((arb_bytes(), arb_score()), n..=n)
                .prop_map(|v| {
                    Value::Zset(
                        v.into_iter()
                            .collect::<BTreeMap<_, _>>()
                            .into_iter()
                            .collect(),
                    )
                })
                .boxed(),
            _ => vec((arb_bytes(), (arb_bytes(), ttl.clone())), n..=n)
                .prop_map(|v| Value::Hash(v.into_iter().collect()))
                .boxed(),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_values_round_trip_in_every_format(
        values in proptest::collection::vec(arb_value(true), 1..6),
        per_part in 1usize..200,
        buffer_limit in prop_oneof![Just(1usize << 20), 512usize..4096],
    ) {
        for number in FORMATS {
            let keys: Vec<_> = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let v = if format(number).has_hash_field_ttl() { v.clone() } else { without_ttls(v) };
                    let len = match &v {
                        Value::List(e) | Value::Set(e) => Some(e.len()),
                        Value::Zset(m) => Some(m.len()),
                        Value::Hash(m) => Some(m.len()),
                        _ => None,
                    };
                    let encoding = match v.kind() {
                        Kind::List => crate::types::LIST,
                        Kind::Hash => crate::types::REDIS_HASH_METADATA,
                        _ => 0,
                    };
                    let h = KeyHeader { len: len.map(|n| n as u64), encoding, ..header(&format!("key{i}"), v.kind()) };
                    (h, v)
                })
                .collect();
            let options = EncodeOptions { compress: true, buffer_limit, ..EncodeOptions::default() };
            let bytes = encode(format(number), options, &items_for(&keys, per_part)).unwrap();
            let (_, decoded) = decode(&bytes);
            prop_assert_eq!(decoded.len(), keys.len());
            for ((h, v), d) in keys.iter().zip(&decoded) {
                prop_assert_eq!(&d.header.key, &h.key);
                prop_assert_eq!(&d.value, &v.clone().normalized(), "RDB {}", number);
            }
        }
    }
}

fn without_ttls(value: &Value) -> Value {
    match value {
        Value::Hash(map) => Value::Hash(
            map.iter()
                .map(|(f, (v, _))| (f.clone(), (v.clone(), None)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A file holding one string key whose LZF form is not the one our compressor would write.
fn file_with_foreign_lzf(stream: &[u8], expanded_len: u8) -> Vec<u8> {
    let mut file = RdbVersion::redis(11).magic().to_vec();
    file.extend_from_slice(&[
        types::STRING,
        1,
        b'k',
        0xC3,
        stream.len() as u8,
        expanded_len,
    ]);
    file.extend_from_slice(stream);
    file.push(types::OP_EOF);
    let crc = crc64::checksum(&file);
    file.extend_from_slice(&crc.to_le_bytes());
    file
}

#[test]
fn a_decoded_lzf_string_is_written_with_its_own_compressed_data() {
    // 'a', then two 29-byte back-references one byte back: 59 bytes of 'a'. Our compressor
    // would use one long back-reference instead.
    let stream = [0, b'a', 7 << 5, 20, 0, 7 << 5, 20, 0];
    let file = file_with_foreign_lzf(&stream, 59);
    let items: Vec<Item> = Decoder::new(&file[..]).collect::<Result<_, _>>().unwrap();
    let mut lzf_string = vec![0xC3, stream.len() as u8, 59];
    lzf_string.extend_from_slice(&stream);
    let contains = |out: &[u8]| out.windows(lzf_string.len()).any(|w| w == lzf_string);

    let mut encoder = Encoder::new(Vec::new(), format(11), EncodeOptions::default());
    for item in items.iter().cloned() {
        encoder.write_owned(item).unwrap();
    }
    let out = encoder.finish().unwrap();
    assert!(contains(&out), "the source's LZF data passes through");
    let (_, keys) = decode(&out);
    assert_eq!(keys[0].value, Value::String(Bytes::from(vec![b'a'; 59])));

    // Not a memo of equal bytes elsewhere: the same items again (the memo was used up)
    // and uncompressed output get the encoder's own forms.
    let again = encode(format(11), EncodeOptions::default(), &items).unwrap();
    assert!(!contains(&again));
    assert_eq!(decode(&again).1[0].value, keys[0].value);
    let items: Vec<Item> = Decoder::new(&file[..]).collect::<Result<_, _>>().unwrap();
    let plain = EncodeOptions {
        compress: false,
        ..EncodeOptions::default()
    };
    let raw = encode(format(11), plain, &items).unwrap();
    assert!(!raw.contains(&0xC3), "no LZF when compression is off");
    assert_eq!(decode(&raw).1[0].value, keys[0].value);
}

#[test]
fn a_member_or_field_stored_twice_is_refused_in_every_form() {
    let streamed = EncodeOptions {
        buffer_limit: 1024,
        ..EncodeOptions::default()
    };
    // Small enough to pack, big enough for the plain form, and over the buffer limit.
    for n in [10, 300, 2000] {
        let names = |i: usize| b(&format!("member {}", if i == n - 1 { 1 } else { i }));
        let parts = |kind| -> Vec<ValuePart> {
            (0..n)
                .collect::<Vec<_>>()
                .chunks(100)
                .map(|chunk| match kind {
                    Kind::Set => ValuePart::SetMembers(chunk.iter().map(|&i| names(i)).collect()),
                    Kind::SortedSet => ValuePart::SortedSetMembers(
                        chunk
                            .iter()
                            .map(|&i| ScoredMember {
                                member: names(i),
                                score: i as f64,
                            })
                            .collect(),
                    ),
                    _ => ValuePart::HashFields(
                        chunk
                            .iter()
                            .map(|&i| HashField {
                                field: names(i),
                                value: b("v"),
                                expire_at_ms: None,
                            })
                            .collect(),
                    ),
                })
                .collect()
        };
        for kind in [Kind::Set, Kind::SortedSet, Kind::Hash] {
            let header = KeyHeader {
                len: Some(n as u64),
                ..header("dup", kind)
            };
            let mut items = vec![Item::Header(format(11).version), Item::KeyStart(header)];
            items.extend(parts(kind).into_iter().map(Item::Part));
            items.extend([Item::KeyEnd, Item::End { checksum: None }]);
            for options in [EncodeOptions::default(), streamed.clone()] {
                let err = encode(format(11), options, &items).unwrap_err();
                assert!(
                    matches!(&err, EncodeError::Unrepresentable { key, problem } if key == "dup" && problem.contains("twice")),
                    "{kind:?} of {n}: {err}"
                );
            }
        }
    }
}

#[test]
fn a_database_the_loader_lacks_is_refused() {
    let options = EncodeOptions {
        databases: Some(16),
        ..EncodeOptions::default()
    };
    let items = [Item::Header(format(11).version), Item::SelectDb(16)];
    let err = encode(format(11), options.clone(), &items).unwrap_err();
    assert!(
        matches!(
            err,
            EncodeError::Database {
                db: 16,
                databases: 16
            }
        ),
        "{err}"
    );
    let items = [
        Item::Header(format(11).version),
        Item::SelectDb(15),
        Item::End { checksum: None },
    ];
    assert!(encode(format(11), options, &items).is_ok());
}
