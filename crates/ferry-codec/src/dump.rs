//! DUMP payloads (`DUMP`/`RESTORE`): a type byte, a value body, the RDB version and a CRC64.
//! Decoded and encoded by the same value code as RDB files.

pub use crate::decode::dump::{decode_payload as decode, split_payload, DumpPayload};
pub use crate::encode::dump::encode_payload as encode;
