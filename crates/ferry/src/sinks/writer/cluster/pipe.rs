//! One pipelined connection per primary of a cluster target, fed by a [`Splitter`].
//!
//! Every batch's mark goes to every primary (with that primary's share of the batch, or
//! alone), so a mark counts as applied once the slowest primary has acknowledged it:
//! [`ClusterPipe::applied`] is the smallest mark over the primaries.
//!
//! The slot map is read once, at the start. A command a node answers with `MOVED` or
//! `ASK` (its slot moved, or is moving, while ferry writes) is sent again to the node the
//! reply names (after `ASKING` for `ASK`), in the order the first node refused them; that
//! node's batch counts as applied only once they are. The map is not changed meanwhile:
//! every later command for that slot still goes to the first node and is redirected in
//! turn, which keeps the commands on a key in order (at the cost of a second round trip).
//! A transaction with a command redirected by `MOVED` (the node aborts it) runs again
//! whole on the new node; by `ASK` (its slot half moved) command by command there.
//! A redirect to a node ferry has no connection to stops ferry.

use super::split::Splitter;
use super::topology::{discover, SlotMap};
use crate::sinks::writer::client::{Client, ClientError};
use crate::sinks::writer::pipe::{Batch, Mark, NodePipe, PipeCounters, PipeError};
use crate::sinks::writer::redirect::{Redirect, Redirected};
use crate::url::ServerUrl;
use bytes::Bytes;
use ferry_repl::AckHandle;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often the source hears the offset all primaries have applied.
const ACK_INTERVAL: Duration = Duration::from_millis(100);

pub struct ClusterPipe {
    nodes: Vec<NodePipe>,
    /// `host:port` of each node, as `MOVED`/`ASK` name them.
    addresses: Vec<String>,
    /// Commands sent again after a `MOVED` or `ASK`.
    redirects: AtomicU64,
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
        let follower = Arc::new(Follower::default());
        let mut nodes = Vec::with_capacity(map.nodes.len());
        let mut addresses = Vec::with_capacity(map.nodes.len());
        for node in &map.nodes {
            let mut node_url = url.clone();
            node_url.host = node.host.clone();
            node_url.port = node.port;
            let client = Client::connect(&node_url, connect_timeout).await?;
            let (reader, writer) = client.into_split();
            let redirect: Arc<dyn Redirect> = follower.clone();
            nodes.push(NodePipe::start(
                reader,
                writer,
                share,
                counters.clone(),
                Some(redirect),
            ));
            addresses.push(format!("{}:{}", node.host, node.port));
        }
        let pipe = Arc::new(ClusterPipe {
            nodes,
            addresses,
            redirects: AtomicU64::new(0),
            splitter: tokio::sync::Mutex::new(Splitter::new(map)),
            counters,
            failure: Mutex::new(None),
            ack: Mutex::new(None),
            split_transactions: AtomicU64::new(0),
        });
        if let Ok(mut slot) = follower.pipe.lock() {
            *slot = Arc::downgrade(&pipe);
        }
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

    /// Commands sent again to another node after a `MOVED` or `ASK`.
    pub fn redirects(&self) -> u64 {
        self.redirects.load(Ordering::Relaxed)
    }

    /// Sends `commands` where their redirects say and waits until they are applied.
    async fn follow(&self, commands: Vec<Redirected>) -> Result<(), String> {
        let mut batches: Vec<Batch> = self.nodes.iter().map(|_| Batch::default()).collect();
        let mut count = 0;
        for redirected in &commands {
            let node = self.node_at(&redirected.address).ok_or_else(|| {
                format!(
                    "the target sent {} to {}, a node ferry has no connection to (the \
                     cluster changed its primaries while ferry wrote)",
                    describe(redirected.commands.first().map_or(&[][..], |c| &c[..])),
                    redirected.address
                )
            })?;
            let batch = &mut batches[node];
            // ASKING holds for the next command only: a transaction refused with ASK (its
            // slot half moved) runs command by command there.
            let whole = redirected.transaction && !redirected.ask;
            if whole {
                batch.push(&["MULTI"]);
            }
            for command in &redirected.commands {
                if redirected.ask {
                    batch.push_framing(&["ASKING"]);
                }
                batch.push(command);
                count += 1;
            }
            if whole {
                batch.push(&["EXEC"]);
            }
        }
        self.redirects.fetch_add(count, Ordering::Relaxed);
        let mut touched = Vec::new();
        for (index, batch) in batches.into_iter().enumerate() {
            if !batch.is_empty() {
                touched.push(index);
                self.nodes[index].send(batch).await.map_err(|e| e.0)?;
            }
        }
        for index in touched {
            self.nodes[index].barrier().await.map_err(|e| e.0)?;
        }
        Ok(())
    }

    fn node_at(&self, address: &str) -> Option<usize> {
        if let Some(index) = self.addresses.iter().position(|a| a == address) {
            return Some(index);
        }
        // A node announcing no IP is named ":port".
        let port = address.strip_prefix(':')?;
        self.addresses
            .iter()
            .position(|a| a.rsplit(':').next() == Some(port))
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

/// The nodes' way back to their cluster pipe (weak: the pipe owns the nodes).
#[derive(Debug, Default)]
struct Follower {
    pipe: Mutex<Weak<ClusterPipe>>,
}

impl Redirect for Follower {
    fn follow(
        &self,
        commands: Vec<Redirected>,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        let pipe = self.pipe.lock().ok().and_then(|p| p.upgrade());
        Box::pin(async move {
            match pipe {
                Some(pipe) => pipe.follow(commands).await,
                None => Err("the connection to the target stopped".into()),
            }
        })
    }
}

/// `NAME "key"` for messages.
fn describe(args: &[Bytes]) -> String {
    let name = args
        .first()
        .map(|n| String::from_utf8_lossy(n).to_uppercase())
        .unwrap_or_default();
    match args.get(1) {
        Some(key) => format!("{name} {}", crate::sinks::writer::pipe::show_key(key)),
        None => name,
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
