//! CRC-64/Jones as Redis uses it for RDB files and DUMP payloads.

use crc::{Crc, Digest, Table, CRC_64_REDIS};

/// Slice-by-16 tables: the checksum runs over every byte of every file, so its speed matters.
pub static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

/// The CRC64 that ends an RDB file (over all bytes before it) and a DUMP payload.
pub fn checksum(data: &[u8]) -> u64 {
    CRC64.checksum(data)
}

/// A running checksum over bytes fed in pieces.
pub fn digest() -> Digest<'static, u64, Table<16>> {
    CRC64.digest()
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_the_published_check_value() {
        assert_eq!(super::checksum(b"123456789"), 0xe9c6d914c4b8d9ca);
    }
}
