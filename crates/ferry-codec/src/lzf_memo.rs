//! The compressed form of the string the decoder last expanded from LZF, so that an
//! encoder writing that very string again (a file being converted) copies the compressed
//! bytes instead of compressing it anew. The LZF format is the same in every release, and
//! the decoder checked that the data expands to exactly this string.
//!
//! The memo holds a clone of the expanded `Bytes`: its memory stays alive and unchanged
//! while the memo does, so a string at the same address with the same length is the same
//! string. Per thread, one entry: a decoder and an encoder in one loop (`ferry convert`).

use std::cell::RefCell;

use bytes::Bytes;

/// Larger strings are not remembered, so that a big value is not kept alive after use.
const MEMO_MAX: usize = 1 << 20;

std::thread_local! {
    static LAST_EXPANDED: RefCell<Option<(Bytes, Bytes)>> = const { RefCell::new(None) };
}

/// Records that `expanded` came from the LZF data `compressed`.
pub(crate) fn remember(expanded: &Bytes, compressed: Bytes) {
    if expanded.len() > MEMO_MAX {
        return;
    }
    LAST_EXPANDED.with(|memo| *memo.borrow_mut() = Some((expanded.clone(), compressed)));
}

/// The LZF data `value` was expanded from, if `value` is the remembered string itself
/// (not merely equal bytes elsewhere). Forgets it.
pub(crate) fn take_compressed(value: &[u8]) -> Option<Bytes> {
    LAST_EXPANDED.with(|memo| {
        let mut memo = memo.borrow_mut();
        let (expanded, _) = memo.as_ref()?;
        if expanded.as_ptr() != value.as_ptr() || expanded.len() != value.len() {
            return None;
        }
        memo.take().map(|(_, compressed)| compressed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_remembered_string_itself_matches() {
        let expanded = Bytes::from(vec![b'a'; 100]);
        let compressed = Bytes::from_static(b"packed");
        remember(&expanded, compressed.clone());
        let equal_elsewhere = vec![b'a'; 100];
        assert_eq!(take_compressed(&equal_elsewhere), None);
        assert_eq!(take_compressed(&expanded[..99]), None);
        assert_eq!(take_compressed(&expanded), Some(compressed));
        // Taken: a second write of the same string compresses normally.
        assert_eq!(take_compressed(&expanded), None);
    }
}
