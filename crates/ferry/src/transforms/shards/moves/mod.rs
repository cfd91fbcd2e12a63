//! Keys moved between the shards of a cluster source by `MIGRATE` (resharding).
//!
//! `MIGRATE` makes the destination node run `RESTORE-ASKING key …` (in its stream), then
//! deletes the key on the origin, which propagates `DEL key …` (in the origin's stream).
//! ferry follows the two streams on their own, so it would apply the RESTORE, then the DEL,
//! and lose the key. This seam remembers each key a shard restored that way; a `DEL` or
//! `UNLINK` of that key from another shard is MIGRATE's own and is left out. The origin's
//! stream can only carry writes to the key made before the MIGRATE (after it, the key is
//! no longer there, until the slot comes back): the restored value already holds them,
//! and applying them again would repeat them (or fail: an `XADD` with an ID the stream
//! passed), so they are left out too, a client's DEL and the writes that re-created the
//! key before the move included (a lagging or resuming origin reads them after the
//! RESTORE), and so is a client's DEL on the destination after the move, which must not
//! let them through. The key is the origin's again once its slot comes back to it, which
//! it shows by restoring a key of that slot itself. A key the slot's new owner writes
//! without having restored it (it did not exist when the slot moved: created there
//! since, or deleted) becomes that shard's the same way, its first write preceded by a
//! `DEL` of the target's copy (the origin's, whose DEL is then left out), so the origin's
//! older DEL or writes of it, read late, cannot undo the new owner's.
//!
//! Those rules decide as each command is read; the target must also apply them in that
//! order, and the shards write over their own connections. So a batch carrying a
//! `RESTORE-ASKING` goes out only once every other shard's writes read before it are
//! applied ([`ShardTransform::take_restoring`]): the origin's DEL, or its earlier writes
//! to the key, cannot land on the restored value.

use super::imports::{self, SlotImports};
use super::share::{EnteringWrites, ShareSlots};
use crate::error::Error;
use crate::server::cluster::slot::key_slot;
use crate::transforms::commands::transform::CommandTransform;
use crate::transforms::commands::Translated;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keys remembered at most (a resharding moves keys in chunks; their DELs follow at once).
const REMEMBERED: usize = 100_000;
/// A write later than this after its key's RESTORE-ASKING is no longer taken for one made
/// before the move.
const REMEMBERED_FOR: Duration = Duration::from_secs(600);

const SKIPPED: &str = "a DEL of keys MIGRATE moved to another shard of the source cluster";
const SUPERSEDED: &str =
    "a write made before MIGRATE moved its key to another shard, which restored it since";
const SLOT_MIGRATION: &str = "a control command of an atomic slot migration (not data)";
const DEL: Bytes = Bytes::from_static(b"DEL");

/// The keys restored by `RESTORE-ASKING`, shared by every shard of one run.
#[derive(Debug, Default)]
pub struct MovedKeys {
    inner: Mutex<Remembered>,
}

/// One RESTORE-ASKING read: by which shard, in which order, when.
#[derive(Debug, Clone, Copy)]
struct Restore {
    shard: usize,
    seq: u64,
    at: Instant,
}

#[derive(Debug, Default)]
struct Remembered {
    /// Key → its last RESTORE-ASKING.
    by_key: HashMap<Bytes, Restore>,
    /// Insertions into `by_key`, oldest first.
    order: VecDeque<(Bytes, u64)>,
    /// Slot → the last RESTORE-ASKING of a key in it: the slot is that shard's since.
    by_slot: HashMap<u16, Restore>,
    next_seq: u64,
}

impl MovedKeys {
    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `shard` restored `key`.
    fn restored(&self, key: Bytes, shard: usize) {
        let mut seen = self.lock();
        let seen = &mut *seen;
        let restore = seen.remember(key.clone(), shard);
        seen.by_slot.insert(key_slot(&key), restore);
    }

    /// `shard` writes `key` in a slot it took from another shard since the origin last
    /// restored there: the key is this shard's from now on, as if restored (a key that
    /// did not exist when its slot moved, created here since; or one this shard deletes).
    /// Returns whether the key was another shard's until now: then the origin's writes
    /// read so far must reach the target first.
    fn claimed(&self, key: &Bytes, shard: usize) -> bool {
        let mut seen = self.lock();
        if seen.by_slot.is_empty() {
            return false;
        }
        let acquired = seen
            .by_slot
            .get(&key_slot(key))
            .is_some_and(|slot| slot.shard == shard && slot.at.elapsed() < REMEMBERED_FOR);
        let already = seen
            .by_key
            .get(key.as_ref())
            .is_some_and(|r| r.shard == shard);
        if !acquired || already {
            return false;
        }
        seen.remember(key.clone(), shard);
        true
    }

    /// The keys remembered now, oldest first, with the shard that restored each: what a
    /// restarted run needs to go on leaving the other shards' older writes out.
    pub fn remembered(&self) -> Vec<(Bytes, usize)> {
        let seen = self.lock();
        seen.order
            .iter()
            .filter_map(|(key, seq)| {
                let restore = seen.by_key.get(key)?;
                let young = restore.seq == *seq && restore.at.elapsed() < REMEMBERED_FOR;
                young.then(|| (key.clone(), restore.shard))
            })
            .collect()
    }

    /// Remembers keys an earlier run saved ([`MovedKeys::remembered`]), as restored now.
    pub fn recall(&self, keys: impl IntoIterator<Item = (Bytes, usize)>) {
        for (key, shard) in keys {
            self.restored(key, shard);
        }
    }

    /// Whether `shard` writing (or deleting) `key` was done before MIGRATE moved the key to
    /// the shard that restored it last: then the restored value holds it already.
    ///
    /// After the move, `shard` could write the key again only once the slot came back to
    /// it, and it knows that slot then by a RESTORE-ASKING of its own (of this key or
    /// another of the slot). Until then every write of `shard` to the key is older than
    /// the move, however late its stream brings it (a lagging or resuming shard), and
    /// whatever the restoring shard did with the key since (deleted it, say).
    fn before_move(&self, key: &[u8], shard: usize) -> bool {
        let seen = self.lock();
        let Some(restore) = seen.by_key.get(key) else {
            return false;
        };
        if restore.shard == shard || restore.at.elapsed() >= REMEMBERED_FOR {
            return false;
        }
        let came_back = seen
            .by_slot
            .get(&key_slot(key))
            .is_some_and(|slot| slot.shard == shard && slot.seq > restore.seq);
        !came_back
    }
}

impl Remembered {
    /// Records `shard` as the owner of `key` from now on; bounded by [`REMEMBERED`] and
    /// [`REMEMBERED_FOR`].
    fn remember(&mut self, key: Bytes, shard: usize) -> Restore {
        let seen = self;
        seen.next_seq += 1;
        let restore = Restore {
            shard,
            seq: seen.next_seq,
            at: Instant::now(),
        };
        seen.by_key.insert(key.clone(), restore);
        seen.order.push_back((key, restore.seq));
        while let Some((key, seq)) = seen.order.front().cloned() {
            // An entry whose key was restored again since is stale: dropped whatever its age.
            let current = seen.by_key.get(&key).filter(|r| r.seq == seq);
            let young = current.is_some_and(|r| r.at.elapsed() < REMEMBERED_FOR);
            if young && seen.order.len() <= REMEMBERED {
                break;
            }
            seen.order.pop_front();
            if let Some(gone) = seen.by_key.get(&key).filter(|r| r.seq == seq).copied() {
                seen.by_key.remove(&key);
                // The slot's keys are no longer all remembered: its arrival is forgotten
                // too, or a key forgotten here would be taken for one never restored.
                let slot = key_slot(&key);
                if seen
                    .by_slot
                    .get(&slot)
                    .is_some_and(|r| r.shard == gone.shard)
                {
                    seen.by_slot.remove(&slot);
                }
            }
        }
        restore
    }
}

/// One shard's stream transform: the command translator behind the MIGRATE rule above.
pub struct ShardTransform {
    inner: Box<dyn CommandTransform>,
    moved: Arc<MovedKeys>,
    shard: usize,
    /// A RESTORE-ASKING was read since the shard's loop last asked.
    restoring: Arc<AtomicBool>,
    /// Valkey 9's atomic slot imports into this shard ([`imports`]).
    imports: Arc<Mutex<SlotImports>>,
    /// A worker's share of the slots ([`super::share`]): writes coming into it from
    /// another worker's share are noted in `entering` and raise `restoring` too.
    share: Option<(Arc<ShareSlots>, EnteringWrites)>,
}

impl ShardTransform {
    pub fn new(inner: Box<dyn CommandTransform>, moved: Arc<MovedKeys>, shard: usize) -> Self {
        Self {
            inner,
            moved,
            shard,
            restoring: Arc::default(),
            imports: Arc::default(),
            share: None,
        }
    }

    /// Notes in `entering` (kept by the shard across sessions) the writes that come into
    /// a worker's `share` from outside it.
    pub fn within_share(mut self, share: Option<(Arc<ShareSlots>, EnteringWrites)>) -> Self {
        self.share = share;
        self
    }

    /// Follows atomic slot imports in `imports` (kept by the shard across sessions).
    pub fn sharing_imports(mut self, imports: Arc<Mutex<SlotImports>>) -> Self {
        self.imports = imports;
        self
    }

    /// Raises `restoring` (kept by the shard across sessions) on a RESTORE-ASKING.
    pub fn sharing_restoring(mut self, restoring: Arc<AtomicBool>) -> Self {
        self.restoring = restoring;
        self
    }

    /// The flag the shard's loop takes [`ShardTransform::take_restoring`] from.
    pub fn restoring(&self) -> Arc<AtomicBool> {
        self.restoring.clone()
    }

    /// Whether the commands read since the last call restore keys MIGRATE moved here:
    /// then every other shard's writes read so far must be applied before they go out.
    pub fn take_restoring(restoring: &AtomicBool) -> bool {
        restoring.swap(false, Ordering::Relaxed)
    }
}

impl CommandTransform for ShardTransform {
    fn translate(&mut self, db: u64, args: Vec<Bytes>) -> Result<Translated, Error> {
        let mut imports = self.imports.lock().unwrap_or_else(|p| p.into_inner());
        if imports::is_control(&args) {
            if let (Some((share, _)), Some(slots)) = (&self.share, imports::establishing(&args)) {
                share.check_import(&slots)?;
            }
            imports.control(&args)?;
            return Ok(Translated::Skip {
                reason: SLOT_MIGRATION,
            });
        }
        // The first write of a key an atomic slot import brings: like a RESTORE-ASKING,
        // but the key arrives as commands, which the target's copy must not receive.
        let replaced = first_key(&args)
            .filter(|key| imports.first_write(key))
            .cloned();
        drop(imports);
        if let Some(key) = &replaced {
            self.moved.restored(key.clone(), self.shard);
            self.restoring.store(true, Ordering::Relaxed);
        }
        let translated = self.translate_moves(db, args)?;
        let Some(key) = replaced else {
            return Ok(translated);
        };
        let delete = vec![DEL, key];
        Ok(match translated {
            Translated::Apply(mut commands) => {
                commands.insert(0, delete);
                Translated::Apply(commands)
            }
            Translated::Skip { .. } => Translated::Apply(vec![delete]),
        })
    }

    fn report_lines(&self) -> Vec<String> {
        self.inner.report_lines()
    }
}

impl ShardTransform {
    /// The MIGRATE rules of the module docs, then the inner translator.
    fn translate_moves(&mut self, db: u64, mut args: Vec<Bytes>) -> Result<Translated, Error> {
        let name = args.first().cloned().unwrap_or_default();
        if let (Some((share, entering)), Some(key)) = (&self.share, first_key(&args)) {
            if let Some(wait) = share.entering(key, name.eq_ignore_ascii_case(b"RESTORE-ASKING")) {
                entering
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(wait);
                self.restoring.store(true, Ordering::Relaxed);
            }
        }
        if name.eq_ignore_ascii_case(b"RESTORE-ASKING") {
            if let Some(key) = args.get(1) {
                self.moved.restored(key.clone(), self.shard);
                self.restoring.store(true, Ordering::Relaxed);
            }
        } else if (name.eq_ignore_ascii_case(b"DEL") || name.eq_ignore_ascii_case(b"UNLINK"))
            && args.len() > 1
        {
            let before = args.len();
            let shard = self.shard;
            let moved = &self.moved;
            let mut position = 0;
            args.retain(|arg| {
                position += 1;
                position == 1 || !moved.before_move(arg, shard)
            });
            if args.len() == 1 && before > 1 {
                return Ok(Translated::Skip { reason: SKIPPED });
            }
            let mut claimed = false;
            for key in &args[1..] {
                claimed |= self.moved.claimed(key, shard);
            }
            if claimed {
                self.restoring.store(true, Ordering::Relaxed);
            }
        } else if let Some(key) = first_key(&args) {
            if self.moved.before_move(key, self.shard) {
                return Ok(Translated::Skip { reason: SUPERSEDED });
            }
            if self.moved.claimed(key, self.shard) {
                // The key did not come with the slot: on the source it started afresh
                // here, and the target's copy is the origin's, whose DEL is left out.
                self.restoring.store(true, Ordering::Relaxed);
                let delete = vec![DEL, key.clone()];
                return Ok(match self.inner.translate(db, args)? {
                    Translated::Apply(mut commands) => {
                        commands.insert(0, delete);
                        Translated::Apply(commands)
                    }
                    Translated::Skip { .. } => Translated::Apply(vec![delete]),
                });
            }
        }
        self.inner.translate(db, args)
    }
}

/// The key a replicated command writes first: its first argument, but for `XGROUP`
/// (`XGROUP subcommand key …`), and none for the commands without keys a stream carries.
/// A cluster runs a multi-key command only when all its keys are in one slot and none is
/// being moved, so the first key tells.
fn first_key(args: &[Bytes]) -> Option<&Bytes> {
    const KEYLESS: &[&[u8]] = &[
        b"SELECT",
        b"PING",
        b"MULTI",
        b"EXEC",
        b"FLUSHALL",
        b"FLUSHDB",
        b"FUNCTION",
        b"SCRIPT",
        b"SWAPDB",
        b"CLUSTER",
        b"PUBLISH",
        b"REPLCONF",
    ];
    let name = args.first()?;
    if KEYLESS
        .iter()
        .any(|keyless| name.eq_ignore_ascii_case(keyless))
    {
        return None;
    }
    if name.eq_ignore_ascii_case(b"XGROUP") {
        return args.get(2);
    }
    args.get(1)
}

#[cfg(test)]
mod tests;
