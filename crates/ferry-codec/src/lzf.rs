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
#[cfg(test)]
pub fn decompress(input: &[u8], expected_len: usize) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::new();
    decompress_into(input, expected_len, &mut out)?;
    Ok(out)
}

/// Like [`decompress`], into `out`, which is cleared first: a caller decompressing many
/// short strings reuses one buffer instead of allocating one per string.
pub fn decompress_into(
    input: &[u8],
    expected_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    // Refuse impossible lengths before allocating, so a corrupt length cannot make us
    // reserve gigabytes.
    refuse_impossible_length(input, expected_len)?;
    out.clear();
    out.reserve(expected_len);
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
            let (len, distance) = back_reference(input, &mut ip, ctrl, at)?;
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
            copy_back(out, distance, len);
        }
    }
    if out.len() != expected_len {
        return Err(err(
            input.len(),
            format!("expands to {} bytes, expected {expected_len}", out.len()),
        ));
    }
    Ok(())
}

/// Checks, without expanding it, that `input` is LZF data that expands to exactly
/// `expected_len` bytes: it fails exactly where [`decompress`] would, with the same
/// problem. For a reader that skips a string but must still notice a corrupt one.
pub fn check(input: &[u8], expected_len: usize) -> Result<(), FormatError> {
    refuse_impossible_length(input, expected_len)?;
    let mut produced = 0usize;
    let mut ip = 0;
    while ip < input.len() {
        let at = ip;
        let ctrl = usize::from(input[ip]);
        ip += 1;
        let len = if ctrl < 32 {
            let run = ctrl + 1;
            if input.len() - ip < run {
                return Err(err(at, "literal run past the end of the input"));
            }
            ip += run;
            run
        } else {
            let (len, distance) = back_reference(input, &mut ip, ctrl, at)?;
            if distance > produced {
                return Err(err(
                    at,
                    format!("back-reference {distance} bytes back, only {produced} written"),
                ));
            }
            len
        };
        if produced + len > expected_len {
            return Err(err(
                at,
                format!("output exceeds the expected {expected_len} bytes"),
            ));
        }
        produced += len;
    }
    if produced != expected_len {
        return Err(err(
            input.len(),
            format!("expands to {produced} bytes, expected {expected_len}"),
        ));
    }
    Ok(())
}

/// Fails when `input` could not expand to `expected_len` bytes even at LZF's best ratio.
fn refuse_impossible_length(input: &[u8], expected_len: usize) -> Result<(), FormatError> {
    if expected_len > input.len().saturating_mul(MAX_EXPANSION) {
        return Err(err(
            0,
            format!("{} bytes cannot expand to {expected_len}", input.len()),
        ));
    }
    Ok(())
}

/// Reads the back-reference whose control byte `ctrl`, at `at`, was just consumed, moving
/// `ip` past it: how many bytes it copies, and from how far back.
#[inline]
fn back_reference(
    input: &[u8],
    ip: &mut usize,
    ctrl: usize,
    at: usize,
) -> Result<(usize, usize), FormatError> {
    let mut next = || -> Result<usize, FormatError> {
        let byte = *input
            .get(*ip)
            .ok_or_else(|| err(at, "truncated back-reference"))?;
        *ip += 1;
        Ok(usize::from(byte))
    };
    let mut len = ctrl >> 5;
    if len == 7 {
        len += next()?;
    }
    let distance = ((ctrl & 0x1F) << 8) + next()? + 1;
    Ok((len + 2, distance))
}

/// Appends `len` bytes copied from `distance` bytes back (`distance <= out.len()`).
#[inline]
fn copy_back(out: &mut Vec<u8>, distance: usize, len: usize) {
    let from = out.len() - distance;
    if distance >= len {
        out.extend_from_within(from..from + len);
        return;
    }
    if distance == 1 {
        // A run of one byte (zero padding is common): a fill.
        let byte = out[from];
        out.resize(out.len() + len, byte);
        return;
    }
    // An overlapping reference repeats the last `distance` bytes. `out[from..]` always
    // holds whole periods, so copying all of it continues the pattern: the copied span
    // doubles each round instead of going byte by byte (runs of zeros are common).
    let mut left = len;
    while left > 0 {
        let take = left.min(out.len() - from);
        out.extend_from_within(from..from + take);
        left -= take;
    }
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

/// How many bytes from `earlier` and `at` match, up to `max`; compares 8 bytes at a time
/// because long matches (runs of padding) are common.
fn match_length(input: &[u8], earlier: usize, at: usize, max: usize) -> usize {
    let (a, b) = (&input[earlier..earlier + max], &input[at..at + max]);
    let word = |chunk: &[u8]| chunk.try_into().map_or(0, u64::from_le_bytes);
    let mut len = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let diff = word(x) ^ word(y);
        if diff != 0 {
            return len + (diff.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    len + a[len..]
        .iter()
        .zip(&b[len..])
        .take_while(|(x, y)| x == y)
        .count()
}

std::thread_local! {
    /// The hash table of [`compress_into`], kept between calls: a dataset of many short
    /// strings would otherwise pay an allocation per string.
    static TABLE: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Compresses `input` into standard LZF (readable by Redis and Valkey `lzf_decompress`).
/// Returns `None` unless the result is strictly smaller than the input.
pub fn compress(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    compress_into(input, &mut out).map(|_| out)
}

/// Like [`compress`], appending to `out`; returns the compressed length. On `None`, `out`
/// is left as it was.
pub fn compress_into(input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let n = input.len();
    if n < 4 || u32::try_from(n).is_err() {
        return None;
    }
    // Size the hash table to the input so the many short strings of a typical dataset
    // do not each pay for zeroing a large table.
    let bits = (usize::BITS - n.leading_zeros()).clamp(8, 14);
    let start = out.len();
    let packed = TABLE.with(|table| {
        let mut table = table.borrow_mut();
        table.clear();
        table.resize(1 << bits, 0);
        compress_with(input, out, &mut table, bits)
    });
    if packed.is_none() {
        out.truncate(start);
    }
    packed
}

fn compress_with(input: &[u8], out: &mut Vec<u8>, table: &mut [u32], bits: u32) -> Option<usize> {
    let n = input.len();
    let start = out.len();
    out.reserve(n);
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
            let len = MIN_MATCH
                + match_length(
                    input,
                    candidate + MIN_MATCH,
                    ip + MIN_MATCH,
                    max - MIN_MATCH,
                );
            flush_literals(out, &input[lit_start..ip]);
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
        if out.len() - start >= n {
            return None;
        }
    }
    flush_literals(out, &input[lit_start..]);
    let packed = out.len() - start;
    (packed < n).then_some(packed)
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

    #[test]
    fn compress_into_appends_or_leaves_the_output_alone() {
        let data = b"value:1234"
            .iter()
            .copied()
            .chain([0u8; 90])
            .collect::<Vec<_>>();
        let mut out = b"head".to_vec();
        let packed = compress_into(&data, &mut out).unwrap();
        assert_eq!(&out[..4], b"head");
        assert_eq!(out.len(), 4 + packed);
        assert_eq!(decompress(&out[4..], data.len()).unwrap(), data);
        let noise: Vec<u8> = (0..=255u8).collect();
        assert_eq!(compress_into(&noise, &mut out), None);
        assert_eq!(out.len(), 4 + packed);
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
        fn check_agrees_with_decompress(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            len in 0usize..1000,
        ) {
            prop_assert_eq!(check(&data, len), decompress(&data, len).map(drop));
        }

        #[test]
        fn check_accepts_what_compress_writes(data in proptest::collection::vec(0u8..4, 0..3000)) {
            if let Some(c) = compress(&data) {
                prop_assert_eq!(check(&c, data.len()), Ok(()));
                prop_assert!(check(&c, data.len() + 1).is_err());
            }
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300), len in 0usize..5000) {
            let _ = decompress(&data, len);
        }
    }
}
