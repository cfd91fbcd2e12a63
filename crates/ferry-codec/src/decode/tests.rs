//! Decoder tests on files crafted here with the primitives' writers.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::length::{
    write_f64_le, write_len, write_millis, write_score_string, write_string, write_u64_le,
};
use crate::listpack::ListpackBuilder;
use crate::model::*;
use crate::ziplist::ZiplistBuilder;
use crate::{intset, zipmap};

/// Writes an RDB file byte by byte.
struct Rdb {
    out: Vec<u8>,
    version: RdbVersion,
}

impl Rdb {
    fn new(version: RdbVersion) -> Self {
        Self {
            out: version.magic().to_vec(),
            version,
        }
    }
    fn redis(number: u16) -> Self {
        Self::new(RdbVersion::redis(number))
    }
    fn valkey(number: u16) -> Self {
        Self::new(RdbVersion::valkey(number))
    }
    fn op(&mut self, byte: u8) -> &mut Self {
        self.out.push(byte);
        self
    }
    fn len(&mut self, n: u64) -> &mut Self {
        write_len(&mut self.out, n);
        self
    }
    fn string(&mut self, s: &[u8]) -> &mut Self {
        write_string(&mut self.out, s, true);
        self
    }
    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }
    fn u64_le(&mut self, v: u64) -> &mut Self {
        write_u64_le(&mut self.out, v);
        self
    }
    fn key(&mut self, type_byte: u8, key: &str) -> &mut Self {
        self.op(type_byte).string(key.as_bytes())
    }
    /// EOF opcode and, from version 5, the checksum.
    fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.out);
        out.push(types::OP_EOF);
        if self.version.number >= 5 {
            let crc = crate::crc64::checksum(&out);
            out.extend_from_slice(&crc.to_le_bytes());
        }
        out
    }
}

fn decode_all(bytes: &[u8]) -> Result<Vec<Item>, DecodeError> {
    Decoder::new(bytes).collect()
}

fn decode_with(bytes: &[u8], options: DecodeOptions) -> Result<Vec<Item>, DecodeError> {
    Decoder::with_options(bytes, options).collect()
}

/// Each key with all its parts.
fn keys(items: &[Item]) -> Vec<(KeyHeader, Vec<ValuePart>)> {
    let mut out = Vec::new();
    let mut current: Option<(KeyHeader, Vec<ValuePart>)> = None;
    for item in items {
        match item {
            Item::KeyStart(header) => {
                assert!(current.is_none(), "KeyStart inside a key");
                current = Some((header.clone(), Vec::new()));
            }
            Item::Part(part) => current
                .as_mut()
                .expect("Part outside a key")
                .1
                .push(part.clone()),
            Item::KeyEnd => out.push(current.take().expect("KeyEnd outside a key")),
            _ => assert!(current.is_none(), "{item:?} inside a key"),
        }
    }
    assert!(current.is_none(), "key without KeyEnd");
    out
}

fn single_key(bytes: &[u8]) -> (KeyHeader, Vec<ValuePart>) {
    let items = decode_all(bytes).unwrap();
    let mut keys = keys(&items);
    assert_eq!(keys.len(), 1);
    keys.remove(0)
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn strings(parts: &[ValuePart]) -> Vec<Bytes> {
    parts
        .iter()
        .flat_map(|p| match p {
            ValuePart::ListElements(v) | ValuePart::SetMembers(v) => v.clone(),
            other => panic!("unexpected part {other:?}"),
        })
        .collect()
}

fn scored(parts: &[ValuePart]) -> Vec<(Bytes, f64)> {
    parts
        .iter()
        .flat_map(|p| match p {
            ValuePart::SortedSetMembers(v) => v
                .iter()
                .map(|m| (m.member.clone(), m.score))
                .collect::<Vec<_>>(),
            other => panic!("unexpected part {other:?}"),
        })
        .collect()
}

fn fields(parts: &[ValuePart]) -> Vec<(Bytes, Bytes, Option<i64>)> {
    parts
        .iter()
        .flat_map(|p| match p {
            ValuePart::HashFields(v) => v
                .iter()
                .map(|f| (f.field.clone(), f.value.clone(), f.expire_at_ms))
                .collect::<Vec<_>>(),
            other => panic!("unexpected part {other:?}"),
        })
        .collect()
}

fn listpack(values: &[&str]) -> Vec<u8> {
    let mut builder = ListpackBuilder::new();
    for v in values {
        builder.push(v.as_bytes());
    }
    builder.finish()
}

fn ziplist(values: &[&str]) -> Vec<u8> {
    let mut builder = ZiplistBuilder::new();
    for v in values {
        builder.push(v.as_bytes());
    }
    builder.finish()
}

// ---------------------------------------------------------------- file structure

#[test]
fn empty_files_of_every_version_decode() {
    let versions = (1..=12)
        .map(RdbVersion::redis)
        .chain([80, 81].map(RdbVersion::valkey));
    for version in versions {
        let bytes = Rdb::new(version).finish();
        let items = decode_all(&bytes).unwrap();
        // Checksums exist from version 5 on.
        let checksum =
            (version.number >= 5).then(|| crate::crc64::checksum(&bytes[..bytes.len() - 8]));
        assert_eq!(
            items,
            vec![Item::Header(version), Item::End { checksum }],
            "{version}"
        );
    }
}

#[test]
fn top_level_records_come_out_in_order() {
    let module = ModuleId::from_name("vectorset", 0).unwrap();
    let mut rdb = Rdb::redis(12);
    rdb.op(types::OP_AUX).string(b"redis-ver").string(b"8.0.2");
    rdb.op(types::OP_AUX).string(b"ctime").string(b"1700000000");
    rdb.op(types::OP_MODULE_AUX)
        .len(module.0)
        .len(types::MODULE_OP_UINT)
        .len(2);
    rdb.len(types::MODULE_OP_STRING)
        .string(b"aux data")
        .len(types::MODULE_OP_EOF);
    rdb.op(types::OP_FUNCTION2)
        .string(b"#!lua name=lib\nredis.register_function('f', function() return 1 end)");
    rdb.op(types::OP_SELECTDB)
        .len(3)
        .op(types::OP_RESIZEDB)
        .len(10)
        .len(2);
    rdb.op(types::OP_SLOT_INFO).len(1234).len(5).len(1);
    rdb.key(types::STRING, "k").string(b"v");
    let items = decode_all(&rdb.finish()).unwrap();
    let mut aux_body = Vec::new();
    write_len(&mut aux_body, types::MODULE_OP_STRING);
    write_string(&mut aux_body, b"aux data", true);
    write_len(&mut aux_body, types::MODULE_OP_EOF);
    assert_eq!(
        items[1],
        Item::Aux {
            key: b("redis-ver"),
            value: b("8.0.2")
        }
    );
    assert_eq!(
        items[2],
        Item::Aux {
            key: b("ctime"),
            value: b("1700000000")
        }
    );
    assert_eq!(
        items[3],
        Item::ModuleAux {
            module,
            when: 2,
            body: Bytes::from(aux_body)
        }
    );
    assert!(matches!(&items[4], Item::Function { code } if code.starts_with(b"#!lua")));
    assert_eq!(items[5], Item::SelectDb(3));
    assert_eq!(
        items[6],
        Item::ResizeDb {
            keys: 10,
            expires: 2
        }
    );
    assert_eq!(
        items[7],
        Item::SlotInfo {
            slot: 1234,
            keys: 5,
            expires: 1
        }
    );
    let Item::KeyStart(header) = &items[8] else {
        panic!("{:?}", items[8])
    };
    assert_eq!(header.db, 3);
    assert!(matches!(
        items.last(),
        Some(Item::End { checksum: Some(_) })
    ));
}

#[test]
fn key_attributes_apply_to_the_next_key_only() {
    let mut rdb = Rdb::redis(11);
    rdb.op(types::OP_EXPIRETIME_MS).u64_le(1_700_000_000_123);
    rdb.op(types::OP_IDLE).len(77).op(types::OP_FREQ).op(9);
    rdb.key(types::STRING, "a").string(b"1");
    rdb.op(types::OP_EXPIRETIME)
        .raw(&1_600_000_000i32.to_le_bytes());
    rdb.key(types::STRING, "b").string(b"2");
    rdb.key(types::STRING, "c").string(b"3");
    let items = decode_all(&rdb.finish()).unwrap();
    let keys = keys(&items);
    assert_eq!(keys[0].0.expire_at_ms, Some(1_700_000_000_123));
    assert_eq!(keys[0].0.idle_secs, Some(77));
    assert_eq!(keys[0].0.freq, Some(9));
    assert_eq!(keys[1].0.expire_at_ms, Some(1_600_000_000_000));
    assert_eq!(keys[1].0.idle_secs, None);
    assert_eq!(keys[2].0.expire_at_ms, None);
    assert_eq!(keys[2].0.freq, None);
}

#[test]
fn versions_before_5_have_no_checksum_and_stop_at_eof() {
    let mut rdb = Rdb::redis(4);
    rdb.op(types::OP_SELECTDB)
        .len(0)
        .key(types::STRING, "x")
        .string(b"y");
    let mut bytes = rdb.finish();
    bytes.extend_from_slice(b"trailing");
    let mut decoder = Decoder::new(&bytes[..]);
    let items: Vec<Item> = decoder.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(items.last(), Some(&Item::End { checksum: None }));
    assert_eq!(decoder.bytes_read(), (bytes.len() - 8) as u64);
}

#[test]
fn bytes_after_the_rdb_are_handed_back() {
    let mut rdb = Rdb::redis(11);
    rdb.key(types::STRING, "k").string(b"v");
    let mut bytes = rdb.finish();
    let rdb_len = bytes.len();
    bytes.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    let mut decoder = Decoder::new(&bytes[..]);
    while let Some(item) = decoder.next_item().unwrap() {
        let _ = item;
    }
    assert_eq!(decoder.bytes_read(), rdb_len as u64);
    assert_eq!(decoder.version(), Some(RdbVersion::redis(11)));
    let (rest_of_source, read_ahead) = decoder.into_parts();
    let mut tail = read_ahead.to_vec();
    tail.extend_from_slice(rest_of_source);
    assert_eq!(tail, b"*1\r\n$4\r\nPING\r\n");
}

#[test]
fn zero_checksum_means_unchecked() {
    let mut rdb = Rdb::redis(9);
    rdb.key(types::STRING, "k").string(b"v");
    let mut bytes = rdb.finish();
    let n = bytes.len();
    bytes[n - 8..].copy_from_slice(&[0; 8]);
    let items = decode_all(&bytes).unwrap();
    assert_eq!(items.last(), Some(&Item::End { checksum: None }));
}

#[test]
fn checksum_mismatch_is_reported_unless_disabled() {
    let mut rdb = Rdb::redis(11);
    rdb.key(types::STRING, "k").string(b"value");
    let mut bytes = rdb.finish();
    let n = bytes.len();
    bytes[n - 8] ^= 1;
    let err = decode_all(&bytes).unwrap_err();
    assert!(matches!(err, DecodeError::Checksum { .. }), "{err}");
    let options = DecodeOptions {
        verify_checksum: false,
        ..DecodeOptions::default()
    };
    let items = decode_with(&bytes, options).unwrap();
    assert!(matches!(
        items.last(),
        Some(Item::End { checksum: Some(_) })
    ));
}

#[test]
fn a_corrupted_byte_breaks_the_checksum() {
    let mut rdb = Rdb::redis(11);
    rdb.key(types::STRING, "key").string(b"value");
    let mut bytes = rdb.finish();
    let at = bytes.len() - 10; // inside "value"
    bytes[at] ^= 0x20;
    assert!(matches!(
        decode_all(&bytes),
        Err(DecodeError::Checksum { .. })
    ));
}

// ---------------------------------------------------------------- value types

#[test]
fn strings_in_every_encoding() {
    let long = "x".repeat(500);
    let mut rdb = Rdb::redis(11);
    rdb.key(types::STRING, "int").string(b"-12345");
    rdb.key(types::STRING, "lzf").string(long.as_bytes());
    rdb.key(types::STRING, "plain").string(b"hello");
    rdb.key(types::STRING, "empty").string(b"");
    let bytes = rdb.finish();
    assert!(
        bytes.windows(1).any(|w| w[0] == 0xc3),
        "expected an LZF string in the file"
    );
    let keys = keys(&decode_all(&bytes).unwrap());
    let values: Vec<_> = keys
        .iter()
        .map(|(h, p)| (h.key.clone(), h.kind, p.clone()))
        .collect();
    assert_eq!(
        values[0],
        (b("int"), Kind::String, vec![ValuePart::String(b("-12345"))])
    );
    assert_eq!(
        values[1],
        (b("lzf"), Kind::String, vec![ValuePart::String(b(&long))])
    );
    assert_eq!(values[2].2, vec![ValuePart::String(b("hello"))]);
    assert_eq!(values[3].2, vec![ValuePart::String(Bytes::new())]);
    assert!(keys
        .iter()
        .all(|(h, _)| h.encoding == types::STRING && h.len.is_none()));
}

/// Decodes `bytes`, skipping the value of every key whose name starts with `skip`.
fn decode_skipping(bytes: &[u8], skip: &str) -> Result<(Vec<Item>, u64), DecodeError> {
    let mut decoder = Decoder::new(bytes);
    let mut items = Vec::new();
    while let Some(item) = decoder.next_item()? {
        if let Item::KeyStart(header) = &item {
            if header.key.starts_with(skip.as_bytes()) {
                decoder.skip_value()?;
            }
        }
        items.push(item);
    }
    Ok((items, decoder.bytes_read()))
}

#[test]
fn skipped_values_leave_out_their_parts_and_nothing_else() {
    let long = "x".repeat(500);
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 97) as u8 + 20).collect();
    let mut rdb = Rdb::redis(11);
    rdb.key(types::STRING, "skip-int").string(b"-12345");
    rdb.key(types::STRING, "skip-lzf").string(long.as_bytes());
    rdb.key(types::STRING, "keep-lzf").string(long.as_bytes());
    rdb.key(types::STRING, "skip-big").raw(&[]);
    write_len(&mut rdb.out, big.len() as u64);
    rdb.raw(&big);
    rdb.key(types::LIST, "skip-list")
        .len(3)
        .string(b"a")
        .string(b"42")
        .string(b"c");
    rdb.key(types::SET_LISTPACK, "skip-set")
        .string(&listpack(&["m1", "m2"]));
    rdb.key(types::SET, "skip-plain-set")
        .len(2)
        .string(b"x")
        .string(b"7");
    // Two nodes: a packed one (container 2) and a plain one (container 1).
    rdb.key(types::LIST_QUICKLIST_2, "skip-quicklist")
        .len(2)
        .len(2)
        .string(&listpack(&["q1", "7"]))
        .len(1)
        .string(b"plain node");
    rdb.key(types::STRING, "keep-plain").string(b"hello");
    let bytes = rdb.finish();

    let all = decode_all(&bytes).unwrap();
    let (skipped, read) = decode_skipping(&bytes, "skip-").unwrap();
    assert_eq!(read, bytes.len() as u64);
    let expected: Vec<(KeyHeader, Vec<ValuePart>)> = keys(&all)
        .into_iter()
        .map(|(header, parts)| {
            let parts = if header.key.starts_with(b"skip-") {
                Vec::new()
            } else {
                parts
            };
            (header, parts)
        })
        .collect();
    assert_eq!(keys(&skipped), expected);
    assert!(matches!(
        skipped.last(),
        Some(Item::End { checksum: Some(_) })
    ));
}

#[test]
fn a_skipped_list_is_still_checked() {
    let mut packed = listpack(&["q1", "q2"]);
    // The second entry's encoding byte becomes one no listpack entry starts with.
    let second = packed.len() - 1 - 4;
    packed[second] = 0xF5;
    let mut rdb = Rdb::redis(11);
    rdb.key(types::LIST_QUICKLIST_2, "skip-quicklist")
        .len(1)
        .len(2)
        .string(&packed);
    let bytes = rdb.finish();
    let read = decode_all(&bytes).unwrap_err();
    let skipped = decode_skipping(&bytes, "skip-").unwrap_err();
    assert_eq!(skipped.to_string(), read.to_string());
}

#[test]
fn a_skipped_string_is_still_checked() {
    let long = "y".repeat(300);
    let mut rdb = Rdb::redis(11);
    rdb.key(types::STRING, "skip-lzf").string(long.as_bytes());
    let mut bytes = rdb.finish();
    // Claim one byte more than the LZF data expands to.
    let marker = bytes.iter().position(|&b| b == 0xc3).unwrap();
    let (compressed, used) = crate::length::read_len(&bytes[marker + 1..]).unwrap();
    assert!(matches!(compressed, crate::length::Length::Len(_)));
    let original_at = marker + 1 + used;
    assert_eq!(bytes[original_at], 0x41, "300 is a 14-bit length");
    bytes[original_at + 1] += 1;
    let err = decode_skipping(&bytes, "skip-").unwrap_err();
    assert!(matches!(err, DecodeError::Structure { .. }), "{err}");
    assert_eq!(err.to_string(), decode_all(&bytes).unwrap_err().to_string());
    // And a truncated skipped string is reported as truncated.
    let mut rdb = Rdb::redis(11);
    rdb.key(types::STRING, "skip-plain").len(100).raw(b"short");
    let truncated = rdb.out.clone();
    let err = decode_skipping(&truncated, "skip-").unwrap_err();
    assert!(matches!(err, DecodeError::Truncated { .. }), "{err}");
}

#[test]
fn large_string_values_cross_buffer_boundaries() {
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 97) as u8 + 20).collect();
    let mut rdb = Rdb::redis(11);
    rdb.key(types::STRING, "big").raw(&[]);
    write_len(&mut rdb.out, big.len() as u64);
    rdb.raw(&big);
    rdb.key(types::STRING, "after").string(b"ok");
    let keys = keys(&decode_all(&rdb.finish()).unwrap());
    assert_eq!(keys[0].1, vec![ValuePart::String(Bytes::from(big))]);
    assert_eq!(keys[1].1, vec![ValuePart::String(b("ok"))]);
}

#[test]
fn linked_list_and_plain_set() {
    let mut rdb = Rdb::redis(6);
    rdb.key(types::LIST, "list")
        .len(3)
        .string(b"a")
        .string(b"42")
        .string(b"c");
    rdb.key(types::SET, "set")
        .len(2)
        .string(b"m1")
        .string(b"m2");
    let keys = keys(&decode_all(&rdb.finish()).unwrap());
    assert_eq!((keys[0].0.kind, keys[0].0.len), (Kind::List, Some(3)));
    assert_eq!(strings(&keys[0].1), vec![b("a"), b("42"), b("c")]);
    assert_eq!((keys[1].0.kind, keys[1].0.len), (Kind::Set, Some(2)));
    assert_eq!(strings(&keys[1].1), vec![b("m1"), b("m2")]);
}

#[test]
fn plain_collections_are_cut_into_bounded_parts() {
    let mut rdb = Rdb::redis(11);
    rdb.key(types::LIST, "list").len(10);
    for i in 0..10 {
        rdb.string(format!("e{i}").as_bytes());
    }
    rdb.key(types::HASH, "hash").len(3);
    for i in 0..3 {
        rdb.string(format!("f{i}").as_bytes()).string(&[b'v'; 100]);
    }
    let options = DecodeOptions {
        max_part_elements: 4,
        max_part_bytes: 150,
        ..DecodeOptions::default()
    };
    let keys = keys(&decode_with(&rdb.finish(), options).unwrap());
    let sizes: Vec<usize> = keys[0]
        .1
        .iter()
        .map(|p| match p {
            ValuePart::ListElements(v) => v.len(),
            _ => 0,
        })
        .collect();
    assert_eq!(sizes, vec![4, 4, 2]);
    assert_eq!(strings(&keys[0].1).len(), 10);
    // 102 bytes per field: the second field passes 150, so parts hold 2 then 1.
    let sizes: Vec<usize> = keys[1]
        .1
        .iter()
        .map(|p| match p {
            ValuePart::HashFields(v) => v.len(),
            _ => 0,
        })
        .collect();
    assert_eq!(sizes, vec![2, 1]);
}

#[test]
fn sorted_sets_with_text_and_binary_scores() {
    let text_members = [
        ("a", 1.5),
        ("b", -3.0),
        ("c", f64::INFINITY),
        ("d", f64::NEG_INFINITY),
        ("e", 1e-7),
    ];
    let mut rdb = Rdb::redis(6);
    rdb.key(types::ZSET, "text").len(text_members.len() as u64);
    for (member, score) in text_members {
        rdb.string(member.as_bytes());
        write_score_string(&mut rdb.out, score);
    }
    rdb.key(types::ZSET, "nan").len(1).string(b"n");
    write_score_string(&mut rdb.out, f64::NAN);
    rdb.key(types::ZSET_2, "binary").len(2).string(b"x");
    write_f64_le(&mut rdb.out, 0.25);
    rdb.string(b"y");
    write_f64_le(&mut rdb.out, -1e300);
    let keys = keys(&decode_all(&rdb.finish()).unwrap());
    let got = scored(&keys[0].1);
    assert_eq!(
        got,
        text_members
            .iter()
            .map(|(m, s)| (b(m), *s))
            .collect::<Vec<_>>()
    );
    assert!(scored(&keys[1].1)[0].1.is_nan());
    assert_eq!(scored(&keys[2].1), vec![(b("x"), 0.25), (b("y"), -1e300)]);
    assert!(keys.iter().all(|(h, _)| h.kind == Kind::SortedSet));
}

#[test]
fn unparsable_text_score_is_invalid() {
    let mut rdb = Rdb::redis(6);
    rdb.key(types::ZSET, "z")
        .len(1)
        .string(b"m")
        .op(3)
        .raw(b"abc");
    let err = decode_all(&rdb.finish()).unwrap_err();
    assert!(matches!(err, DecodeError::Invalid { .. }), "{err}");
}

#[test]
fn plain_hash() {
    let mut rdb = Rdb::redis(9);
    rdb.key(types::HASH, "h")
        .len(2)
        .string(b"f1")
        .string(b"v1")
        .string(b"f2")
        .string(b"100");
    let (header, parts) = single_key(&rdb.finish());
    assert_eq!(
        (header.kind, header.encoding, header.len),
        (Kind::Hash, types::HASH, Some(2))
    );
    assert_eq!(
        fields(&parts),
        vec![(b("f1"), b("v1"), None), (b("f2"), b("100"), None)]
    );
}

#[test]
fn zipmap_hash() {
    let pairs: [(&[u8], &[u8]); 2] = [(b"name", b"ferry"), (b"n", b"7")];
    let mut rdb = Rdb::redis(4);
    rdb.key(types::HASH_ZIPMAP, "zm")
        .string(&zipmap::build(&pairs));
    let (header, parts) = single_key(&rdb.finish());
    assert_eq!((header.kind, header.len), (Kind::Hash, Some(2)));
    assert_eq!(
        fields(&parts),
        vec![(b("name"), b("ferry"), None), (b("n"), b("7"), None)]
    );
}

#[test]
fn ziplist_encoded_list_zset_and_hash() {
    let mut rdb = Rdb::redis(7);
    rdb.key(types::LIST_ZIPLIST, "l")
        .string(&ziplist(&["a", "-5", "1000000", "b"]));
    rdb.key(types::ZSET_ZIPLIST, "z")
        .string(&ziplist(&["m1", "2", "m2", "2.5", "m3", "inf"]));
    rdb.key(types::HASH_ZIPLIST, "h")
        .string(&ziplist(&["f", "v", "count", "12"]));
    let keys = keys(&decode_all(&rdb.finish()).unwrap());
    assert_eq!(
        strings(&keys[0].1),
        vec![b("a"), b("-5"), b("1000000"), b("b")]
    );
    assert_eq!(keys[0].0.len, Some(4));
    assert_eq!(
        scored(&keys[1].1),
        vec![(b("m1"), 2.0), (b("m2"), 2.5), (b("m3"), f64::INFINITY)]
    );
    assert_eq!(keys[1].0.len, Some(3));
    assert_eq!(
        fields(&keys[2].1),
        vec![(b("f"), b("v"), None), (b("count"), b("12"), None)]
    );
}

#[test]
fn intset_and_listpack_sets() {
    let mut rdb = Rdb::redis(11);
    rdb.key(types::SET_INTSET, "ints")
        .string(&intset::build(&[-70000, 3, 1 << 40]));
    rdb.key(types::SET_LISTPACK, "lp")
        .string(&listpack(&["x", "17", "y"]));
    let keys = keys(&decode_all(&rdb.finish()).unwrap());
    assert_eq!(
        strings(&keys[0].1),
        vec![b("-70000"), b("3"), b(&(1i64 << 40).to_string())]
    );
    assert_eq!(strings(&keys[1].1), vec![b("x"), b("17"), b("y")]);
    assert!(keys.iter().all(|(h, _)| h.kind == Kind::Set));
}

#[test]
fn listpack_zset_and_hash() {
    let mut rdb = Rdb::redis(10);
    rdb.key(types::ZSET_LISTPACK, "z")
        .string(&listpack(&["a", "1", "b", "-0.5"]));
    rdb.key(types::HASH_LISTPACK, "h")
        .string(&listpack(&["k", "v"]));
    let keys = keys(&decode_all(&rdb.finish()).unwrap());
    assert_eq!(scored(&keys[0].1), vec![(b("a"), 1.0), (b("b"), -0.5)]);
    assert_eq!(fields(&keys[1].1), vec![(b("k"), b("v"), None)]);
}

#[test]
fn blob_values_are_split_by_the_part_limits() {
    let values: Vec<String> = (0..10).map(|i| format!("member{i}")).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let mut rdb = Rdb::redis(11);
    rdb.key(types::SET_LISTPACK, "s").string(&listpack(&refs));
    let options = DecodeOptions {
        max_part_elements: 3,
        ..DecodeOptions::default()
    };
    let keys = keys(&decode_with(&rdb.finish(), options).unwrap());
    assert_eq!(keys[0].1.len(), 4);
    assert_eq!(
        strings(&keys[0].1),
        refs.iter().map(|s| b(s)).collect::<Vec<_>>()
    );
    assert_eq!(keys[0].0.len, Some(10));
}

#[test]
fn quicklists_yield_one_part_per_node() {
    let mut rdb = Rdb::redis(8);
    rdb.key(types::LIST_QUICKLIST, "q1").len(2);
    rdb.string(&ziplist(&["a", "b"])).string(&ziplist(&["7"]));
    let mut rdb2 = Rdb::redis(11);
    rdb2.out.clear();
    rdb2.key(types::LIST_QUICKLIST_2, "q2").len(2);
    rdb2.len(2).string(&listpack(&["x", "y", "z"]));
    rdb2.len(1).string(&vec![b'P'; 5000]);
    let mut bytes = rdb.out.clone();
    bytes.extend_from_slice(&rdb2.out);
    let mut file = Rdb::redis(11);
    file.out = bytes;
    // Re-stamp the header as version 11 (both node forms are valid there).
    file.out[..9].copy_from_slice(&RdbVersion::redis(11).magic());
    let keys = keys(&decode_all(&file.finish()).unwrap());
    assert_eq!(keys[0].0.len, Some(2));
    assert_eq!(
        keys[0].1,
        vec![
            ValuePart::ListElements(vec![b("a"), b("b")]),
            ValuePart::ListElements(vec![b("7")])
        ]
    );
    assert_eq!(keys[1].0.encoding, types::LIST_QUICKLIST_2);
    assert_eq!(
        keys[1].1,
        vec![
            ValuePart::ListElements(vec![b("x"), b("y"), b("z")]),
            ValuePart::ListElements(vec![Bytes::from(vec![b'P'; 5000])])
        ]
    );
}

#[test]
fn quicklist_node_with_a_bad_container_fails() {
    let mut rdb = Rdb::redis(11);
    rdb.key(types::LIST_QUICKLIST_2, "q")
        .len(1)
        .len(3)
        .string(&listpack(&["x"]));
    let err = decode_all(&rdb.finish()).unwrap_err();
    assert!(matches!(err, DecodeError::Invalid { .. }), "{err}");
}

#[test]
fn redis_field_ttl_hashes() {
    let min = 1_800_000_000_000u64;
    let mut rdb = Rdb::redis(12);
    // 24: TTLs relative to the minimum, plus one; 0 means none.
    rdb.key(types::REDIS_HASH_METADATA, "meta")
        .u64_le(min)
        .len(2);
    rdb.len(1).string(b"soon").string(b"v1");
    rdb.len(0).string(b"never").string(b"v2");
    // 22 (pre-GA): absolute TTLs.
    rdb.key(types::REDIS_HASH_METADATA_PRE_GA, "meta-rc")
        .len(1)
        .len(min + 5)
        .string(b"f")
        .string(b"v");
    // 25: minimum, then a listpack of field, value, absolute TTL (0 = none).
    let mut lp = ListpackBuilder::new();
    lp.push(b"a");
    lp.push(b"1");
    lp.push_int((min + 10) as i64);
    lp.push(b"b");
    lp.push(b"2");
    lp.push_int(0);
    let lp = lp.finish();
    rdb.key(types::REDIS_HASH_LISTPACK_EX, "lpex")
        .u64_le(min + 10)
        .string(&lp);
    // 23 (pre-GA): the same listpack without the minimum.
    rdb.key(types::REDIS_HASH_LISTPACK_EX_PRE_GA, "lpex-rc")
        .string(&lp);
    let keys = keys(&decode_all(&rdb.finish()).unwrap());
    let min = min as i64;
    assert_eq!(
        fields(&keys[0].1),
        vec![(b("soon"), b("v1"), Some(min)), (b("never"), b("v2"), None)]
    );
    assert_eq!(keys[0].0.len, Some(2));
    assert_eq!(fields(&keys[1].1), vec![(b("f"), b("v"), Some(min + 5))]);
    let expected = vec![(b("a"), b("1"), Some(min + 10)), (b("b"), b("2"), None)];
    assert_eq!(fields(&keys[2].1), expected);
    assert_eq!(fields(&keys[3].1), expected);
    assert!(keys.iter().all(|(h, _)| h.kind == Kind::Hash));
}

#[test]
fn valkey_hash_2_carries_field_expiry() {
    let mut rdb = Rdb::valkey(80);
    rdb.key(types::VALKEY_HASH_2, "h").len(2);
    rdb.string(b"f1").string(b"v1");
    write_millis(&mut rdb.out, 1_900_000_000_000);
    rdb.string(b"f2").string(b"v2");
    write_millis(&mut rdb.out, -1);
    let (header, parts) = single_key(&rdb.finish());
    assert_eq!(
        (header.kind, header.encoding, header.len),
        (Kind::Hash, 22, Some(2))
    );
    assert_eq!(
        fields(&parts),
        vec![
            (b("f1"), b("v1"), Some(1_900_000_000_000)),
            (b("f2"), b("v2"), None)
        ]
    );
}

#[test]
fn type_22_means_what_the_magic_says() {
    // The same bytes after the key decode as Redis pre-GA (TTL before field) under REDIS
    // magic: the TTL length 2 is read first.
    let mut redis = Rdb::redis(12);
    redis.key(22, "h").len(1).len(2).string(b"f").string(b"v");
    let (_, parts) = single_key(&redis.finish());
    assert_eq!(fields(&parts), vec![(b("f"), b("v"), Some(2))]);
    let mut valkey = Rdb::valkey(80);
    valkey.key(22, "h").len(1).string(b"f").string(b"v");
    write_millis(&mut valkey.out, 2);
    let (_, parts) = single_key(&valkey.finish());
    assert_eq!(fields(&parts), vec![(b("f"), b("v"), Some(2))]);
}

#[test]
fn valkey_rejects_redis_only_types_and_path_hashes() {
    for type_byte in [23u8, 24, 25] {
        let mut rdb = Rdb::valkey(81);
        rdb.key(type_byte, "k").string(b"whatever");
        let bytes = rdb.finish();
        let err = decode_all(&bytes).unwrap_err();
        assert!(
            matches!(err, DecodeError::Unsupported { offset: 9, .. }),
            "{type_byte}: {err}"
        );
        assert!(err.to_string().contains(&type_byte.to_string()), "{err}");
    }
}

#[test]
fn valkey_slot_import_is_skipped() {
    let mut rdb = Rdb::valkey(80);
    rdb.op(types::OP_SLOT_IMPORT)
        .string(&[b'a'; 40])
        .len(2)
        .len(0)
        .len(100)
        .len(200)
        .len(300);
    rdb.key(types::STRING, "k").string(b"v");
    let items = decode_all(&rdb.finish()).unwrap();
    assert!(matches!(&items[1], Item::KeyStart(h) if h.key == "k"));
}

fn module_body(values: &[(u64, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (opcode, data) in values {
        write_len(&mut out, *opcode);
        out.extend_from_slice(data);
    }
    write_len(&mut out, types::MODULE_OP_EOF);
    out
}

#[test]
fn module_values_are_captured_raw() {
    let id = ModuleId::from_name("mymodtype", 3).unwrap();
    let mut string = Vec::new();
    write_string(&mut string, &[b'q'; 100], true);
    let mut unsigned = Vec::new();
    write_len(&mut unsigned, 1 << 33);
    let body = module_body(&[
        (types::MODULE_OP_UINT, &unsigned),
        (types::MODULE_OP_SINT, &[0x05]),
        (types::MODULE_OP_FLOAT, &1.5f32.to_le_bytes()),
        (types::MODULE_OP_DOUBLE, &2.5f64.to_le_bytes()),
        (types::MODULE_OP_STRING, &string),
    ]);
    let mut rdb = Rdb::redis(11);
    rdb.key(types::MODULE_2, "m").len(id.0).raw(&body);
    rdb.key(types::STRING, "after").string(b"x");
    let keys = keys(&decode_all(&rdb.finish()).unwrap());
    assert_eq!(keys[0].0.kind, Kind::Module(id));
    assert_eq!(keys[0].0.kind.type_name(), "mymodtype");
    assert_eq!(keys[0].1, vec![ValuePart::Module(Bytes::from(body))]);
    assert_eq!(keys[1].0.key, "after");
}

#[test]
fn module_value_with_an_unknown_opcode_fails() {
    let id = ModuleId::from_name("mymodtype", 0).unwrap();
    let mut rdb = Rdb::redis(11);
    rdb.key(types::MODULE_2, "m").len(id.0).len(9).len(1).len(0);
    let err = decode_all(&rdb.finish()).unwrap_err();
    assert!(err.to_string().contains("opcode 9"), "{err}");
}

fn stream_node(master: StreamId, entries: &[(i64, u64, u64, &str)]) -> Vec<u8> {
    // Master entry with one field "f"; entries use the same fields.
    let live = entries.iter().filter(|e| e.0 & 1 == 0).count() as i64;
    let deleted = entries.len() as i64 - live;
    let mut lp = ListpackBuilder::new();
    lp.push_int(live);
    lp.push_int(deleted);
    lp.push_int(1);
    lp.push(b"f");
    lp.push_int(0);
    for (flags, ms, seq, value) in entries {
        lp.push_int(*flags);
        lp.push_int((ms - master.ms) as i64);
        lp.push_int((seq - master.seq) as i64);
        lp.push(value.as_bytes());
        lp.push_int(4);
    }
    lp.finish()
}

fn write_stream(rdb: &mut Rdb, type_byte: u8, nodes: &[(StreamId, Vec<u8>)]) {
    rdb.key(type_byte, "s").len(nodes.len() as u64);
    for (id, lp) in nodes {
        rdb.string(&id.to_be_bytes()).string(lp);
    }
}

#[test]
fn stream_type_21_with_groups() {
    let master = StreamId { ms: 1000, seq: 0 };
    let node = stream_node(master, &[(2, 1000, 0, "a"), (2, 1001, 3, "b")]);
    let mut rdb = Rdb::redis(11);
    write_stream(
        &mut rdb,
        types::STREAM_LISTPACKS_3,
        &[(master, node.clone())],
    );
    rdb.len(2).len(1001).len(3); // length, last id
    rdb.len(1000).len(0).len(0).len(0).len(2); // first id, max deleted, entries added
    rdb.len(1).string(b"grp").len(1001).len(3).len(2); // group, last delivered, entries read
    rdb.len(1)
        .raw(&StreamId { ms: 1001, seq: 3 }.to_be_bytes())
        .u64_le(555)
        .len(4);
    rdb.len(1)
        .string(b"alice")
        .u64_le(600)
        .u64_le(700)
        .len(1)
        .raw(&StreamId { ms: 1001, seq: 3 }.to_be_bytes());
    let (header, parts) = single_key(&rdb.finish());
    assert_eq!((header.kind, header.len), (Kind::Stream, Some(1)));
    assert_eq!(
        parts[0],
        ValuePart::StreamNode {
            master_id: master,
            listpack: Bytes::from(node)
        }
    );
    assert_eq!(
        parts[1],
        ValuePart::StreamMeta(StreamMeta {
            length: 2,
            last_id: StreamId { ms: 1001, seq: 3 },
            first_id: StreamId { ms: 1000, seq: 0 },
            max_deleted_id: StreamId::default(),
            entries_added: 2,
        })
    );
    let id = StreamId { ms: 1001, seq: 3 };
    assert_eq!(
        parts[2],
        ValuePart::StreamGroup(StreamGroup {
            name: b("grp"),
            last_delivered: id,
            entries_read: Some(2),
            pending: vec![PendingEntry {
                id,
                delivery_time_ms: 555,
                delivery_count: 4
            }],
            consumers: vec![StreamConsumer {
                name: b("alice"),
                seen_time_ms: 600,
                active_time_ms: Some(700),
                pending: vec![id]
            }],
        })
    );
    assert_eq!(parts.len(), 3);
}

#[test]
fn stream_type_19_has_no_active_time() {
    let master = StreamId { ms: 5, seq: 0 };
    let mut rdb = Rdb::redis(10);
    write_stream(
        &mut rdb,
        types::STREAM_LISTPACKS_2,
        &[(master, stream_node(master, &[(2, 5, 0, "v")]))],
    );
    rdb.len(1).len(5).len(0).len(5).len(0).len(0).len(0).len(1);
    rdb.len(1)
        .string(b"g")
        .len(5)
        .len(0)
        .len(1)
        .len(0)
        .len(1)
        .string(b"c")
        .u64_le(9)
        .len(0);
    let (_, parts) = single_key(&rdb.finish());
    let ValuePart::StreamGroup(group) = &parts[2] else {
        panic!("{:?}", parts[2])
    };
    assert_eq!(group.entries_read, Some(1));
    assert_eq!(group.consumers[0].active_time_ms, None);
    assert_eq!(group.consumers[0].seen_time_ms, 9);
}

#[test]
fn stream_type_15_derives_what_it_lacks() {
    // The first node has only a deleted entry; the first live one is in the second node.
    let first = StreamId { ms: 100, seq: 0 };
    let second = StreamId { ms: 200, seq: 0 };
    let mut rdb = Rdb::redis(9);
    write_stream(
        &mut rdb,
        types::STREAM_LISTPACKS,
        &[
            (first, stream_node(first, &[(3, 100, 0, "gone")])),
            (second, stream_node(second, &[(2, 205, 1, "x")])),
        ],
    );
    rdb.len(1).len(205).len(1); // length, last id
    rdb.len(1).string(b"g").len(0).len(0).len(0).len(0); // group: no entries read, empty PEL, no consumers
    let (_, parts) = single_key(&rdb.finish());
    assert_eq!(
        parts[2],
        ValuePart::StreamMeta(StreamMeta {
            length: 1,
            last_id: StreamId { ms: 205, seq: 1 },
            first_id: StreamId { ms: 205, seq: 1 },
            max_deleted_id: StreamId::default(),
            entries_added: 1,
        })
    );
    let ValuePart::StreamGroup(group) = &parts[3] else {
        panic!("{:?}", parts[3])
    };
    assert_eq!(group.entries_read, None);
}

#[test]
fn empty_type_15_stream_gets_the_servers_first_id() {
    let mut rdb = Rdb::redis(9);
    write_stream(&mut rdb, types::STREAM_LISTPACKS, &[]);
    rdb.len(0).len(7).len(0).len(0);
    let (_, parts) = single_key(&rdb.finish());
    let ValuePart::StreamMeta(meta) = &parts[0] else {
        panic!("{:?}", parts[0])
    };
    assert_eq!(
        meta.first_id,
        StreamId {
            ms: u64::MAX,
            seq: u64::MAX
        }
    );
    assert_eq!(parts.len(), 1);
}

#[test]
fn stream_node_id_must_be_16_bytes() {
    let mut rdb = Rdb::redis(11);
    rdb.key(types::STREAM_LISTPACKS_3, "s")
        .len(1)
        .string(b"short")
        .string(&listpack(&["1"]));
    let err = decode_all(&rdb.finish()).unwrap_err();
    assert!(err.to_string().contains("not 16"), "{err}");
}

// ---------------------------------------------------------------- errors

#[test]
fn unknown_type_byte_names_offset_and_byte() {
    let mut rdb = Rdb::redis(11);
    rdb.op(types::OP_SELECTDB).len(0);
    let offset = rdb.out.len() as u64;
    rdb.key(8, "k").string(b"v");
    let err = decode_all(&rdb.finish()).unwrap_err();
    assert!(
        matches!(&err, DecodeError::Unsupported { offset: o, what } if *o == offset && what.contains('8')),
        "{err}"
    );
    for type_byte in [26u8, 100, 242] {
        let mut rdb = Rdb::redis(12);
        rdb.key(type_byte, "k");
        let err = decode_all(&rdb.finish()).unwrap_err();
        assert!(
            err.to_string().contains(&format!("type byte {type_byte}")),
            "{err}"
        );
    }
}

#[test]
fn pre_ga_module_and_function_formats_are_unsupported() {
    let mut rdb = Rdb::redis(8);
    rdb.key(types::MODULE_PRE_GA, "m").len(1);
    let err = decode_all(&rdb.finish()).unwrap_err();
    assert!(
        matches!(err, DecodeError::Unsupported { offset: 9, .. }),
        "{err}"
    );
    let mut rdb = Rdb::redis(10);
    rdb.op(types::OP_FUNCTION_PRE_GA).string(b"code");
    let err = decode_all(&rdb.finish()).unwrap_err();
    assert!(
        matches!(err, DecodeError::Unsupported { offset: 9, .. }),
        "{err}"
    );
}

#[test]
fn bad_magic_and_versions() {
    assert!(matches!(
        decode_all(b"RIFF0011\xff"),
        Err(DecodeError::BadMagic { .. })
    ));
    assert!(matches!(
        decode_all(b"REDIS0013\xff"),
        Err(DecodeError::Unsupported { .. })
    ));
    assert!(matches!(
        decode_all(b"REDIS"),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn huge_claimed_lengths_fail_fast() {
    for len in [u64::from(u32::MAX), 1 << 40, u64::MAX] {
        let mut rdb = Rdb::redis(11);
        rdb.op(types::STRING);
        write_len(&mut rdb.out, len);
        rdb.raw(b"tiny");
        let err = decode_all(&rdb.out).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Truncated { .. } | DecodeError::Invalid { .. }
            ),
            "{err}"
        );
        // Element counts too: a list claiming 2^40 elements holding one.
        let mut rdb = Rdb::redis(11);
        rdb.key(types::LIST, "l").len(len).string(b"one");
        assert!(decode_all(&rdb.finish()).is_err());
    }
}

#[test]
fn lzf_with_impossible_expansion_is_rejected() {
    let mut rdb = Rdb::redis(11);
    rdb.key(types::STRING, "k")
        .op(0xc3)
        .len(4)
        .len(1 << 30)
        .raw(&[0, b'a', 0xe0, 0]);
    let err = decode_all(&rdb.finish()).unwrap_err();
    assert!(matches!(err, DecodeError::Invalid { .. }), "{err}");
}

#[test]
fn corrupt_embedded_structures_name_their_offset() {
    let mut rdb = Rdb::redis(11);
    let offset_of_blob = rdb.out.len() as u64 + 3; // type byte, key "z" (2 bytes)
    rdb.key(types::ZSET_LISTPACK, "z")
        .string(b"\x07\x00\x00\x00\x01\x00\x81");
    let err = decode_all(&rdb.finish()).unwrap_err();
    assert!(
        matches!(err, DecodeError::Structure { offset, .. } if offset == offset_of_blob),
        "{err}"
    );
}

#[test]
fn errors_end_the_iteration() {
    let mut decoder = Decoder::new(&b"REDIS0011\x08"[..]);
    assert!(matches!(decoder.next(), Some(Ok(Item::Header(_)))));
    assert!(matches!(decoder.next(), Some(Err(_))));
    assert!(decoder.next().is_none());
    assert!(decoder.next_item().unwrap().is_none());
}

/// A file with one key of every kind the decoder reads.
fn sample_file() -> Vec<u8> {
    let mut rdb = Rdb::redis(11);
    rdb.op(types::OP_AUX).string(b"redis-ver").string(b"7.2.0");
    rdb.op(types::OP_SELECTDB)
        .len(0)
        .op(types::OP_RESIZEDB)
        .len(9)
        .len(1);
    rdb.op(types::OP_EXPIRETIME_MS).u64_le(1_700_000_000_000);
    rdb.key(types::STRING, "s")
        .string(b"a string value longer than twenty bytes, compressed");
    rdb.key(types::LIST, "l").len(2).string(b"1").string(b"two");
    rdb.key(types::SET_INTSET, "i")
        .string(&intset::build(&[1, 2, 3]));
    rdb.key(types::ZSET_2, "z").len(1).string(b"m");
    write_f64_le(&mut rdb.out, 1.0);
    rdb.key(types::HASH_LISTPACK, "h")
        .string(&listpack(&["f", "v"]));
    rdb.key(types::LIST_QUICKLIST_2, "q")
        .len(1)
        .len(2)
        .string(&listpack(&["a", "b"]));
    let master = StreamId { ms: 1, seq: 0 };
    write_stream(
        &mut rdb,
        types::STREAM_LISTPACKS_3,
        &[(master, stream_node(master, &[(2, 1, 0, "v")]))],
    );
    rdb.len(1)
        .len(1)
        .len(0)
        .len(1)
        .len(0)
        .len(0)
        .len(0)
        .len(1)
        .len(0);
    let id = ModuleId::from_name("mymodtype", 1).unwrap();
    rdb.key(types::MODULE_2, "m")
        .len(id.0)
        .raw(&module_body(&[(types::MODULE_OP_UINT, &[7])]));
    rdb.key(types::HASH_ZIPMAP, "zm")
        .string(&zipmap::build(&[(b"k", b"v")]));
    rdb.finish()
}

#[test]
fn sample_file_decodes() {
    let items = decode_all(&sample_file()).unwrap();
    assert_eq!(keys(&items).len(), 9);
}

#[test]
fn truncation_at_every_byte_is_an_error() {
    let bytes = sample_file();
    for cut in 0..bytes.len() {
        let result = decode_all(&bytes[..cut]);
        assert!(result.is_err(), "decoding the first {cut} bytes succeeded");
    }
}

#[test]
fn every_single_byte_change_is_caught_or_harmless() {
    // Flipping any byte must never panic; past the header, with the checksum on, it must
    // also never pass. (A header turned into version 1–4 legitimately has no checksum.)
    let bytes = sample_file();
    for at in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut copy = bytes.clone();
            copy[at] ^= flip;
            let result = decode_all(&copy);
            assert!(
                at < 9 || result.is_err(),
                "flipping byte {at} by {flip:#x} went unnoticed"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_mutations_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = sample_file();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let cut = cut.index(bytes.len() + 1);
        let options = DecodeOptions { verify_checksum: false, max_part_elements: 2, ..DecodeOptions::default() };
        let _ = decode_with(&bytes[..cut], options);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_after_a_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        valkey in any::<bool>(),
        dump_version in prop_oneof![Just(9u16), Just(11), Just(12), Just(80)],
    ) {
        let mut bytes = if valkey { RdbVersion::valkey(80) } else { RdbVersion::redis(12) }.magic().to_vec();
        bytes.extend_from_slice(&body);
        let options = DecodeOptions { verify_checksum: false, ..DecodeOptions::default() };
        let _ = decode_with(&bytes, options);
        // The same bytes as a DUMP payload with a valid frame, so the value code runs.
        let mut payload = body.clone();
        payload.extend_from_slice(&dump_version.to_le_bytes());
        let crc = crate::crc64::checksum(&payload);
        payload.extend_from_slice(&crc.to_le_bytes());
        let _ = dump::decode_payload(Bytes::new(), &payload);
    }
}
