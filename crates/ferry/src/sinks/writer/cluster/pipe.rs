//! One pipelined connection per primary of a cluster target, fed by a [`Splitter`].
//!
//! Every batch's mark goes to every primary (with that primary's share of the batch, or
//! alone), so a mark counts as applied once the slowest primary has acknowledged it:
//! [`ClusterPipe::applied`] is the smallest mark over the primaries.
//!
//! The slot map is read once, at the start. A `MOVED` or `ASK` reply (the target's slots
//! moved while ferry writes) stops the pipe with the target's message; following it is not
//! done yet.

use super::split::Splitter;
use super::topology::{discover, SlotMap};
use crate::sinks::writer::client::{Client, ClientError};
use crate::sinks::writer::pipe::{Batch, Mark, NodePipe, PipeCounters, PipeError};
use crate::url::ServerUrl;
use ferry_repl::AckHandle;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often the source hears the offset all primaries have applied.
const ACK_INTERVAL: Duration = Duration::from_millis(100);

pub struct ClusterPipe {
    nodes: Vec<NodePipe>,
    splitter: tokio::sync::Mutex<Splitter>,
    counters: Arc<PipeCounters>,
    failure: Mutex<Option<String>>,
    ack: Mutex<Option<AckHandle>>,
    /// The splitter's count, readable without its lock.
    split_transactions: AtomicU64,
}

impl ClusterPipe {
    /// Reads the slot map through `seed` (a connection to any node of the cluster at
    /// `url`) and connects to each primary with `url`'s credentials and TLS.
    /// `budget_bytes` is shared out among the primaries.
    pub async fn connect(
        url: &ServerUrl,
        seed: &mut Client,
        connect_timeout: Duration,
        budget_bytes: usize,
    ) -> Result<Arc<ClusterPipe>, ClientError> {
        let map = discover(seed, &url.host).await?;
        Self::start(url, map, connect_timeout, budget_bytes).await
    }

    async fn start(
        url: &ServerUrl,
        map: SlotMap,
        connect_timeout: Duration,
        budget_bytes: usize,
    ) -> Result<Arc<ClusterPipe>, ClientError> {
        if let Some(slot) = map.first_unserved() {
            return Err(ClientError::Command {
                command: "CLUSTER SLOTS".into(),
                message: format!("slot {slot} is served by no primary: the cluster is not ready"),
            });
        }
        let counters = Arc::new(PipeCounters::default());
        let share = budget_bytes / map.nodes.len().max(1);
        let mut nodes = Vec::with_capacity(map.nodes.len());
        for node in &map.nodes {
            let mut node_url = url.clone();
            node_url.host = node.host.clone();
            node_url.port = node.port;
            let client = Client::connect(&node_url, connect_timeout).await?;
            let (reader, writer) = client.into_split();
            nodes.push(NodePipe::start(reader, writer, share, counters.clone()));
        }
        let pipe = Arc::new(ClusterPipe {
            nodes,
            splitter: tokio::sync::Mutex::new(Splitter::new(map)),
            counters,
            failure: Mutex::new(None),
            ack: Mutex::new(None),
            split_transactions: AtomicU64::new(0),
        });
        tokio::spawn(report_applied(Arc::downgrade(&pipe)));
        Ok(pipe)
    }

    /// The primaries written to.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    pub fn report_to(&self, ack: AckHandle) {
        if let Ok(mut slot) = self.ack.lock() {
            *slot = Some(ack);
        }
    }

    pub async fn send(&self, batch: Batch) -> Result<(), PipeError> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Some(message) = self.failure() {
            return Err(PipeError(message));
        }
        let mut splitter = self.splitter.lock().await;
        let parts = match splitter.split(&batch.payload) {
            Ok(parts) => parts,
            Err(message) => {
                if let Ok(mut slot) = self.failure.lock() {
                    slot.get_or_insert(message.clone());
                }
                return Err(PipeError(message));
            }
        };
        self.split_transactions
            .store(splitter.split_transactions, Ordering::Relaxed);
        for (node, mut part) in self.nodes.iter().zip(parts) {
            part.mark = batch.mark;
            node.send(part).await?;
        }
        Ok(())
    }

    pub async fn barrier(&self) -> Result<(), PipeError> {
        for node in &self.nodes {
            node.barrier().await?;
        }
        Ok(())
    }

    /// The smallest mark the primaries have applied: every primary got every mark.
    pub fn applied(&self) -> Option<Mark> {
        let mut lowest: Option<Mark> = None;
        for node in &self.nodes {
            let mark = node.applied()?;
            if lowest.is_none_or(|low| mark.offset < low.offset) {
                lowest = Some(mark);
            }
        }
        lowest
    }

    /// Source transactions over several slots, run as one transaction per slot.
    pub fn split_transactions(&self) -> u64 {
        self.split_transactions.load(Ordering::Relaxed)
    }

    pub fn counters(&self) -> Arc<PipeCounters> {
        self.counters.clone()
    }

    pub fn failure(&self) -> Option<String> {
        if let Some(own) = self.failure.lock().ok().and_then(|f| f.clone()) {
            return Some(own);
        }
        self.nodes.iter().find_map(NodePipe::failure)
    }
}

/// Tells the source what every primary has applied, until the pipe is dropped.
async fn report_applied(pipe: Weak<ClusterPipe>) {
    let mut tick = tokio::time::interval(ACK_INTERVAL);
    loop {
        tick.tick().await;
        let Some(pipe) = pipe.upgrade() else {
            return;
        };
        let ack = pipe.ack.lock().ok().and_then(|a| a.clone());
        if let (Some(ack), Some(mark)) = (ack, pipe.applied()) {
            ack.set_applied(mark.offset);
        }
    }
}
