//! The output side of the encoder: a buffer in front of the destination that counts bytes
//! and keeps the running CRC64 the file ends with.

use std::io::{self, Write};

use crate::crc64;

/// Pending bytes are handed to the destination once they pass this size.
const FLUSH_AT: usize = 64 * 1024;

/// Strings at least this long skip the buffer and go straight to the destination.
pub(super) const DIRECT_WRITE_FROM: usize = FLUSH_AT;

pub(super) struct Output<W: Write> {
    inner: W,
    pending: Vec<u8>,
    digest: crc64::Digest,
    flushed: u64,
    /// Capacity kept after a flush. The buffer holds a whole buffered value's encoding, so
    /// about the buffer limit; beyond that a one-off big key's memory is given back.
    keep_capacity: usize,
}

impl<W: Write> Output<W> {
    pub(super) fn new(inner: W, keep_capacity: usize) -> Self {
        Self {
            inner,
            pending: Vec::with_capacity(FLUSH_AT * 2),
            digest: crc64::Digest::new(),
            flushed: 0,
            keep_capacity: keep_capacity.max(FLUSH_AT * 2),
        }
    }

    /// The bytes not yet handed on. Encoders append to it directly; everything from a
    /// [`Output::mark`] on can be taken back until the next flush.
    pub(super) fn pending(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }

    pub(super) fn mark(&self) -> usize {
        self.pending.len()
    }

    /// Drops what was appended since `mark` (only valid while nothing was flushed since).
    pub(super) fn rollback(&mut self, mark: usize) {
        self.pending.truncate(mark);
    }

    pub(super) fn flush_if_full(&mut self) -> io::Result<()> {
        if self.pending.len() >= FLUSH_AT {
            self.flush_pending()?;
        }
        Ok(())
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.digest.update(&self.pending);
        self.inner.write_all(&self.pending)?;
        self.flushed += self.pending.len() as u64;
        self.pending.clear();
        if self.pending.capacity() > self.keep_capacity {
            self.pending.shrink_to(self.keep_capacity);
        }
        Ok(())
    }

    /// Writes `bytes` after everything pending without copying them into the buffer.
    pub(super) fn write_direct(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush_pending()?;
        self.digest.update(bytes);
        self.inner.write_all(bytes)?;
        self.flushed += bytes.len() as u64;
        Ok(())
    }

    /// CRC64 of every byte written so far, pending ones included.
    pub(super) fn checksum(&mut self) -> io::Result<u64> {
        self.flush_pending()?;
        Ok(self.digest.value())
    }

    pub(super) fn bytes_written(&self) -> u64 {
        self.flushed + self.pending.len() as u64
    }

    pub(super) fn finish(mut self) -> io::Result<W> {
        self.flush_pending()?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_covers_buffered_and_direct_bytes_in_order() {
        let mut out = Output::new(Vec::new(), 0);
        out.pending().extend_from_slice(b"1234");
        out.write_direct(b"56789").unwrap();
        assert_eq!(out.checksum().unwrap(), crc64::checksum(b"123456789"));
        assert_eq!(out.bytes_written(), 9);
        assert_eq!(out.finish().unwrap(), b"123456789");
    }

    #[test]
    fn rollback_forgets_bytes_since_the_mark() {
        let mut out = Output::new(Vec::new(), 0);
        out.pending().extend_from_slice(b"keep");
        let mark = out.mark();
        out.pending().extend_from_slice(b"drop");
        out.rollback(mark);
        assert_eq!(out.finish().unwrap(), b"keep");
    }
}
