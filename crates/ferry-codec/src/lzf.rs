//! LZF, the compression RDB files use for strings over 20 bytes.
//!
//! The stream is a sequence of items. A control byte below 32 starts a literal run of
//! `ctrl + 1` bytes. Otherwise it is a back-reference: length code `ctrl >> 5` (7 means an
//! extra byte follows and is added), then one byte that, with the low 5 bits of `ctrl`,
//! gives the distance minus one; it copies `length code + 2` bytes, possibly overlapping.

use crate::error::FormatError;

const STRUCTURE: &str = "LZF block";
const MAX_LITERAL_RUN: usize = 32;
const MAX_DISTANCE: usize = 1 << 13;
const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 7 + 255 + 2;
/// The most output one input byte can produce: a 3-byte back-reference yields 264 bytes.
const MAX_EXPANSION: usize = MAX_MATCH.div_ceil(3);

fn err(at: usize, problem: impl Into<String>) -> FormatError {
    FormatError::new(STRUCTURE, at, problem)
}

/// Decompresses `input`, which must expand to exactly `expected_len` bytes.
pub fn decompress(input: &[u8], expected_len: usize) -> Result<Vec<u8>, FormatError> {
    // Refuse impossible lengths before allocating, so a corrupt length cannot make us
    // reserve gigabytes.
    if expected_len > input.len().saturating_mul(MAX_EXPANSION) {
        return Err(err(
            0,
            format!("{} bytes cannot expand to {expected_len}", input.len()),
        ));
    }
    let mut out: Vec<u8> = Vec::with_capacity(expected_len);
    let mut ip = 0;
    while ip < input.len() {
        let at = ip;
        let ctrl = usize::from(input[ip]);
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            let lit = input
                .get(ip..ip + run)
                .ok_or_else(|| err(at, "literal run past the end of the input"))?;
            if out.len() + run > expected_len {
                return Err(err(
                    at,
                    format!("output exceeds the expected {expected_len} bytes"),
                ));
            }
            out.extend_from_slice(lit);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(
                    *input
                        .get(ip)
                        .ok_or_else(|| err(at, "truncated back-reference"))?,
                );
                ip += 1;
            }
            let low = usize::from(
                *input
                    .get(ip)
                    .ok_or_else(|| err(at, "truncated back-reference"))?,
            );
            ip += 1;
            let distance = ((ctrl & 0x1F) << 8) + low + 1;
            let len = len + 2;
            if distance > out.len() {
                return Err(err(
                    at,
                    format!(
                        "back-reference {distance} bytes back, only {} written",
                        out.len()
                    ),
                ));
            }
            if out.len() + len > expected_len {
                return Err(err(
                    at,
                    format!("output exceeds the expected {expected_len} bytes"),
                ));
            }
            let from = out.len() - distance;
            if distance >= len {
                out.extend_from_within(from..from + len);
            } else {
                // Overlapping copy repeats the last `distance` bytes; must go byte by byte.
                for i in 0..len {
                    let b = out[from + i];
                    out.push(b);
                }
            }
        }
    }
    if out.len() != expected_len {
        return Err(err(
            input.len(),
            format!("expands to {} bytes, expected {expected_len}", out.len()),
        ));
    }
    Ok(out)
}

fn flush_literals(out: &mut Vec<u8>, literals: &[u8]) {
    for chunk in literals.chunks(MAX_LITERAL_RUN) {
        out.push((chunk.len() - 1) as u8);
        out.extend_from_slice(chunk);
    }
}

fn hash(input: &[u8], i: usize, bits: u32) -> usize {
    let v = u32::from(input[i]) | (u32::from(input[i + 1]) << 8) | (u32::from(input[i + 2]) << 16);
    (v.wrapping_mul(2_654_435_761) >> (32 - bits)) as usize
}

/// Compresses `input` into standard LZF (readable by Redis and Valkey `lzf_decompress`).
/// Returns `None` unless the result is strictly smaller than the input.
pub fn compress(input: &[u8]) -> Option<Vec<u8>> {
    let n = input.len();
    if n < 4 || u32::try_from(n).is_err() {
        return None;
    }
    // Size the hash table to the input so the many short strings of a typical dataset
    // do not each pay for zeroing a large table.
    let bits = (usize::BITS - n.leading_zeros()).clamp(8, 14);
    let mut table = vec![0u32; 1 << bits];
    let mut out = Vec::with_capacity(n);
    let mut lit_start = 0;
    let mut ip = 0;
    while ip + MIN_MATCH <= n {
        let h = hash(input, ip, bits);
        let candidate = table[h] as usize;
        table[h] = ip as u32;
        let distance = ip.wrapping_sub(candidate);
        if candidate < ip
            && distance <= MAX_DISTANCE
            && input[candidate..candidate + MIN_MATCH] == input[ip..ip + MIN_MATCH]
        {
            let max = (n - ip).min(MAX_MATCH);
            let mut len = MIN_MATCH;
            while len < max && input[candidate + len] == input[ip + len] {
                len += 1;
            }
            flush_literals(&mut out, &input[lit_start..ip]);
            let code = len - 2;
            let off = distance - 1;
            if code < 7 {
                out.push(((code << 5) | (off >> 8)) as u8);
            } else {
                out.push(((7 << 5) | (off >> 8)) as u8);
                out.push((code - 7) as u8);
            }
            out.push(off as u8);
            // Index the start of the next position inside the match so later repeats of it
            // are found; skipping the rest keeps long runs fast.
            let next = ip + len;
            if next >= 1 && next - 1 + MIN_MATCH <= n && next - 1 > ip {
                table[hash(input, next - 1, bits)] = (next - 1) as u32;
            }
            ip = next;
            lit_start = ip;
        } else {
            ip += 1;
        }
        if out.len() >= n {
            return None;
        }
    }
    flush_literals(&mut out, &input[lit_start..]);
    (out.len() < n).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hand_made_stream_decodes() {
        // "abc" literal, then a 6-byte back-reference 3 back (overlapping): "abcabcabc".
        let stream = [2, b'a', b'b', b'c', 4 << 5, 2];
        assert_eq!(decompress(&stream, 9).unwrap(), b"abcabcabc");
        // Long form: length code 7 + 10 extra = 17, copies 19 bytes of 'x'.
        let stream = [0, b'x', 7 << 5, 10, 0];
        assert_eq!(decompress(&stream, 20).unwrap(), vec![b'x'; 20]);
    }

    #[test]
    fn bad_streams_are_errors() {
        assert!(
            decompress(&[2, b'a', b'b', b'c'], 4).is_err(),
            "wrong expected length"
        );
        assert!(
            decompress(&[2, b'a', b'b'], 3).is_err(),
            "truncated literal"
        );
        assert!(
            decompress(&[0, b'a', 1 << 5, 5], 4).is_err(),
            "reference before the start"
        );
        assert!(
            decompress(&[0, b'a', 1 << 5], 4).is_err(),
            "truncated reference"
        );
        assert!(
            decompress(&[0, b'a'], usize::MAX).is_err(),
            "impossible length"
        );
    }

    #[test]
    fn repetitive_data_shrinks_a_lot() {
        let data = b"hello world, ".repeat(1000);
        let c = compress(&data).unwrap();
        assert!(c.len() < data.len() / 20, "{}", c.len());
        assert_eq!(decompress(&c, data.len()).unwrap(), data);
        let zeros = vec![0u8; 1 << 20];
        let c = compress(&zeros).unwrap();
        assert_eq!(decompress(&c, zeros.len()).unwrap(), zeros);
    }

    #[test]
    fn incompressible_data_is_refused() {
        let data: Vec<u8> = (0..=255u8).collect();
        assert_eq!(compress(&data), None);
        assert_eq!(compress(b"abc"), None);
    }

    proptest! {
        #[test]
        fn round_trip_random(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
            if let Some(c) = compress(&data) {
                prop_assert!(c.len() < data.len());
                prop_assert_eq!(decompress(&c, data.len()).unwrap(), data);
            }
        }

        #[test]
        fn round_trip_repetitive(
            words in proptest::collection::vec("[a-d]{1,12}", 1..400),
            far in proptest::collection::vec(any::<u8>(), 0..8000),
        ) {
            let mut data = words.concat().into_bytes();
            data.extend_from_slice(&far);
            data.extend_from_slice(&far);
            if let Some(c) = compress(&data) {
                prop_assert!(c.len() < data.len());
                prop_assert_eq!(decompress(&c, data.len()).unwrap(), data);
            } else {
                prop_assert!(data.len() < 40, "repetitive data of {} bytes not compressed", data.len());
            }
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300), len in 0usize..5000) {
            let _ = decompress(&data, len);
        }
    }
}
