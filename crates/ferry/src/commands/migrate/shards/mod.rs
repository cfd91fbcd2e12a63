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
//! shards are paired across their streams by `transforms/shards/moves.rs`, and keys
//! resharded into a worker's share from another worker's wait for that worker
//! ([`peers`]); a restart finds each saved shard by its node, so a resharding in between
//! resumes; a primary that joins the source (whose stream no shard reads) stops the run.

mod board;
mod follow;
mod peers;
mod saved;
mod share;

use super::{shutdown_or_stop, MigrateError, Migration, TargetSetup};
use crate::cli::MigrateArgs;
use crate::error::Error;
use crate::observe::status::ShardStatus;
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
use crate::transforms::shards::share::{EnteringWrites, ShareSlots};
use crate::url::ServerUrl;
pub(super) use board::ShardContext;
use board::{lock, recalled_moves, Board};
use bytes::Bytes;
use peers::Peers;
pub(in crate::commands::migrate) use peers::WORKER_ACK_EVERY;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

/// Longest wait for the other shards' writes before restoring a moved key.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the source's topology is read for primaries no shard follows.
const TOPOLOGY_EVERY: Duration = Duration::from_secs(2);
/// How long a primary may serve slots unfollowed before the run stops (a failover's
/// promoted replica is followed sooner).
const UNFOLLOWED_FOR: Duration = Duration::from_secs(10);
/// How often `settle` looks at the other shards' applied offsets.
const SETTLE_POLL: Duration = Duration::from_millis(2);

impl Migration {
    pub(in crate::commands::migrate) async fn source_is_cluster(
        &self,
    ) -> Result<bool, crate::server::client::ClientError> {
        let mut client = Client::connect(&self.source_url, self.connect_timeout).await?;
        probe::is_cluster(&mut client).await
    }

    /// The run for a cluster source: discover the shards, match them with the state file,
    /// empty the target once if asked, then follow every shard until a signal or an error.
    pub(in crate::commands::migrate) async fn run_cluster_source(
        &self,
        args: &MigrateArgs,
        source_info: &ServerInfo,
        (mut client, target): (Client, TargetSetup),
        mut state: MigrationState,
        owned: bool,
    ) -> Result<(), Error> {
        let mut seed = Client::connect(&self.source_url, self.connect_timeout)
            .await
            .map_err(|e| self.source_error(e))?;
        let all = cluster::discover(&mut seed, &self.source_url.host)
            .await
            .map_err(|e| self.source_error(e))?;
        drop(seed);
        // Every node, the other workers' included: none of them is a stranger.
        let known: Vec<NodeAddr> = all.iter().flat_map(|s| s.nodes.clone()).collect();
        let primaries = all.len();
        let topology = all.clone();
        let shards = share::take_share(all, self.share, &state.shards)?;
        let listed: Vec<String> = shards
            .iter()
            .map(|s| format!("{} at {}", s.slots_text(), s.primary))
            .collect();
        let worker = match self.share {
            Some(share) => format!(
                ", worker {share} follows {} of its {primaries} primaries",
                shards.len()
            ),
            None => format!(" of {} shards", shards.len()),
        };
        self.events.line(format!(
            "source is a cluster{worker} ({}): one replication reader per primary, \
             database 0 only; each shard's stream keeps its own resume marker on the target",
            listed.join(", ")
        ));
        let saved = std::mem::take(&mut state.shards);
        let saved_moves = std::mem::take(&mut state.moved_keys);
        let resume = !saved.is_empty() && !args.flush_target;
        // A restarted worker's share is what it had applied: slots that came into it
        // while it was stopped still wait for the worker they came from.
        let share_slots: Vec<[u16; 2]> = match resume {
            true => saved.iter().flat_map(|entry| entry.slots.clone()).collect(),
            false => shards
                .iter()
                .flat_map(|shard| shard.slots.clone())
                .collect(),
        };
        state.shards = match resume {
            true => self.match_saved(&shards, saved)?,
            false => shards
                .iter()
                .map(|shard| ShardState::fresh(shard.slots.clone(), shard.primary.to_string()))
                .collect(),
        };
        if resume && !target.cluster {
            self.resume_shards_from_target(&mut client, &mut state.shards)
                .await?;
        }
        state.replid = None;
        state.offset = 0;
        state.db = 0;

        // The target is emptied here, once: a shard's full sync must keep the others' keys.
        // A target ferry owns without a position to resume from (cutover's reverse run)
        // is replaced whole, as a standalone source's full sync replaces it.
        let pipe = self.target_pipe(client, &target).await?;
        if resume {
            self.read_held_markers(&pipe).await?;
        }
        // Workers never empty it: each would delete what the others wrote.
        let workers = self.share.is_some();
        if args.flush_target || (owned && !resume && !args.allow_non_empty && !workers) {
            let mut batch = Batch::default();
            batch.push(&["FLUSHALL"]);
            pipe.send(batch).await.map_err(|e| self.target_error(e))?;
            pipe.barrier().await.map_err(|e| self.target_error(e))?;
            self.events
                .line("emptied the target (FLUSHALL), once before any shard starts");
        }
        drop(pipe);

        let entries = state.shards.clone();
        let own_nodes: Vec<NodeAddr> = shards.iter().flat_map(|s| s.nodes.clone()).collect();
        let peers = self.share.map(|share| {
            Arc::new(Peers::new(
                Arc::new(ShareSlots::new(&share_slots)),
                share.to_string(),
                &topology,
                own_nodes.clone(),
                self.source_url.clone(),
                self.connect_timeout,
                self.events.clone(),
            ))
        });
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
            failovers: shards.iter().map(|_| AtomicU64::new(0)).collect(),
            promoted: Mutex::new(vec![None; shards.len()]),
            peers,
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
            // Each shard spools into a folder of its own, named by its slots (what
            // identifies a shard across restarts).
            job.spool = self
                .spool
                .clone()
                .map(|spool| super::spooled::SpoolSettings {
                    dir: spool
                        .dir
                        .join(format!("shard-{}", shard.slots_text().replace(',', "_"))),
                    ..spool
                });
            job.shard = Some(Arc::new(ShardContext {
                index,
                slots: shard.slots.clone(),
                board: board.clone(),
                // A shard whose full sync never began has no keys on the target yet.
                loaded: AtomicBool::new(resume && entry.may_hold_keys()),
                known: Mutex::new(known.clone()),
                restoring: Arc::default(),
                imports: Arc::default(),
                entering: Arc::default(),
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
            shard_state.loading = entry.loading;
            shard_state.load_begun = entry.load_begun;
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
        Ok(self.open_pipe(client, target).await?.0)
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
                &super::session::Settled {
                    args,
                    source: source_info,
                    target,
                    pipe: &pipe,
                },
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
