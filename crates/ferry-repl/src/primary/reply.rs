//! What a primary sends a replica: the PSYNC replies and the snapshot's `$EOF:` framing.

use bytes::Bytes;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::snapshot::MARK_LEN;

/// `+FULLRESYNC <replid> <offset>`: a snapshot follows, then the stream from `offset`.
pub fn full_resync_line(replid: &str, offset: i64) -> Bytes {
    Bytes::from(format!("+FULLRESYNC {replid} {offset}\r\n"))
}

/// `+CONTINUE <replid>`: the stream continues from the offset the replica asked for.
/// Replicas that announced `capa psync2` (every Valkey, Redis 4+) read the ID.
pub fn continue_line(replid: &str) -> Bytes {
    Bytes::from(format!("+CONTINUE {replid}\r\n"))
}

/// A fresh 40-character replication ID (lower-case hex), as primaries make them.
pub fn new_replid() -> String {
    random_hex(40)
}

/// The end mark of a diskless snapshot: `$EOF:<mark>\r\n`, the bytes, then `<mark>`. A
/// replica stops at the first occurrence of the mark, so it is random: 160 bits make a
/// collision with snapshot content practically impossible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EofMark([u8; MARK_LEN]);

impl EofMark {
    /// A fresh random mark.
    pub fn new() -> Self {
        let mut mark = [b'0'; MARK_LEN];
        mark.copy_from_slice(random_hex(MARK_LEN).as_bytes());
        Self(mark)
    }

    /// The line announcing the snapshot.
    pub fn header(&self) -> Bytes {
        let mut line = Vec::with_capacity(MARK_LEN + 7);
        line.extend_from_slice(b"$EOF:");
        line.extend_from_slice(&self.0);
        line.extend_from_slice(b"\r\n");
        Bytes::from(line)
    }

    /// What follows the last snapshot byte.
    pub fn trailer(&self) -> Bytes {
        Bytes::copy_from_slice(&self.0)
    }
}

impl Default for EofMark {
    fn default() -> Self {
        Self::new()
    }
}

/// Random hex from the standard library's per-process random hash keys, mixed with the
/// time and a counter: unique enough for IDs, without a dependency on a RNG crate.
fn random_hex(len: usize) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        hasher.write_u64(nanos);
        hasher.write_u32(std::process::id());
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{parse_header_line, HeaderLine};

    #[test]
    fn replids_are_40_hex_and_differ() {
        let a = new_replid();
        let b = new_replid();
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_eof_header_reads_back_as_the_replica_side_parses_it() {
        let mark = EofMark::new();
        let header = mark.header();
        let line = header.strip_suffix(b"\r\n").unwrap();
        match parse_header_line(line).unwrap() {
            HeaderLine::EndMark(read) => assert_eq!(&read[..], &mark.trailer()[..]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replies_read_as_a_replica_expects() {
        assert_eq!(
            &full_resync_line("ab", 7)[..],
            b"+FULLRESYNC ab 7\r\n".as_slice()
        );
        assert_eq!(&continue_line("ab")[..], b"+CONTINUE ab\r\n".as_slice());
    }
}
