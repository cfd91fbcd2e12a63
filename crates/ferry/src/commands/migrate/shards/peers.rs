//! The other workers of a split cluster source (`--shards K/N`), seen through the source
//! primaries they follow: what a write coming into this worker's share waits for.
//!
//! When `MIGRATE` moves a key from another worker's primary (the origin) into one of this
//! worker's, the `RESTORE-ASKING` is in this worker's stream, and the origin's older
//! writes and its `DEL` of the key are in the origin's, which the other worker applies.
//! Applied in the wrong order, the `DEL` would delete the moved key on the target. So
//! the batch carrying the `RESTORE-ASKING` (or the first writes of keys created in a
//! slot that came from the origin, [`crate::transforms::shards::share`]) waits until the
//! origin's worker has applied the origin's stream up to where the origin is now:
//! - the origin runs `MIGRATE` as one command, its `DEL` included, and answers nothing
//!   else meanwhile; the destination ran the `RESTORE-ASKING` within it. So the origin's
//!   offset read after this worker read the `RESTORE-ASKING` covers the `DEL` and every
//!   earlier write of the key;
//! - a worker acknowledges the offset it has applied to the target (`REPLCONF ACK`),
//!   which the origin lists per replica in `INFO replication`; ferry's replica is the
//!   one without a listening port (`port=0`). Workers acknowledge every
//!   [`WORKER_ACK_EVERY`] rather than every second, since each such batch waits for one.
//!
//! Only the origin is waited for, so workers wait for each other only when slots move
//! both ways between them at once. The wait ends with an error once the origin's worker
//! has applied nothing more for [`STUCK_AFTER`]: a worker down that long, or such a pair
//! of waits, stops the worker rather than hang it or lose a write.

use super::*;
use crate::server::client::info_value;
use crate::transforms::shards::share::{Entering, ShareSlots};

/// How often the origin's replicas are read while waiting.
const POLL: Duration = Duration::from_millis(20);
/// How often a wait that goes on is logged.
const SAY_EVERY: Duration = Duration::from_secs(10);
/// How long the origin's worker may apply nothing before this worker stops.
const STUCK_AFTER: Duration = Duration::from_secs(300);
/// A worker's `REPLCONF ACK` interval: the others wait on its acknowledged offset.
pub(in crate::commands::migrate) const WORKER_ACK_EVERY: Duration = Duration::from_millis(100);

pub(in crate::commands::migrate) struct Peers {
    share: Arc<ShareSlots>,
    /// `K/N`, for messages.
    name: String,
    /// Slot → the last primary outside the share seen serving it: the origin of keys that
    /// arrive once the slot is served here.
    origins: Mutex<Vec<Option<NodeAddr>>>,
    /// Every node seen, asked for the topology.
    known: Mutex<Vec<NodeAddr>>,
    /// This worker's shards' nodes (replicas included, which a failover promotes).
    own_nodes: Vec<NodeAddr>,
    /// Credentials and TLS for the source's nodes.
    template: ServerUrl,
    connect_timeout: Duration,
    events: Arc<Observer>,
}

impl Peers {
    pub(super) fn new(
        share: Arc<ShareSlots>,
        name: String,
        topology: &[SourceShard],
        own_nodes: Vec<NodeAddr>,
        template: ServerUrl,
        connect_timeout: Duration,
        events: Arc<Observer>,
    ) -> Self {
        let peers = Self {
            share,
            name,
            origins: Mutex::new(vec![None; 16384]),
            known: Mutex::new(topology.iter().flat_map(|s| s.nodes.clone()).collect()),
            own_nodes,
            template,
            connect_timeout,
            events,
        };
        peers.observe(topology);
        peers
    }

    pub(super) fn share(&self) -> Arc<ShareSlots> {
        self.share.clone()
    }

    fn is_mine(&self, node: &NodeAddr) -> bool {
        self.own_nodes.contains(node)
    }

    /// Records who serves which slot now: slots served by another worker's primary leave
    /// the share and remember it as their origin; slots served here have arrived.
    pub(super) fn observe(&self, topology: &[SourceShard]) {
        let mut origins = lock(&self.origins);
        let mut known = lock(&self.known);
        for shard in topology {
            for node in &shard.nodes {
                if !known.contains(node) {
                    known.push(node.clone());
                }
            }
            let mine = self.is_mine(&shard.primary);
            for slot in shard.slots.iter().flat_map(|[a, b]| *a..=*b) {
                if mine {
                    self.share.arrived(slot);
                    continue;
                }
                self.share.left(slot);
                if let Some(origin) = origins.get_mut(usize::from(slot)) {
                    *origin = Some(shard.primary.clone());
                }
            }
        }
    }

    /// Waits until the workers of the origins of `entering` have applied their primaries'
    /// streams up to where those are now ([`origin_of`]); the slots served here since are
    /// the share's from then on.
    pub(super) async fn settle(&self, entering: Vec<Entering>) -> Result<(), MigrateError> {
        let known = lock(&self.known).clone();
        let now = cluster::rediscover(&known, &self.template, self.connect_timeout).await;
        if let Some(now) = &now {
            self.observe(now);
        }
        let serving = |slot: u16| {
            now.as_ref()
                .and_then(|shards| shards.iter().find(|shard| shard.serves(slot)))
                .map(|shard| &shard.primary)
        };
        let mut origins: Vec<NodeAddr> = Vec::new();
        let mut unknown = false;
        {
            let history = lock(&self.origins);
            for write in &entering {
                let slot = write.slot;
                let restore = write.restore;
                let view = SlotView {
                    elsewhere: serving(slot)
                        .filter(|primary| !self.is_mine(primary))
                        .cloned(),
                    own: self.share.is_own(slot),
                    been_here: self.share.has_been_here(slot),
                    last_away: history.get(usize::from(slot)).cloned().flatten(),
                };
                let origin = origin_of(restore, view);
                if restore {
                    self.share.arrived(slot);
                }
                match origin {
                    Origin::Node(origin) if !origins.contains(&origin) => origins.push(origin),
                    Origin::Node(_) | Origin::None => {}
                    Origin::Unknown => unknown = true,
                }
            }
        }
        if unknown {
            for shard in now.iter().flatten() {
                if !self.is_mine(&shard.primary) && !origins.contains(&shard.primary) {
                    origins.push(shard.primary.clone());
                }
            }
        }
        for origin in &origins {
            self.wait_for(origin).await?;
        }
        for write in &entering {
            if serving(write.slot).is_some_and(|primary| self.is_mine(primary)) {
                self.share.settled(write.slot);
            }
        }
        Ok(())
    }

    /// Waits until ferry's replica of `origin` acknowledged the offset `origin` is at now.
    async fn wait_for(&self, origin: &NodeAddr) -> Result<(), MigrateError> {
        let url = origin.url(&self.template);
        let started = tokio::time::Instant::now();
        let mut said = started;
        let mut wanted: Option<i64> = None;
        let mut best: Option<i64> = None;
        let mut progress_at = started;
        let mut client: Option<Client> = None;
        loop {
            if client.is_none() {
                client = Client::connect(&url, self.connect_timeout).await.ok();
            }
            let info = match client.as_mut() {
                Some(connected) => connected.info("replication").await.ok(),
                None => None,
            };
            if info.is_none() {
                client = None;
            }
            if let Some(info) = info {
                // A primary demoted since (a failover): its promoted replica continues
                // the same offsets, and that worker follows it there.
                if info_value(&info, "role") != Some("master") {
                    return Ok(());
                }
                if wanted.is_none() {
                    wanted = info_value(&info, "master_repl_offset").and_then(|v| v.parse().ok());
                }
                let acked = ferry_acknowledged(&info);
                if acked.is_some() && acked > best {
                    best = acked;
                    progress_at = tokio::time::Instant::now();
                }
                match (acked, wanted) {
                    (Some(acked), Some(wanted)) if acked >= wanted => return Ok(()),
                    _ => {}
                }
            }
            if progress_at.elapsed() >= STUCK_AFTER {
                return Err(MigrateError::OriginWorkerStuck {
                    share: self.name.clone(),
                    origin: origin.to_string(),
                    acknowledged: best.unwrap_or(0),
                    wanted: wanted.unwrap_or(0),
                    waited_s: started.elapsed().as_secs(),
                });
            }
            if said.elapsed() >= SAY_EVERY {
                said = tokio::time::Instant::now();
                self.events.line(format!(
                    "keys moved into worker {}'s share from {origin}: waiting for the worker \
                     following {origin} to apply its stream up to offset {} (at {} now, \
                     {} s so far)",
                    self.name,
                    wanted.unwrap_or(0),
                    best.unwrap_or(0),
                    started.elapsed().as_secs()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Whom a write into the share waits for.
#[derive(Debug, PartialEq, Eq)]
enum Origin {
    /// Nobody: the write is the share's own.
    None,
    Node(NodeAddr),
    /// Some other worker, not known which: all of them.
    Unknown,
}

/// What is known of a write's slot.
struct SlotView {
    /// The primary serving it now, when it is another share's.
    elsewhere: Option<NodeAddr>,
    own: bool,
    /// A primary of this share served it at some point.
    been_here: bool,
    /// The last primary of another share seen serving it.
    last_away: Option<NodeAddr>,
}

/// The origin of a write into slot `s`, with `s` served now by `F`:
/// - a `RESTORE-ASKING`: `F` while it empties `s` into this share; once `s` is served
///   here, the last primary of another share seen serving it. When none was seen (the
///   slot's time elsewhere fell between two topology reads, or the keys moved within this
///   share, whose shards pair them), every other worker;
/// - any other write, `F` another worker's: `F` if `s` was never served here (a key
///   created here by `ASKING` while `s` is being imported); nobody if it was (`s` left
///   since, and this is what it left behind: `MIGRATE`'s `DEL`s, or writes made while it
///   was leaving, which `F`'s worker waits for instead; waiting here could wait on a
///   worker waiting on this one);
/// - any other write, `s` served here: the last primary of another share seen serving
///   it, until `s` is the share's.
fn origin_of(restore: bool, slot: SlotView) -> Origin {
    match slot.elsewhere {
        Some(elsewhere) if restore || !slot.been_here => Origin::Node(elsewhere),
        Some(_) => Origin::None,
        None if !restore && slot.own => Origin::None,
        None => slot.last_away.map_or(Origin::Unknown, Origin::Node),
    }
}

/// The least offset a replica without a listening port (ferry) acknowledged, from INFO
/// replication's `slaveN:ip=…,port=0,state=online,offset=…` lines.
fn ferry_acknowledged(info: &[(String, String)]) -> Option<i64> {
    info.iter()
        .filter(|(name, _)| {
            name.strip_prefix("slave")
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|(_, value)| {
            let field = |name: &str| {
                value
                    .split(',')
                    .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
            };
            (field("port") == Some("0")).then(|| field("offset")?.parse::<i64>().ok())?
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(port: u16) -> NodeAddr {
        NodeAddr {
            host: "127.0.0.1".into(),
            port,
        }
    }

    fn view(elsewhere: Option<u16>, own: bool, been_here: bool, away: Option<u16>) -> SlotView {
        SlotView {
            elsewhere: elsewhere.map(node),
            own,
            been_here,
            last_away: away.map(node),
        }
    }

    #[test]
    fn a_write_waits_for_the_share_it_came_from_and_never_for_one_it_left_to() {
        // Keys restored while the other share's primary still serves the slot.
        let importing = view(Some(7001), false, false, Some(7001));
        assert_eq!(origin_of(true, importing), Origin::Node(node(7001)));
        // A key created here by ASKING meanwhile.
        let asking = view(Some(7001), false, false, Some(7001));
        assert_eq!(origin_of(false, asking), Origin::Node(node(7001)));
        // The slot is served here now; its keys still wait for where it came from.
        let arrived = view(None, false, true, Some(7001));
        assert_eq!(origin_of(false, arrived), Origin::Node(node(7001)));
        // What a slot that left for 7002 leaves behind (MIGRATE's DELs) waits for nobody:
        // 7002's worker waits for this one.
        let leaving = view(Some(7002), false, true, Some(7002));
        assert_eq!(origin_of(false, leaving), Origin::None);
        // The share's own slots.
        assert_eq!(origin_of(false, view(None, true, true, None)), Origin::None);
        // A restore into a slot whose time elsewhere was not seen: every other worker.
        assert_eq!(
            origin_of(true, view(None, true, true, None)),
            Origin::Unknown
        );
        assert_eq!(
            origin_of(true, view(None, true, true, Some(7003))),
            Origin::Node(node(7003))
        );
        // Slots that came while this worker was stopped.
        assert_eq!(
            origin_of(false, view(None, false, true, None)),
            Origin::Unknown
        );
    }

    #[test]
    fn ferry_is_the_replica_without_a_listening_port() {
        let info: Vec<(String, String)> = [
            ("role", "master"),
            ("connected_slaves", "3"),
            (
                "slave0",
                "ip=127.0.0.1,port=7101,state=online,offset=900,lag=0",
            ),
            (
                "slave1",
                "ip=127.0.0.1,port=0,state=online,offset=750,lag=1",
            ),
            (
                "slave2",
                "ip=127.0.0.1,port=0,state=online,offset=800,lag=0",
            ),
            ("slave_read_only", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(ferry_acknowledged(&info), Some(750));
        assert_eq!(ferry_acknowledged(&info[..3]), None);
    }
}
