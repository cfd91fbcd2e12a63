//! The 9-byte header: magic and format version.

use crate::error::DecodeError;
use crate::model::RdbVersion;

/// Redis format versions this decoder understands.
const REDIS_VERSIONS: std::ops::RangeInclusive<u16> = 1..=12;
/// Valkey format versions (`VALKEY` magic) this decoder understands.
const VALKEY_VERSIONS: [u16; 2] = [80, 81];

pub(crate) fn parse_header(raw: [u8; 9]) -> Result<RdbVersion, DecodeError> {
    if let Some(digits) = raw.strip_prefix(b"REDIS") {
        let number = parse_digits(digits).ok_or_else(|| bad_magic(&raw))?;
        if !REDIS_VERSIONS.contains(&number) {
            return Err(unsupported_version(
                5,
                format!("RDB version {number} (REDIS magic; 1 to 12 are)"),
            ));
        }
        return Ok(RdbVersion::redis(number));
    }
    if let Some(digits) = raw.strip_prefix(b"VALKEY") {
        let number = parse_digits(digits).ok_or_else(|| bad_magic(&raw))?;
        if !VALKEY_VERSIONS.contains(&number) {
            return Err(unsupported_version(
                6,
                format!("Valkey RDB version {number} (80 and 81 are)"),
            ));
        }
        return Ok(RdbVersion::valkey(number));
    }
    Err(bad_magic(&raw))
}

fn parse_digits(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u16, |acc, d| {
        acc.checked_mul(10)?.checked_add(u16::from(d - b'0'))
    })
}

fn bad_magic(raw: &[u8]) -> DecodeError {
    DecodeError::BadMagic {
        found: raw.escape_ascii().to_string(),
    }
}

fn unsupported_version(offset: u64, what: String) -> DecodeError {
    DecodeError::Unsupported { offset, what }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> Result<RdbVersion, DecodeError> {
        let mut raw = [0u8; 9];
        raw.copy_from_slice(text.as_bytes());
        parse_header(raw)
    }

    #[test]
    fn every_supported_version_round_trips_through_magic() {
        for number in 1..=12 {
            let version = RdbVersion::redis(number);
            assert_eq!(parse_header(version.magic()).unwrap(), version);
        }
        for number in [80, 81] {
            let version = RdbVersion::valkey(number);
            assert_eq!(parse_header(version.magic()).unwrap(), version);
        }
    }

    #[test]
    fn unknown_versions_name_the_version() {
        for text in ["REDIS0013", "REDIS0000", "VALKEY079", "VALKEY082"] {
            let err = header(text).unwrap_err();
            let number = text
                .trim_start_matches(char::is_alphabetic)
                .trim_start_matches('0');
            assert!(
                matches!(err, DecodeError::Unsupported { .. }),
                "{text}: {err}"
            );
            assert!(
                err.to_string().contains(&format!("version {number}")),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn other_magic_is_rejected() {
        for text in ["REDIX0011", "redis0011", "REDIS00x1", "\0\0\0\0\0\0\0\0\0"] {
            assert!(
                matches!(header(text), Err(DecodeError::BadMagic { .. })),
                "{text}"
            );
        }
    }
}
