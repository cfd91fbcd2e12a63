//! Whether a set, sorted set or hash stores one member (field) twice.
//!
//! Servers refuse such a value when they load it ("Duplicate zset fields detected", and
//! the same for sets and hashes), and a file written with `rdbchecksum no` has no checksum
//! to catch the damage first. A value too big to hold is checked by fingerprint: 16 bytes
//! per member instead of the member itself, so a 10-million-member set costs 160 MB less
//! than its members would, and two different members share a 128-bit fingerprint with a
//! chance far below that of a disk error.

use std::hash::Hasher;

/// Fingerprints of one value's members, collected as they stream past.
#[derive(Debug, Default)]
pub struct DuplicateFinder {
    prints: Vec<u128>,
}

impl DuplicateFinder {
    /// A finder with no members yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one member (or hash field name).
    pub fn add(&mut self, member: &[u8]) {
        self.prints.push(fingerprint(member));
    }

    /// Whether any member was added twice; forgets them all.
    pub fn finish(&mut self) -> bool {
        self.prints.sort_unstable();
        let found = self.prints.windows(2).any(|w| w[0] == w[1]);
        self.prints.clear();
        found
    }
}

/// Two 64-bit SipHash values under fixed, different keys: the same on every run, so a
/// file is judged the same way each time. (`SipHasher` is deprecated only in favour of
/// `DefaultHasher`, whose algorithm may change between Rust releases.)
#[allow(deprecated)]
fn fingerprint(member: &[u8]) -> u128 {
    let hash = |seed: u64| {
        let mut hasher = std::hash::SipHasher::new_with_keys(seed, !seed);
        hasher.write(member);
        hasher.finish()
    };
    (u128::from(hash(0x5eed_0001)) << 64) | u128::from(hash(0x5eed_0002))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_repeat_and_only_a_repeat() {
        let mut finder = DuplicateFinder::new();
        for i in 0..10_000 {
            finder.add(format!("m{i}").as_bytes());
        }
        assert!(!finder.finish());
        for member in [&b"a"[..], b"b", b"", b"a"] {
            finder.add(member);
        }
        assert!(finder.finish());
        // finish forgets: the next value starts empty.
        finder.add(b"a");
        assert!(!finder.finish());
    }
}
