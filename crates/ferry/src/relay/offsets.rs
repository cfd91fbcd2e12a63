//! Which source offset a point of the relay's own stream corresponds to.
//!
//! The relay's stream is the source's, translated: commands rewritten or skipped change
//! its length, so the two offsets drift apart. At command boundaries outside a
//! transaction the relay records the pair; a replica's ACK maps to the source offset of
//! the last pair at or before it (conservative: never past what the replica applied).

use std::collections::VecDeque;

/// At most this many pairs are kept (16 bytes each); the oldest go first.
const MAX_PAIRS: usize = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPair {
    pub relay: i64,
    pub source: i64,
}

#[derive(Debug)]
pub struct OffsetMap {
    pairs: VecDeque<OffsetPair>,
}

impl OffsetMap {
    /// The stream starts at `start`: relay and source offsets as the history begins.
    pub fn new(start: OffsetPair) -> Self {
        let mut pairs = VecDeque::with_capacity(1024);
        pairs.push_back(start);
        Self { pairs }
    }

    /// A boundary: everything up to `relay` in the relay's stream is everything up to
    /// `source` in the source's.
    pub fn record(&mut self, pair: OffsetPair) {
        match self.pairs.back_mut() {
            // Only the source moved (protocol-only commands): the later source offset is
            // just as true for the same relay offset.
            Some(last) if last.relay == pair.relay => last.source = last.source.max(pair.source),
            _ => {
                if self.pairs.len() == MAX_PAIRS {
                    self.pairs.pop_front();
                }
                self.pairs.push_back(pair);
            }
        }
    }

    /// The source offset covered by a replica holding `relay` bytes of the relay's
    /// stream; `None` when that point is older than every pair kept.
    pub fn source_for(&self, relay: i64) -> Option<i64> {
        let index = self.pairs.partition_point(|pair| pair.relay <= relay);
        index
            .checked_sub(1)
            .and_then(|i| self.pairs.get(i))
            .map(|pair| pair.source)
    }

    /// The oldest pair kept.
    pub fn first(&self) -> Option<OffsetPair> {
        self.pairs.front().copied()
    }

    /// The latest pair.
    pub fn last(&self) -> Option<OffsetPair> {
        self.pairs.back().copied()
    }

    /// The last pair at or before relay offset `relay`.
    pub fn pair_at_or_before(&self, relay: i64) -> Option<OffsetPair> {
        let index = self.pairs.partition_point(|pair| pair.relay <= relay);
        index
            .checked_sub(1)
            .and_then(|i| self.pairs.get(i))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(relay: i64, source: i64) -> OffsetPair {
        OffsetPair { relay, source }
    }

    #[test]
    fn acks_map_to_the_last_boundary_at_or_before_them() {
        let mut map = OffsetMap::new(pair(100, 100));
        map.record(pair(130, 140)); // a command shortened by 10 bytes
        map.record(pair(130, 160)); // a REPLCONF GETACK: the source moved alone
        map.record(pair(150, 180));
        assert_eq!(map.source_for(99), None);
        assert_eq!(map.source_for(100), Some(100));
        assert_eq!(map.source_for(129), Some(100), "inside a command");
        assert_eq!(map.source_for(130), Some(160));
        assert_eq!(map.source_for(10_000), Some(180));
        assert_eq!(map.pair_at_or_before(149), Some(pair(130, 160)));
    }

    #[test]
    fn the_oldest_pairs_go_first() {
        let mut map = OffsetMap::new(pair(0, 0));
        for i in 1..=(MAX_PAIRS as i64 + 10) {
            map.record(pair(i, i * 2));
        }
        assert_eq!(map.source_for(5), None);
        assert_eq!(map.source_for(MAX_PAIRS as i64), Some(MAX_PAIRS as i64 * 2));
    }
}
