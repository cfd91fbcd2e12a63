//! Any bytes as an RDB file: decoding must end in an item sequence that keeps the rules of
//! `tests/it/mutation/check.rs` or an error naming a byte of the input, never a panic, and
//! must not depend on how the source splits its reads.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/it/mutation/check.rs"]
#[allow(dead_code)]
mod check;

fuzz_target!(|data: &[u8]| {
    let whole = check::decode_file(data, data.len() as u64, true).unwrap_or_else(|e| panic!("{e}"));
    // Reads of 1..=16 bytes move every buffer refill to a different place.
    let chunk = 1 + data.len() % 16;
    let chunked = check::decode_file(check::Chunked { data, chunk }, data.len() as u64, true)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        whole.same_as(&chunked),
        "decoding differs when the source reads {chunk} bytes at a time: {} items, error {:?} vs {} items, error {:?}",
        whole.items, whole.error, chunked.items, chunked.error
    );
});
