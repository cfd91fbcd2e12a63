//! A cluster source: one replication reader per shard (primary), all running at once and
//! writing into the same target, each with its own position in the state file.
//!
//! ```text
//! seed node ─ CLUSTER SHARDS ─┬─ shard 0-5460      ─ PSYNC ─ snapshot, stream ─┐
//!                             ├─ shard 5461-10922  ─ PSYNC ─ snapshot, stream ─┼─▶ target
//!                             └─ shard 10923-16383 ─ PSYNC ─ snapshot, stream ─┘
//! ```
//!
//! Each shard runs the standalone path ([`Migration::follow`]) with these differences:
//! the target is emptied once before any shard starts, never by a shard's full sync;
//! each shard's stream keeps its own marker on the target (a field of the shards' marker
//! on a standalone target, per-slot markers on a cluster), so a crash resumes each shard
//! exactly once; a lost shard rediscovers the cluster and follows its slots to the
//! node now serving them (a failover), resuming there by PSYNC. Keys resharded between
//! shards are paired across their streams by `transforms/shards/moves.rs`; a restart
//! finds each saved shard by its node, so a resharding in between resumes; a primary that
//! joins the source (whose stream no shard reads) stops the run.

use super::{shutdown_or_stop, Migration, TargetSetup};
use crate::cli::MigrateArgs;
use crate::error::Error;
use crate::observe::metrics::ShardStatus;
use crate::observe::{Observer, Phase};
use crate::server::client::Client;
use crate::server::cluster::shards::{self as cluster, slots_text, NodeAddr, SourceShard};
use crate::server::probe::{self, ImportMode, ServerInfo};
use crate::sinks::writer::pipe::{Batch, Pipe};
use crate::state::marker;
use crate::state::{self, MigrationState, MovedKeyState, ShardState};
use crate::transforms::commands::transform::CommandTransform;
use crate::transforms::shards::imports::SlotImports;
use crate::transforms::shards::moves::{MovedKeys, ShardTransform};
use crate::url::ServerUrl;
use bytes::Bytes;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

/// What the shards of one run share: the state file and who is in sync.
struct Board {
    path: Option<PathBuf>,
    /// The whole state, one entry per shard in `shards`.
    state: Mutex<MigrationState>,
    in_sync: Mutex<Vec<bool>>,
    all_in_sync: AtomicBool,
    /// Keys MIGRATE moved between shards (resharding on the source).
    moved: Arc<MovedKeys>,
    /// Each shard's last applied offset, received offset and commands/s.
    progress: Mutex<Vec<(i64, i64, f64)>>,
    /// Each shard's pipe to the target, for another shard to wait on (see `settle`).
    pipes: Mutex<Vec<Option<Pipe>>>,
    /// Each shard's stream offset read and handed to its writer so far (`i64::MIN`:
    /// nothing yet), for another shard to wait on (see `settle`).
    read_up_to: Vec<AtomicI64>,
    /// Which shards are waiting in `settle`.
    settling: Vec<AtomicBool>,
}

/// Longest wait for the other shards' writes before restoring a moved key.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the source's topology is read for primaries no shard follows.
const TOPOLOGY_EVERY: Duration = Duration::from_secs(2);
/// How long a primary may serve slots unfollowed before the run stops (a failover's
/// promoted replica is followed sooner).
const UNFOLLOWED_FOR: Duration = Duration::from_secs(10);
/// How often `settle` looks at the other shards' applied offsets.
const SETTLE_POLL: Duration = Duration::from_millis(2);

/// The keys an earlier run remembered as moved ([`Board::save_moves`]), by the index of
/// the shard now following the node that restored each (dropped with `--flush-target`).
fn recalled_moves(shards: &[ShardState], saved: Vec<MovedKeyState>, resume: bool) -> MovedKeys {
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
    fn save_moves(&self) -> Result<(), Error> {
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

    fn save(&self, state: &MigrationState) -> Result<(), Error> {
        match &self.path {
            Some(path) => state::save(path, state).map_err(Error::from),
            None => Ok(()),
        }
    }
}

/// One shard's identity and its share of the [`Board`].
pub(super) struct ShardContext {
    index: usize,
    slots: Vec<[u16; 2]>,
    board: Arc<Board>,
    /// This shard's keys may be on the target (a full sync of it began, in this run or
    /// an earlier one): another full sync would mix old and new data.
    loaded: AtomicBool,
    /// Every node seen (replicas included), asked for the topology after a loss.
    known: Mutex<Vec<NodeAddr>>,
    /// Raised when this shard read a RESTORE-ASKING ([`ShardTransform::take_restoring`]).
    restoring: Arc<AtomicBool>,
    /// Valkey 9's atomic slot imports running in this shard's stream.
    imports: Arc<Mutex<SlotImports>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking holder cannot leave these values half-written: use them anyway.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ShardContext {
    /// `shard 0-5460 (127.0.0.1:7000)`: the node, never the URL (no password).
    pub(super) fn label(&self, node: &ServerUrl) -> String {
        format!("shard {} ({})", slots_text(&self.slots), node.address())
    }

    /// Records this shard's position (`state`) in the state file.
    pub(super) fn save(&self, state: &MigrationState, node: &str) -> Result<(), Error> {
        let mut whole = lock(&self.board.state);
        if let Some(entry) = whole.shards.get_mut(self.index) {
            entry.node = node.to_owned();
            entry.replid = state.replid.clone();
            entry.offset = state.offset;
            entry.origin = state.origin.clone();
        }
        self.board.save(&whole)
    }

    /// A full sync of this shard is about to load: refused when the target may already
    /// hold its keys from before (`resumed`: the source refused to continue a saved
    /// position).
    pub(super) fn begin_full_sync(&self, resumed: bool) -> Result<(), Error> {
        if self.loaded.swap(true, Ordering::Relaxed) || resumed {
            return Err(Error::Migration(
                "the source offers this shard only a full sync (FULLRESYNC) while the target \
                 holds its keys from before, and reloading over them would keep keys deleted \
                 meanwhile; rerun with --flush-target to copy the whole cluster again"
                    .into(),
            ));
        }
        Ok(())
    }

    pub(super) fn in_sync(&self, events: &Observer, node: &ServerUrl, offset: i64) {
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
    pub(super) fn transform(&self, inner: Box<dyn CommandTransform>) -> Box<dyn CommandTransform> {
        Box::new(
            ShardTransform::new(inner, self.board.moved.clone(), self.index)
                .sharing_restoring(self.restoring.clone())
                .sharing_imports(self.imports.clone()),
        )
    }

    /// This shard has read its stream up to `offset` and handed what it read to its
    /// writer (sent, or waiting to be): what a RESTORE-ASKING of another shard waits for.
    pub(super) fn read_up_to(&self, offset: i64) {
        if let Some(read) = self.board.read_up_to.get(self.index) {
            read.store(offset, Ordering::Relaxed);
        }
    }

    /// Before a batch that restores keys MIGRATE moved to this shard: waits until every
    /// other shard applied what it had read so far, so the origin's DEL and its earlier
    /// writes to those keys reach the target before the RESTORE (the rules in
    /// [`crate::transforms::shards::moves`] decided in reading order). Two shards both
    /// restoring wait in index order, the lower one first, rather than for each other.
    pub(super) async fn settle(&self) {
        if !ShardTransform::take_restoring(&self.restoring) {
            return;
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
    }

    /// Records this shard's progress; returns the sums over every shard (for `/status`
    /// and `/metrics`, whose lag is then the whole cluster's).
    pub(super) fn totals(&self, applied: i64, received: i64, rate: f64) -> (i64, i64, f64) {
        let mut all = lock(&self.board.progress);
        if let Some(mine) = all.get_mut(self.index) {
            *mine = (applied, received, rate);
        }
        all.iter().fold((0, 0, 0.0), |(a, r, o), (sa, sr, so)| {
            (a.saturating_add(*sa), r.saturating_add(*sr), o + so)
        })
    }

    fn out_of_sync(&self) {
        if let Some(flag) = lock(&self.board.in_sync).get_mut(self.index) {
            *flag = false;
        }
        self.board.all_in_sync.store(false, Ordering::Relaxed);
    }
}

impl Board {
    fn state_len(&self) -> usize {
        lock(&self.in_sync).len()
    }

    /// Each shard's position for `/status`: the applied offset read live from its pipe
    /// (the progress copy is up to a tick old; cutover waits on it with writes paused).
    fn shard_status(&self) -> Vec<ShardStatus> {
        let state = lock(&self.state);
        let progress = lock(&self.progress);
        let pipes = lock(&self.pipes);
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
                    node: shard.node.clone(),
                    replid: shard.replid.clone(),
                    applied_offset: live.max(ticked),
                    source_offset: received,
                }
            })
            .collect()
    }
}

impl Migration {
    pub(super) async fn source_is_cluster(
        &self,
    ) -> Result<bool, crate::server::client::ClientError> {
        let mut client = Client::connect(&self.source_url, self.connect_timeout).await?;
        probe::is_cluster(&mut client).await
    }

    /// The run for a cluster source: discover the shards, match them with the state file,
    /// empty the target once if asked, then follow every shard until a signal or an error.
    pub(super) async fn run_cluster_source(
        &self,
        args: &MigrateArgs,
        source_info: &ServerInfo,
        mut target: TargetSetup,
        mut state: MigrationState,
        owned: bool,
    ) -> Result<(), Error> {
        let mut seed = Client::connect(&self.source_url, self.connect_timeout)
            .await
            .map_err(|e| self.source_error(e))?;
        let shards = cluster::discover(&mut seed, &self.source_url.host)
            .await
            .map_err(|e| self.source_error(e))?;
        drop(seed);
        let listed: Vec<String> = shards
            .iter()
            .map(|s| format!("{} at {}", s.slots_text(), s.primary))
            .collect();
        self.events.line(format!(
            "source is a cluster of {} shards ({}): one replication reader per primary, \
             database 0 only; each shard's stream keeps its own resume marker on the target",
            shards.len(),
            listed.join(", ")
        ));
        let saved = std::mem::take(&mut state.shards);
        let saved_moves = std::mem::take(&mut state.moved_keys);
        let resume = !saved.is_empty() && !args.flush_target;
        state.shards = match resume {
            true => self.match_saved(&shards, saved)?,
            false => shards
                .iter()
                .map(|shard| ShardState {
                    slots: shard.slots.clone(),
                    node: shard.primary.to_string(),
                    replid: None,
                    offset: 0,
                    origin: None,
                })
                .collect(),
        };
        if resume && !target.cluster {
            self.resume_shards_from_target(&mut target, &mut state.shards)
                .await?;
        }
        state.replid = None;
        state.offset = 0;
        state.db = 0;

        // The target is emptied here, once: a shard's full sync must keep the others' keys.
        // A target ferry owns without a position to resume from (cutover's reverse run)
        // is replaced whole, as a standalone source's full sync replaces it.
        let pipe = self.target_pipe(&mut target).await?;
        if resume {
            self.read_held_markers(&pipe).await?;
        }
        if args.flush_target || (owned && !resume && !args.allow_non_empty) {
            let mut batch = Batch::default();
            batch.push(&["FLUSHALL"]);
            pipe.send(batch).await.map_err(|e| self.target_error(e))?;
            pipe.barrier().await.map_err(|e| self.target_error(e))?;
            self.events
                .line("emptied the target (FLUSHALL), once before any shard starts");
        }
        drop(pipe);

        let known: Vec<NodeAddr> = shards.iter().flat_map(|s| s.nodes.clone()).collect();
        let entries = state.shards.clone();
        let board = Arc::new(Board {
            path: self.state_path.clone(),
            in_sync: Mutex::new(vec![false; shards.len()]),
            all_in_sync: AtomicBool::new(false),
            state: Mutex::new(state.clone()),
            moved: Arc::new(recalled_moves(&state.shards, saved_moves, resume)),
            progress: Mutex::new(vec![(0, 0, 0.0); shards.len()]),
            pipes: Mutex::new(vec![None; shards.len()]),
            read_up_to: shards.iter().map(|_| AtomicI64::new(i64::MIN)).collect(),
            settling: shards.iter().map(|_| AtomicBool::new(false)).collect(),
        });
        {
            let whole = lock(&board.state);
            board.save(&whole)?;
        }
        let reader = board.clone();
        self.events
            .stats()
            .set_shards_reader(move || reader.shard_status());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut runs = Vec::with_capacity(shards.len());
        for (index, (shard, entry)) in shards.iter().zip(entries).enumerate() {
            let mut job = self.clone();
            job.source_url = shard.primary.url(&self.source_url);
            job.memory = self.memory.shared_by(shards.len());
            job.shard = Some(Arc::new(ShardContext {
                index,
                slots: shard.slots.clone(),
                board: board.clone(),
                loaded: AtomicBool::new(resume),
                known: Mutex::new(known.clone()),
                restoring: Arc::default(),
                imports: Arc::default(),
            }));
            let pipe = job.shard_pipe(&target).await?;
            if let Some(slot) = lock(&board.pipes).get_mut(index) {
                *slot = Some(pipe.clone());
            }
            let mut shard_state = state.clone();
            shard_state.shards.clear();
            shard_state.replid = entry.replid;
            shard_state.offset = entry.offset;
            shard_state.origin = entry.origin;
            runs.push(job.run_shard(
                args,
                source_info,
                &target,
                pipe,
                shard_state,
                (stop.clone(), stopped.clone()),
            ));
        }

        let all = join_all(runs);
        tokio::pin!(all);
        let signal = shutdown_or_stop(self.events.stats().clone(), self.events.clone());
        tokio::pin!(signal);
        let unfollowed = self.watch_for_unfollowed_primaries(&board, known);
        tokio::pin!(unfollowed);
        let (results, stopped_by) = tokio::select! {
            results = &mut all => (results, None),
            _ = &mut signal => {
                let _ = stop.send(true);
                (all.await, None)
            }
            error = &mut unfollowed => {
                let _ = stop.send(true);
                (all.await, Some(error))
            }
        };
        board.save_moves()?;
        results.into_iter().collect::<Result<Vec<()>, Error>>()?;
        match stopped_by {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Resolves once slots of the source are served, for [`UNFOLLOWED_FOR`], by a primary
    /// no shard follows and that was not among the nodes at start (`known`): a primary
    /// added since. The keys resharding moves to it appear only in its stream, which ferry
    /// does not read, while their origin's DELs are applied: the target would lose them.
    /// A promoted replica is followed by its shard within that time.
    async fn watch_for_unfollowed_primaries(&self, board: &Board, known: Vec<NodeAddr>) -> Error {
        let mut since: Option<(tokio::time::Instant, NodeAddr)> = None;
        loop {
            tokio::time::sleep(TOPOLOGY_EVERY).await;
            let Some(shards) =
                cluster::rediscover(&known, &self.source_url, self.connect_timeout).await
            else {
                continue;
            };
            let followed: Vec<String> = lock(&board.state)
                .shards
                .iter()
                .map(|s| s.node.clone())
                .collect();
            let stranger = shards.iter().find(|shard| {
                !shard.slots.is_empty()
                    && !known.contains(&shard.primary)
                    && !followed.contains(&shard.primary.to_string())
            });
            let Some(stranger) = stranger else {
                since = None;
                continue;
            };
            match &since {
                Some((first, was)) if *was == stranger.primary => {
                    if first.elapsed() >= UNFOLLOWED_FOR {
                        return Error::Migration(format!(
                            "the source's slots {} are served by {}, a primary that joined \
                             the cluster after ferry started and whose stream ferry does not \
                             read (keys moved there would be lost on the target); restart \
                             ferry with --flush-target to follow every primary",
                            stranger.slots_text(),
                            stranger.primary
                        ));
                    }
                }
                _ => since = Some((tokio::time::Instant::now(), stranger.primary.clone())),
            }
        }
    }

    /// On a standalone target: each shard's marker field, written with its data, says
    /// where its stream resumes (the state file trails by up to a second). A shard with
    /// no field resumes from the state file.
    async fn resume_shards_from_target(
        &self,
        target: &mut TargetSetup,
        entries: &mut [ShardState],
    ) -> Result<(), Error> {
        let client = target.client.as_mut().ok_or_else(|| {
            Error::Migration("internal: the target connection was taken before resuming".into())
        })?;
        let markers = marker::read_shards(client)
            .await
            .map_err(|e| self.target_error(e))?;
        for entry in entries.iter_mut() {
            let Some(stream) = entry.origin.clone().or_else(|| entry.replid.clone()) else {
                continue;
            };
            let label = format!("shard {} ({})", slots_text(&entry.slots), entry.node);
            let Some(found) = markers.get(&stream) else {
                self.events.line(format!(
                    "{label}: no marker of this shard on the target; resuming from the state \
                     file's offset {}",
                    entry.offset
                ));
                continue;
            };
            if found.offset != entry.offset || entry.replid.as_deref() != Some(&found.replid) {
                self.events.line(format!(
                    "{label}: the target holds offset {} by its marker (the state file: {}); \
                     resuming from the target's",
                    found.offset, entry.offset
                ));
                entry.replid = Some(found.replid.clone());
                entry.offset = found.offset;
                entry.origin = Some(stream);
            }
        }
        Ok(())
    }

    /// A state file of a cluster source has shards, one of a standalone source has none:
    /// given with the other kind of source it is refused. One without any position (only
    /// naming a target ferry owns, as cutover writes for its reverse run) fits either.
    pub(super) fn check_state_kind(
        &self,
        saved: &MigrationState,
        cluster_source: bool,
    ) -> Result<(), Error> {
        let no_position = saved.replid.is_none() && saved.shards.is_empty();
        if no_position || saved.shards.is_empty() != cluster_source {
            return Ok(());
        }
        let (written_for, now) = match cluster_source {
            true => ("a standalone", "a cluster"),
            false => ("a cluster", "not a cluster"),
        };
        Err(Error::Migration(format!(
            "the state file {} was written for {written_for} source, and {} is {now}; use \
             another --state file",
            self.state_path
                .as_deref()
                .unwrap_or(Path::new(""))
                .display(),
            self.source_url,
        )))
    }

    /// The saved shards in the order of `shards`, each with the slots it serves now.
    ///
    /// A shard is its primary's replication history, not its slots: after a resharding
    /// each primary's stream goes on where the state file left it, and the keys moved
    /// meanwhile are in those streams (`RESTORE-ASKING` in one, `DEL` in the other, paired
    /// as during a run). So a saved shard is found by the node it followed, or, when that
    /// node no longer leads a shard (a failover while ferry was stopped), by its slots.
    /// A primary the state file does not know (it joined since), or a saved position no
    /// shard continues, would lose writes: refused.
    fn match_saved(
        &self,
        shards: &[SourceShard],
        saved: Vec<ShardState>,
    ) -> Result<Vec<ShardState>, Error> {
        let mut unclaimed: Vec<Option<ShardState>> = saved.into_iter().map(Some).collect();
        let mut claim = |found: &dyn Fn(&ShardState) -> bool| {
            let at = unclaimed
                .iter()
                .position(|e| e.as_ref().is_some_and(found))?;
            unclaimed[at].take()
        };
        let by_node: Vec<Option<ShardState>> = shards
            .iter()
            .map(|shard| claim(&|entry| entry.node == shard.primary.to_string()))
            .collect();
        let mut matched = Vec::with_capacity(shards.len());
        for (shard, entry) in shards.iter().zip(by_node) {
            let entry = entry.or_else(|| claim(&|entry| entry.slots == shard.slots));
            let Some(entry) = entry else {
                return Err(Error::Migration(format!(
                    "the source's shard {} at {} is not in the state file (a primary that                      joined the cluster since, or one that took over while slots moved):                      its keys cannot be resumed; rerun with --flush-target",
                    shard.slots_text(),
                    shard.primary
                )));
            };
            matched.push(ShardState {
                slots: shard.slots.clone(),
                ..entry
            });
        }
        if let Some(left) = unclaimed.into_iter().flatten().next() {
            return Err(Error::Migration(format!(
                "the state file's shard {} at {} is no longer a primary of the source                  cluster: the writes it had not passed on yet cannot be read; rerun with                  --flush-target",
                slots_text(&left.slots),
                left.node
            )));
        }
        Ok(matched)
    }

    /// This shard's own connection(s) to the target, in import mode when the setup
    /// connection entered it (it is per connection).
    async fn shard_pipe(&self, target: &TargetSetup) -> Result<Pipe, Error> {
        let mut client = Client::connect(&self.target_url, self.connect_timeout)
            .await
            .map_err(|e| self.target_error(e))?;
        if target.import_mode != ImportMode::Absent {
            probe::enter_import_mode(&mut client)
                .await
                .map_err(|e| self.target_error(e))?;
        }
        Ok(self.open_pipe(client, target.cluster).await?.0)
    }

    /// Follows one shard; an error stops the other shards too.
    async fn run_shard(
        self,
        args: &MigrateArgs,
        source_info: &ServerInfo,
        target: &TargetSetup,
        pipe: Pipe,
        mut state: MigrationState,
        (stop, mut stopped): (
            tokio::sync::watch::Sender<bool>,
            tokio::sync::watch::Receiver<bool>,
        ),
    ) -> Result<(), Error> {
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        tokio::pin!(shutdown);
        let result = self
            .follow(
                args,
                source_info,
                target,
                &pipe,
                &mut state,
                true,
                &mut shutdown,
            )
            .await;
        if result.is_err() {
            let _ = stop.send(true);
        }
        result
    }

    /// After a lost connection: asks the known nodes for the topology and follows this
    /// shard's slots to the node serving them now (a failover promoted a replica).
    pub(super) async fn shard_lost(&mut self) {
        let Some(shard) = self.shard.clone() else {
            return;
        };
        shard.out_of_sync();
        let mut ask = vec![NodeAddr {
            host: self.source_url.host.clone(),
            port: self.source_url.port,
        }];
        ask.extend(lock(&shard.known).iter().cloned());
        let Some(shards) = cluster::rediscover(&ask, &self.source_url, self.connect_timeout).await
        else {
            return;
        };
        {
            let mut known = lock(&shard.known);
            for node in shards.iter().flat_map(|s| s.nodes.iter()) {
                if !known.contains(node) {
                    known.push(node.clone());
                }
            }
        }
        // The shard now serving most of this one's slots (all of them after a failover).
        let overlap = |candidate: &SourceShard| {
            shard
                .slots
                .iter()
                .flat_map(|[a, b]| *a..=*b)
                .filter(|slot| candidate.serves(*slot))
                .count()
        };
        let Some(now) = shards
            .iter()
            .map(|candidate| (overlap(candidate), candidate))
            .filter(|(count, _)| *count > 0)
            .max_by_key(|(count, _)| *count)
            .map(|(_, candidate)| candidate)
        else {
            return;
        };
        if now.primary.host == self.source_url.host && now.primary.port == self.source_url.port {
            return;
        }
        let was = shard.label(&self.source_url);
        self.failover_from = Some(self.source_url.address());
        self.source_url = now.primary.url(&self.source_url);
        self.events.line(format!(
            "{was}: failover: the slots are now served by {}; resuming there by PSYNC",
            now.primary
        ));
    }
}

/// Runs every future to completion on the current task; the outputs in order.
///
/// The shards share the migration's task rather than each getting its own: `--json`
/// events are written to stdout, which `main` holds locked on this thread (see
/// [`crate::observe::JsonLines`]). Their waits overlap; the CPU-heavy part, decoding each
/// snapshot, runs on its own blocking thread.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        match pending {
            true => Poll::Pending,
            false => Poll::Ready(()),
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
