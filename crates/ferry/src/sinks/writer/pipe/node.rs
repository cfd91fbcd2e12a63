//! One pipelined connection: the producers' handle ([`NodePipe`]) and the state it shares
//! with the two tasks that own the socket, the writer ([`super::write`]) and the reply
//! reader ([`super::reply`]). Two tasks, so that writing never waits for replies: the
//! target sees a full pipeline while the replies of earlier batches are still coming.

use super::batch::{Batch, Mark};
use super::error::PipeError;
use super::{reply, write};
use crate::server::client::{ClientWriter, ReplyReader};
use crate::sinks::writer::redirect::Redirect;
use bytes::Bytes;
use ferry_repl::AckHandle;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// Batches queued between producers and the writer task.
const QUEUED_BATCHES: usize = 64;
/// Batches written and waiting for their replies.
const IN_FLIGHT_BATCHES: usize = 4096;

/// Counters the progress lines read.
#[derive(Debug, Default)]
pub struct PipeCounters {
    /// Replies received (commands acknowledged by the target).
    pub replies: AtomicU64,
    /// Bytes of commands acknowledged.
    pub bytes: AtomicU64,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) failure: Mutex<Option<PipeError>>,
    pub(super) applied: Mutex<Option<Mark>>,
    pub(super) counters: Arc<PipeCounters>,
    /// The source connection's ACK handle; replaced on every reconnect.
    pub(super) ack: Mutex<Option<AckHandle>>,
    /// Follows `MOVED`/`ASK` replies (a cluster node's pipe); without it they are fatal.
    pub(super) redirect: Option<Arc<dyn Redirect>>,
    /// Wakes the writer task when the pipe fails, so that it stops waiting on a socket
    /// the target no longer reads (and drops the barriers queued behind it).
    pub(super) failed: tokio::sync::Notify,
    /// How long the target may owe replies and send nothing, or take none of the bytes
    /// written to it, before it counts as gone (`--target-reply-timeout`).
    pub(super) stall_timeout: Duration,
}

impl Shared {
    /// Stops the pipe with `error`, unless it has failed already: the first failure is
    /// the one to report.
    pub(super) fn fail(&self, error: PipeError) {
        if let Ok(mut slot) = self.failure.lock() {
            slot.get_or_insert(error);
        }
        // Kept as a permit when the writer is not waiting yet.
        self.failed.notify_one();
    }

    pub(super) fn failure(&self) -> Option<PipeError> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// The failure already recorded, or [`PipeError::Stopped`].
    pub(super) fn stopped(&self) -> PipeError {
        self.failure().unwrap_or(PipeError::Stopped)
    }
}

pub(super) enum Op {
    Batch {
        replies: u32,
        framing: u32,
        payload: Bytes,
        mark: Option<Mark>,
        permit: OwnedSemaphorePermit,
    },
    /// Resolves once everything queued before it is acknowledged.
    Barrier(oneshot::Sender<()>),
}

pub(super) struct InFlight {
    pub(super) replies: u32,
    pub(super) framing: u32,
    /// Kept (and counted in the budget) until the replies are in, for messages.
    pub(super) payload: Bytes,
    pub(super) mark: Option<Mark>,
    pub(super) _permit: Option<OwnedSemaphorePermit>,
    pub(super) done: Option<oneshot::Sender<()>>,
}

/// The producers' handle on one connection. Clone it freely.
#[derive(Clone)]
pub struct NodePipe {
    tx: mpsc::Sender<Op>,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    shared: Arc<Shared>,
}

impl NodePipe {
    /// Takes over the connection. `budget_bytes` bounds the bytes sent and not yet
    /// acknowledged; acknowledged replies are counted into `counters`.
    pub fn start(
        reader: ReplyReader,
        writer: ClientWriter,
        budget_bytes: usize,
        counters: Arc<PipeCounters>,
        redirect: Option<Arc<dyn Redirect>>,
    ) -> NodePipe {
        let budget_bytes = budget_bytes.clamp(64 * 1024, Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            failure: Mutex::new(None),
            applied: Mutex::new(None),
            counters,
            ack: Mutex::new(None),
            redirect,
            failed: tokio::sync::Notify::new(),
            stall_timeout: reader.stall_timeout(),
        });
        let (tx, rx) = mpsc::channel(QUEUED_BATCHES);
        let (flight_tx, flight_rx) = mpsc::channel(IN_FLIGHT_BATCHES);
        tokio::spawn(write::write_task(rx, writer, flight_tx, shared.clone()));
        tokio::spawn(reply::reply_task(reader, flight_rx, shared.clone()));
        NodePipe {
            tx,
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
            shared,
        }
    }

    /// From now on every applied mark is also reported to `ack` (the source connection's).
    pub fn report_to(&self, ack: AckHandle) {
        if let Ok(mut slot) = self.shared.ack.lock() {
            *slot = Some(ack);
        }
    }

    /// Queues a batch, waiting while the budget is used up.
    pub async fn send(&self, batch: Batch) -> Result<(), PipeError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.check()?;
        // A batch larger than the whole budget waits for the pipe to drain, then goes alone.
        let cost = batch.payload.len().min(self.budget_bytes) as u32;
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(cost)
            .await
            .map_err(|_| self.stopped())?;
        let op = Op::Batch {
            replies: batch.replies,
            framing: batch.framing,
            payload: batch.payload.freeze(),
            mark: batch.mark,
            permit,
        };
        self.tx.send(op).await.map_err(|_| self.stopped())
    }

    /// Waits until everything sent so far is acknowledged.
    pub async fn barrier(&self) -> Result<(), PipeError> {
        self.check()?;
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Op::Barrier(done))
            .await
            .map_err(|_| self.stopped())?;
        wait.await.map_err(|_| self.stopped())
    }

    /// The last mark whose batch and everything before it are acknowledged.
    pub fn applied(&self) -> Option<Mark> {
        self.shared.applied.lock().ok().and_then(|m| *m)
    }

    pub fn counters(&self) -> Arc<PipeCounters> {
        self.shared.counters.clone()
    }

    /// The error that stopped the pipe, if any.
    pub fn failure(&self) -> Option<PipeError> {
        self.shared.failure()
    }

    fn check(&self) -> Result<(), PipeError> {
        match self.failure() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// Why the tasks are gone: their failure, if they recorded one.
    fn stopped(&self) -> PipeError {
        self.shared.stopped()
    }
}
