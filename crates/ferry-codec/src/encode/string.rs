//! String values and other long byte runs.

use std::io::Write;

use super::writer::{Output, DIRECT_WRITE_FROM};
use crate::length::{write_len, write_string};
use crate::lzf;

/// Writes `value` as an RDB string, the way [`write_string`] does, but hands long values to
/// the destination without first copying them into the output buffer.
pub(super) fn write_long_string<W: Write>(
    out: &mut Output<W>,
    value: &[u8],
    compress: bool,
) -> std::io::Result<()> {
    if compress {
        // A string just read from LZF data: that data, as it was (see `lzf_memo`).
        if let Some(packed) = crate::lzf_memo::take_compressed(value) {
            let header = out.pending();
            header.push(LZF_STRING);
            write_len(header, packed.len() as u64);
            write_len(header, value.len() as u64);
            if packed.len() < DIRECT_WRITE_FROM {
                out.pending().extend_from_slice(&packed);
                return Ok(());
            }
            return out.write_direct(&packed);
        }
    }
    if value.len() < DIRECT_WRITE_FROM {
        write_string(out.pending(), value, compress);
        return Ok(());
    }
    if compress {
        // Same rule as write_string: LZF only when it saves at least 4 bytes.
        if let Some(packed) = lzf::compress(value).filter(|p| p.len() + 4 <= value.len()) {
            let header = out.pending();
            header.push(LZF_STRING);
            write_len(header, packed.len() as u64);
            write_len(header, value.len() as u64);
            return out.write_direct(&packed);
        }
    }
    write_len(out.pending(), value.len() as u64);
    out.write_direct(value)
}

/// The special string encoding byte that announces an LZF-compressed string.
pub(super) const LZF_STRING: u8 = 0xC3;

#[cfg(test)]
mod tests {
    use super::*;

    fn via_long_path(value: &[u8], compress: bool) -> Vec<u8> {
        let mut out = Output::new(Vec::new(), 0);
        write_long_string(&mut out, value, compress).unwrap();
        out.finish().unwrap()
    }

    fn via_buffer(value: &[u8], compress: bool) -> Vec<u8> {
        let mut out = Vec::new();
        write_string(&mut out, value, compress);
        out
    }

    #[test]
    fn long_strings_are_written_exactly_as_short_ones_would_be() {
        let compressible = vec![b'a'; DIRECT_WRITE_FROM * 3];
        // xorshift bytes: nothing for LZF to find.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let noisy: Vec<u8> = (0..DIRECT_WRITE_FROM * 2)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        for value in [&compressible[..], &noisy[..], b"12345", b"short"] {
            for compress in [true, false] {
                assert_eq!(via_long_path(value, compress), via_buffer(value, compress));
            }
        }
    }
}
