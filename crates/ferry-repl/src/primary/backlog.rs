//! A primary's replication backlog: the last `capacity` bytes of its stream, addressed by
//! replication offset, so a replica that reconnects can continue where it stopped.

use bytes::Bytes;
use std::collections::VecDeque;

/// The tail of a primary's stream, with the offsets to serve a partial resync from it.
#[derive(Debug)]
pub struct Backlog {
    capacity: usize,
    bytes: VecDeque<u8>,
    /// The offset of the last byte appended (`master_repl_offset`).
    end: i64,
}

impl Backlog {
    /// An empty backlog whose stream so far has `offset` bytes.
    pub fn new(capacity: usize, offset: i64) -> Self {
        Self {
            capacity: capacity.max(1),
            bytes: VecDeque::with_capacity(capacity.min(1 << 20)),
            end: offset,
        }
    }

    /// The stream's offset: bytes produced since the history began (plus its start).
    pub fn offset(&self) -> i64 {
        self.end
    }

    /// The PSYNC offset (1-based position) of the oldest byte held.
    pub fn first_offset(&self) -> i64 {
        self.end - self.bytes.len() as i64 + 1
    }

    /// Bytes held (at most the capacity).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no byte is held yet.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends stream bytes, dropping the oldest beyond the capacity.
    pub fn append(&mut self, data: &[u8]) {
        self.end += data.len() as i64;
        if data.len() >= self.capacity {
            self.bytes.clear();
            self.bytes.extend(&data[data.len() - self.capacity..]);
            return;
        }
        let overflow = (self.bytes.len() + data.len()).saturating_sub(self.capacity);
        self.bytes.drain(..overflow);
        self.bytes.extend(data);
    }

    /// Whether a replica asking `PSYNC <id> <psync_offset>` can continue from here: the
    /// next byte it needs is held, or it has everything.
    pub fn can_serve(&self, psync_offset: i64) -> bool {
        psync_offset >= self.first_offset() && psync_offset <= self.end + 1
    }

    /// Up to `max` bytes starting at PSYNC offset `from` (1-based); empty when `from` is
    /// just past the end; `None` when those bytes are no longer (or not yet) held.
    pub fn read_from(&self, from: i64, max: usize) -> Option<Bytes> {
        if !self.can_serve(from) {
            return None;
        }
        let start = usize::try_from(from - self.first_offset()).ok()?;
        let len = (self.bytes.len() - start).min(max);
        let (front, back) = self.bytes.as_slices();
        let mut out = Vec::with_capacity(len);
        if start < front.len() {
            let take = (front.len() - start).min(len);
            out.extend_from_slice(&front[start..start + take]);
            let rest = len - take;
            out.extend_from_slice(&back[..rest]);
        } else {
            let at = start - front.len();
            out.extend_from_slice(&back[at..at + len]);
        }
        Some(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_what_it_holds_by_offset() {
        let mut backlog = Backlog::new(8, 100);
        assert!(backlog.can_serve(101), "nothing missed yet");
        assert!(!backlog.can_serve(100));
        assert_eq!(backlog.read_from(101, 10).unwrap(), Bytes::new());
        backlog.append(b"abcde");
        assert_eq!(backlog.offset(), 105);
        assert_eq!(backlog.read_from(101, 10).unwrap(), &b"abcde"[..]);
        assert_eq!(backlog.read_from(103, 2).unwrap(), &b"cd"[..]);
        backlog.append(b"fghij");
        // Capacity 8: "ab" fell out.
        assert_eq!(backlog.first_offset(), 103);
        assert!(backlog.read_from(102, 10).is_none());
        assert_eq!(backlog.read_from(103, 100).unwrap(), &b"cdefghij"[..]);
        assert!(backlog.read_from(112, 1).is_none(), "past the end");
        backlog.append(b"0123456789");
        assert_eq!(backlog.offset(), 120);
        assert_eq!(backlog.read_from(113, 100).unwrap(), &b"23456789"[..]);
    }

    #[test]
    fn reads_across_the_ring_seam() {
        let mut backlog = Backlog::new(6, 0);
        for chunk in [&b"abcd"[..], b"ef", b"gh", b"ij"] {
            backlog.append(chunk);
        }
        assert_eq!(backlog.read_from(5, 100).unwrap(), &b"efghij"[..]);
        assert_eq!(backlog.read_from(6, 3).unwrap(), &b"fgh"[..]);
    }
}
