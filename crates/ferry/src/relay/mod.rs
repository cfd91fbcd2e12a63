//! `ferry relay`: ferry as a primary that Valkey replicates from. Each replica that needs
//! a full copy gets its own *history*: ferry follows the source as a replica
//! (`ferry-repl`), streams the source's snapshot through decode → compat → encode into the
//! replica's socket in its RDB format, then translates the source's command stream into
//! the history's own stream (own replication ID, own offsets), kept in a backlog so that a
//! replica which reconnects gets `+CONTINUE`.
//!
//! ```text
//! listener ─▶ session (handshake, AUTH, INFO) ─┬─ PSYNC known id, in backlog: +CONTINUE
//!                                              └─ else: new history
//! history: source PSYNC ? -1 ─▶ snapshot ─▶ rdb (decode, compat, encode) ─▶ $EOF:… ─▶ replica
//!          command stream ─▶ stream (translate) ─▶ backlog + offsets map ─▶ replicas
//! ```
//!
//! One history per full sync means a late replica never needs a copy of an earlier
//! snapshot: it gets a fresh one from the source (as the source's own replicas would).

pub mod gate;
pub mod history;
pub mod info;
pub mod listener;
pub mod offsets;
pub mod rdb;
pub mod saved;
pub mod session;
pub mod stream;

use crate::policy::Policies;
use crate::server::probe::ServerInfo;
use crate::target::Target;
use crate::url::ServerUrl;
use history::History;
use saved::SavedHistory;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the relay runs, from the command line.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub source_url: ServerUrl,
    pub source_info: ServerInfo,
    pub policies: Policies,
    /// The keys and databases relayed, and where (`--match`, `--db`, `--db-map`).
    pub scope: crate::filter::Scope,
    /// Bytes of each history's stream kept for partial resyncs.
    pub backlog_bytes: usize,
    /// How long a history with no replica attached is kept alive.
    pub backlog_ttl: Duration,
    /// Replicas must `AUTH` with this password.
    pub password: Option<String>,
    /// Serve this format to every replica instead of the one its version implies.
    pub replica_format: Option<Target>,
    pub connect_timeout: Duration,
    /// TLS towards the source (`rediss://`), as `migrate` sets it up.
    pub source_upgrade: Option<Arc<dyn ferry_repl::StreamUpgrade>>,
    /// Snapshot chunks (64 KiB each) buffered between the source and the decoder, and
    /// RDB chunks between the encoder and the replica.
    pub chunks: usize,
}

/// Counters `INFO stats` shows, as a primary does.
#[derive(Debug, Default)]
pub struct SyncCounters {
    pub full: AtomicU64,
    pub partial_ok: AtomicU64,
    pub partial_err: AtomicU64,
}

/// What `INFO replication` and the status show of one attached replica.
#[derive(Debug, Clone)]
pub struct ReplicaStatus {
    pub address: String,
    pub listening_port: Option<u16>,
    pub state: &'static str,
    /// The replica's last ACKed offset in the relay's stream.
    pub ack_offset: i64,
    /// The source offset that ACK covers.
    pub source_offset: Option<i64>,
    pub last_ack: Instant,
    pub replid: String,
    /// What it announced (`REPLCONF version`), when it did.
    pub version: Option<String>,
    /// The RDB format its history is translated for.
    pub rdb: String,
    /// What the policies did to its snapshot (one line each).
    pub policies: Vec<String>,
}

/// Replication IDs of past histories remembered (40 bytes each).
const ISSUED_KEPT: usize = 1024;

/// State shared by the listener, the sessions and the histories.
pub struct Relay {
    pub config: RelayConfig,
    histories: Mutex<Vec<Arc<History>>>,
    /// Histories from the state file, not yet picked up by a reconnecting replica.
    dormant: Mutex<Vec<SavedHistory>>,
    replicas: Mutex<BTreeMap<u64, ReplicaStatus>>,
    pub counters: SyncCounters,
    next_id: AtomicU64,
    /// The replication IDs of the last [`ISSUED_KEPT`] histories made, and of those the
    /// state file held: a replica asking for one of them is not attaching for the first time.
    issued: Mutex<std::collections::VecDeque<String>>,
    saved_ids: Mutex<Vec<String>>,
    /// Places for connections that have not started replicating.
    pub gate: gate::Gate,
    refusals: gate::LimitedLog,
    /// The source's primary now: `config.source_url` until a Sentinel source failed
    /// over, then the primary its sentinels named at the last connect.
    source_now: Mutex<ServerUrl>,
}

impl Relay {
    pub fn new(config: RelayConfig) -> Arc<Self> {
        Arc::new(Self {
            source_now: Mutex::new(config.source_url.clone()),
            config,
            histories: Mutex::new(Vec::new()),
            dormant: Mutex::new(Vec::new()),
            replicas: Mutex::new(BTreeMap::new()),
            counters: SyncCounters::default(),
            next_id: AtomicU64::new(1),
            issued: Mutex::new(std::collections::VecDeque::new()),
            saved_ids: Mutex::new(Vec::new()),
            gate: gate::Gate::new(gate::MAX_HANDSHAKING),
            refusals: gate::LimitedLog::new(gate::REFUSAL_LOG_EVERY),
        })
    }

    /// A plain log line on stderr.
    /// The source's primary now (see `source_now`).
    pub fn source_now(&self) -> ServerUrl {
        lock(&self.source_now).clone()
    }

    /// A Sentinel source's sentinels named `primary`.
    pub fn set_source_now(&self, primary: ServerUrl) {
        *lock(&self.source_now) = primary;
    }

    pub fn log(&self, text: impl AsRef<str>) {
        eprintln!("ferry: {}", text.as_ref());
    }

    /// A line about a client turned away before replicating (wrong password, idle, junk,
    /// one too many): at most one per `kind` every few seconds, so a flood of them costs
    /// a line, with the count of the others.
    pub fn log_refusal(&self, kind: &str, text: impl Into<String>) {
        if let Some(line) = self.refusals.admit(kind, text.into()) {
            self.log(line);
        }
    }

    /// The counts of refusals left out of the log and not reported since.
    pub fn log_overdue_refusals(&self) {
        for line in self.refusals.overdue() {
            self.log(line);
        }
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn add_history(&self, history: Arc<History>) {
        {
            let mut issued = lock(&self.issued);
            if issued.len() == ISSUED_KEPT {
                issued.pop_front();
            }
            issued.push_back(history.replid.clone());
        }
        let mut histories = lock(&self.histories);
        histories.retain(|h| !h.is_ended());
        histories.push(history);
    }

    /// Whether this relay made the replication ID (a history of this run, ended or not,
    /// or one saved by an earlier run): a replica asking for it attached here before.
    pub fn issued(&self, replid: &str) -> bool {
        lock(&self.issued).iter().any(|id| id == replid)
            || lock(&self.dormant).iter().any(|h| h.replid == replid)
            || lock(&self.saved_ids).iter().any(|id| id == replid)
    }

    /// The live history with this replication ID.
    pub fn history(&self, replid: &str) -> Option<Arc<History>> {
        lock(&self.histories)
            .iter()
            .find(|h| h.replid == replid && !h.is_ended())
            .cloned()
    }

    pub fn histories(&self) -> Vec<Arc<History>> {
        lock(&self.histories)
            .iter()
            .filter(|h| !h.is_ended())
            .cloned()
            .collect()
    }

    pub fn set_dormant(&self, saved: Vec<SavedHistory>) {
        *lock(&self.saved_ids) = saved.iter().map(|h| h.replid.clone()).collect();
        *lock(&self.dormant) = saved;
    }

    /// A history from the state file with this replication ID, taken out.
    pub fn take_dormant(&self, replid: &str) -> Option<SavedHistory> {
        let mut dormant = lock(&self.dormant);
        let index = dormant.iter().position(|h| h.replid == replid)?;
        Some(dormant.remove(index))
    }

    pub fn put_back_dormant(&self, saved: SavedHistory) {
        lock(&self.dormant).push(saved);
    }

    /// What the state file should hold now: every live history's resume point, and the
    /// saved ones no replica has come back for yet.
    pub fn saved_histories(&self) -> Vec<SavedHistory> {
        let mut saved: Vec<SavedHistory> =
            self.histories().iter().filter_map(|h| h.saved()).collect();
        saved.extend(lock(&self.dormant).iter().cloned());
        saved
    }

    /// The source offset every attached replica's ACK covers (the lowest), and the
    /// newest source offset taken into a history's stream.
    pub fn offsets(&self) -> (Option<i64>, Option<i64>) {
        let acked = self.replicas().iter().filter_map(|r| r.source_offset).min();
        let source = self
            .histories()
            .iter()
            .map(|h| h.view().source_offset)
            .max();
        (acked, source)
    }

    pub fn set_replica(&self, id: u64, status: ReplicaStatus) {
        lock(&self.replicas).insert(id, status);
    }

    pub fn update_replica(&self, id: u64, update: impl FnOnce(&mut ReplicaStatus)) {
        if let Some(status) = lock(&self.replicas).get_mut(&id) {
            update(status);
        }
    }

    pub fn remove_replica(&self, id: u64) {
        lock(&self.replicas).remove(&id);
    }

    pub fn replicas(&self) -> Vec<ReplicaStatus> {
        lock(&self.replicas).values().cloned().collect()
    }
}

/// Locks, going on after a panic elsewhere (the data is counters and lists).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
