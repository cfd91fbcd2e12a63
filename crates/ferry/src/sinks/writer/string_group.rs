//! Plain string keys gathered into one `MSET`. A RESTORE per key costs the target a
//! command, a payload check and an LZF expansion per key, and ferry a payload (LZF and
//! CRC64) per key; an MSET of many small strings costs one command for all of them, which
//! halves the target's CPU per key in a load of many small strings.
//!
//! Only keys for which MSET leaves the target exactly as RESTORE … REPLACE would: strings
//! without an expiry and without the LRU/LFU hints RESTORE carries (IDLETIME/FREQ). MSET
//! replaces whatever the key held, of any type, and clears a TTL, as REPLACE does.

use super::pipe::Batch;
use bytes::BytesMut;
use ferry_codec::{KeyHeader, Kind};
use ferry_repl::resp::encode_bulk;

/// Keys per MSET: enough that the command's own cost vanishes per key, few enough that
/// an MSET stays a small share of a batch.
pub const GROUP_KEYS: u32 = 128;

/// Whether `header`'s key may go in an MSET (see the module's words).
pub fn fits(header: &KeyHeader) -> bool {
    header.kind == Kind::String
        && header.expire_at_ms.is_none()
        && header.idle_secs.is_none()
        && header.freq.is_none()
}

/// The pairs of the MSET being gathered, encoded as they come.
#[derive(Debug, Default)]
pub struct StringGroup {
    pairs: BytesMut,
    keys: u32,
}

impl StringGroup {
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        encode_bulk(key, &mut self.pairs);
        encode_bulk(value, &mut self.pairs);
        self.keys += 1;
    }

    pub fn keys(&self) -> u32 {
        self.keys
    }

    pub fn bytes(&self) -> usize {
        self.pairs.len()
    }

    /// Appends the MSET of the keys gathered (nothing when there are none) and starts a
    /// new group.
    pub fn flush_into(&mut self, batch: &mut Batch) {
        if self.keys == 0 {
            return;
        }
        batch.push_with_encoded(&[b"MSET"], 2 * self.keys as usize, &self.pairs);
        self.pairs.clear();
        self.keys = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn the_gathered_pairs_go_out_as_one_mset() {
        let mut group = StringGroup::default();
        let mut batch = Batch::default();
        group.flush_into(&mut batch);
        assert!(batch.is_empty(), "an empty group writes nothing");
        group.add(b"a", b"1");
        group.add(b"k\r\n", b"");
        assert_eq!(group.keys(), 2);
        group.flush_into(&mut batch);
        assert_eq!(batch.replies, 1);
        assert_eq!(
            &batch.payload[..],
            b"*5\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\n1\r\n$3\r\nk\r\n\r\n$0\r\n\r\n"
        );
        assert_eq!((group.keys(), group.bytes()), (0, 0));
    }

    #[test]
    fn only_strings_without_expiry_or_eviction_hints_fit() {
        let header = |kind, expire_at_ms, idle_secs, freq| KeyHeader {
            db: 0,
            key: Bytes::from_static(b"k"),
            expire_at_ms,
            idle_secs,
            freq,
            kind,
            encoding: 0,
            len: None,
        };
        assert!(fits(&header(Kind::String, None, None, None)));
        assert!(!fits(&header(Kind::String, Some(1), None, None)));
        assert!(!fits(&header(Kind::String, None, Some(5), None)));
        assert!(!fits(&header(Kind::String, None, None, Some(3))));
        assert!(!fits(&header(Kind::Hash, None, None, None)));
    }
}
