//! Deep pipelining to the target with bounded memory.
//!
//! ```text
//! producers ──(Batch, byte budget)──▶ writer task ──socket──▶ target
//!                                          │ (in flight, bounded)
//!                                          ▼
//!                                     reply task ◀──replies── target
//!                                          └─▶ applied mark, budget released
//! ```
//!
//! Producers send [`Batch`]es: encoded commands plus what each reply is about. A batch
//! takes its size from a byte budget before it is queued and gives it back once all its
//! replies are in, so the bytes sent but not yet acknowledged never exceed the budget. Any
//! error reply is fatal: the pipe stops and every later call returns that error. A batch's
//! [`Mark`] (a replication offset and the stream's database) counts as applied when the
//! replies of that batch and of everything before it have come back.
//!
//! This module is the [`Pipe`] the sinks write to, over one connection or a cluster's
//! primaries. The rest, one job per file: `batch` (what producers send), `node` (one
//! connection's handle and the state its tasks share), `write` and `reply` (the two
//! tasks), `error` (why a pipe stopped), `refusal` (which command an error reply refused,
//! and how commands and keys look in messages).

mod batch;
mod error;
mod node;
mod refusal;
mod reply;
mod write;

pub use batch::{Batch, Mark};
pub use error::PipeError;
pub use node::{NodePipe, PipeCounters};
pub use refusal::{describe_command, show_key};

use super::cluster::ClusterPipe;
use crate::server::client::{ClientWriter, ReplyReader};
use ferry_repl::AckHandle;
use std::sync::Arc;

/// Where the target's commands go: one connection, or one per primary of a cluster
/// target ([`ClusterPipe`]). Clone it freely.
#[derive(Clone)]
pub struct Pipe(Route);

#[derive(Clone)]
enum Route {
    Single(NodePipe),
    Cluster(Arc<ClusterPipe>),
}

impl Pipe {
    /// One connection, taken over. `budget_bytes` bounds the bytes sent and not yet
    /// acknowledged.
    pub fn start(reader: ReplyReader, writer: ClientWriter, budget_bytes: usize) -> Pipe {
        let counters = Arc::new(PipeCounters::default());
        Pipe(Route::Single(NodePipe::start(
            reader,
            writer,
            budget_bytes,
            counters,
            None,
        )))
    }

    /// A cluster target, routed by slot.
    pub fn cluster(pipe: Arc<ClusterPipe>) -> Pipe {
        Pipe(Route::Cluster(pipe))
    }

    /// From now on every applied mark is also reported to `ack` (the source connection's).
    pub fn report_to(&self, ack: AckHandle) {
        match &self.0 {
            Route::Single(pipe) => pipe.report_to(ack),
            Route::Cluster(pipe) => pipe.report_to(ack),
        }
    }

    /// Queues a batch, waiting while the budget is used up.
    pub async fn send(&self, batch: Batch) -> Result<(), PipeError> {
        match &self.0 {
            Route::Single(pipe) => pipe.send(batch).await,
            Route::Cluster(pipe) => pipe.send(batch).await,
        }
    }

    /// [`Pipe::send`] from a blocking thread (the snapshot decoder's).
    pub fn send_blocking(&self, batch: Batch) -> Result<(), PipeError> {
        tokio::runtime::Handle::current().block_on(self.send(batch))
    }

    /// Waits until everything sent so far is acknowledged.
    pub async fn barrier(&self) -> Result<(), PipeError> {
        match &self.0 {
            Route::Single(pipe) => pipe.barrier().await,
            Route::Cluster(pipe) => pipe.barrier().await,
        }
    }

    /// The last mark whose batch and everything before it are acknowledged.
    pub fn applied(&self) -> Option<Mark> {
        match &self.0 {
            Route::Single(pipe) => pipe.applied(),
            Route::Cluster(pipe) => pipe.applied(),
        }
    }

    pub fn counters(&self) -> Arc<PipeCounters> {
        match &self.0 {
            Route::Single(pipe) => pipe.counters(),
            Route::Cluster(pipe) => pipe.counters(),
        }
    }

    /// The error that stopped the pipe, if any.
    pub fn failure(&self) -> Option<PipeError> {
        match &self.0 {
            Route::Single(pipe) => pipe.failure(),
            Route::Cluster(pipe) => pipe.failure(),
        }
    }

    /// Source transactions over several cluster slots, run as one transaction per slot
    /// (0 for a single target).
    pub fn split_transactions(&self) -> u64 {
        match &self.0 {
            Route::Single(_) => 0,
            Route::Cluster(pipe) => pipe.split_transactions(),
        }
    }

    /// Commands a cluster target redirected (`MOVED`/`ASK`) and ferry sent again.
    pub fn redirects(&self) -> u64 {
        match &self.0 {
            Route::Single(_) => 0,
            Route::Cluster(pipe) => pipe.redirects(),
        }
    }

    /// `host:port` of the primaries a cluster target gained while ferry wrote (named by
    /// a redirect, connected to then).
    pub fn joined_primaries(&self) -> Vec<String> {
        match &self.0 {
            Route::Single(_) => Vec::new(),
            Route::Cluster(pipe) => pipe.joined(),
        }
    }

    /// Whether commands are routed over a cluster's primaries.
    pub fn is_cluster(&self) -> bool {
        matches!(self.0, Route::Cluster(_))
    }

    /// The cluster writer, for what only a cluster target has (its per-slot markers).
    pub fn as_cluster(&self) -> Option<&Arc<ClusterPipe>> {
        match &self.0 {
            Route::Single(_) => None,
            Route::Cluster(pipe) => Some(pipe),
        }
    }
}
