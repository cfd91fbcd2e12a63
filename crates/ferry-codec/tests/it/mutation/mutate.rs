//! Seeded mutations of real inputs: bit flips, interesting bytes and words, truncations,
//! duplicated and removed ranges, and rewritten RDB length prefixes.

pub use ferry_testkit::rng::Rng;

/// Bytes that mean something to the formats: length widths (0x3F/0x40/0x80/0x81), string
/// encodings (0xC0–0xC3), ziplist/listpack entry encodings and terminators (0xE0–0xFF),
/// sign boundaries.
pub const INTERESTING_BYTES: [u8; 20] = [
    0x00, 0xFF, 0x7F, 0x80, 0xFE, 0xC0, 0xC1, 0xC2, 0xC3, 0x01, 0x3F, 0x40, 0x81, 0xE0, 0xF0, 0xF1,
    0xF2, 0xF3, 0xF4, 0xFD,
];

/// Little-endian words for the 16/32-bit counts and sizes of ziplists, listpacks, intsets.
const INTERESTING_WORDS: [u32; 9] = [
    0,
    1,
    0x7F,
    0xFF,
    0x7FFF,
    0xFFFF,
    0x8000_0000,
    0x7FFF_FFFF,
    0xFFFF_FFFF,
];

/// A mutated input and how it was made.
pub struct Mutant {
    pub bytes: Vec<u8>,
    pub what: String,
}

/// One to four mutations of `input`. `hints` are offsets where records start: length
/// prefixes and type bytes sit there, so rewriting them reaches deep into the decoder.
pub fn mutate(rng: &mut Rng, input: &[u8], hints: &[usize]) -> Mutant {
    let mut bytes = input.to_vec();
    let rounds = if rng.chance(6) { 2 + rng.index(3) } else { 1 };
    let mut steps = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        steps.push(mutate_once(rng, &mut bytes, hints));
    }
    Mutant {
        bytes,
        what: steps.join(", then "),
    }
}

fn mutate_once(rng: &mut Rng, bytes: &mut Vec<u8>, hints: &[usize]) -> String {
    if bytes.is_empty() {
        let value = rng.pick(&INTERESTING_BYTES);
        bytes.push(value);
        return format!("push 0x{value:02x}");
    }
    match rng.index(16) {
        0..=2 => {
            let at = rng.index(bytes.len());
            let bit = rng.index(8);
            bytes[at] ^= 1 << bit;
            format!("flip bit {bit} at {at}")
        }
        3..=5 => {
            let at = position(rng, bytes.len(), hints);
            let value = rng.pick(&INTERESTING_BYTES);
            bytes[at] = value;
            format!("byte 0x{value:02x} at {at}")
        }
        6 | 7 => {
            let at = position(rng, bytes.len(), hints);
            let word = rng.pick(&INTERESTING_WORDS).to_le_bytes();
            let width = if rng.chance(2) { 2 } else { 4 };
            let end = (at + width).min(bytes.len());
            let n = end - at;
            bytes[at..end].copy_from_slice(&word[..n]);
            format!("{width}-byte word {:02x?} at {at}", &word[..n])
        }
        8 => {
            let len = rng.index(bytes.len());
            bytes.truncate(len);
            format!("truncate to {len}")
        }
        9 => {
            let (start, len) = range(rng, bytes.len());
            let copy = bytes[start..start + len].to_vec();
            bytes.splice(start + len..start + len, copy);
            format!("duplicate {len} bytes at {start}")
        }
        10 => {
            let (start, len) = range(rng, bytes.len());
            bytes.drain(start..start + len);
            format!("remove {len} bytes at {start}")
        }
        _ => {
            let at = position(rng, bytes.len(), hints);
            rewrite_length(rng, bytes, at)
        }
    }
}

/// A record start (or the byte after it, where the key's length is) half of the time.
fn position(rng: &mut Rng, len: usize, hints: &[usize]) -> usize {
    if !hints.is_empty() && rng.chance(2) {
        let at = rng.pick(hints) + rng.index(2);
        if at < len {
            return at;
        }
    }
    rng.index(len)
}

/// A range inside `0..len` (`len` > 0): mostly short, sometimes up to 1 KiB.
fn range(rng: &mut Rng, len: usize) -> (usize, usize) {
    let start = rng.index(len);
    let longest = if rng.chance(8) { 1024 } else { 64 };
    let n = 1 + rng.index(longest.min(len - start));
    (start, n)
}

/// Reads the RDB length field at `at` and writes another value in its place: one more or
/// one less (misaligning everything after it), the field's maximum, or a huge count in a
/// wider field. A byte that starts no length is replaced by an interesting byte instead.
fn rewrite_length(rng: &mut Rng, bytes: &mut Vec<u8>, at: usize) -> String {
    let Some((old, width)) = read_length(&bytes[at..]) else {
        // An LZF string's lengths follow its marker.
        if bytes[at] == 0xC3 && at + 1 < bytes.len() {
            return rewrite_length(rng, bytes, at + 1);
        }
        let value = rng.pick(&INTERESTING_BYTES);
        bytes[at] = value;
        return format!("byte 0x{value:02x} at {at}");
    };
    let new = match rng.index(8) {
        0 | 1 => old.wrapping_add(1),
        2 => old.wrapping_sub(1),
        3 => old.saturating_mul(2).saturating_add(1),
        4 => max_for_width(width),
        5 => u64::from(u32::MAX),
        6 => 1 << 40,
        _ => u64::MAX,
    };
    // Keep the field's width when the value fits, so only the length changes.
    let encoded = encode_length(new, width);
    bytes.splice(at..at + width, encoded.iter().copied());
    format!(
        "length {old} at {at} ({width} bytes) → {new} ({} bytes)",
        encoded.len()
    )
}

/// An RDB length field: its value and its width in bytes.
fn read_length(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    match first >> 6 {
        0 => Some((u64::from(first & 0x3F), 1)),
        1 => Some((
            (u64::from(first & 0x3F) << 8) | u64::from(*bytes.get(1)?),
            2,
        )),
        _ if first == 0x80 => Some((
            u64::from(u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?)),
            5,
        )),
        _ if first == 0x81 => Some((u64::from_be_bytes(bytes.get(1..9)?.try_into().ok()?), 9)),
        _ => None,
    }
}

fn max_for_width(width: usize) -> u64 {
    match width {
        1 => 0x3F,
        2 => 0x3FFF,
        5 => u64::from(u32::MAX),
        _ => u64::MAX,
    }
}

/// `value` as a length field at least `width` bytes wide.
fn encode_length(value: u64, width: usize) -> Vec<u8> {
    if width <= 1 && value <= 0x3F {
        vec![value as u8]
    } else if width <= 2 && value <= 0x3FFF {
        vec![0x40 | (value >> 8) as u8, value as u8]
    } else if width <= 5 && value <= u64::from(u32::MAX) {
        let mut out = vec![0x80];
        out.extend_from_slice(&(value as u32).to_be_bytes());
        out
    } else {
        let mut out = vec![0x81];
        out.extend_from_slice(&value.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_at_every_width() {
        for (value, width) in [(5, 1), (0x3FFF, 2), (70_000, 5), (1 << 40, 9)] {
            let bytes = encode_length(value, width);
            assert_eq!(read_length(&bytes), Some((value, width)));
        }
        // A value too big for the width widens the field.
        assert_eq!(encode_length(64, 1).len(), 2);
    }
}
