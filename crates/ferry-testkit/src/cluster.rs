//! A real N-primary cluster on loopback: each node a [`Server`] started with
//! `--cluster-enabled yes`, the 16384 slots split into N even ranges with
//! `CLUSTER ADDSLOTSRANGE`, the nodes joined with `CLUSTER MEET`, ready once every node
//! reports `cluster_state:ok` and knows all the others.

use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::snapshot::Snapshot;
use crate::{Server, ServerKind};

/// Slots in a cluster.
pub const SLOTS: u16 = 16384;
/// How long the nodes may take to agree on the cluster.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// A node whose bus port was taken by someone else is started again this often.
const START_ATTEMPTS: usize = 4;

/// A running cluster of primaries (no replicas). Dropping it stops every node.
pub struct Cluster {
    kind: ServerKind,
    nodes: Vec<Server>,
    /// Each node's cluster bus port, by node index.
    bus_ports: Vec<u16>,
}

impl Cluster {
    /// Starts `primaries` nodes of `kind` and waits until the cluster is ready. Needs
    /// `CLUSTER ADDSLOTSRANGE` and `--cluster-port`: Redis 7.0 or later, any Valkey.
    pub fn start(kind: ServerKind, primaries: usize) -> Result<Cluster> {
        ensure!(
            (1..=16).contains(&primaries),
            "a test cluster has 1 to 16 primaries, not {primaries}"
        );
        let mut nodes = Vec::with_capacity(primaries);
        let mut bus_ports = Vec::with_capacity(primaries);
        for _ in 0..primaries {
            let (node, bus) = start_node(kind)?;
            nodes.push(node);
            bus_ports.push(bus);
        }
        for (node, (first, last)) in nodes.iter().zip(slot_ranges(primaries)) {
            let mut con = node.try_client()?;
            redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query::<()>(&mut con)
                .with_context(|| format!("{kind}: CLUSTER ADDSLOTSRANGE {first} {last}"))?;
        }
        let first = nodes.first().context("no node")?;
        let mut con = first.try_client()?;
        for (other, bus) in nodes.iter().zip(&bus_ports).skip(1) {
            // The bus port is not port + 10000 here: it goes with the MEET.
            redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(other.port())
                .arg(bus)
                .query::<()>(&mut con)
                .with_context(|| format!("{kind}: CLUSTER MEET {}", other.port()))?;
        }
        let cluster = Cluster {
            kind,
            nodes,
            bus_ports,
        };
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// Waits until every node says `cluster_state:ok`, knows every node and sees all slots
    /// assigned.
    pub fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut waiting_for = None;
            for node in &self.nodes {
                let info = cluster_info(node)?;
                let ok = info.get("cluster_state").map(String::as_str) == Some("ok")
                    && info.get("cluster_known_nodes") == Some(&self.nodes.len().to_string())
                    && info.get("cluster_slots_assigned") == Some(&SLOTS.to_string());
                if !ok {
                    waiting_for = Some((node.port(), info));
                    break;
                }
            }
            let Some((port, info)) = waiting_for else {
                return Ok(());
            };
            if Instant::now() > deadline {
                bail!(
                    "{} cluster not ready within {READY_TIMEOUT:?}: node {port} says {info:?}",
                    self.kind
                );
            }
            sleep(Duration::from_millis(50));
        }
    }

    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The nodes, in the order of their slot ranges.
    pub fn nodes(&self) -> &[Server] {
        &self.nodes
    }

    /// Each node's cluster bus port (for `CLUSTER MEET` of a node added later).
    pub fn bus_ports(&self) -> &[u16] {
        &self.bus_ports
    }

    /// The URL of the first node: what a cluster client is pointed at.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The slot `key` maps to, as the server computes it (`CLUSTER KEYSLOT`).
    pub fn keyslot(&self, key: &[u8]) -> Result<u16> {
        let mut con = self.nodes[0].try_client()?;
        Ok(redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut con)?)
    }

    /// A node's cluster ID (`CLUSTER MYID`).
    pub fn node_id(&self, node: usize) -> Result<String> {
        let mut con = self.nodes[node].try_client()?;
        Ok(redis::cmd("CLUSTER").arg("MYID").query(&mut con)?)
    }

    /// Moves `slot` from node `from` to node `to` as a resharding tool does, with the
    /// writes to it going on: IMPORTING/MIGRATING, MIGRATE its keys in chunks (clients
    /// meanwhile get `ASK` for keys already moved), then SETSLOT NODE on every node (then
    /// `MOVED`).
    pub fn move_slot(&self, slot: u16, from: usize, to: usize) -> Result<()> {
        let (from_id, to_id) = (self.node_id(from)?, self.node_id(to)?);
        let mut source = self.nodes[from].try_client()?;
        let mut target = self.nodes[to].try_client()?;
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("IMPORTING")
            .arg(&from_id)
            .query::<()>(&mut target)
            .context("SETSLOT IMPORTING")?;
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("MIGRATING")
            .arg(&to_id)
            .query::<()>(&mut source)
            .context("SETSLOT MIGRATING")?;
        loop {
            let keys: Vec<Vec<u8>> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(20)
                .query(&mut source)?;
            if keys.is_empty() {
                break;
            }
            redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.nodes[to].port())
                .arg("")
                .arg(0)
                .arg(10_000)
                .arg("REPLACE")
                .arg("KEYS")
                .arg(&keys)
                .query::<()>(&mut source)
                .with_context(|| format!("MIGRATE of slot {slot}"))?;
        }
        // The new owner first, then the old one, then the others (as redis-cli does).
        let mut order = vec![to, from];
        order.extend((0..self.nodes.len()).filter(|n| *n != to && *n != from));
        for node in order {
            let mut con = self.nodes[node].try_client()?;
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&to_id)
                .query::<()>(&mut con)
                .with_context(|| format!("SETSLOT {slot} NODE on node {node}"))?;
        }
        Ok(())
    }

    /// Everything the cluster holds: the union of the nodes' keys (db 0, the only one a
    /// cluster has). A key found on two nodes is an error, as are nodes whose function
    /// libraries differ (functions live on every node).
    pub fn snapshot(&self) -> Result<Snapshot> {
        let mut union: Option<Snapshot> = None;
        for node in &self.nodes {
            let part = Snapshot::capture(node)?;
            let Some(whole) = union.as_mut() else {
                union = Some(part);
                continue;
            };
            ensure!(
                whole.functions == part.functions,
                "cluster node {} holds other functions than the first node",
                node.port()
            );
            for (db, keys) in part.databases {
                let into = whole.databases.entry(db).or_default();
                for (key, entry) in keys {
                    if into.insert(key.clone(), entry).is_some() {
                        bail!(
                            "key {:?} is on two cluster nodes (one is {})",
                            String::from_utf8_lossy(&key),
                            node.port()
                        );
                    }
                }
            }
            whole.ttl_precision_ms = whole.ttl_precision_ms.max(part.ttl_precision_ms);
        }
        union.context("a cluster without nodes")
    }
}

/// `first..=last` slot ranges splitting all slots evenly over `primaries` nodes.
pub fn slot_ranges(primaries: usize) -> Vec<(u16, u16)> {
    let n = primaries.max(1) as u32;
    let slots = SLOTS as u32;
    (0..n)
        .map(|i| ((i * slots / n) as u16, ((i + 1) * slots / n - 1) as u16))
        .collect()
}

fn start_node(kind: ServerKind) -> Result<(Server, u16)> {
    let mut last_error = None;
    for _ in 0..START_ATTEMPTS {
        // The bus port is chosen explicitly: port + 10000, the default, may not exist.
        let bus = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot bind a loopback port")?
            .port();
        let bus_text = bus.to_string();
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            bus_text.as_str(),
            "--cluster-node-timeout",
            "3000",
        ];
        match Server::start_with_args(kind, &args) {
            Ok(server) => return Ok((server, bus)),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error
        .unwrap_or_else(|| anyhow::anyhow!("no attempt"))
        .context(format!("cannot start a {kind} cluster node")))
}

fn cluster_info(node: &Server) -> Result<BTreeMap<String, String>> {
    let mut con = node.try_client()?;
    let text: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut con)
        .with_context(|| format!("CLUSTER INFO on {}", node.port()))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (name, value) = line.trim().split_once(':')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_ranges_cover_every_slot_once() {
        for n in 1..=5 {
            let ranges = slot_ranges(n);
            assert_eq!(ranges.len(), n);
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges[n - 1].1, SLOTS - 1);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1 + 1, pair[1].0);
            }
        }
    }
}
