//! DUMP payloads: a type byte, the value as in an RDB file, a u16 LE RDB version and a
//! u64 LE CRC64 of everything before it.

use bytes::Bytes;

use crate::error::DecodeError;
use crate::model::{Flavor, KeyHeader, ValuePart};

use super::parts::Limits;
use super::reader::Reader;
use super::value;

/// Type byte + version + checksum.
const FRAME_LEN: usize = 1 + 2 + 8;
/// The first version number Valkey writes with its own type bytes.
const FIRST_VALKEY_VERSION: u16 = 80;

/// The parts of a DUMP payload, checksum verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpPayload<'a> {
    /// The value's type byte (see [`crate::types`]).
    pub type_byte: u8,
    /// The value after the type byte.
    pub body: &'a [u8],
    /// The RDB version of the server that wrote it; a server refuses newer ones.
    pub version: u16,
}

/// Splits a payload into its parts after checking its length and CRC64.
pub fn split_payload(payload: &[u8]) -> Result<DumpPayload<'_>, DecodeError> {
    if payload.len() < FRAME_LEN {
        return Err(DecodeError::Truncated {
            offset: payload.len() as u64,
            context: "a DUMP payload",
        });
    }
    let (covered, stored) = payload.split_at(payload.len() - 8);
    let mut stored_bytes = [0u8; 8];
    stored_bytes.copy_from_slice(stored);
    let stored = u64::from_le_bytes(stored_bytes);
    let computed = crate::crc64::checksum(covered);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    let (value, version) = covered.split_at(covered.len() - 2);
    Ok(DumpPayload {
        type_byte: value[0],
        body: &value[1..],
        version: u16::from_le_bytes([version[0], version[1]]),
    })
}

/// Decodes a DUMP payload with the file decoder's value code. The header has database 0 and
/// no expiry (a payload carries neither); type bytes 22/23 are read as Valkey's from
/// version 80 on. Byte offsets in errors count from the start of the payload.
pub fn decode_payload(
    key: Bytes,
    payload: &[u8],
) -> Result<(KeyHeader, Vec<ValuePart>), DecodeError> {
    let split = split_payload(payload)?;
    let flavor = if split.version >= FIRST_VALKEY_VERSION {
        Flavor::Valkey
    } else {
        Flavor::Redis
    };
    let limits = Limits::default();
    // Read the type byte through the reader too, so offsets match the payload's.
    let value_bytes = &payload[..payload.len() - 10];
    let mut reader = Reader::new(value_bytes);
    reader.disable_checksum();
    let type_byte = reader.read_u8("the type byte")?;
    value::check_type(type_byte, flavor, 0)?;
    let start = value::start_value(&mut reader, type_byte, flavor, &limits)?;
    let mut parts = start.parts;
    let mut state = start.state;
    while let Some(current) = state {
        let (part, next) = value::continue_value(&mut reader, current, &limits)?;
        parts.push(part);
        state = next;
    }
    if !reader.at_eof()? {
        return Err(reader.invalid(format!(
            "DUMP payload has {} bytes after its value",
            value_bytes.len() as u64 - reader.offset()
        )));
    }
    let header = KeyHeader {
        db: 0,
        key,
        expire_at_ms: None,
        idle_secs: None,
        freq: None,
        kind: start.kind,
        encoding: type_byte,
        len: start.len,
    };
    Ok((header, parts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::length::{write_len, write_millis, write_string};
    use crate::listpack::ListpackBuilder;
    use crate::model::{HashField, Kind};
    use crate::types;

    fn payload(type_byte: u8, body: &[u8], version: u16) -> Vec<u8> {
        let mut out = vec![type_byte];
        out.extend_from_slice(body);
        out.extend_from_slice(&version.to_le_bytes());
        let crc = crate::crc64::checksum(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn split_checks_the_checksum() {
        let mut good = payload(types::STRING, b"\x03abc", 11);
        let split = split_payload(&good).unwrap();
        assert_eq!(
            (split.type_byte, split.body, split.version),
            (0, &b"\x03abc"[..], 11)
        );
        let n = good.len();
        good[n - 1] ^= 1;
        assert!(matches!(
            split_payload(&good),
            Err(DecodeError::Checksum { .. })
        ));
        assert!(matches!(
            split_payload(&good[..10]),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn string_payload() {
        let mut body = Vec::new();
        write_string(&mut body, b"hello world, hello world, hello world", true);
        let (header, parts) =
            decode_payload(Bytes::from_static(b"k"), &payload(types::STRING, &body, 12)).unwrap();
        assert_eq!(
            (header.db, header.kind, header.expire_at_ms),
            (0, Kind::String, None)
        );
        assert_eq!(
            parts,
            vec![ValuePart::String(Bytes::from_static(
                b"hello world, hello world, hello world"
            ))]
        );
    }

    #[test]
    fn big_plain_collection_payload_comes_in_several_parts() {
        let mut body = Vec::new();
        write_len(&mut body, 3000);
        for i in 0..3000 {
            write_string(&mut body, format!("member-{i}").as_bytes(), true);
        }
        let (header, parts) =
            decode_payload(Bytes::from_static(b"s"), &payload(types::SET, &body, 11)).unwrap();
        assert_eq!(header.len, Some(3000));
        assert_eq!(parts.len(), 3);
        let total: usize = parts
            .iter()
            .map(|p| {
                if let ValuePart::SetMembers(m) = p {
                    m.len()
                } else {
                    0
                }
            })
            .sum();
        assert_eq!(total, 3000);
    }

    #[test]
    fn type_22_follows_the_payload_version() {
        // Valkey HASH_2 from version 80 on.
        let mut body = Vec::new();
        write_len(&mut body, 1);
        write_string(&mut body, b"f", true);
        write_string(&mut body, b"v", true);
        write_millis(&mut body, 1_900_000_000_000);
        let (_, parts) = decode_payload(Bytes::from_static(b"h"), &payload(22, &body, 80)).unwrap();
        let expected = HashField {
            field: Bytes::from_static(b"f"),
            value: Bytes::from_static(b"v"),
            expire_at_ms: Some(1_900_000_000_000),
        };
        assert_eq!(parts, vec![ValuePart::HashFields(vec![expected])]);
        // Under an older version the same type byte is Redis's pre-GA layout, which reads
        // these bytes differently and finds the payload malformed.
        assert!(decode_payload(Bytes::from_static(b"h"), &payload(22, &body, 12)).is_err());
    }

    #[test]
    fn redis_listpack_ex_payload() {
        let mut lp = ListpackBuilder::new();
        lp.push(b"f");
        lp.push(b"v");
        lp.push_int(1_800_000_000_000);
        let mut body = 1_800_000_000_000u64.to_le_bytes().to_vec();
        write_string(&mut body, &lp.finish(), true);
        let (header, parts) =
            decode_payload(Bytes::from_static(b"h"), &payload(25, &body, 12)).unwrap();
        assert_eq!(
            (header.kind, header.encoding, header.len),
            (Kind::Hash, 25, Some(1))
        );
        let ValuePart::HashFields(fields) = &parts[0] else {
            panic!("{parts:?}")
        };
        assert_eq!(fields[0].expire_at_ms, Some(1_800_000_000_000));
    }

    #[test]
    fn trailing_bytes_and_unknown_types_are_errors() {
        let err = decode_payload(Bytes::new(), &payload(types::STRING, b"\x01ab", 11)).unwrap_err();
        assert!(
            matches!(err, DecodeError::Invalid { offset: 3, .. }),
            "{err}"
        );
        let err = decode_payload(Bytes::new(), &payload(8, b"\x01a", 11)).unwrap_err();
        assert!(
            matches!(err, DecodeError::Unsupported { offset: 0, .. }),
            "{err}"
        );
        let err = decode_payload(Bytes::new(), &payload(types::STRING, b"\x05ab", 11)).unwrap_err();
        assert!(matches!(err, DecodeError::Truncated { .. }), "{err}");
    }
}
