//! The cluster slot of a key: CRC16 (XMODEM: polynomial 0x1021, initial value 0, no
//! reflection) of the key, or of its hash tag, modulo 16384.
//!
//! The hash tag is the part between the first `{` and the first `}` after it, when that
//! part is not empty; otherwise the whole key is hashed.

/// Slots in a cluster.
pub const SLOTS: u16 = 16384;

/// The slot `key` belongs to.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

/// What of `key` is hashed: its non-empty `{tag}`, or all of it.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => key,
    }
}

/// A short hash tag for each slot (`tag_for_slot(s)` hashes to `s`), for keys ferry keeps
/// in a given slot: each slot's resume marker ([`crate::state::slot_markers`]).
pub fn tag_for_slot(slot: u16) -> &'static str {
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        // Decimal numbers cover every slot within about 200,000 tries (a few ms, once).
        let mut tags: Vec<Option<String>> = vec![None; SLOTS as usize];
        let mut missing = SLOTS as usize;
        let mut candidate = 0u64;
        while missing > 0 {
            let text = candidate.to_string();
            let slot = key_slot(text.as_bytes()) as usize;
            if tags[slot].is_none() {
                tags[slot] = Some(text);
                missing -= 1;
            }
            candidate += 1;
        }
        tags.into_iter().flatten().collect()
    });
    &tags[(slot % SLOTS) as usize]
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_is_the_xmodem_variant() {
        // The standard check value of CRC-16/XMODEM.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn the_hash_tag_decides_the_slot() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"no-tag"), b"no-tag");
        assert_eq!(hash_tag(b"open{only"), b"open{only");
        assert_eq!(key_slot(b"{a}x"), key_slot(b"{a}y"));
        assert_eq!(key_slot(b"{a}x"), key_slot(b"a"));
    }

    #[test]
    fn every_slot_has_a_tag_that_hashes_to_it() {
        for slot in 0..SLOTS {
            let tag = tag_for_slot(slot);
            assert_eq!(key_slot(format!("x{{{tag}}}").as_bytes()), slot, "{tag}");
        }
    }

    #[test]
    fn slots_stay_in_range() {
        for i in 0..2000u32 {
            assert!(key_slot(format!("key:{i}").as_bytes()) < SLOTS);
        }
    }
}
