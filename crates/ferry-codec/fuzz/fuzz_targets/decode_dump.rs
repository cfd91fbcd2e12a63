//! Any bytes as a DUMP payload. The trailing CRC64 is recomputed first, or nearly every
//! input would stop at the checksum and the value decoder would never run.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/it/mutation/check.rs"]
#[allow(dead_code)]
mod check;

fuzz_target!(|data: &[u8]| {
    let mut payload = data.to_vec();
    if payload.len() >= 10 {
        let covered = payload.len() - 8;
        let crc = ferry_codec::crc64(&payload[..covered]);
        payload[covered..].copy_from_slice(&crc.to_le_bytes());
    }
    if let Err(broken) = check::decode_payload(&payload) {
        panic!("{broken}");
    }
});
