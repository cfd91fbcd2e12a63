//! A worker's share of a cluster source's slots (`migrate --shards K/N`), and the keys that
//! come into it from another worker's share.
//!
//! Keys resharded between the shards of one process are paired in memory
//! ([`super::moves`]). Between workers they cannot be: the origin's older writes and its
//! `DEL` of a moved key are in a stream another process applies. So the order is kept
//! instead: a write into a slot that came from outside the share (a `RESTORE-ASKING`,
//! or the first writes of keys created there since) waits until the origin's worker has
//! applied the origin's stream up to where the origin stood once the key had left it.
//! This seam only says which writes wait; the waiting is the worker's
//! (`commands/migrate/shards/peers.rs`). A slot is the share's again, and its writes no
//! longer wait, once the origin no longer served it and its worker applied everything
//! the origin had written by then.

use crate::server::cluster::slot::{key_slot, SLOTS};
use bytes::Bytes;
use std::sync::{Arc, Mutex};

/// What a worker cannot follow.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error(
        "an atomic slot migration (CLUSTER MIGRATESLOTS) brings slots {slots} into this \
         worker's share from another worker's: its origin deletes the slots' keys after \
         this primary took them, which workers cannot order; move slots between workers' \
         primaries with `--cluster reshard` (MIGRATE), or migrate the cluster in one \
         process, and rerun this worker with --flush-target on an emptied target"
    )]
    AtomicMigrationAcross { slots: String },
}

/// A write that must wait for another worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entering {
    pub slot: u16,
    /// The write is a `RESTORE-ASKING`: MIGRATE moved its key here.
    pub restore: bool,
}

/// One shard's writes read since its last batch that must wait for another worker.
pub type EnteringWrites = Arc<Mutex<Vec<Entering>>>;

/// The slots whose writes go out without waiting, shared by a worker's shards.
#[derive(Debug)]
pub struct ShareSlots {
    inner: Mutex<Slots>,
}

#[derive(Debug)]
struct Slots {
    /// Writes into these go out at once.
    own: Vec<bool>,
    /// Slots this worker's primaries served at some point (own ones included): writes
    /// into them while another primary serves them are what the slot left behind.
    been_here: Vec<bool>,
}

impl ShareSlots {
    /// The share as the worker starts: the slots of the primaries it follows.
    pub fn new(ranges: &[[u16; 2]]) -> Self {
        let mut own = vec![false; usize::from(SLOTS)];
        for [first, last] in ranges {
            for slot in *first..=*last {
                if let Some(flag) = own.get_mut(usize::from(slot)) {
                    *flag = true;
                }
            }
        }
        Self {
            inner: Mutex::new(Slots {
                been_here: own.clone(),
                own,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The wait a write of `key` read from this worker's stream needs, if any. A
    /// `RESTORE-ASKING` always waits, even into a slot of the share: the slot may have gone
    /// to another worker and come back since the topology was last read.
    pub fn entering(&self, key: &Bytes, restore: bool) -> Option<Entering> {
        let slot = key_slot(key);
        let own = self.is_own(slot);
        (!own || restore).then_some(Entering { slot, restore })
    }

    /// Refuses an atomic slot migration (its `ESTABLISH`, `slots`) into the share from
    /// outside it; one between the share's own primaries is paired by its shards.
    pub fn check_import(&self, slots: &[[u16; 2]]) -> Result<(), ShareError> {
        let foreign: Vec<[u16; 2]> = slots
            .iter()
            .filter(|[first, last]| (*first..=*last).any(|slot| !self.is_own(slot)))
            .copied()
            .collect();
        match foreign.is_empty() {
            true => Ok(()),
            false => Err(ShareError::AtomicMigrationAcross {
                slots: crate::server::cluster::shards::slots_text(&foreign),
            }),
        }
    }

    /// `slot` is the share's: its origin's worker applied all the origin wrote of it.
    pub fn settled(&self, slot: u16) {
        let mut slots = self.lock();
        set(&mut slots.own, slot, true);
        set(&mut slots.been_here, slot, true);
    }

    /// `slot` is served outside the share now: writes into it wait again if it comes back.
    pub fn left(&self, slot: u16) {
        set(&mut self.lock().own, slot, false);
    }

    /// A primary of the share serves `slot`, or was given keys of it (`RESTORE-ASKING`).
    pub fn arrived(&self, slot: u16) {
        set(&mut self.lock().been_here, slot, true);
    }

    pub fn is_own(&self, slot: u16) -> bool {
        get(&self.lock().own, slot)
    }

    /// Whether a primary of the share served `slot` at some point: a write into it while
    /// another primary serves it was made before it left (`MIGRATE`'s `DEL`, say), not
    /// brought in by `ASKING`.
    pub fn has_been_here(&self, slot: u16) -> bool {
        get(&self.lock().been_here, slot)
    }
}

fn set(flags: &mut [bool], slot: u16, value: bool) {
    if let Some(flag) = flags.get_mut(usize::from(slot)) {
        *flag = value;
    }
}

fn get(flags: &[bool], slot: u16) -> bool {
    flags.get(usize::from(slot)).copied().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_in(slot: u16) -> Bytes {
        (0..100_000)
            .map(|n| Bytes::from(format!("k{n}")))
            .find(|key| key_slot(key) == slot)
            .unwrap()
    }

    #[test]
    fn writes_from_outside_the_share_wait_until_their_slot_settles() {
        let share = ShareSlots::new(&[[0, 99]]);
        let inside = key_in(5);
        let outside = key_in(500);
        assert_eq!(share.entering(&inside, false), None);
        assert_eq!(
            share.entering(&outside, false),
            Some(Entering {
                slot: 500,
                restore: false
            })
        );
        assert_eq!(
            share.entering(&outside, true),
            Some(Entering {
                slot: 500,
                restore: true
            })
        );
        assert!(!share.has_been_here(500));
        share.arrived(500);
        assert!(share.has_been_here(500) && !share.is_own(500));
        share.settled(500);
        assert_eq!(share.entering(&outside, false), None);
        share.left(5);
        assert!(share.entering(&inside, false).is_some());
        assert!(share.has_been_here(5));
    }

    #[test]
    fn an_atomic_slot_migration_from_another_share_is_refused() {
        let share = ShareSlots::new(&[[0, 99]]);
        assert!(share.check_import(&[[10, 20]]).is_ok());
        let err = share.check_import(&[[10, 20], [90, 120]]).unwrap_err();
        assert!(err.to_string().contains("slots 90-120 into"), "{err}");
    }

    #[test]
    fn a_restore_waits_even_into_the_share() {
        let share = ShareSlots::new(&[[0, 16383]]);
        let key = key_in(7);
        assert!(share.entering(&key, true).unwrap().restore);
    }
}
