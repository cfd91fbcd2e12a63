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
    pub type_byte: u8,
    /// The value after the type byte.
    pub body: &'a [u8],
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
