//! Keys moved between the shards of a cluster source by `MIGRATE` (resharding).
//!
//! `MIGRATE` makes the destination node run `RESTORE-ASKING key …` (in its stream), then
//! deletes the key on the origin, which propagates `DEL key …` (in the origin's stream).
//! ferry follows the two streams on their own, so it would apply the RESTORE, then the DEL,
//! and lose the key. This seam remembers each key a shard restored that way; a `DEL` or
//! `UNLINK` of that key from another shard is MIGRATE's own and is left out. Until that DEL,
//! the origin's stream can only carry writes to the key made before the MIGRATE (after
//! it, the key is no longer there): the restored value already holds them, and applying
//! them again would repeat them (or fail: an `XADD` with an ID the stream passed), so they
//! are left out too. When the DEL arrives first, it is applied and the later RESTORE brings
//! the key back, provided the target runs them in that order: they go over two shards'
//! connections, so the RESTORE's shard first waits until the DEL's shard's writes are
//! acknowledged ([`ShardTransform::take_waits`]).

use super::translate::CommandTransform;
use crate::error::Error;
use crate::transforms::commands::Translated;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keys remembered at most (a resharding moves keys in chunks; their DELs follow at once).
const REMEMBERED: usize = 100_000;
/// A DEL later than this after its RESTORE-ASKING is no longer taken for MIGRATE's.
const REMEMBERED_FOR: Duration = Duration::from_secs(600);
/// A DEL is taken for one a RESTORE-ASKING of another shard may follow this long.
const DELETED_FOR: Duration = Duration::from_secs(30);

const SKIPPED: &str = "a DEL of keys MIGRATE moved to another shard of the source cluster";
const SUPERSEDED: &str =
    "a write made before MIGRATE moved its key to another shard, which restored it since";

/// The keys restored by `RESTORE-ASKING`, shared by every shard of one run.
#[derive(Debug, Default)]
pub struct MovedKeys {
    inner: Mutex<Remembered>,
}

#[derive(Debug, Default)]
struct Remembered {
    /// Key → the shard whose stream restored it, and when.
    by_key: HashMap<Bytes, (usize, Instant)>,
    order: VecDeque<(Bytes, Instant)>,
    /// Key → the shard whose stream deleted it last, and when (a DEL that may be MIGRATE's,
    /// read before the other shard's RESTORE-ASKING).
    deleted: HashMap<Bytes, (usize, Instant)>,
    deleted_order: VecDeque<(Bytes, Instant)>,
}

/// Adds `key` to a bounded map of recent keys (`order` lists insertions, oldest first).
fn remember(
    map: &mut HashMap<Bytes, (usize, Instant)>,
    order: &mut VecDeque<(Bytes, Instant)>,
    key: Bytes,
    shard: usize,
    keep: Duration,
) {
    let now = Instant::now();
    map.insert(key.clone(), (shard, now));
    order.push_back((key, now));
    while let Some((key, at)) = order.front().cloned() {
        if order.len() <= REMEMBERED && at.elapsed() < keep {
            break;
        }
        order.pop_front();
        if map.get(&key).is_some_and(|(_, when)| *when == at) {
            map.remove(&key);
        }
    }
}

impl MovedKeys {
    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `shard` restored `key`; returns the other shard whose DEL of it came first and may
    /// still be on its way to the target.
    fn restored(&self, key: Bytes, shard: usize) -> Option<usize> {
        let mut seen = self.lock();
        let seen = &mut *seen;
        let deleted_by = match seen.deleted.remove(&key) {
            Some((by, at)) if by != shard && at.elapsed() < DELETED_FOR => Some(by),
            _ => None,
        };
        remember(
            &mut seen.by_key,
            &mut seen.order,
            key,
            shard,
            REMEMBERED_FOR,
        );
        deleted_by
    }

    fn deleted(&self, key: Bytes, shard: usize) {
        let mut seen = self.lock();
        let seen = &mut *seen;
        remember(
            &mut seen.deleted,
            &mut seen.deleted_order,
            key,
            shard,
            DELETED_FOR,
        );
    }

    /// Whether another shard than `shard` restored `key` by RESTORE-ASKING and `shard`'s
    /// MIGRATE DEL of it has not come yet.
    fn restored_elsewhere(&self, key: &[u8], shard: usize) -> bool {
        let seen = self.lock();
        !seen.by_key.is_empty()
            && seen
                .by_key
                .get(key)
                .is_some_and(|(restorer, at)| *restorer != shard && at.elapsed() < REMEMBERED_FOR)
    }

    /// Whether `shard` deleting `key` is MIGRATE moving it to another shard (forgotten
    /// once answered: the move is complete).
    fn moved_away(&self, key: &[u8], shard: usize) -> bool {
        let mut seen = self.lock();
        match seen.by_key.get(key) {
            Some((restorer, at)) if *restorer != shard && at.elapsed() < REMEMBERED_FOR => {
                seen.by_key.remove(key);
                true
            }
            Some(_) => {
                // The restoring shard deletes it itself: an ordinary DEL.
                seen.by_key.remove(key);
                false
            }
            None => false,
        }
    }
}

/// One shard's stream transform: the command translator behind the MIGRATE rule above.
pub struct ShardTransform {
    inner: Box<dyn CommandTransform>,
    moved: Arc<MovedKeys>,
    shard: usize,
    /// Shards whose writes must be acknowledged before this batch goes out.
    waits: Arc<Mutex<Vec<usize>>>,
}

impl ShardTransform {
    pub fn new(inner: Box<dyn CommandTransform>, moved: Arc<MovedKeys>, shard: usize) -> Self {
        Self {
            inner,
            moved,
            shard,
            waits: Arc::default(),
        }
    }

    /// Records the shards to wait for in `waits` (kept by the shard across sessions).
    pub fn sharing_waits(mut self, waits: Arc<Mutex<Vec<usize>>>) -> Self {
        self.waits = waits;
        self
    }

    /// The list the shard's loop takes [`ShardTransform::take_waits`] from.
    pub fn waits(&self) -> Arc<Mutex<Vec<usize>>> {
        self.waits.clone()
    }

    /// The shards whose DEL of a key this shard restored since may not have reached the
    /// target yet: their writes must be acknowledged before this shard's batch is sent.
    pub fn take_waits(waits: &Mutex<Vec<usize>>) -> Vec<usize> {
        let mut waits = waits.lock().unwrap_or_else(|p| p.into_inner());
        let mut taken = std::mem::take(&mut *waits);
        taken.sort_unstable();
        taken.dedup();
        taken
    }
}

impl CommandTransform for ShardTransform {
    fn translate(&mut self, db: u64, mut args: Vec<Bytes>) -> Result<Translated, Error> {
        let name = args.first().cloned().unwrap_or_default();
        if name.eq_ignore_ascii_case(b"RESTORE-ASKING") {
            if let Some(key) = args.get(1) {
                if let Some(deleter) = self.moved.restored(key.clone(), self.shard) {
                    self.waits
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(deleter);
                }
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
                position == 1 || !moved.moved_away(arg, shard)
            });
            for key in args.iter().skip(1) {
                self.moved.deleted(key.clone(), shard);
            }
            if args.len() == 1 && before > 1 {
                return Ok(Translated::Skip { reason: SKIPPED });
            }
        } else if let Some(key) = first_key(&args) {
            if self.moved.restored_elsewhere(key, self.shard) {
                return Ok(Translated::Skip { reason: SUPERSEDED });
            }
        }
        self.inner.translate(db, args)
    }

    fn report_lines(&self) -> Vec<String> {
        self.inner.report_lines()
    }
}

/// The key a replicated command writes first: its first argument, but for `XGROUP`
/// (`XGROUP subcommand key …`). A cluster runs a multi-key command only when all its keys
/// are in one slot and none is being moved, so the first key tells.
fn first_key(args: &[Bytes]) -> Option<&Bytes> {
    let name = args.first()?;
    if name.eq_ignore_ascii_case(b"XGROUP") {
        return args.get(2);
    }
    args.get(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sources::replication::translate::PassThrough;

    fn args(text: &str) -> Vec<Bytes> {
        text.split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn shard(moved: &Arc<MovedKeys>, index: usize) -> ShardTransform {
        ShardTransform::new(Box::new(PassThrough), moved.clone(), index)
    }

    #[test]
    fn the_origins_del_of_a_key_restored_by_another_shard_is_left_out() {
        let moved = Arc::new(MovedKeys::default());
        let (mut origin, mut destination) = (shard(&moved, 0), shard(&moved, 1));
        let restore = destination
            .translate(0, args("RESTORE-ASKING a 0 payload"))
            .unwrap();
        assert_eq!(
            restore,
            Translated::Apply(vec![args("RESTORE-ASKING a 0 payload")])
        );
        destination
            .translate(0, args("RESTORE-ASKING b 0 p"))
            .unwrap();
        // MIGRATE of a and b propagated as one DEL, with c deleted by a client.
        assert_eq!(
            origin.translate(0, args("DEL a c b")).unwrap(),
            Translated::Apply(vec![args("DEL c")])
        );
        // Answered once: a later DEL of a (moved back, deleted) is an ordinary one.
        assert_eq!(
            origin.translate(0, args("DEL a")).unwrap(),
            Translated::Apply(vec![args("DEL a")])
        );
        destination
            .translate(0, args("RESTORE-ASKING d 0 p"))
            .unwrap();
        assert!(matches!(
            origin.translate(0, args("unlink d")).unwrap(),
            Translated::Skip { .. }
        ));
    }

    #[test]
    fn the_origins_earlier_writes_to_a_restored_key_are_left_out_until_its_del() {
        let moved = Arc::new(MovedKeys::default());
        let (mut origin, mut destination) = (shard(&moved, 0), shard(&moved, 1));
        destination
            .translate(0, args("RESTORE-ASKING s 0 p"))
            .unwrap();
        for text in ["XADD s 5-1 f v", "XGROUP CREATE s g $", "EXPIRE s 10"] {
            assert!(
                matches!(
                    origin.translate(0, args(text)).unwrap(),
                    Translated::Skip { .. }
                ),
                "{text}"
            );
        }
        // Another key, and the destination's own writes, go on.
        for (from, text) in [
            (&mut origin, "XADD t 5-1 f v"),
            (&mut destination, "XADD s 6-1 f v"),
        ] {
            assert_eq!(
                from.translate(0, args(text)).unwrap(),
                Translated::Apply(vec![args(text)])
            );
        }
        assert!(matches!(
            origin.translate(0, args("DEL s")).unwrap(),
            Translated::Skip { .. }
        ));
        // The move is complete: the key is the origin's again if it ever comes back.
        assert_eq!(
            origin.translate(0, args("SET s 1")).unwrap(),
            Translated::Apply(vec![args("SET s 1")])
        );
    }

    #[test]
    fn a_restore_after_another_shards_del_waits_for_that_shard() {
        let moved = Arc::new(MovedKeys::default());
        let (mut origin, mut destination) = (shard(&moved, 0), shard(&moved, 1));
        let waits = destination.waits();
        origin.translate(0, args("DEL a")).unwrap();
        destination
            .translate(0, args("RESTORE-ASKING b 0 p"))
            .unwrap();
        assert!(ShardTransform::take_waits(&waits).is_empty());
        destination
            .translate(0, args("RESTORE-ASKING a 0 p"))
            .unwrap();
        assert_eq!(ShardTransform::take_waits(&waits), vec![0]);
        assert!(ShardTransform::take_waits(&waits).is_empty());
    }

    #[test]
    fn the_restoring_shard_deleting_the_key_itself_is_applied() {
        let moved = Arc::new(MovedKeys::default());
        let (mut origin, mut destination) = (shard(&moved, 0), shard(&moved, 1));
        destination
            .translate(0, args("RESTORE-ASKING a 0 p"))
            .unwrap();
        assert_eq!(
            destination.translate(0, args("DEL a")).unwrap(),
            Translated::Apply(vec![args("DEL a")])
        );
        assert_eq!(
            origin.translate(0, args("DEL a")).unwrap(),
            Translated::Apply(vec![args("DEL a")])
        );
    }
}
