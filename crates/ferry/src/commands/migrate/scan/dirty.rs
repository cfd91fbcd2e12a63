//! Keys changed on the source and not copied since: an ordered set (each key once, oldest
//! first) filled by the notification subscriber and drained by the copier.
//!
//! Memory is bounded: past `budget_bytes` of key names the set gives up its contents and
//! says it overflowed; the copier then rescans everything, which copies those keys too.

use bytes::Bytes;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::Notify;

/// A key in a database.
pub type DbKey = (u64, Bytes);

/// What one entry costs besides its name (two copies of the handle, hashing slack).
const ENTRY_OVERHEAD: usize = 64;

#[derive(Debug, Default)]
struct Inner {
    order: VecDeque<DbKey>,
    members: HashSet<DbKey>,
    bytes: usize,
    overflowed: bool,
    /// Keys added to `order` so far, and taken from it (or dropped by an overflow): the
    /// set is first in, first out, so once `left` reaches what `added` was at a moment,
    /// every key held then is out ([`DirtyKeys::drained_past`]).
    added: u64,
    left: u64,
    /// Overflows so far: keys dropped by one were not read.
    overflows: u64,
}

/// A moment of the changed-key set ([`DirtyKeys::watermark`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watermark {
    added: u64,
    overflows: u64,
}

#[derive(Debug)]
pub struct DirtyKeys {
    inner: Mutex<Inner>,
    budget_bytes: usize,
    wake: Notify,
    /// Notifications received, for progress.
    pub received: AtomicU64,
}

impl DirtyKeys {
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            budget_bytes,
            wake: Notify::new(),
            received: AtomicU64::new(0),
        }
    }

    /// A notification named this key.
    pub fn notified(&self, db: u64, key: Bytes) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.mark(db, key);
    }

    /// Marks a key to be read again.
    pub fn mark(&self, db: u64, key: Bytes) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.overflowed {
            return;
        }
        let entry = (db, key);
        if inner.members.contains(&entry) {
            return;
        }
        let cost = entry.1.len() + ENTRY_OVERHEAD;
        if inner.bytes + cost > self.budget_bytes {
            *inner = Inner {
                overflowed: true,
                added: inner.added,
                left: inner.added,
                overflows: inner.overflows + 1,
                ..Inner::default()
            };
        } else {
            inner.bytes += cost;
            inner.members.insert(entry.clone());
            inner.order.push_back(entry);
            inner.added += 1;
        }
        drop(inner);
        self.wake.notify_one();
    }

    /// Up to `max` keys, oldest first, removed from the set: a change notified from now on
    /// marks a key again.
    pub fn take(&self, max: usize) -> Vec<DbKey> {
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        let count = max.min(inner.order.len());
        let taken: Vec<DbKey> = inner.order.drain(..count).collect();
        inner.left += count as u64;
        for entry in &taken {
            inner.members.remove(entry);
            inner.bytes = inner.bytes.saturating_sub(entry.1.len() + ENTRY_OVERHEAD);
        }
        taken
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.order.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the budget ran out since the last call (the contents are gone: rescan).
    pub fn take_overflow(&self) -> bool {
        self.inner
            .lock()
            .map(|mut i| std::mem::take(&mut i.overflowed))
            .unwrap_or(false)
    }

    /// Whether the budget ran out (and the caller has not seen it yet).
    pub fn overflowed(&self) -> bool {
        self.inner.lock().map(|i| i.overflowed).unwrap_or(false)
    }

    /// Where the set stands now: compare with [`DirtyKeys::drained_past`] later.
    pub fn watermark(&self) -> Watermark {
        self.inner
            .lock()
            .map(|i| Watermark {
                added: i.added,
                overflows: i.overflows,
            })
            .unwrap_or_default()
    }

    /// `Some(true)` once every key the set held at `mark` has been taken; `None` when an
    /// overflow dropped keys since (they were not read).
    pub fn drained_past(&self, mark: Watermark) -> Option<bool> {
        let inner = self.inner.lock().ok()?;
        (inner.overflows == mark.overflows).then_some(inner.left >= mark.added)
    }

    /// Resolves when a key is marked (or was marked since the last wait).
    pub async fn changed(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Bytes {
        Bytes::copy_from_slice(name.as_bytes())
    }

    #[test]
    fn each_key_once_oldest_first() {
        let dirty = DirtyKeys::new(1 << 20);
        dirty.mark(0, key("a"));
        dirty.mark(0, key("b"));
        dirty.mark(0, key("a"));
        dirty.mark(1, key("a"));
        assert_eq!(
            dirty.take(10),
            vec![(0, key("a")), (0, key("b")), (1, key("a"))]
        );
        assert!(dirty.is_empty());
        // Taken keys are marked again by the next change.
        dirty.mark(0, key("a"));
        assert_eq!(dirty.take(1), vec![(0, key("a"))]);
    }

    #[test]
    fn the_keys_held_at_a_watermark_are_drained_first_in_first_out() {
        let dirty = DirtyKeys::new(1 << 20);
        dirty.mark(0, key("a"));
        dirty.mark(0, key("b"));
        let mark = dirty.watermark();
        dirty.mark(0, key("c"));
        // Marked again while held: still one entry, in its first place.
        dirty.mark(0, key("a"));
        assert_eq!(dirty.drained_past(mark), Some(false));
        dirty.take(1);
        assert_eq!(dirty.drained_past(mark), Some(false));
        dirty.take(1);
        assert_eq!(dirty.drained_past(mark), Some(true));
        let later = dirty.watermark();
        assert_eq!(dirty.drained_past(later), Some(false), "c is still held");
    }

    #[test]
    fn an_overflow_voids_the_watermarks_before_it() {
        let dirty = DirtyKeys::new(2 * (ENTRY_OVERHEAD + 1));
        dirty.mark(0, key("a"));
        let mark = dirty.watermark();
        dirty.mark(0, key("b"));
        dirty.mark(0, key("c"));
        assert!(dirty.take_overflow());
        assert_eq!(dirty.drained_past(mark), None);
        let after = dirty.watermark();
        assert_eq!(dirty.drained_past(after), Some(true));
    }

    #[test]
    fn past_the_budget_the_set_overflows_and_empties() {
        let dirty = DirtyKeys::new(3 * (ENTRY_OVERHEAD + 1));
        for name in ["a", "b", "c"] {
            dirty.mark(0, key(name));
        }
        assert!(!dirty.take_overflow());
        dirty.mark(0, key("d"));
        assert!(dirty.is_empty());
        dirty.mark(0, key("e"));
        assert!(
            dirty.is_empty(),
            "nothing is kept until the overflow is seen"
        );
        assert!(dirty.take_overflow());
        assert!(!dirty.take_overflow());
        dirty.mark(0, key("f"));
        assert_eq!(dirty.take(5), vec![(0, key("f"))]);
    }
}
