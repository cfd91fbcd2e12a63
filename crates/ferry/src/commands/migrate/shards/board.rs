//! What the shards of one run share ([`Board`]: the state file, who is in sync, the keys
//! moved between shards, each shard's pipe and progress) and each shard's identity and
//! share of it ([`ShardContext`]), which the standalone session loop consults.

use super::*;

/// What the shards of one run share: the state file and who is in sync.
pub(super) struct Board {
    pub(super) path: Option<PathBuf>,
    /// The whole state, one entry per shard in `shards`.
    pub(super) state: Mutex<MigrationState>,
    pub(super) in_sync: Mutex<Vec<bool>>,
    pub(super) all_in_sync: AtomicBool,
    /// Keys MIGRATE moved between shards (resharding on the source).
    pub(super) moved: Arc<MovedKeys>,
    /// Each shard's last applied offset, received offset and commands/s.
    pub(super) progress: Mutex<Vec<(i64, i64, f64)>>,
    /// Each shard's pipe to the target, for another shard to wait on (see `settle`).
    pub(super) pipes: Mutex<Vec<Option<Pipe>>>,
    /// Each shard's stream offset read and handed to its writer so far (`i64::MIN`:
    /// nothing yet), for another shard to wait on (see `settle`).
    pub(super) read_up_to: Vec<AtomicI64>,
    /// Which shards are waiting in `settle`.
    pub(super) settling: Vec<AtomicBool>,
    /// Failovers of each shard's primary followed, for `/status`.
    pub(super) failovers: Vec<AtomicU64>,
    /// The primary each shard follows since its last failover, for `/status` before the
    /// state file records it with an offset.
    pub(super) promoted: Mutex<Vec<Option<String>>>,
    /// A worker (`--shards K/N`): the other workers, waited for when keys come into its
    /// share ([`super::peers`]).
    pub(super) peers: Option<Arc<Peers>>,
}

/// The keys an earlier run remembered as moved ([`Board::save_moves`]), by the index of
/// the shard now following the node that restored each (dropped with `--flush-target`).
pub(super) fn recalled_moves(
    shards: &[ShardState],
    saved: Vec<MovedKeyState>,
    resume: bool,
) -> MovedKeys {
    let moved = MovedKeys::default();
    if resume {
        moved.recall(saved.into_iter().filter_map(|entry| {
            let shard = shards.iter().position(|s| s.node == entry.restored_by)?;
            let key = hex_decode(&entry.key)?;
            Some((Bytes::from(key), shard))
        }));
    }
    moved
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

impl Board {
    /// Once every shard stopped: the keys still remembered as moved go into the state
    /// file, for a restart to leave out the older writes a lagging shard reads then.
    pub(super) fn save_moves(&self) -> Result<(), Error> {
        let mut whole = lock(&self.state);
        let nodes: Vec<String> = whole.shards.iter().map(|s| s.node.clone()).collect();
        whole.moved_keys = self
            .moved
            .remembered()
            .into_iter()
            .filter_map(|(key, shard)| {
                Some(MovedKeyState {
                    key: key.iter().map(|b| format!("{b:02x}")).collect(),
                    restored_by: nodes.get(shard)?.clone(),
                })
            })
            .collect();
        self.save(&whole)
    }

    pub(super) fn save(&self, state: &MigrationState) -> Result<(), Error> {
        match &self.path {
            Some(path) => state::save(path, state).map_err(Error::from),
            None => Ok(()),
        }
    }
}

/// One shard's identity and its share of the [`Board`].
pub(in crate::commands::migrate) struct ShardContext {
    pub(super) index: usize,
    pub(super) slots: Vec<[u16; 2]>,
    pub(super) board: Arc<Board>,
    /// This shard's keys may be on the target (a full sync of it began, in this run or
    /// an earlier one): another full sync would mix old and new data.
    pub(super) loaded: AtomicBool,
    /// Every node seen (replicas included), asked for the topology after a loss.
    pub(super) known: Mutex<Vec<NodeAddr>>,
    /// Raised when this shard read a RESTORE-ASKING ([`ShardTransform::take_restoring`]).
    pub(super) restoring: Arc<AtomicBool>,
    /// Valkey 9's atomic slot imports running in this shard's stream.
    pub(super) imports: Arc<Mutex<SlotImports>>,
    /// A worker's writes read since the last batch that came into its share.
    pub(super) entering: EnteringWrites,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking holder cannot leave these values half-written: use them anyway.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ShardContext {
    /// `shard 0-5460 (127.0.0.1:7000)`: the node, never the URL (no password).
    pub(in crate::commands::migrate) fn label(&self, node: &ServerUrl) -> String {
        format!("shard {} ({})", slots_text(&self.slots), node.address())
    }

    /// Records this shard's position (`state`) in the state file.
    pub(in crate::commands::migrate) fn save(
        &self,
        state: &MigrationState,
        node: &str,
    ) -> Result<(), Error> {
        let mut whole = lock(&self.board.state);
        if let Some(entry) = whole.shards.get_mut(self.index) {
            entry.node = node.to_owned();
            entry.replid = state.replid.clone();
            entry.offset = state.offset;
            entry.origin = state.origin.clone();
            entry.loading = state.loading.clone();
            entry.load_begun = state.load_begun;
        }
        self.board.save(&whole)
    }

    /// A full sync of this shard is about to load: refused when the target may already
    /// hold its keys from before (`resumed`: the source refused to continue a saved
    /// position).
    pub(in crate::commands::migrate) fn begin_full_sync(&self, resumed: bool) -> Result<(), Error> {
        if self.loaded.swap(true, Ordering::Relaxed) || resumed {
            return Err(MigrateError::ShardFullSyncAgain.into());
        }
        Ok(())
    }

    pub(in crate::commands::migrate) fn in_sync(
        &self,
        events: &Observer,
        node: &ServerUrl,
        offset: i64,
    ) {
        events.line(format!("{}: in sync at offset {offset}", self.label(node)));
        let all = {
            let mut flags = lock(&self.board.in_sync);
            if let Some(flag) = flags.get_mut(self.index) {
                *flag = true;
            }
            flags.iter().all(|f| *f)
        };
        if all && !self.board.all_in_sync.swap(true, Ordering::Relaxed) {
            events.phase(Phase::InSync, None);
            events.line(format!(
                "in sync: all {} shards of the source cluster",
                self.board.state_len()
            ));
        }
    }

    /// The stream transform of this shard: `inner` behind the MIGRATE rule
    /// ([`crate::transforms::shards::moves`]).
    pub(in crate::commands::migrate) fn transform(
        &self,
        inner: Box<dyn CommandTransform>,
    ) -> Box<dyn CommandTransform> {
        Box::new(
            ShardTransform::new(inner, self.board.moved.clone(), self.index)
                .sharing_restoring(self.restoring.clone())
                .sharing_imports(self.imports.clone())
                .within_share(
                    self.board
                        .peers
                        .as_ref()
                        .map(|peers| (peers.share(), self.entering.clone())),
                ),
        )
    }

    /// This shard has read its stream up to `offset` and handed what it read to its
    /// writer (sent, or waiting to be): what a RESTORE-ASKING of another shard waits for.
    pub(in crate::commands::migrate) fn read_up_to(&self, offset: i64) {
        if let Some(read) = self.board.read_up_to.get(self.index) {
            read.store(offset, Ordering::Relaxed);
        }
    }

    /// Before a batch that restores keys MIGRATE moved to this shard: waits until every
    /// other shard applied what it had read so far, so the origin's DEL and its earlier
    /// writes to those keys reach the target before the RESTORE (the rules in
    /// [`crate::transforms::shards::moves`] decided in reading order). Two shards both
    /// restoring wait in index order, the lower one first, rather than for each other.
    /// A worker's batch that writes keys from another worker's share also waits for that
    /// worker ([`Peers::settle`]).
    pub(in crate::commands::migrate) async fn settle(&self) -> Result<(), MigrateError> {
        if !ShardTransform::take_restoring(&self.restoring) {
            return Ok(());
        }
        let board = &self.board;
        let wanted: Vec<(usize, i64, Pipe)> = {
            let pipes = lock(&board.pipes);
            board
                .read_up_to
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != self.index)
                .filter_map(|(other, read)| {
                    let read = read.load(Ordering::Relaxed);
                    let pipe = pipes.get(other)?.clone()?;
                    (read != i64::MIN).then_some((other, read, pipe))
                })
                .collect()
        };
        let mine = &board.settling[self.index];
        mine.store(true, Ordering::Relaxed);
        let applied = |other: usize, read: i64, pipe: &Pipe| {
            pipe.applied().is_some_and(|mark| mark.offset >= read)
                || (other > self.index && board.settling[other].load(Ordering::Relaxed))
                || pipe.failure().is_some()
        };
        let all = async {
            for (other, read, pipe) in &wanted {
                while !applied(*other, *read, pipe) {
                    tokio::time::sleep(SETTLE_POLL).await;
                }
            }
        };
        // A shard that cannot apply stops the run on its own; the wait is bounded anyway.
        let _ = tokio::time::timeout(SETTLE_TIMEOUT, all).await;
        mine.store(false, Ordering::Relaxed);
        let entering = std::mem::take(&mut *lock(&self.entering));
        match &board.peers {
            Some(peers) if !entering.is_empty() => peers.settle(entering).await,
            _ => Ok(()),
        }
    }

    /// Records this shard's progress; returns the sums over every shard (for `/status`
    /// and `/metrics`, whose lag is then the whole cluster's).
    pub(in crate::commands::migrate) fn totals(
        &self,
        applied: i64,
        received: i64,
        rate: f64,
    ) -> (i64, i64, f64) {
        let mut all = lock(&self.board.progress);
        if let Some(mine) = all.get_mut(self.index) {
            *mine = (applied, received, rate);
        }
        all.iter().fold((0, 0, 0.0), |(a, r, o), (sa, sr, so)| {
            (a.saturating_add(*sa), r.saturating_add(*sr), o + so)
        })
    }

    /// The shard's primary failed over and the shard follows the promoted one.
    pub(super) fn followed_failover(&self, promoted: &str) {
        if let Some(count) = self.board.failovers.get(self.index) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(node) = lock(&self.board.promoted).get_mut(self.index) {
            *node = Some(promoted.to_owned());
        }
    }

    pub(super) fn out_of_sync(&self) {
        if let Some(flag) = lock(&self.board.in_sync).get_mut(self.index) {
            *flag = false;
        }
        self.board.all_in_sync.store(false, Ordering::Relaxed);
    }
}

impl Board {
    pub(super) fn state_len(&self) -> usize {
        lock(&self.in_sync).len()
    }

    /// Each shard's position for `/status`: the applied offset read live from its pipe
    /// (the progress copy is up to a tick old; cutover waits on it with writes paused).
    pub(super) fn shard_status(&self) -> Vec<ShardStatus> {
        let state = lock(&self.state);
        let progress = lock(&self.progress);
        let pipes = lock(&self.pipes);
        let promoted = lock(&self.promoted);
        state
            .shards
            .iter()
            .enumerate()
            .map(|(index, shard)| {
                let (ticked, received, _) = progress.get(index).copied().unwrap_or_default();
                let live = pipes
                    .get(index)
                    .and_then(|pipe| pipe.as_ref()?.applied())
                    .map_or(ticked, |mark| mark.offset);
                ShardStatus {
                    slots: slots_text(&shard.slots),
                    node: promoted
                        .get(index)
                        .cloned()
                        .flatten()
                        .unwrap_or_else(|| shard.node.clone()),
                    replid: shard.replid.clone(),
                    applied_offset: live.max(ticked),
                    source_offset: received,
                    failovers: self
                        .failovers
                        .get(index)
                        .map_or(0, |count| count.load(Ordering::Relaxed)),
                }
            })
            .collect()
    }
}
