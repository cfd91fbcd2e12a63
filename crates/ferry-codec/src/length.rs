//! RDB writer-side primitives: length prefixes, strings (with integer and LZF special
//! encodings), fixed-width numbers and (for tests) the ASCII scores of old sorted sets
//! and `read_len`, a slice-based length parser.

#[cfg(test)]
use crate::error::FormatError;
use crate::listpack::parse_canonical_int;
use crate::lzf;

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;
const SPECIAL: u8 = 0xC0;

/// Writes a length in the smallest form Redis's `rdbSaveLen` uses: 6-bit, 14-bit
/// big-endian, 0x80 + u32 BE, or 0x81 + u64 BE.
///
/// With [`write_string`], what it takes to build a module body by hand (for
/// [`ValuePart::Module`](crate::ValuePart::Module)): its opcodes and integers are lengths,
/// see [`crate::types`].
pub fn write_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if let Ok(l) = u32::try_from(len) {
        out.push(0x80);
        out.extend_from_slice(&l.to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Writes a string as Redis's `rdbSaveRawString` does: canonical integers of up to 11
/// bytes that fit i32 as int8/16/32 special encodings; otherwise, when `compress` is set
/// and the string is over 20 bytes, LZF if that saves at least 4 bytes (Redis's own
/// threshold); otherwise length + raw bytes.
pub fn write_string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= 11 {
        if let Some(v) = parse_canonical_int(s) {
            if let Ok(b) = i8::try_from(v) {
                out.extend_from_slice(&[SPECIAL | ENC_INT8, b as u8]);
                return;
            } else if let Ok(h) = i16::try_from(v) {
                out.push(SPECIAL | ENC_INT16);
                out.extend_from_slice(&h.to_le_bytes());
                return;
            } else if let Ok(w) = i32::try_from(v) {
                out.push(SPECIAL | ENC_INT32);
                out.extend_from_slice(&w.to_le_bytes());
                return;
            }
        }
    }
    if compress && s.len() > 20 {
        let mark = out.len();
        if let Some(packed) = lzf::compress_into(s, out) {
            if packed + 4 <= s.len() {
                out.push(SPECIAL | ENC_LZF);
                write_len(out, packed as u64);
                write_len(out, s.len() as u64);
                // The header went in after the data it announces: move it in front.
                let header = out.len() - mark - packed;
                out[mark..].rotate_right(header);
                return;
            }
            out.truncate(mark);
        }
    }
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

pub fn write_u64_le(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn write_i64_le(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn write_f64_le(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Writes an absolute expiry time in milliseconds (8 bytes LE).
pub fn write_millis(out: &mut Vec<u8>, ms: i64) {
    write_i64_le(out, ms);
}

/// Writes a type-3 (old zset) score: 1-byte length then ASCII, or 253 NaN, 254 +inf,
/// 255 -inf. Integral values print as integers like Redis; others as the shortest text
/// that parses back to the same double (what Redis's `fpconv_dtoa` produces, give or take
/// exponent notation, which every loader's `strtod` accepts). The encoder writes type 5
/// (binary scores) instead; tests build old files with it.
#[cfg(test)]
pub fn write_score_string(out: &mut Vec<u8>, score: f64) {
    if score.is_nan() {
        out.push(253);
        return;
    }
    if score.is_infinite() {
        out.push(if score > 0.0 { 254 } else { 255 });
        return;
    }
    // Redis prints integers only within ±LLONG_MAX/2 (its double2ll check).
    let text = if score.fract() == 0.0 && score.abs() <= (i64::MAX / 2) as f64 {
        (score as i64).to_string()
    } else if score.abs() >= 1e17 || score.abs() < 1e-5 {
        format!("{score:e}")
    } else {
        format!("{score}")
    };
    // At most ~24 characters, so the length byte never collides with 253..=255.
    out.push(text.len() as u8);
    out.extend_from_slice(text.as_bytes());
}

/// One RDB length field: a plain length, or the tag of a special string encoding.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    Len(u64),
    /// 0 int8, 1 int16, 2 int32, 3 LZF.
    Encoded(u8),
}

/// Parses one length at the start of `buf`; returns it and the bytes consumed.
#[cfg(test)]
pub fn read_len(buf: &[u8]) -> Result<(Length, usize), FormatError> {
    const S: &str = "length";
    let first = *buf
        .first()
        .ok_or_else(|| FormatError::new(S, 0, "empty input"))?;
    let truncated =
        || FormatError::new(S, 0, format!("truncated length (first byte 0x{first:02x})"));
    match first >> 6 {
        0 => Ok((Length::Len(u64::from(first & 0x3F)), 1)),
        1 => {
            let lo = *buf.get(1).ok_or_else(truncated)?;
            Ok((
                Length::Len((u64::from(first & 0x3F) << 8) | u64::from(lo)),
                2,
            ))
        }
        2 => match first {
            0x80 => {
                let b = buf.get(1..5).ok_or_else(truncated)?;
                Ok((
                    Length::Len(u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
                    5,
                ))
            }
            0x81 => {
                let b = buf.get(1..9).ok_or_else(truncated)?;
                let mut raw = [0u8; 8];
                raw.copy_from_slice(b);
                Ok((Length::Len(u64::from_be_bytes(raw)), 9))
            }
            _ => Err(FormatError::new(
                S,
                0,
                format!("unknown length prefix 0x{first:02x}"),
            )),
        },
        _ => match first & 0x3F {
            tag @ (ENC_INT8 | ENC_INT16 | ENC_INT32 | ENC_LZF) => Ok((Length::Encoded(tag), 1)),
            tag => Err(FormatError::new(
                S,
                0,
                format!("unknown string encoding {tag}"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads back a string written by `write_string` (test-side decoder).
    fn read_string(buf: &[u8]) -> (Vec<u8>, usize) {
        let (len, n) = read_len(buf).unwrap();
        match len {
            Length::Len(l) => (buf[n..n + l as usize].to_vec(), n + l as usize),
            Length::Encoded(ENC_INT8) => ((buf[1] as i8).to_string().into_bytes(), 2),
            Length::Encoded(ENC_INT16) => (
                i16::from_le_bytes([buf[1], buf[2]])
                    .to_string()
                    .into_bytes(),
                3,
            ),
            Length::Encoded(ENC_INT32) => (
                i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]])
                    .to_string()
                    .into_bytes(),
                5,
            ),
            Length::Encoded(_) => {
                let (Length::Len(clen), a) = read_len(&buf[1..]).unwrap() else {
                    panic!()
                };
                let (Length::Len(ulen), b) = read_len(&buf[1 + a..]).unwrap() else {
                    panic!()
                };
                let start = 1 + a + b;
                let data =
                    lzf::decompress(&buf[start..start + clen as usize], ulen as usize).unwrap();
                (data, start + clen as usize)
            }
        }
    }

    #[test]
    fn length_forms_switch_where_redis_switches() {
        let cases: [(u64, &[u8]); 7] = [
            (0, &[0x00]),
            (63, &[0x3F]),
            (64, &[0x40, 0x40]),
            (16383, &[0x7F, 0xFF]),
            (16384, &[0x80, 0, 0, 0x40, 0]),
            (u64::from(u32::MAX), &[0x80, 0xFF, 0xFF, 0xFF, 0xFF]),
            (1 << 32, &[0x81, 0, 0, 0, 1, 0, 0, 0, 0]),
        ];
        for (len, bytes) in cases {
            let mut out = Vec::new();
            write_len(&mut out, len);
            assert_eq!(out, bytes, "{len}");
            assert_eq!(read_len(&out).unwrap(), (Length::Len(len), bytes.len()));
        }
    }

    #[test]
    fn integer_strings_use_special_encodings() {
        let enc = |s: &[u8]| {
            let mut out = Vec::new();
            write_string(&mut out, s, true);
            out
        };
        assert_eq!(enc(b"-1"), vec![0xC0, 0xFF]);
        assert_eq!(enc(b"300"), vec![0xC1, 0x2C, 0x01]);
        assert_eq!(enc(b"-2147483648"), vec![0xC2, 0, 0, 0, 0x80]);
        // Fits i64 but not i32, or not canonical: stays a raw string.
        assert_eq!(enc(b"2147483648"), [&[10u8][..], b"2147483648"].concat());
        assert_eq!(enc(b"007"), vec![3, b'0', b'0', b'7']);
        assert_eq!(enc(b""), vec![0]);
    }

    #[test]
    fn long_repetitive_strings_are_compressed_only_when_asked() {
        let s = b"abcabcabcabcabcabcabcabcabcabc";
        let mut out = Vec::new();
        write_string(&mut out, s, true);
        assert_eq!(out[0], 0xC3);
        assert_eq!(read_string(&out), (s.to_vec(), out.len()));
        let mut out = Vec::new();
        write_string(&mut out, s, false);
        assert_eq!(out[0] as usize, s.len());
    }

    #[test]
    fn scores_round_trip_as_text() {
        for (score, text) in [(1.0, "1"), (-0.5, "-0.5"), (0.1, "0.1"), (1e300, "1e300")] {
            let mut out = Vec::new();
            write_score_string(&mut out, score);
            assert_eq!(&out[1..], text.as_bytes());
            assert_eq!(out[0] as usize, text.len());
        }
        for (score, tag) in [
            (f64::NAN, 253),
            (f64::INFINITY, 254),
            (f64::NEG_INFINITY, 255),
        ] {
            let mut out = Vec::new();
            write_score_string(&mut out, score);
            assert_eq!(out, vec![tag]);
        }
    }

    #[test]
    fn read_len_rejects_unknown_prefixes() {
        assert!(read_len(&[0x82, 0, 0, 0, 0]).is_err());
        assert!(read_len(&[0xC4]).is_err());
        assert!(read_len(&[0x80, 0, 0]).is_err());
        assert!(read_len(&[]).is_err());
        assert_eq!(read_len(&[0xC3]).unwrap(), (Length::Encoded(3), 1));
    }

    proptest! {
        #[test]
        fn strings_round_trip(s in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            any::<i64>().prop_map(|v| v.to_string().into_bytes()),
            "(ab|cd|[0-9]){0,60}".prop_map(String::into_bytes),
        ], compress in any::<bool>()) {
            let mut out = Vec::new();
            write_string(&mut out, &s, compress);
            prop_assert_eq!(read_string(&out), (s.clone(), out.len()));
        }

        #[test]
        fn lengths_round_trip(len in prop_oneof![0u64..100, 0u64..20000, any::<u32>().prop_map(u64::from), any::<u64>()]) {
            let mut out = Vec::new();
            write_len(&mut out, len);
            prop_assert_eq!(read_len(&out).unwrap(), (Length::Len(len), out.len()));
        }

        #[test]
        fn finite_scores_parse_back_exactly(bits in any::<u64>()) {
            let score = f64::from_bits(bits);
            prop_assume!(score.is_finite());
            let mut out = Vec::new();
            write_score_string(&mut out, score);
            prop_assert_eq!(out[0] as usize, out.len() - 1);
            prop_assert!(out[0] < 253);
            let text = std::str::from_utf8(&out[1..]).unwrap();
            let parsed: f64 = text.parse().unwrap();
            prop_assert!(parsed == score, "{} -> {} -> {}", score, text, parsed);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..12)) {
            if let Ok((_, n)) = read_len(&data) {
                prop_assert!(n <= data.len());
            }
        }
    }
}
