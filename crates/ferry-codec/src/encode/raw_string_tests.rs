//! A string key written from its stored bytes ([`Encoder::write_raw_string_key`]) comes
//! out exactly as when its value goes through the items.

use proptest::prelude::*;

use super::*;
use crate::decode::Decoder;
use crate::length::{write_len, write_string};
use crate::{crc64, lzf};

/// How a test file stores a string value.
#[derive(Debug, Clone, Copy)]
enum Stored {
    /// As a server writes it, with or without LZF.
    Canonical { compress: bool },
    /// A 32-bit length field even for a short string.
    WideLength,
    /// LZF when the data compresses at all, with 32-bit length fields.
    WideLzf,
    /// An integer in 4 bytes even when it fits in fewer.
    WideInt,
}

fn store(out: &mut Vec<u8>, value: &[u8], stored: Stored) {
    match stored {
        Stored::Canonical { compress } => write_string(out, value, compress),
        Stored::WideLzf if lzf::compress(value).is_some() => {
            let packed = lzf::compress(value).unwrap_or_default();
            out.push(0xC3);
            out.push(0x80);
            out.extend_from_slice(&(packed.len() as u32).to_be_bytes());
            out.push(0x80);
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(&packed);
        }
        Stored::WideInt
            if crate::listpack::parse_canonical_int(value)
                .is_some_and(|v| i32::try_from(v).is_ok()) =>
        {
            let v = crate::listpack::parse_canonical_int(value).unwrap_or_default();
            out.push(0xC2);
            out.extend_from_slice(&(v as i32).to_le_bytes());
        }
        Stored::WideLength | Stored::WideLzf | Stored::WideInt => {
            out.push(0x80);
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value);
        }
    }
}

/// An RDB 12 file of string keys `k0`, `k1`, ...; odd keys expire, keys from the middle on
/// live in database 2.
fn file(values: &[(Vec<u8>, Stored)]) -> Vec<u8> {
    let mut out = b"REDIS0012".to_vec();
    for (i, (value, stored)) in values.iter().enumerate() {
        if i == values.len() / 2 {
            out.push(types::OP_SELECTDB);
            write_len(&mut out, 2);
        }
        if i % 2 == 1 {
            out.push(types::OP_EXPIRETIME_MS);
            out.extend_from_slice(&(1_900_000_000_000i64 + i as i64).to_le_bytes());
        }
        out.push(types::STRING);
        write_string(&mut out, format!("k{i}").as_bytes(), false);
        store(&mut out, value, *stored);
    }
    out.push(types::OP_EOF);
    let checksum = crc64::checksum(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

fn encoder(compress: bool) -> Encoder<Vec<u8>> {
    let options = EncodeOptions {
        compress,
        ..EncodeOptions::default()
    };
    Encoder::new(
        Vec::new(),
        Format::from_rdb_version(11).expect("RDB 11"),
        options,
    )
}

/// Every item through the encoder.
fn via_items(input: &[u8], compress: bool) -> Vec<u8> {
    let mut encoder = encoder(compress);
    for item in Decoder::new(input) {
        encoder
            .write_item(&item.expect("decodes"))
            .expect("encodes");
    }
    encoder.finish().expect("finishes")
}

/// String keys from their stored bytes, everything else as items.
fn via_raw_strings(input: &[u8], compress: bool) -> Vec<u8> {
    let mut encoder = encoder(compress);
    let mut decoder = Decoder::new(input);
    while let Some(item) = decoder.next_item().expect("decodes") {
        match item {
            Item::KeyStart(header) if header.kind == Kind::String => {
                let value = decoder.take_raw_string().expect("a stored string");
                encoder
                    .write_raw_string_key(&header, &value)
                    .expect("encodes");
            }
            other => encoder.write_item(&other).expect("encodes"),
        }
    }
    encoder.finish().expect("finishes")
}

fn arb_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Short text, integers of every width, long compressible and incompressible data,
        // and strings longer than the decoder's read chunk.
        proptest::collection::vec(b'a'..b'e', 0..30),
        any::<i64>().prop_map(|v| v.to_string().into_bytes()),
        any::<i16>().prop_map(|v| v.to_string().into_bytes()),
        (1usize..3000).prop_map(|n| b"abc".repeat(n)),
        proptest::collection::vec(any::<u8>(), 20..400),
        (70_000usize..140_000, any::<u8>()).prop_map(|(n, seed)| {
            (0..n)
                .map(|i| ((i * 31) as u8) ^ seed ^ (i / 7) as u8)
                .collect()
        }),
    ]
}

fn arb_stored() -> impl Strategy<Value = Stored> {
    prop_oneof![
        any::<bool>().prop_map(|compress| Stored::Canonical { compress }),
        Just(Stored::WideLength),
        Just(Stored::WideLzf),
        Just(Stored::WideInt),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn stored_strings_encode_exactly_as_their_values(
        values in proptest::collection::vec((arb_value(), arb_stored()), 1..8),
    ) {
        let input = file(&values);
        for compress in [true, false] {
            prop_assert_eq!(via_raw_strings(&input, compress), via_items(&input, compress));
        }
    }
}

#[test]
fn stored_values_read_as_the_decoder_reads_them() {
    let values = [
        (b"12".to_vec(), Stored::WideInt),
        (b"hello".to_vec(), Stored::WideLength),
        (b"xyz".repeat(40), Stored::WideLzf),
        (b"-70000".to_vec(), Stored::Canonical { compress: true }),
    ];
    let input = file(&values);
    let mut decoder = Decoder::new(&input[..]);
    let mut seen = Vec::new();
    while let Some(item) = decoder.next_item().unwrap() {
        if let Item::KeyStart(_) = item {
            let value = decoder.take_raw_string().unwrap();
            seen.push(value.value().unwrap().to_vec());
        }
    }
    let expected: Vec<Vec<u8>> = values.iter().map(|(v, _)| v.clone()).collect();
    assert_eq!(seen, expected);
}

#[test]
fn corrupt_lzf_data_is_refused_where_it_starts() {
    let mut input = file(&[(b"xyz".repeat(40), Stored::WideLzf)]);
    // The LZF data starts after magic, SELECTDB 2, type, key "k0" and the 11-byte prefix;
    // a back-reference before the start of the output is corrupt.
    let data_at = 9 + 2 + 1 + 3 + 11;
    input[data_at] = 0xE0;
    input[data_at + 1] = 0xFF;
    let mut decoder = Decoder::new(&input[..]);
    while !matches!(decoder.next_item().unwrap(), Some(Item::KeyStart(_))) {}
    let err = decoder.take_raw_string().unwrap_err();
    assert_eq!(err.offset(), Some(data_at as u64), "{err}");
}

#[test]
fn corrupt_lzf_data_is_refused_as_when_read() {
    for stored in [Stored::Canonical { compress: true }, Stored::WideLzf] {
        let mut input = file(&[(b"xyz".repeat(40), stored)]);
        // The first LZF control byte becomes a back-reference with nothing before it.
        let data_at = input.len() - 9 - lzf::compress(&b"xyz".repeat(40)).unwrap().len();
        input[data_at] = 0xE0;
        let read = Decoder::new(&input[..])
            .find_map(Result::err)
            .expect("reading fails");
        let mut decoder = Decoder::new(&input[..]);
        while !matches!(decoder.next_item().unwrap(), Some(Item::KeyStart(_))) {}
        let taken = decoder.take_raw_string().unwrap_err();
        assert_eq!(taken.to_string(), read.to_string(), "{stored:?}");
        assert_eq!(taken.offset(), Some(data_at as u64));
    }
}

#[test]
fn only_a_string_value_can_be_taken_stored() {
    let input = file(&[(b"v".to_vec(), Stored::WideLength)]);
    let mut decoder = Decoder::new(&input[..]);
    assert!(decoder.take_raw_string().is_err(), "before the header");
    while !matches!(decoder.next_item().unwrap(), Some(Item::KeyStart(_))) {
        assert!(decoder.take_raw_string().is_err(), "before the key");
    }
    decoder.take_raw_string().unwrap();
    assert!(decoder.take_raw_string().is_err(), "a second time");
    assert!(matches!(
        decoder.next_item().unwrap(),
        Some(Item::End { .. })
    ));
}

/// Decodes `input` item by item, or taking string values stored / skipping them; true
/// when the whole file decodes.
fn decodes(input: &[u8], how: &str) -> bool {
    let mut decoder = Decoder::new(input);
    loop {
        match decoder.next_item() {
            Ok(Some(Item::KeyStart(header))) if header.kind == Kind::String => {
                let taken = match how {
                    "raw" => decoder.take_raw_string().map(drop),
                    "skip" => decoder.skip_value(),
                    _ => continue,
                };
                if taken.is_err() {
                    return false;
                }
            }
            Ok(Some(Item::End { .. })) => return true,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return false,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Damaged strings are refused (never a panic) whichever way they are read, and a file
    /// one way accepts the others accept too. The checksum is recomputed after the damage
    /// so that the string checks themselves are what is tested.
    #[test]
    fn damaged_strings_are_refused_the_same_way_by_every_path(
        values in proptest::collection::vec((arb_value(), arb_stored()), 1..5),
        damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut input = file(&values);
        let body = input.len() - 8;
        for (at, byte) in damage {
            // After the magic, before the checksum.
            input[9 + at.index(body - 9)] = byte;
        }
        let checksum = crc64::checksum(&input[..body]);
        input[body..].copy_from_slice(&checksum.to_le_bytes());
        let read = decodes(&input, "items");
        prop_assert_eq!(decodes(&input, "raw"), read);
        prop_assert_eq!(decodes(&input, "skip"), read);
    }
}
