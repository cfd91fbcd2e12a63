//! Top-level records (AUX, module AUX, functions, database selection) and what precedes a
//! key's value: its expiry and eviction hints, type byte and name.

use crate::length::{write_len, write_millis, write_string};
use crate::model::{KeyHeader, ModuleId};
use crate::types;

pub(super) fn write_key_prelude(
    out: &mut Vec<u8>,
    header: &KeyHeader,
    type_byte: u8,
    compress: bool,
) {
    if let Some(ms) = header.expire_at_ms {
        out.push(types::OP_EXPIRETIME_MS);
        write_millis(out, ms);
    }
    if let Some(idle) = header.idle_secs {
        out.push(types::OP_IDLE);
        write_len(out, idle);
    }
    if let Some(freq) = header.freq {
        out.push(types::OP_FREQ);
        out.push(freq);
    }
    out.push(type_byte);
    write_string(out, &header.key, compress);
}

pub(super) fn write_aux(out: &mut Vec<u8>, key: &[u8], value: &[u8], compress: bool) {
    out.push(types::OP_AUX);
    write_string(out, key, compress);
    write_string(out, value, compress);
}

/// A module AUX record: the module id, its `when` as the UINT opcode pair every loader
/// expects first, then the module's own opcode stream (`body`, end marker included).
pub(super) fn write_module_aux(out: &mut Vec<u8>, module: ModuleId, when: u64, body: &[u8]) {
    out.push(types::OP_MODULE_AUX);
    write_len(out, module.0);
    write_len(out, types::MODULE_OP_UINT);
    write_len(out, when);
    out.extend_from_slice(body);
}

pub(super) fn write_function(out: &mut Vec<u8>, code: &[u8], compress: bool) {
    out.push(types::OP_FUNCTION2);
    write_string(out, code, compress);
}

pub(super) fn write_select_db(out: &mut Vec<u8>, db: u64) {
    out.push(types::OP_SELECTDB);
    write_len(out, db);
}

pub(super) fn write_resize_db(out: &mut Vec<u8>, keys: u64, expires: u64) {
    out.push(types::OP_RESIZEDB);
    write_len(out, keys);
    write_len(out, expires);
}

pub(super) fn write_slot_info(out: &mut Vec<u8>, slot: u64, keys: u64, expires: u64) {
    out.push(types::OP_SLOT_INFO);
    write_len(out, slot);
    write_len(out, keys);
    write_len(out, expires);
}
