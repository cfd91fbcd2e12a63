//! The `/status` document: what a run is doing now, read by `ferry cutover`, scripts and
//! the status page. Addresses are `host:port` and command lines carry no secret: the
//! document is served without a credential.

use super::events::Phase;
use super::history::Sample;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize)]
pub struct Status {
    /// `migrate` or `relay`.
    pub mode: &'static str,
    pub phase: Phase,
    /// `POST /stop` came (a cutover is ending the run).
    pub cutover_requested: bool,
    /// Unix time the run started, seconds.
    pub started_at: f64,
    /// Each phase entered, with its time (the first and the last 100).
    pub timeline: Vec<PhaseEntered>,
    pub source: String,
    pub source_server: String,
    pub target: String,
    pub target_server: String,
    pub source_replid: Option<String>,
    /// A cluster source's shards (absent for one server): the offsets above are their sums.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardStatus>,
    /// A relay's replicas (absent for a migration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Vec<ReplicaStatus>>,
    pub applied_offset: i64,
    pub source_offset: i64,
    pub lag_bytes: i64,
    /// How long ago the source was where the target is now (from the last hour's
    /// samples; absent until the first sample).
    pub lag_seconds: Option<f64>,
    pub full_sync: FullSyncStatus,
    /// Keys written by every full sync of this run.
    pub keys_written: u64,
    pub commands_applied: u64,
    pub command_bytes_applied: u64,
    pub ops_per_sec: f64,
    pub reconnects: u64,
    /// Replicated commands the translator left out (policy decisions), by reason.
    pub commands_skipped: BTreeMap<String, u64>,
    pub policy_report: Vec<String>,
    /// The last problems the run met and went on from (or stopped at), newest last.
    pub recent_problems: Vec<Problem>,
    /// The command lines that check and finish this run, when it has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_steps: Option<NextSteps>,
}

#[derive(Debug, Serialize)]
pub struct FullSyncStatus {
    pub runs: u64,
    pub keys: u64,
    pub bytes: u64,
    pub total_bytes: Option<u64>,
    /// The keys the source held when the run began (`INFO keyspace`): the measure of
    /// progress when a diskless snapshot's size is unknown.
    pub expected_keys: Option<u64>,
    pub keys_per_sec: f64,
    pub bytes_per_sec: f64,
    pub eta_seconds: Option<f64>,
}

/// Where one shard of a cluster source is, in `/status`: cutover drains and checks each
/// shard against its own primary's offset.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ShardStatus {
    /// `0-5460`, or `0-99,200-300`.
    pub slots: String,
    /// host:port of the primary followed.
    pub node: String,
    pub replid: Option<String>,
    pub applied_offset: i64,
    pub source_offset: i64,
    /// Failovers of the shard's primary followed in this run.
    pub failovers: u64,
}

/// One replica attached to a relay.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplicaStatus {
    /// host:port it connected from.
    pub address: String,
    /// What it said it is (`REPLCONF version`), when it said.
    pub version: Option<String>,
    /// The RDB format it was sent (`RDB 11`, `Valkey RDB 80`), once a full sync began.
    pub rdb: Option<String>,
    /// The policies applied to what it was sent.
    pub policies: Vec<String>,
    /// The source offset it acknowledged.
    pub acked_offset: i64,
    pub lag_bytes: i64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct PhaseEntered {
    pub phase: Phase,
    /// Unix time, seconds.
    pub at: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Problem {
    /// Unix time, seconds.
    pub at: f64,
    pub message: String,
}

/// The command lines for this run's next steps, with the flags it was given for the
/// passwords and the control token (files and variable names, never their contents).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NextSteps {
    pub verify: String,
    pub cutover: String,
}

/// `/history`: the samples after `since`.
#[derive(Debug, Serialize)]
pub struct HistoryPage {
    pub samples: Vec<Sample>,
}
