//! CRC-64/Jones as Redis uses it for RDB files and DUMP payloads.
//!
//! The checksum runs over every byte read and every byte written, so its speed sets much of a
//! conversion's pace. `crc-fast` computes it by carry-less multiplication (PCLMULQDQ/PMULL,
//! with a table fallback on other CPUs): about 20 GB/s on 64 KiB pieces where the `crc`
//! crate's slice-by-16 table does about 1 GB/s on this project's machine. Its setup costs
//! more than the table on a few dozen bytes, which is what a small DUMP payload is.

use crc::{Crc, Table, CRC_64_REDIS};
use crc_fast::CrcAlgorithm::Crc64Redis;

/// Below this length the table is the faster of the two (measured: even at 64 bytes).
const CARRYLESS_FROM: usize = 64;

static TABLE: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

/// The CRC64 that ends an RDB file (over all bytes before it) and a DUMP payload.
pub fn checksum(data: &[u8]) -> u64 {
    if data.len() < CARRYLESS_FROM {
        TABLE.checksum(data)
    } else {
        crc_fast::checksum(Crc64Redis, data)
    }
}

/// A running checksum over bytes fed in pieces (the reader's and writer's 64 KiB blocks).
#[derive(Clone)]
pub struct Digest(crc_fast::Digest);

impl Digest {
    pub fn new() -> Self {
        Self(crc_fast::Digest::new(Crc64Redis))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The checksum of everything fed so far; more may still be fed.
    pub fn value(&self) -> u64 {
        self.0.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_check_value() {
        assert_eq!(checksum(b"123456789"), 0xe9c6d914c4b8d9ca);
        let mut digest = Digest::new();
        digest.update(b"123456789");
        assert_eq!(digest.value(), 0xe9c6d914c4b8d9ca);
    }

    #[test]
    fn both_implementations_agree_at_every_length_and_split() {
        let data: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in [
            0, 1, 7, 63, 64, 65, 127, 128, 129, 255, 256, 1000, 4096, 5000,
        ] {
            let data = &data[..len];
            let expected = TABLE.checksum(data);
            assert_eq!(checksum(data), expected, "len {len}");
            for split in [0, 1.min(len), len / 3, len / 2, len.saturating_sub(1), len] {
                let mut digest = Digest::new();
                digest.update(&data[..split]);
                digest.update(&data[split..]);
                assert_eq!(digest.value(), expected, "len {len} split {split}");
            }
        }
    }
}
