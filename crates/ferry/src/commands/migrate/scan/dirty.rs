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
                ..Inner::default()
            };
        } else {
            inner.bytes += cost;
            inner.members.insert(entry.clone());
            inner.order.push_back(entry);
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
