//! One pipelined connection per primary of a cluster target, fed by a [`Splitter`].
//!
//! Every batch's mark goes to every primary (with that primary's share of the batch, or
//! alone), so a mark counts as applied once the slowest primary has acknowledged it:
//! [`ClusterPipe::applied`] is the smallest mark over the primaries.
//!
//! The slot map is read at the start and then follows the target's own redirects. A
//! command a node answers with `MOVED` or `ASK` (its slot moved, or is moving, while
//! ferry writes) is sent again to the node the reply names (after `ASKING` for `ASK`), in
//! the order the first node refused them; that node's batch counts as applied only once
//! they are. A node ferry has no connection to yet (a primary added to the cluster, or a
//! replica promoted by `CLUSTER FAILOVER`) is connected to then, with the target URL's
//! credentials and TLS. A transaction with a command redirected by `MOVED` (the node
//! aborts it) runs again whole on the new node; by `ASK` (its slot half moved) command by
//! command there.
//!
//! A `MOVED` also changes the slot map, but only at the next batch, and only once
//! everything sent before is applied: a later command on a key then never overtakes an
//! earlier one still on its way round through the old node.

use super::split::{Splitter, StreamMarkers};
use crate::server::client::{Client, ClientError};
use crate::server::cluster::topology::{discover, Node};
use crate::sinks::writer::pipe::{
    describe_command, Batch, Mark, NodePipe, PipeCounters, PipeError,
};
use crate::sinks::writer::redirect::{Redirect, RedirectError, Redirected};
use crate::state::slot_markers::{self as markers, AllApplied};
use crate::url::ServerUrl;
use ferry_repl::AckHandle;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often the source hears the offset all primaries have applied.
const ACK_INTERVAL: Duration = Duration::from_millis(100);

pub struct ClusterPipe {
    /// The primaries written to; only ever appended to, so an index stays its node's.
    primaries: Mutex<Primaries>,
    /// How to reach a primary ferry learns of from a redirect.
    dial: Dial,
    /// Serialises connecting to new primaries (two nodes may name the same one at once).
    connecting: tokio::sync::Mutex<()>,
    /// `(slot, node index)` of each `MOVED` not yet in the splitter's slot map.
    moved: Mutex<Vec<(u16, usize)>>,
    /// The mark of the last batch handed out: a primary connected later starts from it.
    last_mark: Mutex<Option<Mark>>,
    /// Commands sent again after a `MOVED` or `ASK`.
    redirects: AtomicU64,
    splitter: tokio::sync::Mutex<Splitter>,
    counters: Arc<PipeCounters>,
    /// The splitter's refusal, which stops every primary's share of the stream.
    failure: Mutex<Option<PipeError>>,
    ack: Mutex<Option<AckHandle>>,
    /// The splitter's count, readable without its lock.
    split_transactions: AtomicU64,
    /// The splitter's count of commands its markers showed the target held.
    already_held: AtomicU64,
}

#[derive(Default)]
struct Primaries {
    pipes: Vec<NodePipe>,
    /// `host:port` of each node, as `MOVED`/`ASK` name them.
    addresses: Vec<String>,
    /// How many primaries the slot map listed at the start: the rest joined later.
    at_start: usize,
}

struct Dial {
    url: ServerUrl,
    connect_timeout: Duration,
    /// The seed connection's wait for owed replies, for every primary's pipe.
    stall_timeout: Duration,
    /// Each primary's share of the in-flight byte budget.
    share: usize,
    follower: Arc<Follower>,
}

impl ClusterPipe {
    /// Reads the slot map through `seed` (a connection to any node of the cluster at
    /// `url`) and connects to each primary with `url`'s credentials and TLS.
    /// `budget_bytes` is shared out among the primaries. `databases` is the cluster's
    /// `cluster-databases` (1: database 0 only).
    pub async fn connect(
        url: &ServerUrl,
        seed: &mut Client,
        connect_timeout: Duration,
        budget_bytes: usize,
        databases: u64,
    ) -> Result<Arc<ClusterPipe>, ClientError> {
        let map = discover(seed, &url.host).await?;
        Self::start(
            url,
            Splitter::new(map, databases),
            (connect_timeout, seed.stall_timeout()),
            budget_bytes,
        )
        .await
    }

    async fn start(
        url: &ServerUrl,
        splitter: Splitter,
        (connect_timeout, stall_timeout): (Duration, Duration),
        budget_bytes: usize,
    ) -> Result<Arc<ClusterPipe>, ClientError> {
        let map = splitter.map();
        if let Some(slot) = map.first_unserved() {
            return Err(ClientError::Command {
                command: "CLUSTER SLOTS".into(),
                message: format!("slot {slot} is served by no primary: the cluster is not ready"),
            });
        }
        let counters = Arc::new(PipeCounters::default());
        let dial = Dial {
            url: url.clone(),
            connect_timeout,
            stall_timeout,
            share: budget_bytes / map.nodes.len().max(1),
            follower: Arc::new(Follower::default()),
        };
        let mut primaries = Primaries::default();
        for node in &map.nodes {
            primaries.pipes.push(dial.open(node, &counters).await?);
            primaries.addresses.push(address_of(node));
        }
        primaries.at_start = map.nodes.len();
        let follower = dial.follower.clone();
        let pipe = Arc::new(ClusterPipe {
            primaries: Mutex::new(primaries),
            dial,
            connecting: tokio::sync::Mutex::new(()),
            moved: Mutex::new(Vec::new()),
            last_mark: Mutex::new(None),
            redirects: AtomicU64::new(0),
            splitter: tokio::sync::Mutex::new(splitter),
            counters,
            failure: Mutex::new(None),
            ack: Mutex::new(None),
            split_transactions: AtomicU64::new(0),
            already_held: AtomicU64::new(0),
        });
        if let Ok(mut slot) = follower.pipe.lock() {
            *slot = Arc::downgrade(&pipe);
        }
        tokio::spawn(report_applied(Arc::downgrade(&pipe)));
        Ok(pipe)
    }

    /// The primaries written to.
    pub fn nodes(&self) -> usize {
        self.pipes().len()
    }

    /// `host:port` of the primaries connected to after the start, in order.
    pub fn joined(&self) -> Vec<String> {
        self.primaries
            .lock()
            .map(|p| p.addresses[p.at_start..].to_vec())
            .unwrap_or_default()
    }

    fn pipes(&self) -> Vec<NodePipe> {
        self.primaries
            .lock()
            .map(|p| p.pipes.clone())
            .unwrap_or_default()
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
        if let Some(failure) = self.failure() {
            return Err(failure);
        }
        let mut splitter = self.splitter.lock().await;
        let pipes = self.catch_up(&mut splitter).await?;
        let parts = match splitter.split(batch.payload, batch.mark) {
            Ok(parts) => parts,
            Err(refused) => {
                let failure = PipeError::from(refused);
                if let Ok(mut slot) = self.failure.lock() {
                    slot.get_or_insert(failure.clone());
                }
                return Err(failure);
            }
        };
        self.split_transactions
            .store(splitter.split_transactions, Ordering::Relaxed);
        self.already_held
            .store(splitter.already_held, Ordering::Relaxed);
        if batch.mark.is_some() {
            if let Ok(mut last) = self.last_mark.lock() {
                *last = batch.mark;
            }
        }
        for (index, (node, mut part)) in pipes.iter().zip(parts).enumerate() {
            part.mark = batch.mark;
            node.send(part)
                .await
                .map_err(|error| self.naming(index, error))?;
        }
        Ok(())
    }

    /// `error` of primary `index`'s pipe, saying which primary, as [`Self::failure`]
    /// does: whichever of the two reports a failure first, the operator reads the same.
    fn naming(&self, index: usize, error: PipeError) -> PipeError {
        if matches!(error, PipeError::Primary { .. }) {
            return error;
        }
        match self
            .primaries
            .lock()
            .ok()
            .and_then(|p| p.addresses.get(index).cloned())
        {
            Some(address) => PipeError::Primary {
                address,
                source: Box::new(error),
            },
            None => error,
        }
    }

    /// Brings the splitter's slot map up to date: the primaries connected to since, and
    /// the slots `MOVED` replies said are elsewhere now (once all sent before is applied).
    /// Returns the primaries, one per node of the map.
    async fn catch_up(&self, splitter: &mut Splitter) -> Result<Vec<NodePipe>, PipeError> {
        // Taken before the node list: a node a `MOVED` names is listed before it is queued.
        let moved = self
            .moved
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default();
        // Only the addresses the map lacks are copied out: none, but after a node joined.
        let (pipes, joined) = self
            .primaries
            .lock()
            .map(|p| {
                let new = p.addresses.get(splitter.nodes()..).unwrap_or_default();
                (p.pipes.clone(), new.to_vec())
            })
            .unwrap_or_default();
        for address in &joined {
            splitter
                .map_mut()
                .add_node(node_at_address(address, &self.dial.url.host));
        }
        if !moved.is_empty() {
            for (index, pipe) in pipes.iter().enumerate() {
                pipe.barrier()
                    .await
                    .map_err(|error| self.naming(index, error))?;
            }
            for (slot, node) in moved {
                splitter.map_mut().assign(slot, node);
            }
        }
        Ok(pipes)
    }

    pub async fn barrier(&self) -> Result<(), PipeError> {
        for (index, node) in self.pipes().iter().enumerate() {
            node.barrier()
                .await
                .map_err(|error| self.naming(index, error))?;
        }
        Ok(())
    }

    /// The smallest mark the primaries have applied: every primary got every mark.
    pub fn applied(&self) -> Option<Mark> {
        let mut lowest: Option<Mark> = None;
        for node in self.pipes() {
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
    async fn follow(&self, commands: Vec<Redirected>) -> Result<(), PipeError> {
        // One batch per node named, in the order the nodes were first named.
        let mut batches: Vec<(usize, NodePipe, Batch)> = Vec::new();
        let mut count = 0;
        for redirected in &commands {
            let (index, node) = self.node_for(&redirected.address).await.map_err(|e| {
                RedirectError::Unreachable {
                    command: describe_command(
                        redirected.commands.first().map_or(&[][..], |c| &c[..]),
                    ),
                    address: redirected.address.clone(),
                    source: Arc::new(e),
                }
            })?;
            if !redirected.ask {
                if let Ok(mut moved) = self.moved.lock() {
                    moved.push((redirected.slot, index));
                }
            }
            let at = match batches.iter().position(|(known, _, _)| *known == index) {
                Some(at) => at,
                None => {
                    batches.push((index, node, Batch::default()));
                    batches.len() - 1
                }
            };
            count += redirected.push_into(&mut batches[at].2);
        }
        self.redirects.fetch_add(count, Ordering::Relaxed);
        let mut touched = Vec::with_capacity(batches.len());
        for (_, node, batch) in batches {
            node.send(batch).await?;
            touched.push(node);
        }
        for node in touched {
            node.barrier().await?;
        }
        Ok(())
    }

    /// The node at `address` (as a redirect names it), connected to now if it is new.
    async fn node_for(&self, address: &str) -> Result<(usize, NodePipe), ClientError> {
        if let Some(found) = self.known(address) {
            return Ok(found);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(found) = self.known(address) {
            return Ok(found);
        }
        let node = node_at_address(address, &self.dial.url.host);
        let pipe = self.dial.open(&node, &self.counters).await?;
        // It holds nothing of the batches handed out so far but commands redirected to
        // it, which count with their first node's batch: it has applied up to there.
        let last_mark = self.last_mark.lock().ok().and_then(|m| *m);
        if let Some(mark) = last_mark {
            let start = Batch {
                mark: Some(mark),
                ..Batch::default()
            };
            pipe.send(start)
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
        }
        let mut primaries = self
            .primaries
            .lock()
            .map_err(|_| ClientError::Protocol("internal: the node list is poisoned".into()))?;
        primaries.pipes.push(pipe.clone());
        primaries.addresses.push(address_of(&node));
        Ok((primaries.pipes.len() - 1, pipe))
    }

    fn known(&self, address: &str) -> Option<(usize, NodePipe)> {
        let primaries = self.primaries.lock().ok()?;
        let index = node_index(&primaries.addresses, address)?;
        Some((index, primaries.pipes.get(index)?.clone()))
    }

    /// Every stream's per-slot markers on the target ([`markers`]), read from each
    /// primary now.
    pub async fn read_markers(&self) -> Result<AllApplied, ClientError> {
        let map = self.splitter.lock().await.map().clone();
        markers::read_all(&self.dial.url, &map, self.dial.connect_timeout).await
    }

    /// Batches with a mark write `stream`'s markers in each slot from now on, leaving out
    /// what `held` says the target holds ([`Splitter::write_markers`]); `None` stops it.
    pub async fn write_markers(&self, markers: Option<StreamMarkers>) {
        self.splitter.lock().await.write_markers(markers);
    }

    /// Commands of a replay left out because the target held them (by their markers).
    pub fn already_held(&self) -> u64 {
        self.already_held.load(Ordering::Relaxed)
    }

    /// Source transactions over several slots, run as one transaction per slot.
    pub fn split_transactions(&self) -> u64 {
        self.split_transactions.load(Ordering::Relaxed)
    }

    pub fn counters(&self) -> Arc<PipeCounters> {
        self.counters.clone()
    }

    pub fn failure(&self) -> Option<PipeError> {
        if let Some(own) = self.failure.lock().ok().and_then(|f| f.clone()) {
            return Some(own);
        }
        // Which primary failed matters to whoever has to look at the cluster.
        let primaries = self.primaries.lock().ok()?;
        primaries
            .pipes
            .iter()
            .zip(&primaries.addresses)
            .find_map(|(pipe, address)| {
                Some(PipeError::Primary {
                    address: address.clone(),
                    source: Box::new(pipe.failure()?),
                })
            })
    }
}

impl Dial {
    /// A pipe to `node`, with the target URL's credentials and TLS.
    async fn open(
        &self,
        node: &Node,
        counters: &Arc<PipeCounters>,
    ) -> Result<NodePipe, ClientError> {
        let mut url = self.url.clone();
        url.host = node.host.clone();
        url.port = node.port;
        let mut client = Client::connect(&url, self.connect_timeout).await?;
        client.set_stall_timeout(self.stall_timeout);
        let (reader, writer) = client.into_split();
        let redirect: Arc<dyn Redirect> = self.follower.clone();
        Ok(NodePipe::start(
            reader,
            writer,
            self.share,
            counters.clone(),
            Some(redirect),
        ))
    }
}

fn address_of(node: &Node) -> String {
    format!("{}:{}", node.host, node.port)
}

/// The node a redirect's `host:port` names; an empty host (a node announcing no IP) is
/// the target URL's.
fn node_at_address(address: &str, url_host: &str) -> Node {
    let (host, port) = address.rsplit_once(':').unwrap_or((address, ""));
    Node {
        host: match host {
            "" | "?" => url_host.to_owned(),
            host => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        },
        port: port.parse().unwrap_or(0),
        id: None,
    }
}

/// The index of the node `address` names among `addresses`.
fn node_index(addresses: &[String], address: &str) -> Option<usize> {
    if let Some(index) = addresses.iter().position(|a| a == address) {
        return Some(index);
    }
    // A node announcing no IP is named ":port".
    let port = address.strip_prefix(':')?;
    addresses
        .iter()
        .position(|a| a.rsplit(':').next() == Some(port))
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
    ) -> Pin<Box<dyn Future<Output = Result<(), PipeError>> + Send + '_>> {
        let pipe = self.pipe.lock().ok().and_then(|p| p.upgrade());
        Box::pin(async move {
            match pipe {
                Some(pipe) => pipe.follow(commands).await,
                None => Err(PipeError::Stopped),
            }
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_addresses_name_nodes() {
        let node = node_at_address("10.0.0.7:7001", "seed");
        assert_eq!((node.host.as_str(), node.port), ("10.0.0.7", 7001));
        // A node announcing no IP: the host ferry was given.
        let node = node_at_address(":7002", "seed");
        assert_eq!((node.host.as_str(), node.port), ("seed", 7002));
        let node = node_at_address("::1:7003", "seed");
        assert_eq!((node.host.as_str(), node.port), ("::1", 7003));
    }

    #[test]
    fn known_nodes_are_found_by_address_or_bare_port() {
        let known = ["10.0.0.1:7000".to_string(), "seed:7001".to_string()];
        assert_eq!(node_index(&known, "10.0.0.1:7000"), Some(0));
        assert_eq!(node_index(&known, ":7001"), Some(1));
        assert_eq!(node_index(&known, "10.0.0.1:7001"), None);
        assert_eq!(node_index(&known, ":7009"), None);
    }
}
