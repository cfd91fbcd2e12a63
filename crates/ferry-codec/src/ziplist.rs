//! Ziplist: the compact sequence Redis before 7.0 used for small lists, hashes and sorted
//! sets. Layout: u32 LE zlbytes, u32 LE zltail (offset of the last entry), u16 LE zllen
//! (65535 = unknown), entries, 0xFF. Each entry is `prevlen` (1 byte, or 0xFE + u32 LE when
//! the previous entry is 254+ bytes), an encoding, and data.

use crate::error::FormatError;
use crate::listpack::parse_canonical_int;
pub use crate::listpack::Entry;

const STRUCTURE: &str = "ziplist";
const HEADER_LEN: usize = 10;
const END: u8 = 0xFF;
const BIG_PREVLEN: u8 = 0xFE;
const UNKNOWN_COUNT: u16 = u16::MAX;

fn err(at: usize, problem: impl Into<String>) -> FormatError {
    FormatError::new(STRUCTURE, at, problem)
}

fn read_u32_le(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_le_int(buf: &[u8], at: usize, width: usize) -> Option<i64> {
    let b = buf.get(at..at.checked_add(width)?)?;
    let mut raw = [0u8; 8];
    raw[..width].copy_from_slice(b);
    let shift = 64 - 8 * width as u32;
    Some((i64::from_le_bytes(raw) << shift) >> shift)
}

struct Header {
    tail: usize,
    declared: u16,
}

fn check_header(buf: &[u8]) -> Result<Header, FormatError> {
    if buf.len() < HEADER_LEN + 1 {
        return Err(err(
            0,
            format!("{} bytes is shorter than the 11-byte minimum", buf.len()),
        ));
    }
    let total = read_u32_le(buf, 0).ok_or_else(|| err(0, "truncated header"))?;
    if total as usize != buf.len() {
        return Err(err(
            0,
            format!("header says {total} bytes but it has {}", buf.len()),
        ));
    }
    let tail = read_u32_le(buf, 4).ok_or_else(|| err(4, "truncated header"))? as usize;
    if tail < HEADER_LEN || tail >= buf.len() {
        return Err(err(4, format!("tail offset {tail} outside the ziplist")));
    }
    if buf[buf.len() - 1] != END {
        return Err(err(buf.len() - 1, "missing 0xFF end marker"));
    }
    let declared = u16::from_le_bytes([buf[8], buf[9]]);
    Ok(Header { tail, declared })
}

/// Lazily yields the entries of a ziplist, checking every bound, each prevlen against the
/// entry before it, and at the end the header count and tail offset.
/// After the first error it yields nothing more.
pub struct ZiplistIter<'a> {
    buf: &'a [u8],
    pos: usize,
    prev_len: usize,
    last_start: usize,
    seen: usize,
    header: Header,
    done: bool,
}

impl<'a> ZiplistIter<'a> {
    fn step(&mut self) -> Result<Option<Entry<'a>>, FormatError> {
        let buf = self.buf;
        let start = self.pos;
        let first = *buf
            .get(start)
            .ok_or_else(|| err(start, "entries run past the end"))?;
        if first == END {
            return self.finish_at(start).map(|()| None);
        }
        let (prevlen, mut pos) = if first == BIG_PREVLEN {
            let v = read_u32_le(buf, start + 1).ok_or_else(|| err(start, "truncated prevlen"))?;
            (v as usize, start + 5)
        } else {
            (usize::from(first), start + 1)
        };
        if prevlen != self.prev_len {
            return Err(err(
                start,
                format!(
                    "prevlen {prevlen} but the previous entry is {} bytes",
                    self.prev_len
                ),
            ));
        }
        let enc = *buf
            .get(pos)
            .ok_or_else(|| err(pos, "truncated entry encoding"))?;
        let string =
            |pos: usize, header: usize, len: usize| -> Result<(Entry<'a>, usize), FormatError> {
                let data_start = pos + header;
                let data = data_start
                    .checked_add(len)
                    .and_then(|end| buf.get(data_start..end))
                    .ok_or_else(|| err(pos, format!("string of {len} bytes runs past the end")))?;
                Ok((Entry::Bytes(data), data_start + len))
            };
        let int = |pos: usize, width: usize| -> Result<(Entry<'a>, usize), FormatError> {
            let v = read_le_int(buf, pos + 1, width)
                .ok_or_else(|| err(pos, format!("truncated {}-bit integer", width * 8)))?;
            Ok((Entry::Int(v), pos + 1 + width))
        };
        let (entry, end) = match enc {
            0x00..=0x3F => string(pos, 1, usize::from(enc))?,
            0x40..=0x7F => {
                let lo = *buf
                    .get(pos + 1)
                    .ok_or_else(|| err(pos, "truncated 14-bit length"))?;
                string(pos, 2, (usize::from(enc & 0x3F) << 8) | usize::from(lo))?
            }
            0x80 => {
                let b = buf
                    .get(pos + 1..pos + 5)
                    .ok_or_else(|| err(pos, "truncated 32-bit length"))?;
                string(
                    pos,
                    5,
                    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize,
                )?
            }
            0xC0 => int(pos, 2)?,
            0xD0 => int(pos, 4)?,
            0xE0 => int(pos, 8)?,
            0xF0 => int(pos, 3)?,
            0xFE => int(pos, 1)?,
            0xF1..=0xFD => {
                pos += 1;
                (Entry::Int(i64::from(enc & 0x0F) - 1), pos)
            }
            _ => return Err(err(pos, format!("unknown entry encoding 0x{enc:02x}"))),
        };
        // The end marker must remain after the entry.
        if end >= buf.len() {
            return Err(err(start, "entry runs past the end"));
        }
        self.prev_len = end - start;
        self.last_start = start;
        self.pos = end;
        self.seen += 1;
        Ok(Some(entry))
    }

    fn finish_at(&self, pos: usize) -> Result<(), FormatError> {
        if pos != self.buf.len() - 1 {
            return Err(err(pos, "0xFF end marker before the end of the ziplist"));
        }
        let declared = self.header.declared;
        if declared != UNKNOWN_COUNT && usize::from(declared) != self.seen {
            return Err(err(
                8,
                format!("header count {declared} but {} entries", self.seen),
            ));
        }
        if self.header.tail != self.last_start {
            return Err(err(
                4,
                format!(
                    "tail offset {} but the last entry is at {}",
                    self.header.tail, self.last_start
                ),
            ));
        }
        Ok(())
    }
}

impl<'a> Iterator for ZiplistIter<'a> {
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

/// Validates the header (zlbytes == `buf.len()`, tail in bounds, end marker) and returns
/// an iterator that checks each entry as it goes.
pub fn iter(buf: &[u8]) -> Result<ZiplistIter<'_>, FormatError> {
    let header = check_header(buf)?;
    Ok(ZiplistIter {
        buf,
        pos: HEADER_LEN,
        prev_len: 0,
        // An empty ziplist's tail points at the end marker right after the header.
        last_start: HEADER_LEN,
        seen: 0,
        header,
        done: false,
    })
}

/// Number of entries: the header count, or a full walk when the header says 65535.
#[cfg(test)]
pub fn count(buf: &[u8]) -> Result<usize, FormatError> {
    let header = check_header(buf)?;
    if header.declared != UNKNOWN_COUNT {
        return Ok(usize::from(header.declared));
    }
    let mut n = 0;
    for entry in iter(buf)? {
        entry?;
        n += 1;
    }
    Ok(n)
}

/// Builds a ziplist choosing each entry's encoding as Redis's ziplist code does.
/// Callers keep ziplists far below 4 GiB; `finish` saturates the size fields beyond that.
#[derive(Debug, Clone)]
pub struct ZiplistBuilder {
    buf: Vec<u8>,
    count: usize,
    prev_len: usize,
    last_start: usize,
}

impl Default for ZiplistBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ZiplistBuilder {
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.resize(HEADER_LEN, 0);
        Self {
            buf,
            count: 0,
            prev_len: 0,
            last_start: HEADER_LEN,
        }
    }

    fn begin_entry(&mut self) -> usize {
        let start = self.buf.len();
        if self.prev_len < usize::from(BIG_PREVLEN) {
            self.buf.push(self.prev_len as u8);
        } else {
            self.buf.push(BIG_PREVLEN);
            self.buf
                .extend_from_slice(&(self.prev_len as u32).to_le_bytes());
        }
        start
    }

    fn end_entry(&mut self, start: usize) {
        self.prev_len = self.buf.len() - start;
        self.last_start = start;
        self.count += 1;
    }

    /// Appends a value; canonical integers (see [`parse_canonical_int`]) are stored in
    /// binary as Redis would.
    pub fn push(&mut self, value: &[u8]) {
        match parse_canonical_int(value) {
            Some(v) => self.push_int(v),
            None => self.push_string(value),
        }
    }

    /// Appends an integer in the smallest encoding that holds it (0..=12 live in the
    /// encoding byte itself).
    pub fn push_int(&mut self, v: i64) {
        let start = self.begin_entry();
        if (0..=12).contains(&v) {
            self.buf.push(0xF1 + v as u8);
        } else {
            let (tag, width) = if i8::try_from(v).is_ok() {
                (0xFE, 1)
            } else if i16::try_from(v).is_ok() {
                (0xC0, 2)
            } else if (-(1 << 23)..(1 << 23)).contains(&v) {
                (0xF0, 3)
            } else if i32::try_from(v).is_ok() {
                (0xD0, 4)
            } else {
                (0xE0, 8)
            };
            self.buf.push(tag);
            self.buf.extend_from_slice(&v.to_le_bytes()[..width]);
        }
        self.end_entry(start);
    }

    /// Appends bytes as a string entry, never integer-encoding them.
    pub fn push_string(&mut self, s: &[u8]) {
        let start = self.begin_entry();
        let len = s.len();
        if len <= 0x3F {
            self.buf.push(len as u8);
        } else if len <= 0x3FFF {
            self.buf.push(0x40 | (len >> 8) as u8);
            self.buf.push(len as u8);
        } else {
            self.buf.push(0x80);
            self.buf.extend_from_slice(&(len as u32).to_be_bytes());
        }
        self.buf.extend_from_slice(s);
        self.end_entry(start);
    }

    /// Entries pushed so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Size the finished ziplist will have.
    pub fn byte_len(&self) -> usize {
        self.buf.len() + 1
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(END);
        let total = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        let tail = u32::try_from(self.last_start).unwrap_or(u32::MAX);
        let count = u16::try_from(self.count).unwrap_or(UNKNOWN_COUNT);
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        self.buf[4..8].copy_from_slice(&tail.to_le_bytes());
        self.buf[8..10].copy_from_slice(&count.to_le_bytes());
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
    fn empty_ziplist() {
        let zl = ZiplistBuilder::new().finish();
        assert_eq!(zl, vec![11, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0xFF]);
        assert_eq!(count(&zl).unwrap(), 0);
        assert!(collect(&zl).is_empty());
    }

    #[test]
    fn prevlen_switches_to_five_bytes_at_254() {
        // Entry = prevlen(1) + encoding(1 or 2) + data. 251 data bytes with a 2-byte
        // (14-bit) header gives 1+2+251 = 254 bytes: the next prevlen must be 0xFE + u32.
        let mut b = ZiplistBuilder::new();
        b.push(&[b'a'; 251]);
        b.push(b"x");
        let zl = b.finish();
        let second = HEADER_LEN + 254;
        assert_eq!(zl[second], 0xFE);
        assert_eq!(&zl[second + 1..second + 5], &254u32.to_le_bytes());
        assert_eq!(&zl[4..8], &(second as u32).to_le_bytes());
        // One byte less: 253 fits in the single prevlen byte.
        let mut b = ZiplistBuilder::new();
        b.push(&[b'a'; 250]);
        b.push(b"x");
        let zl = b.finish();
        assert_eq!(zl[HEADER_LEN + 253], 253);
        assert_eq!(
            collect(&zl),
            vec![Entry::Bytes(&[b'a'; 250]), Entry::Bytes(b"x")]
        );
    }

    #[test]
    fn integer_encodings() {
        let cases: [(i64, u8, usize); 11] = [
            (0, 0xF1, 0),
            (12, 0xFD, 0),
            (13, 0xFE, 1),
            (-1, 0xFE, 1),
            (-128, 0xFE, 1),
            (128, 0xC0, 2),
            (32768, 0xF0, 3),
            (-8388608, 0xF0, 3),
            (8388608, 0xD0, 4),
            (i64::from(i32::MIN) - 1, 0xE0, 8),
            (i64::MAX, 0xE0, 8),
        ];
        for (v, tag, width) in cases {
            let mut b = ZiplistBuilder::new();
            b.push(v.to_string().as_bytes());
            let zl = b.finish();
            assert_eq!(zl[HEADER_LEN + 1], tag, "{v}");
            assert_eq!(zl.len(), HEADER_LEN + 2 + width + 1, "{v}");
            assert_eq!(collect(&zl), vec![Entry::Int(v)]);
        }
    }

    #[test]
    fn string_length_headers_are_big_endian() {
        let s = vec![b'z'; 0x1234];
        let mut b = ZiplistBuilder::new();
        b.push(&s);
        let zl = b.finish();
        assert_eq!(&zl[HEADER_LEN + 1..HEADER_LEN + 3], &[0x52, 0x34]);
        let s = vec![b'z'; 0x4000];
        let mut b = ZiplistBuilder::new();
        b.push(&s);
        let zl = b.finish();
        assert_eq!(&zl[HEADER_LEN + 1..HEADER_LEN + 6], &[0x80, 0, 0, 0x40, 0]);
        assert_eq!(collect(&zl), vec![Entry::Bytes(&s)]);
    }

    #[test]
    fn count_saturates_and_walks() {
        let mut b = ZiplistBuilder::new();
        for i in 0..66000 {
            b.push_int(i);
        }
        let zl = b.finish();
        assert_eq!(&zl[8..10], &[0xFF, 0xFF]);
        assert_eq!(count(&zl).unwrap(), 66000);
    }

    #[test]
    fn inconsistent_headers_are_errors() {
        let mut b = ZiplistBuilder::new();
        b.push(b"a");
        b.push(b"b");
        let good = b.finish();
        let mut bad_count = good.clone();
        bad_count[8] = 5;
        assert!(iter(&bad_count).unwrap().any(|e| e.is_err()));
        let mut bad_tail = good.clone();
        bad_tail[4] = 10;
        assert!(iter(&bad_tail).unwrap().any(|e| e.is_err()));
        let mut bad_prevlen = good.clone();
        bad_prevlen[13] = 7;
        assert!(iter(&bad_prevlen).unwrap().any(|e| e.is_err()));
        let mut short = good.clone();
        short.pop();
        assert!(iter(&short).is_err());
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string().into_bytes()),
            (-300i64..300).prop_map(|v| v.to_string().into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(any::<u8>(), 16380..16390),
            "[0-9+-]{0,21}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(values in proptest::collection::vec(value(), 0..30)) {
            let mut b = ZiplistBuilder::new();
            for v in &values {
                b.push(v);
            }
            prop_assert_eq!(b.len(), values.len());
            let expected_len = b.byte_len();
            let zl = b.finish();
            prop_assert_eq!(zl.len(), expected_len);
            prop_assert_eq!(count(&zl).unwrap(), values.len());
            let got: Vec<bytes::Bytes> = collect(&zl).into_iter().map(Entry::to_bytes).collect();
            let want: Vec<bytes::Bytes> = values.iter().map(|v| bytes::Bytes::copy_from_slice(v)).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = count(&data);
            if let Ok(it) = iter(&data) {
                for _ in it {}
            }
        }

        #[test]
        fn mutated_ziplists_never_panic(
            values in proptest::collection::vec(value(), 1..10),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut b = ZiplistBuilder::new();
            for v in &values {
                b.push(v);
            }
            let mut zl = b.finish();
            for (i, byte) in flips {
                let i = i.index(zl.len());
                zl[i] = byte;
            }
            let _ = count(&zl);
            if let Ok(it) = iter(&zl) {
                for _ in it {}
            }
        }
    }
}
