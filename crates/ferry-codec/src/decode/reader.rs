//! Buffered reading of RDB primitives: lengths, strings, fixed-size numbers.
//!
//! The reader tracks the absolute offset of every byte and feeds the running CRC64 in large
//! batches (when the buffer is refilled) rather than per call, because the checksum covers
//! every byte of the file and per-byte work would dominate the decoder's cost.

use std::io::{ErrorKind, Read};

use crate::crc64::Digest;
use bytes::{Bytes, BytesMut};

use crate::error::DecodeError;
use crate::raw_string::{RawForm, RawString};

/// Size of the read-ahead buffer. Every fixed-size read must fit in it.
const BUFFER_SIZE: usize = 64 * 1024;
/// Least room a refill asks the source for (a socket may deliver less at a time).
const MIN_READ: usize = 4 * 1024;
/// Decompressed strings up to this size share arena chunks instead of owning allocations.
const ARENA_STRING_MAX: usize = 4 * 1024;
const ARENA_CHUNK: usize = 64 * 1024;
/// Most we allocate up front for a string whose length comes from the input: a corrupt
/// length must not make us allocate gigabytes before the data proves to be there.
const PREALLOC_LIMIT: usize = 1 << 20;
/// LZF cannot expand data more than this: a back-reference of 2 bytes yields at most 9
/// bytes and one of 3 bytes at most 264 (88 per input byte). A larger claimed
/// uncompressed size is corrupt.
const LZF_MAX_RATIO: u64 = 88;

/// A length field as stored: a plain count or the marker of a specially encoded string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Len {
    Plain(u64),
    /// The low 6 bits of a `11xxxxxx` length byte: 0 int8, 1 int16, 2 int32, 3 LZF.
    Encoded(u8),
}

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// The read-ahead buffer is a refcounted chunk that is never written once filled: strings
/// read from it are slices of it (no allocation or copy per string), and a refill starts a
/// new chunk, so the old one lives exactly as long as some string from it does.
pub(crate) struct Reader<R> {
    inner: R,
    buf: Bytes,
    /// Next unread byte in `buf`.
    pos: usize,
    /// End of valid data in `buf` (its length).
    end: usize,
    /// How much the next refill asks for: a full buffer unless the source delivers less.
    read_size: usize,
    /// Where short decompressed strings are put; each is split off as its own `Bytes`.
    arena: BytesMut,
    /// Reused output buffer of LZF decompression.
    scratch: Vec<u8>,
    /// A stored string too long for the buffer, read whole by `read_raw_string`.
    long_raw: Vec<u8>,
    /// `buf[crc_from..pos]` was consumed but not yet fed to the checksum.
    crc_from: usize,
    /// Absolute stream offset of `buf[0]`.
    base: u64,
    digest: Option<Digest>,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Bytes::new(),
            pos: 0,
            end: 0,
            read_size: BUFFER_SIZE,
            arena: BytesMut::new(),
            scratch: Vec::new(),
            long_raw: Vec::new(),
            crc_from: 0,
            base: 0,
            digest: Some(Digest::new()),
        }
    }

    /// Absolute offset of the next byte to be read.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Stops checksumming (and forgets what was summed so far).
    pub fn disable_checksum(&mut self) {
        self.digest = None;
    }

    /// The CRC64 of every byte consumed so far; checksumming stops afterwards.
    pub fn finish_checksum(&mut self) -> Option<u64> {
        self.flush_crc();
        self.digest.take().map(|d| d.value())
    }

    /// The underlying reader and the bytes read ahead from it but not consumed.
    pub fn into_parts(self) -> (R, Bytes) {
        let rest = self.buf.slice(self.pos..self.end);
        (self.inner, rest)
    }

    /// True when no byte is left (reads more to find out).
    pub fn at_eof(&mut self) -> Result<bool, DecodeError> {
        if self.pos < self.end {
            return Ok(false);
        }
        Ok(!self.fill()?)
    }

    #[inline]
    fn flush_crc(&mut self) {
        if let Some(digest) = self.digest.as_mut() {
            digest.update(&self.buf[self.crc_from..self.pos]);
        }
        self.crc_from = self.pos;
    }

    /// Reads more data into a new chunk that starts with the unread bytes. Returns false at
    /// end of input.
    fn fill(&mut self) -> Result<bool, DecodeError> {
        self.flush_crc();
        let unread = self.end - self.pos;
        if unread >= BUFFER_SIZE {
            return Ok(true);
        }
        let room = self.read_size.max(MIN_READ);
        let mut next = BytesMut::zeroed(unread + room);
        next[..unread].copy_from_slice(&self.buf[self.pos..self.end]);
        loop {
            match self.inner.read(&mut next[unread..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    // Ask for about what the source gives: zeroing a full buffer for each
                    // small socket read would cost more than the read.
                    self.read_size = if n == room {
                        (room * 2).min(BUFFER_SIZE)
                    } else {
                        (n * 2).clamp(MIN_READ, BUFFER_SIZE)
                    };
                    next.truncate(unread + n);
                    self.base += self.pos as u64;
                    self.buf = next.freeze();
                    self.pos = 0;
                    self.end = self.buf.len();
                    self.crc_from = 0;
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(DecodeError::Io {
                        offset: self.offset(),
                        source,
                    })
                }
            }
        }
    }

    /// Makes at least `n` (≤ buffer size) bytes available.
    #[inline]
    fn ensure(&mut self, n: usize, context: &'static str) -> Result<(), DecodeError> {
        while self.end - self.pos < n {
            if !self.fill()? {
                return Err(DecodeError::Truncated {
                    offset: self.offset() + (self.end - self.pos) as u64,
                    context,
                });
            }
        }
        Ok(())
    }

    #[inline]
    pub fn read_u8(&mut self, context: &'static str) -> Result<u8, DecodeError> {
        if self.pos == self.end {
            self.ensure(1, context)?;
        }
        let byte = self.buf[self.pos];
        self.pos += 1;
        Ok(byte)
    }

    #[inline]
    pub fn read_array<const N: usize>(
        &mut self,
        context: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        self.ensure(N, context)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        Ok(out)
    }

    pub fn read_u64_le(&mut self, context: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.read_array(context)?))
    }

    pub fn read_i64_le(&mut self, context: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.read_array(context)?))
    }

    pub fn read_f64_le(&mut self, context: &'static str) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.read_array(context)?))
    }

    /// A length field, or the marker of a specially encoded string.
    #[inline]
    pub fn read_len_or_encoding(&mut self, context: &'static str) -> Result<Len, DecodeError> {
        let first = self.read_u8(context)?;
        match first >> 6 {
            0 => Ok(Len::Plain(u64::from(first & 0x3f))),
            1 => {
                let second = self.read_u8(context)?;
                Ok(Len::Plain(
                    (u64::from(first & 0x3f) << 8) | u64::from(second),
                ))
            }
            2 => match first {
                0x80 => Ok(Len::Plain(u64::from(u32::from_be_bytes(
                    self.read_array(context)?,
                )))),
                0x81 => Ok(Len::Plain(u64::from_be_bytes(self.read_array(context)?))),
                _ => Err(self.invalid_at(1, format!("bad length byte 0x{first:02x} in {context}"))),
            },
            _ => Ok(Len::Encoded(first & 0x3f)),
        }
    }

    /// A plain length; a string-encoding marker here is an error.
    #[inline]
    pub fn read_len(&mut self, context: &'static str) -> Result<u64, DecodeError> {
        match self.read_len_or_encoding(context)? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(self.invalid_at(
                1,
                format!("expected a length in {context}, found a string encoding"),
            )),
        }
    }

    /// A length used as an in-memory count; rejects values that cannot be one.
    pub fn read_count(&mut self, context: &'static str) -> Result<u64, DecodeError> {
        let n = self.read_len(context)?;
        if n > u64::from(u32::MAX) * 16 {
            return Err(self.invalid(format!("implausible count {n} in {context}")));
        }
        Ok(n)
    }

    /// An RDB string: plain, integer-encoded (returned as its decimal text) or LZF.
    #[inline]
    pub fn read_string(&mut self, context: &'static str) -> Result<Bytes, DecodeError> {
        // Fast path for the common short string (6-bit length) already in the buffer.
        if let Some(&first) = self.buf[..self.end].get(self.pos) {
            let n = usize::from(first);
            if n < 0x40 && self.end - self.pos > n {
                let out = self.buf.slice(self.pos + 1..self.pos + 1 + n);
                self.pos += 1 + n;
                return Ok(out);
            }
        }
        match self.read_len_or_encoding(context)? {
            Len::Plain(n) => self.read_bytes(n, context),
            Len::Encoded(ENC_INT8) => {
                let v = self.read_u8(context)? as i8;
                Ok(self.decimal(i64::from(v)))
            }
            Len::Encoded(ENC_INT16) => {
                let v = i16::from_le_bytes(self.read_array(context)?);
                Ok(self.decimal(i64::from(v)))
            }
            Len::Encoded(ENC_INT32) => {
                let v = i32::from_le_bytes(self.read_array(context)?);
                Ok(self.decimal(i64::from(v)))
            }
            Len::Encoded(ENC_LZF) => self.read_lzf(context),
            Len::Encoded(other) => {
                Err(self.invalid_at(1, format!("unknown string encoding {other} in {context}")))
            }
        }
    }

    /// Reads past an RDB string without keeping it. LZF data is still decompressed (into a
    /// reused buffer) so that a corrupt string is reported as `read_string` would.
    pub fn skip_string(&mut self, context: &'static str) -> Result<(), DecodeError> {
        if let Some((head, data_len, form)) = self.buffered_string() {
            let start = self.pos + head;
            self.pos = start + data_len;
            if let RawForm::Lzf { original_len } = form {
                let offset = self.offset() - data_len as u64;
                crate::lzf::check(&self.buf[start..self.pos], original_len)
                    .map_err(|source| DecodeError::Structure { offset, source })?;
            }
            return Ok(());
        }
        match self.read_len_or_encoding(context)? {
            Len::Plain(n) => self.skip(n, context),
            Len::Encoded(ENC_INT8) => self.skip(1, context),
            Len::Encoded(ENC_INT16) => self.skip(2, context),
            Len::Encoded(ENC_INT32) => self.skip(4, context),
            Len::Encoded(ENC_LZF) => self.skip_lzf(context),
            Len::Encoded(other) => {
                Err(self.invalid_at(1, format!("unknown string encoding {other} in {context}")))
            }
        }
    }

    /// Consumes `n` bytes.
    fn skip(&mut self, mut n: u64, context: &'static str) -> Result<(), DecodeError> {
        while n > 0 {
            if self.pos == self.end {
                self.ensure(1, context)?;
            }
            let take = n.min((self.end - self.pos) as u64) as usize;
            self.pos += take;
            n -= take as u64;
        }
        Ok(())
    }

    /// An LZF string's two lengths, checked; and the offset of its data.
    fn lzf_header(&mut self, context: &'static str) -> Result<(u64, usize, u64), DecodeError> {
        let compressed_len = self.read_len(context)?;
        let original_len = self.read_len(context)?;
        let start = self.offset();
        let original_len = self.check_lzf_lengths(compressed_len, original_len, context)?;
        Ok((compressed_len, original_len, start))
    }

    /// Refuses an LZF string's claimed size that its data cannot hold or this machine cannot.
    fn check_lzf_lengths(
        &self,
        compressed_len: u64,
        original_len: u64,
        context: &'static str,
    ) -> Result<usize, DecodeError> {
        if original_len
            > compressed_len
                .saturating_mul(LZF_MAX_RATIO)
                .saturating_add(64)
        {
            return Err(self.invalid(format!(
                "LZF string in {context} claims {original_len} bytes from {compressed_len} compressed"
            )));
        }
        usize::try_from(original_len).map_err(|_| {
            self.invalid(format!(
                "LZF string in {context} too large for this machine"
            ))
        })
    }

    /// Decompresses an LZF string's data (its lengths already read) into `self.scratch`;
    /// returns the compressed data.
    fn lzf_to_scratch(
        &mut self,
        compressed_len: u64,
        original_len: usize,
        start: u64,
        context: &'static str,
    ) -> Result<Bytes, DecodeError> {
        let data = self.read_bytes(compressed_len, context)?;
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = crate::lzf::decompress_into(&data, original_len, &mut scratch);
        self.scratch = scratch;
        result.map_err(|source| DecodeError::Structure {
            offset: start,
            source,
        })?;
        Ok(data)
    }

    fn skip_lzf(&mut self, context: &'static str) -> Result<(), DecodeError> {
        let (compressed_len, original_len, start) = self.lzf_header(context)?;
        let checked = if compressed_len <= (self.end - self.pos) as u64 {
            let n = compressed_len as usize;
            let data = &self.buf[self.pos..self.pos + n];
            self.pos += n;
            crate::lzf::check(data, original_len)
        } else {
            let data = self.read_bytes(compressed_len, context)?;
            crate::lzf::check(&data, original_len)
        };
        checked.map_err(|source| DecodeError::Structure {
            offset: start,
            source,
        })
    }

    fn read_lzf(&mut self, context: &'static str) -> Result<Bytes, DecodeError> {
        let (compressed_len, original_len, start) = self.lzf_header(context)?;
        if original_len <= ARENA_STRING_MAX {
            // The common short value: decompressed into a reused buffer, then into the
            // arena, which costs a copy of a few bytes instead of an allocation.
            let compressed = self.lzf_to_scratch(compressed_len, original_len, start, context)?;
            let scratch = std::mem::take(&mut self.scratch);
            let out = self.in_arena(&scratch);
            self.scratch = scratch;
            crate::lzf_memo::remember(&out, compressed);
            return Ok(out);
        }
        let data = self.read_bytes(compressed_len, context)?;
        let mut out = Vec::new();
        crate::lzf::decompress_into(&data, original_len, &mut out).map_err(|source| {
            DecodeError::Structure {
                offset: start,
                source,
            }
        })?;
        let out = Bytes::from(out);
        crate::lzf_memo::remember(&out, data);
        Ok(out)
    }

    /// An RDB string as stored, prefix and data, without expanding it: a slice of the read
    /// chunk unless it is longer than a chunk. LZF data is checked as [`Self::read_string`]
    /// would check it.
    #[inline]
    pub fn read_raw_string(&mut self, context: &'static str) -> Result<RawString<'_>, DecodeError> {
        if self.long_raw.capacity() != 0 {
            // The last long string is no longer borrowed: its memory goes back.
            self.long_raw = Vec::new();
        }
        // The common case: a plain or LZF string with short length fields, already buffered
        // whole; anything else goes the general way (which also reports what is wrong).
        let Some((head, data_len, form)) = self.buffered_string() else {
            return self.read_raw_string_slow(context);
        };
        let start = self.pos;
        self.pos += head + data_len;
        let stored = &self.buf[start..self.pos];
        if let RawForm::Lzf { original_len } = form {
            if let Err(source) = crate::lzf::check(&stored[head..], original_len) {
                let offset = self.offset() - data_len as u64;
                return Err(DecodeError::Structure { offset, source });
            }
        }
        Ok(RawString { stored, head, form })
    }

    /// The next string's prefix length, data length and form, when it is a plain or LZF
    /// string with short length fields, already buffered whole, and its claimed size is
    /// plausible; `None` otherwise.
    #[inline]
    fn buffered_string(&self) -> Option<(usize, usize, RawForm)> {
        let rest = self.buf.get(self.pos..self.end)?;
        let first = *rest.first()?;
        let (head, data_len, form) = if first < 0x40 {
            (1, usize::from(first), RawForm::Plain)
        } else if first == 0xC0 | ENC_LZF {
            let (first_width, compressed_len) = short_len(rest.get(1..)?)?;
            let (second_width, original_len) = short_len(rest.get(1 + first_width..)?)?;
            if original_len as u64 > (compressed_len as u64) * LZF_MAX_RATIO + 64 {
                return None;
            }
            let head = 1 + first_width + second_width;
            (head, compressed_len, RawForm::Lzf { original_len })
        } else {
            return None;
        };
        (head + data_len <= rest.len()).then_some((head, data_len, form))
    }

    fn read_raw_string_slow(
        &mut self,
        context: &'static str,
    ) -> Result<RawString<'_>, DecodeError> {
        let (width, len) = self.peek_len(0, context)?;
        let (head, data_len, form) = match len {
            Len::Plain(n) => (width, n, RawForm::Plain),
            Len::Encoded(ENC_INT8) => {
                let v = self.peek_at(1, 1, context)?[0] as i8;
                (1, 1, RawForm::Int(i64::from(v)))
            }
            Len::Encoded(ENC_INT16) => {
                let b = self.peek_at(1, 2, context)?;
                (
                    1,
                    2,
                    RawForm::Int(i64::from(i16::from_le_bytes([b[0], b[1]]))),
                )
            }
            Len::Encoded(ENC_INT32) => {
                let b = self.peek_at(1, 4, context)?;
                let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                (1, 4, RawForm::Int(i64::from(v)))
            }
            Len::Encoded(ENC_LZF) => {
                let (first, compressed_len) = self.peek_plain_len(1, context)?;
                let (second, original_len) = self.peek_plain_len(1 + first, context)?;
                let head = 1 + first + second;
                let original_len = self.check_lzf_lengths(compressed_len, original_len, context)?;
                (head, compressed_len, RawForm::Lzf { original_len })
            }
            Len::Encoded(other) => {
                return Err(self.invalid(format!("unknown string encoding {other} in {context}")))
            }
        };
        let in_buffer = match usize::try_from(head as u64 + data_len) {
            Ok(total) if total <= BUFFER_SIZE => {
                self.ensure(total, context)?;
                let start = self.pos;
                self.pos += total;
                Some(start..self.pos)
            }
            _ => {
                let mut long = Vec::new();
                self.copy_into(head, &mut long, context)?;
                self.read_bytes_into(data_len, &mut long, context)?;
                self.long_raw = long;
                None
            }
        };
        let end_offset = self.offset();
        let stored = match in_buffer {
            Some(range) => &self.buf[range],
            None => &self.long_raw[..],
        };
        if let RawForm::Lzf { original_len } = form {
            let data = &stored[head..];
            let start = end_offset - data.len() as u64;
            crate::lzf::check(data, original_len).map_err(|source| DecodeError::Structure {
                offset: start,
                source,
            })?;
        }
        Ok(RawString { stored, head, form })
    }

    /// `n` bytes starting `at` bytes after the next unread one, not consumed (`at + n` must
    /// fit the buffer).
    fn peek_at(
        &mut self,
        at: usize,
        n: usize,
        context: &'static str,
    ) -> Result<&[u8], DecodeError> {
        self.ensure(at + n, context)?;
        Ok(&self.buf[self.pos + at..self.pos + at + n])
    }

    /// The length field `at` bytes ahead, not consumed: its width and value.
    fn peek_len(&mut self, at: usize, context: &'static str) -> Result<(usize, Len), DecodeError> {
        let first = self.peek_at(at, 1, context)?[0];
        let parsed = match first >> 6 {
            0 => (1, Len::Plain(u64::from(first & 0x3f))),
            1 => {
                let second = self.peek_at(at + 1, 1, context)?[0];
                (
                    2,
                    Len::Plain((u64::from(first & 0x3f) << 8) | u64::from(second)),
                )
            }
            2 if first == 0x80 => {
                let b = self.peek_at(at + 1, 4, context)?;
                (
                    5,
                    Len::Plain(u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
                )
            }
            2 if first == 0x81 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(self.peek_at(at + 1, 8, context)?);
                (9, Len::Plain(u64::from_be_bytes(b)))
            }
            2 => {
                return Err(DecodeError::Invalid {
                    offset: self.offset() + at as u64,
                    problem: format!("bad length byte 0x{first:02x} in {context}"),
                })
            }
            _ => (1, Len::Encoded(first & 0x3f)),
        };
        Ok(parsed)
    }

    fn peek_plain_len(
        &mut self,
        at: usize,
        context: &'static str,
    ) -> Result<(usize, u64), DecodeError> {
        match self.peek_len(at, context)? {
            (width, Len::Plain(n)) => Ok((width, n)),
            (_, Len::Encoded(_)) => Err(DecodeError::Invalid {
                offset: self.offset() + at as u64,
                problem: format!("expected a length in {context}, found a string encoding"),
            }),
        }
    }

    /// A copy of `data` in the arena: shares a chunk with its neighbours.
    fn in_arena(&mut self, data: &[u8]) -> Bytes {
        if self.arena.capacity() - self.arena.len() < data.len() {
            self.arena = BytesMut::with_capacity(ARENA_CHUNK.max(data.len()));
        }
        self.arena.extend_from_slice(data);
        self.arena.split().freeze()
    }

    /// The decimal text of an integer-encoded string.
    fn decimal(&mut self, value: i64) -> Bytes {
        let mut digits = [0u8; 20];
        let text = crate::listpack::format_i64(value, &mut digits);
        self.in_arena(text)
    }

    /// Exactly `n` bytes. Large reads go straight from the source into the result.
    pub fn read_bytes(&mut self, n: u64, context: &'static str) -> Result<Bytes, DecodeError> {
        let available = self.end - self.pos;
        if n <= available as u64 {
            let n = n as usize;
            let out = self.buf.slice(self.pos..self.pos + n);
            self.pos += n;
            return Ok(out);
        }
        let mut out = Vec::new();
        self.read_bytes_into(n, &mut out, context)?;
        Ok(Bytes::from(out))
    }

    /// Appends exactly `n` bytes to `out`; large reads go straight from the source.
    fn read_bytes_into(
        &mut self,
        n: u64,
        out: &mut Vec<u8>,
        context: &'static str,
    ) -> Result<(), DecodeError> {
        let n = usize::try_from(n)
            .map_err(|_| self.invalid(format!("{context} of {n} bytes is too large")))?;
        out.reserve(n.min(PREALLOC_LIMIT));
        let available = (self.end - self.pos).min(n);
        out.extend_from_slice(&self.buf[self.pos..self.pos + available]);
        self.pos += available;
        let rest = n - available;
        if rest < BUFFER_SIZE / 2 {
            self.copy_into(rest, out, context)
        } else {
            self.read_direct(rest, out, context)
        }
    }

    /// Reads `n` bytes from the source into `out`, bypassing the (empty) buffer.
    fn read_direct(
        &mut self,
        n: usize,
        out: &mut Vec<u8>,
        context: &'static str,
    ) -> Result<(), DecodeError> {
        debug_assert_eq!(self.pos, self.end);
        self.flush_crc();
        let start = out.len();
        // `read_to_end` grows `out` as data actually arrives, so a lying length cannot make
        // us allocate more than about twice what the source really holds.
        let result = (&mut self.inner).take(n as u64).read_to_end(out);
        let got = out.len() - start;
        if let Some(digest) = self.digest.as_mut() {
            digest.update(&out[start..]);
        }
        self.base += got as u64;
        if let Err(source) = result {
            return Err(DecodeError::Io {
                offset: self.offset(),
                source,
            });
        }
        if got < n {
            return Err(DecodeError::Truncated {
                offset: self.offset(),
                context,
            });
        }
        Ok(())
    }

    /// Appends exactly `n` bytes to `out`, going through the buffer.
    pub fn copy_into(
        &mut self,
        mut n: usize,
        out: &mut Vec<u8>,
        context: &'static str,
    ) -> Result<(), DecodeError> {
        while n > 0 {
            if self.pos == self.end {
                self.ensure(1, context)?;
            }
            let take = n.min(self.end - self.pos);
            out.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            n -= take;
        }
        Ok(())
    }

    /// Like [`Self::read_len_or_encoding`], also appending the raw bytes to `raw`.
    pub fn read_len_raw(
        &mut self,
        raw: &mut Vec<u8>,
        context: &'static str,
    ) -> Result<Len, DecodeError> {
        let first = self.peek_u8(context)?;
        let len = self.read_len_or_encoding(context)?;
        // The first byte fixes the field's width, so the value re-encodes to the same bytes.
        match (first >> 6, len) {
            (1, Len::Plain(n)) => raw.extend_from_slice(&[first, n as u8]),
            (2, Len::Plain(n)) if first == 0x80 => {
                raw.push(first);
                raw.extend_from_slice(&(n as u32).to_be_bytes());
            }
            (2, Len::Plain(n)) => {
                raw.push(first);
                raw.extend_from_slice(&n.to_be_bytes());
            }
            _ => raw.push(first),
        }
        Ok(len)
    }

    #[inline]
    fn peek_u8(&mut self, context: &'static str) -> Result<u8, DecodeError> {
        if self.pos == self.end {
            self.ensure(1, context)?;
        }
        Ok(self.buf[self.pos])
    }

    /// Copies one RDB string, in whatever encoding, to `raw` without interpreting it.
    pub fn copy_string_raw(
        &mut self,
        raw: &mut Vec<u8>,
        context: &'static str,
    ) -> Result<(), DecodeError> {
        match self.read_len_raw(raw, context)? {
            Len::Plain(n) => self.copy_counted(n, raw, context),
            Len::Encoded(ENC_INT8) => self.copy_into(1, raw, context),
            Len::Encoded(ENC_INT16) => self.copy_into(2, raw, context),
            Len::Encoded(ENC_INT32) => self.copy_into(4, raw, context),
            Len::Encoded(ENC_LZF) => {
                let compressed = self.read_len_raw(raw, context)?;
                let compressed = self.expect_plain(compressed, context)?;
                let original = self.read_len_raw(raw, context)?;
                self.expect_plain(original, context)?;
                self.copy_counted(compressed, raw, context)
            }
            Len::Encoded(other) => {
                Err(self.invalid_at(1, format!("unknown string encoding {other} in {context}")))
            }
        }
    }

    fn copy_counted(
        &mut self,
        n: u64,
        raw: &mut Vec<u8>,
        context: &'static str,
    ) -> Result<(), DecodeError> {
        let n = usize::try_from(n)
            .map_err(|_| self.invalid(format!("{context} of {n} bytes is too large")))?;
        self.copy_into(n, raw, context)
    }

    fn expect_plain(&self, len: Len, context: &'static str) -> Result<u64, DecodeError> {
        match len {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(self.invalid_at(1, format!("expected a length in {context}"))),
        }
    }

    /// An `Invalid` error at the current offset.
    pub fn invalid(&self, problem: String) -> DecodeError {
        DecodeError::Invalid {
            offset: self.offset(),
            problem,
        }
    }

    /// An `Invalid` error `back` bytes before the current offset.
    pub fn invalid_at(&self, back: u64, problem: String) -> DecodeError {
        DecodeError::Invalid {
            offset: self.offset().saturating_sub(back),
            problem,
        }
    }
}

/// A 6- or 14-bit length field at the start of `bytes`: its width and value; `None` for
/// other forms or too few bytes.
#[inline]
fn short_len(bytes: &[u8]) -> Option<(usize, usize)> {
    let first = *bytes.first()?;
    match first >> 6 {
        0 => Some((1, usize::from(first))),
        1 => Some((
            2,
            usize::from(first & 0x3f) << 8 | usize::from(*bytes.get(1)?),
        )),
        _ => None,
    }
}

/// The decimal text of an integer, as Redis returns integer-encoded strings.
pub(crate) fn decimal(value: i64) -> Bytes {
    let mut digits = [0u8; 20];
    Bytes::copy_from_slice(crate::listpack::format_i64(value, &mut digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> Reader<&[u8]> {
        Reader::new(bytes)
    }

    #[test]
    fn decimal_covers_extremes() {
        assert_eq!(decimal(0), "0");
        assert_eq!(decimal(-7), "-7");
        assert_eq!(decimal(i64::MIN), i64::MIN.to_string().as_str());
        assert_eq!(decimal(i64::MAX), i64::MAX.to_string().as_str());
    }

    #[test]
    fn lengths_in_all_four_widths() {
        let mut r = reader(&[
            0x05, 0x41, 0x02, 0x80, 0, 1, 0, 0, 0x81, 0, 0, 0, 1, 0, 0, 0, 0,
        ]);
        assert_eq!(r.read_len("t").unwrap(), 5);
        assert_eq!(r.read_len("t").unwrap(), 0x102);
        assert_eq!(r.read_len("t").unwrap(), 0x10000);
        assert_eq!(r.read_len("t").unwrap(), 1 << 32);
        assert_eq!(r.offset(), 17);
    }

    #[test]
    fn integer_encoded_strings_read_as_text() {
        let mut r = reader(&[0xc0, 0xff, 0xc1, 0x00, 0x80, 0xc2, 0x15, 0xcd, 0x5b, 0x07]);
        assert_eq!(r.read_string("t").unwrap(), "-1");
        assert_eq!(r.read_string("t").unwrap(), "-32768");
        assert_eq!(r.read_string("t").unwrap(), "123456789");
    }

    #[test]
    fn huge_claimed_length_fails_fast() {
        // 0x81 + 8 bytes: a 2^40 byte string in a tiny input.
        let input = [0x81, 0, 0, 1, 0, 0, 0, 0, 0, b'a', b'b'];
        let mut r = reader(&input);
        let err = r.read_string("value").unwrap_err();
        assert!(matches!(err, DecodeError::Truncated { .. }), "{err}");
    }

    #[test]
    fn long_strings_cross_buffer_refills_and_keep_the_checksum() {
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut input = vec![0x80];
        input.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        input.extend_from_slice(&payload);
        input.push(0x03);
        input.extend_from_slice(b"abc");
        let mut r = reader(&input);
        assert_eq!(&r.read_string("t").unwrap()[..], &payload[..]);
        assert_eq!(r.read_string("t").unwrap(), "abc");
        assert_eq!(r.offset(), input.len() as u64);
        assert_eq!(r.finish_checksum(), Some(crate::crc64::checksum(&input)));
    }

    #[test]
    fn raw_copies_reproduce_the_input() {
        let input = [
            0x41, 0x02, 0xc3, 0x02, 0x05, 0xaa, 0xbb, 0xc0, 0x05, 0x02, b'h', b'i',
        ];
        let mut r = reader(&input);
        let mut raw = Vec::new();
        r.read_len_raw(&mut raw, "t").unwrap();
        r.copy_string_raw(&mut raw, "t").unwrap();
        r.copy_string_raw(&mut raw, "t").unwrap();
        r.copy_string_raw(&mut raw, "t").unwrap();
        assert_eq!(raw, input);
    }
}
