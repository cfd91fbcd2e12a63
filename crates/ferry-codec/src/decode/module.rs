//! Module values and module AUX data: a sequence of typed values ending with opcode 0.
//! Every value carries its type, so any module's data can be walked without the module.

use std::io::Read;

use bytes::Bytes;

use crate::error::DecodeError;
use crate::types;

use super::reader::{Len, Reader};

/// One typed value of a module's serialized data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ModuleValue {
    Signed(i64),
    Unsigned(u64),
    Float(f32),
    Double(f64),
    String(Bytes),
    Eof,
}

/// Copies a module body, up to and including its end marker, exactly as stored.
pub(crate) fn capture_body<R: Read>(reader: &mut Reader<R>) -> Result<Bytes, DecodeError> {
    let mut raw = Vec::new();
    loop {
        let opcode = reader.read_len_raw(&mut raw, "a module value opcode")?;
        let opcode = plain(reader, opcode)?;
        match opcode {
            types::MODULE_OP_EOF => return Ok(Bytes::from(raw)),
            types::MODULE_OP_SINT | types::MODULE_OP_UINT => {
                let value = reader.read_len_raw(&mut raw, "a module integer")?;
                plain(reader, value)?;
            }
            types::MODULE_OP_FLOAT => reader.copy_into(4, &mut raw, "a module float")?,
            types::MODULE_OP_DOUBLE => reader.copy_into(8, &mut raw, "a module double")?,
            types::MODULE_OP_STRING => reader.copy_string_raw(&mut raw, "a module string")?,
            other => return Err(unknown_opcode(reader, other)),
        }
    }
}

/// Reads the next typed value.
pub(crate) fn read_value<R: Read>(reader: &mut Reader<R>) -> Result<ModuleValue, DecodeError> {
    let opcode = reader.read_len("a module value opcode")?;
    Ok(match opcode {
        types::MODULE_OP_EOF => ModuleValue::Eof,
        types::MODULE_OP_SINT => ModuleValue::Signed(reader.read_len("a module integer")? as i64),
        types::MODULE_OP_UINT => ModuleValue::Unsigned(reader.read_len("a module integer")?),
        types::MODULE_OP_FLOAT => {
            ModuleValue::Float(f32::from_le_bytes(reader.read_array("a module float")?))
        }
        types::MODULE_OP_DOUBLE => ModuleValue::Double(reader.read_f64_le("a module double")?),
        types::MODULE_OP_STRING => ModuleValue::String(reader.read_string("a module string")?),
        other => return Err(unknown_opcode(reader, other)),
    })
}

fn plain<R: Read>(reader: &Reader<R>, len: Len) -> Result<u64, DecodeError> {
    match len {
        Len::Plain(n) => Ok(n),
        Len::Encoded(_) => Err(reader.invalid_at(
            1,
            "expected a length in a module value, found a string encoding".into(),
        )),
    }
}

fn unknown_opcode<R: Read>(reader: &Reader<R>, opcode: u64) -> DecodeError {
    reader.invalid(format!("unknown module value opcode {opcode}"))
}
