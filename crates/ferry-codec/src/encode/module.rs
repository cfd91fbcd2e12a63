//! Module values (`MODULE_2`): the module id, then the module's own serialized body, which
//! passes through untouched.

use crate::length::write_len;
use crate::model::ModuleId;

/// What comes between the key name and the module's body.
pub(super) fn write_module_id(out: &mut Vec<u8>, module: ModuleId) {
    write_len(out, module.0);
}
