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

/// A running cluster of primaries, each with its replicas (none unless started with
/// [`Cluster::start_with_replicas`]). Dropping it stops every node.
pub struct Cluster {
    kind: ServerKind,
    /// The primaries, in the order of their slot ranges.
    nodes: Vec<Server>,
    /// Each primary's cluster bus port, by node index.
    bus_ports: Vec<u16>,
    /// Each primary's replicas (with their bus ports), by node index.
    replicas: Vec<Vec<(Server, u16)>>,
    /// Primaries killed by [`Cluster::kill_primary`]: the others still know them.
    dead: Vec<Server>,
    /// What every node is started with beyond the cluster settings.
    node_args: Vec<String>,
    /// The primaries the slots were first split over (slot moves aside, primary `i`
    /// serves the `i`-th of [`slot_ranges`] of this many).
    started_with: usize,
}

impl Cluster {
    /// Starts `primaries` nodes of `kind` and waits until the cluster is ready. Needs
    /// `CLUSTER ADDSLOTSRANGE` and `--cluster-port`: Redis 7.0 or later, any Valkey.
    pub fn start(kind: ServerKind, primaries: usize) -> Result<Cluster> {
        Cluster::start_with_args(kind, primaries, &[])
    }

    /// Like [`Cluster::start`], each node started with `extra` arguments too (such as
    /// `--cluster-databases 16`).
    pub fn start_with_args(kind: ServerKind, primaries: usize, extra: &[&str]) -> Result<Cluster> {
        ensure!(
            (1..=16).contains(&primaries),
            "a test cluster has 1 to 16 primaries, not {primaries}"
        );
        let mut nodes = Vec::with_capacity(primaries);
        let mut bus_ports = Vec::with_capacity(primaries);
        for _ in 0..primaries {
            let (node, bus) = start_node(kind, extra)?;
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
            meet(&mut con, other, *bus)?;
        }
        let cluster = Cluster {
            kind,
            replicas: nodes.iter().map(|_| Vec::new()).collect(),
            dead: Vec::new(),
            started_with: nodes.len(),
            node_args: extra.iter().map(|a| a.to_string()).collect(),
            nodes,
            bus_ports,
        };
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// Starts a cluster of `primaries`, each with `replicas` replicas (`CLUSTER REPLICATE`),
    /// and waits until every replica's link to its primary is up.
    pub fn start_with_replicas(
        kind: ServerKind,
        primaries: usize,
        replicas: usize,
    ) -> Result<Cluster> {
        let mut cluster = Cluster::start(kind, primaries)?;
        let mut con = cluster.nodes[0].try_client()?;
        for primary in 0..primaries {
            let primary_id = cluster.node_id(primary)?;
            for _ in 0..replicas {
                let (node, bus) = start_node(kind, &cluster.extra_args())?;
                meet(&mut con, &node, bus)?;
                cluster.replicas[primary].push((node, bus));
            }
            // A node can only replicate a primary it knows of.
            for (node, _) in &cluster.replicas[primary] {
                let deadline = Instant::now() + READY_TIMEOUT;
                let mut replica = node.try_client()?;
                loop {
                    let done = redis::cmd("CLUSTER")
                        .arg("REPLICATE")
                        .arg(&primary_id)
                        .query::<()>(&mut replica);
                    match done {
                        Ok(()) => break,
                        Err(err) if Instant::now() > deadline => {
                            bail!("{kind}: CLUSTER REPLICATE on {}: {err}", node.port())
                        }
                        Err(_) => sleep(Duration::from_millis(50)),
                    }
                }
            }
        }
        cluster.wait_ready()?;
        for group in &cluster.replicas {
            for (node, _) in group {
                wait_role(node, "slave", true)?;
            }
        }
        Ok(cluster)
    }

    /// Starts one more primary, serving no slot until some are moved to it
    /// ([`Cluster::move_slot`]), and waits until every node knows it. Like
    /// `redis-cli --cluster add-node`, copies the first node's function libraries to it.
    /// Returns its index in [`Cluster::nodes`].
    pub fn add_primary(&mut self) -> Result<usize> {
        let (node, bus) = start_node(self.kind, &self.extra_args())?;
        let mut con = self.nodes[0].try_client()?;
        let functions: Vec<u8> = redis::cmd("FUNCTION").arg("DUMP").query(&mut con)?;
        redis::cmd("FUNCTION")
            .arg("RESTORE")
            .arg(&functions)
            .query::<()>(&mut node.try_client()?)
            .context("FUNCTION RESTORE on the new primary")?;
        meet(&mut con, &node, bus)?;
        self.nodes.push(node);
        self.bus_ports.push(bus);
        self.replicas.push(Vec::new());
        self.wait_ready()?;
        Ok(self.nodes.len() - 1)
    }

    /// `CLUSTER FAILOVER` on the first replica of primary `primary`: it becomes that
    /// slot range's primary (and [`Cluster::nodes`] lists it there), the old primary its
    /// replica. Returns once both say so and the cluster is ready.
    pub fn failover(&mut self, primary: usize) -> Result<()> {
        let (replica, replica_bus) = self.take_first_replica(primary)?;
        let mut con = replica.try_client()?;
        redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .query::<()>(&mut con)
            .with_context(|| format!("CLUSTER FAILOVER on {}", replica.port()))?;
        wait_role(&replica, "master", false)?;
        let old = std::mem::replace(&mut self.nodes[primary], replica);
        let old_bus = std::mem::replace(&mut self.bus_ports[primary], replica_bus);
        wait_role(&old, "slave", true)?;
        self.replicas[primary].insert(0, (old, old_bus));
        self.wait_ready()
    }

    /// Kills primary `primary` (SIGKILL) and waits until the cluster fails over to its
    /// first replica on its own (after the node timeout); [`Cluster::nodes`] then lists the
    /// replica there.
    pub fn kill_primary(&mut self, primary: usize) -> Result<()> {
        let (replica, replica_bus) = self.take_first_replica(primary)?;
        self.nodes[primary].kill()?;
        wait_role(&replica, "master", false)?;
        let old = std::mem::replace(&mut self.nodes[primary], replica);
        self.bus_ports[primary] = replica_bus;
        self.dead.push(old);
        self.wait_ready()
    }

    /// Primary `primary`'s first replica (and its bus port), about to take its place.
    fn take_first_replica(&mut self, primary: usize) -> Result<(Server, u16)> {
        let group = self
            .replicas
            .get_mut(primary)
            .with_context(|| format!("no primary {primary}"))?;
        ensure!(!group.is_empty(), "primary {primary} has no replica");
        Ok(group.remove(0))
    }

    /// The replicas of primary `primary`.
    pub fn replicas_of(&self, primary: usize) -> Vec<&Server> {
        self.replicas
            .get(primary)
            .map(|group| group.iter().map(|(node, _)| node).collect())
            .unwrap_or_default()
    }

    fn all_nodes(&self) -> impl Iterator<Item = &Server> {
        self.nodes
            .iter()
            .chain(self.replicas.iter().flatten().map(|(node, _)| node))
    }

    /// A hash tag (`{…}` contents) whose keys land on primary `primary`'s slot range.
    pub fn tag_for(&self, primary: usize) -> Result<String> {
        let (first, last) = *slot_ranges(self.started_with)
            .get(primary)
            .with_context(|| format!("no primary {primary}"))?;
        for i in 0..10_000 {
            let tag = format!("t{i}");
            let slot = self.keyslot(tag.as_bytes())?;
            if (first..=last).contains(&slot) {
                return Ok(tag);
            }
        }
        bail!("no tag found for slots {first}-{last}")
    }

    /// Copies database 0 of `from` (a standalone server of the same kind) into the
    /// cluster: each key by DUMP / RESTORE … ABSTTL on the primary serving its slot, the
    /// function libraries on every primary. How a dataset written for one server fills a
    /// cluster source.
    pub fn copy_from(&self, from: &Server) -> Result<()> {
        let mut source = from.try_client()?;
        let ranges = slot_ranges(self.started_with);
        let mut targets = self
            .nodes
            .iter()
            .map(|node| node.try_client())
            .collect::<Result<Vec<_>>>()?;
        let mut slot_con = self.nodes[0].try_client()?;
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(500)
                .query(&mut source)?;
            if !keys.is_empty() {
                let mut read = redis::pipe();
                let mut slots = redis::pipe();
                for key in &keys {
                    read.cmd("DUMP").arg(key).cmd("PEXPIRETIME").arg(key);
                    slots.cmd("CLUSTER").arg("KEYSLOT").arg(key);
                }
                let values: Vec<redis::Value> = read.query(&mut source)?;
                let slots: Vec<u16> = slots.query(&mut slot_con)?;
                let mut writes: Vec<redis::Pipeline> =
                    targets.iter().map(|_| redis::pipe()).collect();
                for ((key, pair), slot) in keys.iter().zip(values.chunks(2)).zip(&slots) {
                    let [redis::Value::BulkString(payload), expiry] = pair else {
                        continue; // gone meanwhile
                    };
                    let at = match expiry {
                        redis::Value::Int(at) => *at,
                        _ => -1,
                    };
                    let owner = ranges
                        .iter()
                        .position(|(a, b)| (*a..=*b).contains(slot))
                        .context("a slot outside every range")?;
                    let write = writes[owner].cmd("RESTORE").arg(key);
                    match at > 0 {
                        true => write.arg(at).arg(payload).arg("ABSTTL"),
                        false => write.arg(0).arg(payload),
                    }
                    .arg("REPLACE")
                    .ignore();
                }
                for (write, con) in writes.iter().zip(targets.iter_mut()) {
                    write.query::<()>(con).context("RESTORE into the cluster")?;
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let functions: Vec<u8> = redis::cmd("FUNCTION").arg("DUMP").query(&mut source)?;
        let libraries: Vec<redis::Value> = redis::cmd("FUNCTION").arg("LIST").query(&mut source)?;
        if !libraries.is_empty() {
            for con in &mut targets {
                redis::cmd("FUNCTION")
                    .arg("RESTORE")
                    .arg(&functions)
                    .arg("REPLACE")
                    .query::<()>(con)
                    .context("FUNCTION RESTORE")?;
            }
        }
        Ok(())
    }

    /// Waits until every node says `cluster_state:ok`, knows every node and sees all slots
    /// assigned.
    pub fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut waiting_for = None;
            let total = self.all_nodes().count() + self.dead.len();
            for node in self.all_nodes() {
                let info = cluster_info(node)?;
                let ok = info.get("cluster_state").map(String::as_str) == Some("ok")
                    && info.get("cluster_known_nodes") == Some(&total.to_string())
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

    /// Waits until every node knows the same current epoch. A slot moved back soon after
    /// it moved needs it: the node taking it back bumps its config epoch above the ones
    /// it knows, and one that had not heard of the last owner's bump could end with an
    /// epoch no higher than that owner's; that owner's ping sent before it gave the slot
    /// up then wins it back, and the node deletes the slot's keys as no longer its own.
    pub fn wait_epochs_agree(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut epochs = Vec::new();
            for node in self.all_nodes() {
                epochs.push(cluster_info(node)?.get("cluster_current_epoch").cloned());
            }
            if epochs.windows(2).all(|pair| pair[0] == pair[1]) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} nodes' epochs still differ after {READY_TIMEOUT:?}: {epochs:?}",
                    self.kind
                );
            }
            sleep(Duration::from_millis(20));
        }
    }

    fn extra_args(&self) -> Vec<&str> {
        self.node_args.iter().map(String::as_str).collect()
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

    /// Moves `slots` slots from primary `from` to primary `to` with the real
    /// `redis-cli`/`valkey-cli` of the cluster's package: `--cluster reshard … --cluster-yes`
    /// with its default options (MIGRATE without REPLACE, 10 keys at a time). Returns the
    /// tool's output.
    pub fn cli_reshard(&self, from: usize, to: usize, slots: u32) -> Result<String> {
        let (from_id, to_id) = (self.node_id(from)?, self.node_id(to)?);
        let slots = slots.to_string();
        self.run_cluster_tool(&[
            "reshard",
            &self.seed_address(),
            "--cluster-from",
            &from_id,
            "--cluster-to",
            &to_id,
            "--cluster-slots",
            &slots,
            "--cluster-yes",
        ])
    }

    /// Rebalances the slots with the real `redis-cli`/`valkey-cli --cluster rebalance`,
    /// weighing primary `index` by `weight` (the others 1), so that slots really move.
    /// Returns the tool's output.
    pub fn cli_rebalance(&self, index: usize, weight: u32) -> Result<String> {
        let weighed = format!("{}={weight}", self.node_id(index)?);
        self.run_cluster_tool(&[
            "rebalance",
            &self.seed_address(),
            "--cluster-weight",
            &weighed,
        ])
    }

    /// Moves slots `first..=last` from primary `from` to primary `to` by Valkey 9's atomic
    /// slot migration (`CLUSTER MIGRATESLOTS … NODE …` on `from`), and waits until `to`
    /// serves them and the cluster is ready again.
    pub fn migrate_slots_atomically(
        &self,
        from: usize,
        to: usize,
        first: u16,
        last: u16,
    ) -> Result<()> {
        let to_id = self.node_id(to)?;
        let before = self.slot_count(to)?;
        let mut con = self.nodes[from].try_client()?;
        redis::cmd("CLUSTER")
            .arg("MIGRATESLOTS")
            .arg("SLOTSRANGE")
            .arg(first)
            .arg(last)
            .arg("NODE")
            .arg(&to_id)
            .query::<()>(&mut con)
            .with_context(|| format!("{}: CLUSTER MIGRATESLOTS {first}-{last}", self.kind))?;
        let wanted = before + usize::from(last - first) + 1;
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.slot_count(to)? < wanted {
            if Instant::now() > deadline {
                let jobs: redis::Value = redis::cmd("CLUSTER")
                    .arg("GETSLOTMIGRATIONS")
                    .query(&mut con)?;
                bail!("slots {first}-{last} not moved within {READY_TIMEOUT:?}: {jobs:?}");
            }
            sleep(Duration::from_millis(50));
        }
        self.wait_ready()
    }

    fn seed_address(&self) -> String {
        format!("127.0.0.1:{}", self.nodes[0].port())
    }

    /// `cli --cluster <args>`, failing with its output unless it exits 0 and the cluster
    /// is ready again afterwards.
    fn run_cluster_tool(&self, args: &[&str]) -> Result<String> {
        let cli = &self.nodes[0].entry().cli;
        let output = std::process::Command::new(&cli[0])
            .args(&cli[1..])
            .arg("--cluster")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", cli[cli.len() - 1]))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        ensure!(
            output.status.success(),
            "{} --cluster {}: {}\n{text}",
            self.kind,
            args.join(" "),
            output.status
        );
        self.wait_ready()?;
        Ok(text)
    }

    /// How many slots primary `index` serves now, by its own `CLUSTER SLOTS`.
    pub fn slot_count(&self, index: usize) -> Result<usize> {
        let mut con = self.nodes[index].try_client()?;
        let myself = self.node_id(index)?;
        let slots: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut con)?;
        let mut count = 0;
        for range in slots {
            let redis::Value::Array(parts) = range else {
                continue;
            };
            let (Some(redis::Value::Int(first)), Some(redis::Value::Int(last))) =
                (parts.first(), parts.get(1))
            else {
                continue;
            };
            let serves = match parts.get(2) {
                Some(redis::Value::Array(primary)) => primary.iter().any(
                    |field| matches!(field, redis::Value::BulkString(id) if id == myself.as_bytes()),
                ),
                _ => false,
            };
            if serves {
                count += (last - first + 1) as usize;
            }
        }
        Ok(count)
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

fn start_node(kind: ServerKind, extra: &[&str]) -> Result<(Server, u16)> {
    let mut last_error = None;
    for _ in 0..START_ATTEMPTS {
        // The bus port is chosen explicitly: port + 10000, the default, may not exist.
        let bus = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot bind a loopback port")?
            .port();
        let bus_text = bus.to_string();
        let mut args = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            bus_text.as_str(),
            "--cluster-node-timeout",
            "3000",
        ];
        args.extend_from_slice(extra);
        match Server::start_with_args(kind, &args) {
            Ok(server) => return Ok((server, bus)),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error
        .unwrap_or_else(|| anyhow::anyhow!("no attempt"))
        .context(format!("cannot start a {kind} cluster node")))
}

/// Introduces `node` (cluster bus port `bus`) to the cluster of the node behind `con`.
fn meet(con: &mut redis::Connection, node: &Server, bus: u16) -> Result<()> {
    // The bus port is not port + 10000 here: it goes with the MEET.
    redis::cmd("CLUSTER")
        .arg("MEET")
        .arg("127.0.0.1")
        .arg(node.port())
        .arg(bus)
        .query::<()>(con)
        .with_context(|| format!("{}: CLUSTER MEET {}", node.kind(), node.port()))
}

/// Waits until `node` reports `role:<role>` (and, with `linked`, `master_link_status:up`).
fn wait_role(node: &Server, role: &str, linked: bool) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let mut con = node.try_client()?;
        let info: String = redis::cmd("INFO").arg("replication").query(&mut con)?;
        let has = |line: &str| info.lines().any(|l| l.trim() == line);
        if has(&format!("role:{role}")) && (!linked || has("master_link_status:up")) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "node {} not role:{role} within {READY_TIMEOUT:?}:\n{info}",
                node.port()
            );
        }
        sleep(Duration::from_millis(50));
    }
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
