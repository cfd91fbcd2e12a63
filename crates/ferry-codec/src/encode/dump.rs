//! DUMP payloads: what `RESTORE` takes.

use super::buffer::{part_fits, part_name, ValueBuffer};
use super::choose::{choose, key_name};
use super::{module, value};
use crate::error::EncodeError;
use crate::length::{write_string, write_u64_le};
use crate::model::{KeyHeader, Kind, ValuePart};
use crate::target::Format;
use crate::{crc64, types};

/// Encodes one value as a DUMP payload for `format`: type byte, value, the format's RDB
/// version (u16 LE) and the CRC64 of all that (u64 LE). The value gets the same encoding
/// an RDB file of that format would give it; strings are LZF-compressed as servers do.
pub fn encode_payload(
    format: Format,
    header: &KeyHeader,
    parts: &[ValuePart],
) -> Result<Vec<u8>, EncodeError> {
    const COMPRESS: bool = true;
    if let Some(part) = parts.iter().find(|p| !part_fits(header.kind, p)) {
        return Err(EncodeError::Sequence(format!(
            "key {:?}: a {} part in a {} value",
            key_name(header),
            part_name(part),
            header.kind.type_name()
        )));
    }
    let mut out = Vec::new();
    match (header.kind, parts) {
        (Kind::String, [ValuePart::String(s)]) => {
            out.push(types::STRING);
            write_string(&mut out, s, COMPRESS);
        }
        (Kind::Module(id), [ValuePart::Module(body)]) => {
            out.push(types::MODULE_2);
            module::write_module_id(&mut out, id);
            out.extend_from_slice(body);
        }
        (Kind::String | Kind::Module(_), _) => {
            return Err(EncodeError::Sequence(format!(
                "key {:?}: a {} value comes in exactly one part, not {}",
                key_name(header),
                header.kind.type_name(),
                parts.len()
            )));
        }
        _ => {
            let mut buffered = ValueBuffer::default();
            for part in parts {
                super::check_stream_order(header, &buffered, part)?;
                buffered.add(part);
            }
            let encoding = choose(&format, header, &buffered)?;
            out.push(encoding.type_byte(&format));
            value::write_value(&format, header, &encoding, &buffered, &mut out, COMPRESS)?;
        }
    }
    out.extend_from_slice(&format.dump_version().to_le_bytes());
    let checksum = crc64::checksum(&out);
    write_u64_le(&mut out, checksum);
    Ok(out)
}
