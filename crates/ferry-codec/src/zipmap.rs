//! Zipmap: the string→string map Redis before 2.6 used for small hashes; only old RDB
//! files (type 9) carry it. Layout: u8 count (254+ = unknown), then per pair
//! `len key len free value <free unused bytes>`, then 0xFF. A `len` is one byte below 254,
//! else 0xFE followed by a u32 (little-endian on every platform Redis shipped RDBs from).

use crate::error::FormatError;

const STRUCTURE: &str = "zipmap";
const BIG_LEN: u8 = 254;
const END: u8 = 255;

/// A key and its value, borrowed from the zipmap.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

fn err(at: usize, problem: impl Into<String>) -> FormatError {
    FormatError::new(STRUCTURE, at, problem)
}

/// Reads a length at `pos`; `None` means the end marker.
fn read_len(buf: &[u8], pos: usize) -> Result<Option<(usize, usize)>, FormatError> {
    match buf.get(pos) {
        None => Err(err(pos, "runs past the end without the 0xFF end marker")),
        Some(&END) => Ok(None),
        Some(&BIG_LEN) => {
            let b = buf
                .get(pos + 1..pos + 5)
                .ok_or_else(|| err(pos, "truncated 5-byte length"))?;
            Ok(Some((
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
                pos + 5,
            )))
        }
        Some(&n) => Ok(Some((usize::from(n), pos + 1))),
    }
}

fn take(buf: &[u8], pos: usize, len: usize) -> Result<(&[u8], usize), FormatError> {
    let end = pos
        .checked_add(len)
        .ok_or_else(|| err(pos, "length overflows"))?;
    let s = buf
        .get(pos..end)
        .ok_or_else(|| err(pos, format!("string of {len} bytes runs past the end")))?;
    Ok((s, end))
}

struct ZipmapIter<'a> {
    buf: &'a [u8],
    pos: usize,
    seen: usize,
    declared: u8,
    done: bool,
}

impl<'a> ZipmapIter<'a> {
    fn step(&mut self) -> Result<Option<Pair<'a>>, FormatError> {
        let buf = self.buf;
        let Some((key_len, pos)) = read_len(buf, self.pos)? else {
            if self.pos != buf.len() - 1 {
                return Err(err(
                    self.pos,
                    "0xFF end marker before the end of the zipmap",
                ));
            }
            if self.declared < BIG_LEN && usize::from(self.declared) != self.seen {
                return Err(err(
                    0,
                    format!("header count {} but {} pairs", self.declared, self.seen),
                ));
            }
            return Ok(None);
        };
        let (key, pos) = take(buf, pos, key_len)?;
        let (value_len, pos) =
            read_len(buf, pos)?.ok_or_else(|| err(pos, "end marker where a value was expected"))?;
        let free = *buf
            .get(pos)
            .ok_or_else(|| err(pos, "truncated free-space byte"))?;
        let (value, pos) = take(buf, pos + 1, value_len)?;
        let (_, pos) = take(buf, pos, usize::from(free))?;
        self.pos = pos;
        self.seen += 1;
        Ok(Some((key, value)))
    }
}

impl<'a> Iterator for ZipmapIter<'a> {
    type Item = Result<Pair<'a>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.step();
        self.done = !matches!(r, Ok(Some(_)));
        r.transpose()
    }
}

/// Validates the zipmap's framing (non-empty, ends in 0xFF) and yields its pairs, checking
/// each bound as it goes and the count (when below 254) at the end.
pub fn iter(
    buf: &[u8],
) -> Result<impl Iterator<Item = Result<Pair<'_>, FormatError>> + '_, FormatError> {
    if buf.len() < 2 {
        return Err(err(
            0,
            format!("{} bytes is shorter than the 2-byte minimum", buf.len()),
        ));
    }
    if buf[buf.len() - 1] != END {
        return Err(err(buf.len() - 1, "missing 0xFF end marker"));
    }
    Ok(ZipmapIter {
        buf,
        pos: 1,
        seen: 0,
        declared: buf[0],
        done: false,
    })
}

#[cfg(test)]
fn write_len(out: &mut Vec<u8>, len: usize) {
    if len < usize::from(BIG_LEN) {
        out.push(len as u8);
    } else {
        out.push(BIG_LEN);
        out.extend_from_slice(&(len as u32).to_le_bytes());
    }
}

/// Builds a zipmap with no free space, as a freshly written Redis 2.x hash would be.
#[cfg(test)]
pub fn build(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = vec![pairs.len().min(usize::from(BIG_LEN)) as u8];
    for (key, value) in pairs {
        write_len(&mut out, key.len());
        out.extend_from_slice(key);
        write_len(&mut out, value.len());
        out.push(0);
        out.extend_from_slice(value);
    }
    out.push(END);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn collect(buf: &[u8]) -> Vec<(&[u8], &[u8])> {
        iter(buf).unwrap().collect::<Result<Vec<_>, _>>().unwrap()
    }

    #[test]
    fn layout_matches_the_format_description() {
        let zm = build(&[(b"foo", b"bar"), (b"hello", b"world")]);
        assert_eq!(
            zm,
            b"\x02\x03foo\x03\x00bar\x05hello\x05\x00world\xff".to_vec()
        );
    }

    #[test]
    fn free_bytes_are_skipped() {
        let zm = b"\x02\x01a\x01\x02bxy\x01c\x00\x00\xff";
        assert_eq!(
            collect(zm),
            vec![(&b"a"[..], &b"b"[..]), (&b"c"[..], &b""[..])]
        );
    }

    #[test]
    fn long_strings_use_five_byte_lengths() {
        let long = vec![b'v'; 300];
        let zm = build(&[(b"k", &long)]);
        assert_eq!(&zm[3..8], &[254, 44, 1, 0, 0]);
        assert_eq!(collect(&zm), vec![(&b"k"[..], &long[..])]);
    }

    #[test]
    fn count_mismatch_and_truncation_are_errors() {
        let mut zm = build(&[(b"a", b"b")]);
        zm[0] = 2;
        assert!(iter(&zm).unwrap().any(|r| r.is_err()));
        let zm = b"\x01\x05ab\xff";
        assert!(iter(zm).unwrap().any(|r| r.is_err()));
    }

    proptest! {
        #[test]
        fn round_trip(pairs in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..300), proptest::collection::vec(any::<u8>(), 0..300)), 0..300)
        ) {
            let refs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            let zm = build(&refs);
            prop_assert_eq!(collect(&zm), refs);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(it) = iter(&data) {
                for _ in it {}
            }
        }
    }
}
