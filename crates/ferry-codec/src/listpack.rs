//! Listpack: the compact sequence Redis 7+ uses for small hashes, sets, sorted sets, list
//! nodes and stream nodes. Layout: u32 LE total bytes, u16 LE count (65535 = unknown),
//! entries, 0xFF. Each entry is an encoding byte (with data) followed by a 1–5 byte
//! back-length that lets Redis walk the list backwards.

use crate::error::FormatError;

const STRUCTURE: &str = "listpack";
const HEADER_LEN: usize = 6;
const END: u8 = 0xFF;
/// Header count value meaning "too many to say; walk the entries".
const UNKNOWN_COUNT: u16 = u16::MAX;

/// One element of a ziplist or listpack: either raw bytes or an integer the structure
/// stored in binary form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

impl<'a> Entry<'a> {
    /// The value as Redis returns it to clients: integers in decimal.
    #[cfg(test)]
    pub fn to_bytes(self) -> bytes::Bytes {
        match self {
            Entry::Bytes(b) => bytes::Bytes::copy_from_slice(b),
            Entry::Int(v) => {
                let mut buf = [0u8; 20];
                bytes::Bytes::copy_from_slice(format_i64(v, &mut buf))
            }
        }
    }

    /// The value as an integer: `Int`, or `Bytes` that Redis would itself have stored as
    /// an integer (see [`parse_canonical_int`]).
    #[cfg(test)]
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Entry::Int(v) => Some(*v),
            Entry::Bytes(b) => parse_canonical_int(b),
        }
    }
}

/// Writes `v` in decimal into `buf` and returns the used tail of it.
/// 20 bytes hold every i64 including `i64::MIN`.
pub fn format_i64(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = v.unsigned_abs();
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        pos -= 1;
        buf[pos] = b'-';
    }
    &buf[pos..]
}

/// Parses `s` as an integer only if Redis would have integer-encoded it: the same rule as
/// Redis's `string2ll` — 1..=20 bytes, optional '-', no '+', no leading zeros (except "0"
/// itself), no "-0", and within i64. Anything else must stay a byte string, or a round
/// trip through our encoder would change the value clients see.
pub fn parse_canonical_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

fn err(at: usize, problem: impl Into<String>) -> FormatError {
    FormatError::new(STRUCTURE, at, problem)
}

fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    let b = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_le_int(buf: &[u8], at: usize, width: usize) -> Option<i64> {
    let b = buf.get(at..at.checked_add(width)?)?;
    let mut raw = [0u8; 8];
    raw[..width].copy_from_slice(b);
    // Sign-extend from `width` bytes.
    let shift = 64 - 8 * width as u32;
    Some((i64::from_le_bytes(raw) << shift) >> shift)
}

/// Bytes the back-length takes for an entry whose encoding+data is `l` bytes long.
fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

fn write_backlen(out: &mut Vec<u8>, l: usize) {
    // Most significant 7-bit group first; every byte but the first carries the 0x80
    // continuation flag, because Redis reads it from the end backwards.
    let size = backlen_size(l);
    for i in (0..size).rev() {
        let group = ((l >> (7 * i)) & 127) as u8;
        out.push(if i + 1 == size { group } else { group | 128 });
    }
}

/// Decodes the back-length that ends at `end` (exclusive), reading backwards.
fn read_backlen(buf: &[u8], end: usize) -> Option<u64> {
    let mut val = 0u64;
    for i in 0..5 {
        let byte = *buf.get(end.checked_sub(i + 1)?)?;
        val |= u64::from(byte & 127) << (7 * i);
        if byte & 128 == 0 {
            return Some(val);
        }
    }
    None
}

/// Decodes the entry at `pos` (which must not be the end byte). Returns the entry and the
/// length of its encoding+data (without back-length).
fn decode_entry(buf: &[u8], pos: usize) -> Result<(Entry<'_>, usize), FormatError> {
    let b0 = buf[pos];
    let need = |n: usize| -> Result<&[u8], FormatError> {
        buf.get(pos + 1..pos + 1 + n).ok_or_else(|| {
            err(
                pos,
                format!("entry runs past the end (encoding 0x{b0:02x})"),
            )
        })
    };
    let string = |header: usize, len: usize| -> Result<(Entry<'_>, usize), FormatError> {
        let start = pos + header;
        let data = start
            .checked_add(len)
            .and_then(|end| buf.get(start..end))
            .ok_or_else(|| err(pos, format!("string of {len} bytes runs past the end")))?;
        Ok((Entry::Bytes(data), header + len))
    };
    match b0 {
        0x00..=0x7F => Ok((Entry::Int(i64::from(b0)), 1)),
        0x80..=0xBF => string(1, usize::from(b0 & 0x3F)),
        0xC0..=0xDF => {
            let lo = need(1)?[0];
            let raw = (i64::from(b0 & 0x1F) << 8) | i64::from(lo);
            let v = if raw >= 1 << 12 { raw - (1 << 13) } else { raw };
            Ok((Entry::Int(v), 2))
        }
        0xE0..=0xEF => {
            let lo = need(1)?[0];
            string(2, (usize::from(b0 & 0x0F) << 8) | usize::from(lo))
        }
        0xF0 => {
            let len =
                read_u32(buf, pos + 1).ok_or_else(|| err(pos, "truncated 32-bit string length"))?;
            string(5, len as usize)
        }
        0xF1..=0xF4 => {
            let width = match b0 {
                0xF1 => 2,
                0xF2 => 3,
                0xF3 => 4,
                _ => 8,
            };
            let v = read_le_int(buf, pos + 1, width)
                .ok_or_else(|| err(pos, format!("truncated {}-bit integer", width * 8)))?;
            Ok((Entry::Int(v), 1 + width))
        }
        _ => Err(err(pos, format!("unknown entry encoding 0x{b0:02x}"))),
    }
}

/// Validates the header of a listpack and returns its declared count.
fn check_header(buf: &[u8]) -> Result<u16, FormatError> {
    if buf.len() < HEADER_LEN + 1 {
        return Err(err(
            0,
            format!("{} bytes is shorter than the 7-byte minimum", buf.len()),
        ));
    }
    let total = read_u32(buf, 0).ok_or_else(|| err(0, "truncated header"))?;
    if total as usize != buf.len() {
        return Err(err(
            0,
            format!("header says {total} bytes but it has {}", buf.len()),
        ));
    }
    if buf[buf.len() - 1] != END {
        return Err(err(buf.len() - 1, "missing 0xFF end marker"));
    }
    read_u16(buf, 4).ok_or_else(|| err(4, "truncated header"))
}

/// Lazily yields the entries of a listpack, checking every bound and back-length.
/// After the first error it yields nothing more.
pub struct ListpackIter<'a> {
    buf: &'a [u8],
    pos: usize,
    seen: usize,
    declared: u16,
    done: bool,
}

impl<'a> ListpackIter<'a> {
    fn step(&mut self) -> Result<Option<Entry<'a>>, FormatError> {
        let buf = self.buf;
        let pos = self.pos;
        let b0 = *buf
            .get(pos)
            .ok_or_else(|| err(pos, "entries run past the end"))?;
        if b0 == END {
            if pos != buf.len() - 1 {
                return Err(err(pos, "0xFF end marker before the end of the listpack"));
            }
            if self.declared != UNKNOWN_COUNT && usize::from(self.declared) != self.seen {
                return Err(err(
                    4,
                    format!("header count {} but {} entries", self.declared, self.seen),
                ));
            }
            return Ok(None);
        }
        let (entry, l) = decode_entry(buf, pos)?;
        let back_end = pos + l + backlen_size(l);
        // The end marker must stay after the entry.
        if back_end >= buf.len() {
            return Err(err(pos, "entry back-length runs past the end"));
        }
        if read_backlen(buf, back_end) != Some(l as u64) {
            return Err(err(
                pos + l,
                format!("back-length does not match entry size {l}"),
            ));
        }
        self.pos = back_end;
        self.seen += 1;
        Ok(Some(entry))
    }
}

impl<'a> Iterator for ListpackIter<'a> {
    type Item = Result<Entry<'a>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Validates the header (total bytes == `buf.len()`, end marker) and returns an iterator
/// that checks each entry as it goes.
pub fn iter(buf: &[u8]) -> Result<ListpackIter<'_>, FormatError> {
    let declared = check_header(buf)?;
    Ok(ListpackIter {
        buf,
        pos: HEADER_LEN,
        seen: 0,
        declared,
        done: false,
    })
}

/// Number of entries: the header count, or a full walk when the header says 65535.
#[cfg(test)]
pub fn count(buf: &[u8]) -> Result<usize, FormatError> {
    let declared = check_header(buf)?;
    if declared != UNKNOWN_COUNT {
        return Ok(usize::from(declared));
    }
    let mut n = 0;
    for entry in iter(buf)? {
        entry?;
        n += 1;
    }
    Ok(n)
}

/// Builds a listpack choosing each entry's encoding as Redis's `lpAppend` does.
/// Callers keep listpacks far below 4 GiB (Redis caps them at 1 GiB); `finish` saturates
/// the total-bytes field beyond that.
#[derive(Debug, Clone)]
pub struct ListpackBuilder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ListpackBuilder {
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.resize(HEADER_LEN, 0);
        Self { buf, count: 0 }
    }

    /// Appends a value; canonical integers (see [`parse_canonical_int`]) are stored in
    /// binary as Redis would.
    pub fn push(&mut self, value: &[u8]) {
        match parse_canonical_int(value) {
            Some(v) => self.push_int(v),
            None => self.push_string(value),
        }
    }

    /// Appends an integer in the smallest encoding that holds it.
    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        let out = &mut self.buf;
        if (0..=127).contains(&v) {
            out.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v + (1 << 13)) as u16 & 0x1FFF;
            out.push(0xC0 | (u >> 8) as u8);
            out.push(u as u8);
        } else {
            let (tag, width) = if i16::try_from(v).is_ok() {
                (0xF1, 2)
            } else if (-(1 << 23)..(1 << 23)).contains(&v) {
                (0xF2, 3)
            } else if i32::try_from(v).is_ok() {
                (0xF3, 4)
            } else {
                (0xF4, 8)
            };
            out.push(tag);
            out.extend_from_slice(&v.to_le_bytes()[..width]);
        }
        let l = self.buf.len() - start;
        write_backlen(&mut self.buf, l);
        self.count += 1;
    }

    /// Appends bytes as a string entry, never integer-encoding them.
    pub fn push_string(&mut self, s: &[u8]) {
        let start = self.buf.len();
        let len = s.len();
        if len < 64 {
            self.buf.push(0x80 | len as u8);
        } else if len < 4096 {
            self.buf.push(0xE0 | (len >> 8) as u8);
            self.buf.push(len as u8);
        } else {
            self.buf.push(0xF0);
            self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(s);
        let l = self.buf.len() - start;
        write_backlen(&mut self.buf, l);
        self.count += 1;
    }

    /// Entries pushed so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Size the finished listpack will have.
    pub fn byte_len(&self) -> usize {
        self.buf.len() + 1
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(END);
        let total = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        let count = u16::try_from(self.count).unwrap_or(UNKNOWN_COUNT);
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn collect(buf: &[u8]) -> Vec<Entry<'_>> {
        iter(buf).unwrap().collect::<Result<Vec<_>, _>>().unwrap()
    }

    #[test]
    fn canonical_int_rule_matches_redis() {
        assert_eq!(parse_canonical_int(b"0"), Some(0));
        assert_eq!(parse_canonical_int(b"-1"), Some(-1));
        assert_eq!(parse_canonical_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_canonical_int(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1.0",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"18446744073709551616",
        ] {
            assert_eq!(
                parse_canonical_int(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn minus_one_is_a_13_bit_int() {
        let mut b = ListpackBuilder::new();
        b.push(b"-1");
        let lp = b.finish();
        // header(6) + 0xDF 0xFF + backlen 2 + end
        assert_eq!(&lp[6..], &[0xDF, 0xFF, 0x02, 0xFF]);
        assert_eq!(&lp[0..4], &10u32.to_le_bytes());
        assert_eq!(&lp[4..6], &1u16.to_le_bytes());
        assert_eq!(collect(&lp), vec![Entry::Int(-1)]);
    }

    #[test]
    fn encodings_grow_at_the_documented_boundaries() {
        let cases: [(i64, u8, usize); 10] = [
            (127, 0x7F, 1),
            (128, 0xC0, 2),
            (-4096, 0xD0, 2),
            (4095, 0xCF, 2),
            (4096, 0xF1, 3),
            (-32769, 0xF2, 4),
            (8388607, 0xF2, 4),
            (8388608, 0xF3, 5),
            (2147483648, 0xF4, 9),
            (i64::MIN, 0xF4, 9),
        ];
        for (v, tag, size) in cases {
            let mut b = ListpackBuilder::new();
            b.push_int(v);
            let lp = b.finish();
            assert_eq!(lp[6], tag, "{v}");
            assert_eq!(lp.len(), 6 + size + 1 + 1, "{v}");
            assert_eq!(collect(&lp), vec![Entry::Int(v)]);
        }
    }

    #[test]
    fn string_length_headers_and_multi_byte_backlen() {
        for len in [0usize, 63, 64, 4095, 4096, 20000] {
            let s = vec![b'x'; len];
            let mut b = ListpackBuilder::new();
            b.push(&s);
            b.push(b"tail");
            let lp = b.finish();
            let expected_tag = match len {
                0..=63 => 0x80 | len as u8,
                64..=4095 => 0xE0 | (len >> 8) as u8,
                _ => 0xF0,
            };
            assert_eq!(lp[6], expected_tag);
            assert_eq!(collect(&lp), vec![Entry::Bytes(&s), Entry::Bytes(b"tail")]);
        }
        // 127-byte entry: 1-byte backlen; 128: two bytes, high group first.
        let mut out = Vec::new();
        write_backlen(&mut out, 200);
        assert_eq!(out, vec![1, 128 | 72]);
        assert_eq!(read_backlen(&out, 2), Some(200));
    }

    #[test]
    fn count_saturates_and_walks() {
        let mut b = ListpackBuilder::new();
        for i in 0..70000 {
            b.push_int(i);
        }
        let lp = b.finish();
        assert_eq!(&lp[4..6], &[0xFF, 0xFF]);
        assert_eq!(count(&lp).unwrap(), 70000);
        assert_eq!(iter(&lp).unwrap().count(), 70000);
    }

    #[test]
    fn wrong_count_and_bad_backlen_are_errors() {
        let mut b = ListpackBuilder::new();
        b.push(b"a");
        b.push(b"b");
        let mut lp = b.finish();
        lp[4] = 3;
        assert!(iter(&lp).unwrap().any(|e| e.is_err()));
        lp[4] = 2;
        lp[8] = 9; // backlen of first entry
        assert!(iter(&lp).unwrap().any(|e| e.is_err()));
    }

    #[test]
    fn empty_listpack() {
        let lp = ListpackBuilder::new().finish();
        assert_eq!(lp, vec![7, 0, 0, 0, 0, 0, 0xFF]);
        assert_eq!(count(&lp).unwrap(), 0);
        assert!(collect(&lp).is_empty());
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string().into_bytes()),
            (-5000i64..5000).prop_map(|v| v.to_string().into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..100),
            proptest::collection::vec(any::<u8>(), 4000..4200),
            "[0-9+-]{0,21}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(values in proptest::collection::vec(value(), 0..40)) {
            let mut b = ListpackBuilder::new();
            for v in &values {
                b.push(v);
            }
            prop_assert_eq!(b.len(), values.len());
            let expected_len = b.byte_len();
            let lp = b.finish();
            prop_assert_eq!(lp.len(), expected_len);
            prop_assert_eq!(count(&lp).unwrap(), values.len());
            let got: Vec<bytes::Bytes> = collect(&lp).into_iter().map(Entry::to_bytes).collect();
            let want: Vec<bytes::Bytes> = values.iter().map(|v| bytes::Bytes::copy_from_slice(v)).collect();
            prop_assert_eq!(got, want);
            for (e, v) in collect(&lp).iter().zip(&values) {
                prop_assert_eq!(e.as_int(), parse_canonical_int(v));
                prop_assert_eq!(matches!(e, Entry::Int(_)), parse_canonical_int(v).is_some());
            }
        }

        #[test]
        fn ints_print_as_decimal(v in any::<i64>()) {
            prop_assert_eq!(Entry::Int(v).to_bytes(), bytes::Bytes::from(v.to_string()));
            prop_assert_eq!(parse_canonical_int(v.to_string().as_bytes()), Some(v));
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = count(&data);
            if let Ok(it) = iter(&data) {
                for _ in it {}
            }
        }

        #[test]
        fn mutated_listpacks_never_panic(
            values in proptest::collection::vec(value(), 1..10),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut b = ListpackBuilder::new();
            for v in &values {
                b.push(v);
            }
            let mut lp = b.finish();
            for (i, byte) in flips {
                let i = i.index(lp.len());
                lp[i] = byte;
            }
            let _ = count(&lp);
            if let Ok(it) = iter(&lp) {
                for _ in it {}
            }
        }
    }
}
