//! The live numbers of a run: atomics written by its periodic tick (never per key), and
//! the few things that change rarely (phases entered, problems met) behind locks; read by
//! `/status` ([`Stats::status`]), `/metrics` (rendered from that document) and the status
//! page, whose last hour of samples ([`History`]) the HTTP listener takes once a second.

use super::events::Phase;
use super::history::{History, Sample};
use super::status::{
    FullSyncStatus, NextSteps, PhaseEntered, Problem, ReplicaStatus, ShardStatus, Status,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

/// Phases entered that `/status` lists: the first and the latest ones (a source that
/// keeps dropping ferry would otherwise grow the list for ever).
const TIMELINE_KEPT: usize = 100;
/// Problems `/status` lists, the newest.
const PROBLEMS_KEPT: usize = 20;

/// Everything `/metrics` and `/status` report.
#[derive(Debug, Default)]
pub struct Stats {
    phase: AtomicU8,
    /// Keys written by the current (or last) full sync.
    snapshot_keys: AtomicU64,
    /// Keys written by the full syncs before it.
    keys_before: AtomicU64,
    /// See [`FullSyncStatus::expected_keys`]; 0 when unknown.
    expected_keys: AtomicU64,
    /// Snapshot bytes decoded so far in the current (or last) full sync.
    snapshot_bytes: AtomicU64,
    /// The snapshot's size; 0 when unknown (diskless).
    snapshot_total: AtomicU64,
    full_syncs: AtomicU64,
    reconnects: AtomicU64,
    applied_offset: AtomicI64,
    source_offset: AtomicI64,
    /// Commands the target acknowledged, and their bytes (full sync and stream).
    commands: AtomicU64,
    command_bytes: AtomicU64,
    /// Rates as f64 bits.
    keys_per_sec: AtomicU64,
    snapshot_bytes_per_sec: AtomicU64,
    ops_per_sec: AtomicU64,
    details: Mutex<Details>,
    /// Set by `POST /stop` (cutover): the run drains and exits as on SIGTERM.
    stop_requested: std::sync::atomic::AtomicBool,
    stop: tokio::sync::Notify,
    /// The applied offset read at the moment of a request, when the run provides it: the
    /// tick's copy is up to 100 ms old, and cutover waits on this number while writes
    /// are paused.
    live_applied: std::sync::OnceLock<LiveOffset>,
    /// Each shard's position, for a cluster source (read at the request, as above).
    shards: std::sync::OnceLock<ShardsReader>,
    /// A relay's replicas (read at the request).
    replicas: std::sync::OnceLock<ReplicasReader>,
    timeline: Mutex<Timeline>,
    problems: Mutex<VecDeque<Problem>>,
    history: Mutex<History>,
    next_steps: Mutex<Option<NextSteps>>,
}

/// The phases entered, with when: the first ones and the latest ones.
#[derive(Debug, Default)]
struct Timeline {
    started_at: f64,
    first: Vec<PhaseEntered>,
    latest: VecDeque<PhaseEntered>,
}

impl Timeline {
    fn enter(&mut self, phase: Phase, at: f64) {
        let entry = PhaseEntered { phase, at };
        if self.first.len() < TIMELINE_KEPT {
            self.first.push(entry);
            return;
        }
        if self.latest.len() == TIMELINE_KEPT {
            self.latest.pop_front();
        }
        self.latest.push_back(entry);
    }

    fn entries(&self) -> Vec<PhaseEntered> {
        self.first.iter().chain(&self.latest).copied().collect()
    }
}

/// A reader of a relay's replicas.
pub struct ReplicasReader(pub Box<dyn Fn() -> Vec<ReplicaStatus> + Send + Sync>);

impl std::fmt::Debug for ReplicasReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplicasReader")
    }
}

/// Unix time in seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A reader of the shards' positions.
pub struct ShardsReader(pub Box<dyn Fn() -> Vec<ShardStatus> + Send + Sync>);

impl std::fmt::Debug for ShardsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShardsReader")
    }
}

/// A reader of the run's applied offset.
pub struct LiveOffset(pub Box<dyn Fn() -> Option<i64> + Send + Sync>);

impl std::fmt::Debug for LiveOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveOffset")
    }
}

#[derive(Debug, Default, Clone)]
struct Details {
    /// `migrate` unless set (`relay`); cutover promotes the target of a relay.
    mode: Option<&'static str>,
    source: String,
    source_server: String,
    target: String,
    target_server: String,
    replid: Option<String>,
    policy_report: Vec<String>,
    /// Replicated commands left out by the translator, by reason: earlier sessions…
    skipped_before: BTreeMap<String, u64>,
    /// …and the current one.
    skipped_now: BTreeMap<String, u64>,
}

fn load_f64(cell: &AtomicU64) -> f64 {
    f64::from_bits(cell.load(Ordering::Relaxed))
}

fn store_f64(cell: &AtomicU64, value: f64) {
    cell.store(value.to_bits(), Ordering::Relaxed);
}

impl Stats {
    pub fn phase(&self) -> Phase {
        Phase::from_index(self.phase.load(Ordering::Relaxed))
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase.index(), Ordering::Relaxed);
        if let Ok(mut timeline) = self.timeline.lock() {
            let now = unix_now();
            if timeline.started_at == 0.0 {
                timeline.started_at = now;
                // Every run starts by probing, whether or not it said so.
                if phase != Phase::Starting {
                    timeline.enter(Phase::Starting, now);
                }
            }
            timeline.enter(phase, now);
        }
    }

    /// A problem the run met (a lost connection it retries, the error it stopped at).
    pub fn note_problem(&self, message: &str) {
        if let Ok(mut problems) = self.problems.lock() {
            if problems.len() == PROBLEMS_KEPT {
                problems.pop_front();
            }
            problems.push_back(Problem {
                at: unix_now(),
                message: message.to_owned(),
            });
        }
    }

    /// The command lines `/status` offers for checking and finishing the run.
    pub fn set_next_steps(&self, steps: NextSteps) {
        if let Ok(mut slot) = self.next_steps.lock() {
            *slot = Some(steps);
        }
    }

    /// Lets `/status` list a relay's replicas (set once).
    pub fn set_replicas_reader(
        &self,
        reader: impl Fn() -> Vec<ReplicaStatus> + Send + Sync + 'static,
    ) {
        let _ = self.replicas.set(ReplicasReader(Box::new(reader)));
    }

    /// Takes this second's sample for the history (the HTTP listener calls it).
    pub fn sample(&self) {
        let sample = Sample {
            t: unix_now(),
            applied_offset: self.applied_offset(),
            source_offset: self.source_offset.load(Ordering::Relaxed),
            lag_bytes: self.lag_bytes(),
            lag_seconds: 0.0,
            keys_written: self.keys_written(),
            commands_applied: self.commands.load(Ordering::Relaxed),
            command_bytes_applied: self.command_bytes.load(Ordering::Relaxed),
        };
        if let Ok(mut history) = self.history.lock() {
            history.push(sample);
        }
    }

    /// The samples taken after `since` (unix seconds), oldest first.
    pub fn history_since(&self, since: f64) -> Vec<Sample> {
        self.history
            .lock()
            .map(|history| history.since(since))
            .unwrap_or_default()
    }

    fn keys_written(&self) -> u64 {
        self.keys_before.load(Ordering::Relaxed) + self.snapshot_keys.load(Ordering::Relaxed)
    }

    /// Addresses are `host:port`: never a password.
    pub fn set_servers(
        &self,
        source: &str,
        source_server: &str,
        target: &str,
        target_server: &str,
    ) {
        if let Ok(mut details) = self.details.lock() {
            details.source = source.to_owned();
            details.source_server = source_server.to_owned();
            details.target = target.to_owned();
            details.target_server = target_server.to_owned();
        }
    }

    /// The source's `host:port` after a failover moved the run to another primary.
    pub fn set_source(&self, source: &str) {
        if let Ok(mut details) = self.details.lock() {
            details.source = source.to_owned();
        }
    }

    /// What kind of run this is, for `/status` (`migrate` when never set).
    pub fn set_mode(&self, mode: &'static str) {
        if let Ok(mut details) = self.details.lock() {
            details.mode = Some(mode);
        }
    }

    pub fn set_replid(&self, replid: &str) {
        if let Ok(mut details) = self.details.lock() {
            details.replid = Some(replid.to_owned());
        }
    }

    pub fn add_policy_report(&self, line: &str) {
        if let Ok(mut details) = self.details.lock() {
            details.policy_report.push(line.to_owned());
        }
    }

    /// The current session's skipped commands, by reason (the translator's counts).
    pub fn set_skipped(&self, counts: &BTreeMap<&'static str, u64>) {
        if let Ok(mut details) = self.details.lock() {
            if details.skipped_now.len() != counts.len()
                || counts
                    .iter()
                    .any(|(r, n)| details.skipped_now.get(*r) != Some(n))
            {
                details.skipped_now = counts.iter().map(|(r, n)| (r.to_string(), *n)).collect();
            }
        }
    }

    /// A session with the source ended: its counts become history.
    pub fn end_session(&self) {
        if let Ok(mut details) = self.details.lock() {
            let now = std::mem::take(&mut details.skipped_now);
            for (reason, count) in now {
                *details.skipped_before.entry(reason).or_default() += count;
            }
        }
    }

    /// The keys the source holds, for progress through a snapshot of unknown size.
    pub fn set_expected_keys(&self, keys: u64) {
        self.expected_keys.store(keys, Ordering::Relaxed);
    }

    pub fn start_full_sync(&self, total_bytes: Option<u64>) {
        self.full_syncs.fetch_add(1, Ordering::Relaxed);
        let before = self.snapshot_keys.swap(0, Ordering::Relaxed);
        self.keys_before.fetch_add(before, Ordering::Relaxed);
        self.snapshot_bytes.store(0, Ordering::Relaxed);
        self.snapshot_total
            .store(total_bytes.unwrap_or(0), Ordering::Relaxed);
        store_f64(&self.keys_per_sec, 0.0);
        store_f64(&self.snapshot_bytes_per_sec, 0.0);
    }

    /// Full syncs begun in this process (each one empties and reloads the target).
    pub fn full_syncs(&self) -> u64 {
        self.full_syncs.load(Ordering::Relaxed)
    }

    pub fn set_full_sync(&self, keys: u64, bytes: u64) {
        self.snapshot_keys.store(keys, Ordering::Relaxed);
        self.snapshot_bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn set_full_sync_rates(&self, keys_per_sec: f64, bytes_per_sec: f64) {
        store_f64(&self.keys_per_sec, keys_per_sec);
        store_f64(&self.snapshot_bytes_per_sec, bytes_per_sec);
    }

    pub fn set_offsets(&self, applied: i64, source: i64) {
        self.applied_offset.store(applied, Ordering::Relaxed);
        self.source_offset.store(source, Ordering::Relaxed);
    }

    pub fn set_commands(&self, commands: u64, bytes: u64) {
        self.commands.store(commands, Ordering::Relaxed);
        self.command_bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn set_ops_per_sec(&self, rate: f64) {
        store_f64(&self.ops_per_sec, rate);
    }

    pub fn add_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks the run to stop (drain what is in flight, save the state, exit).
    pub fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::SeqCst);
        self.stop.notify_waiters();
    }

    /// Whether [`Stats::request_stop`] was called (a cutover's `POST /stop`).
    pub fn stop_was_requested(&self) -> bool {
        self.stop_requested.load(Ordering::SeqCst)
    }

    /// Resolves once [`Stats::request_stop`] was called (before or after this call).
    pub async fn stop_requested(&self) {
        loop {
            // Registered before the flag is read, so a request in between is not missed.
            let notified = self.stop.notified();
            if self.stop_requested.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// Lets `/status` read the applied offset live while streaming (set once).
    pub fn set_live_applied(&self, reader: impl Fn() -> Option<i64> + Send + Sync + 'static) {
        let _ = self.live_applied.set(LiveOffset(Box::new(reader)));
    }

    /// Lets `/status` list a cluster source's shards (set once).
    pub fn set_shards_reader(&self, reader: impl Fn() -> Vec<ShardStatus> + Send + Sync + 'static) {
        let _ = self.shards.set(ShardsReader(Box::new(reader)));
    }

    pub fn applied_offset(&self) -> i64 {
        let ticked = self.applied_offset.load(Ordering::Relaxed);
        // Outside streaming the live reader may still hold an earlier history's offset.
        if !matches!(self.phase(), Phase::Streaming | Phase::InSync) {
            return ticked;
        }
        match self.live_applied.get().and_then(|live| (live.0)()) {
            Some(live) => live.max(ticked),
            None => ticked,
        }
    }

    pub fn lag_bytes(&self) -> i64 {
        (self.source_offset.load(Ordering::Relaxed) - self.applied_offset()).max(0)
    }

    /// Seconds left in the full sync at the current rate: of bytes when the snapshot's
    /// size is known, else of keys against the keys the source held.
    fn eta_seconds(&self) -> Option<f64> {
        if self.phase() != Phase::FullSync {
            return None;
        }
        let (total, done, rate) = match self.snapshot_total.load(Ordering::Relaxed) {
            0 => (
                self.expected_keys.load(Ordering::Relaxed),
                self.snapshot_keys.load(Ordering::Relaxed),
                load_f64(&self.keys_per_sec),
            ),
            total => (
                total,
                self.snapshot_bytes.load(Ordering::Relaxed),
                load_f64(&self.snapshot_bytes_per_sec),
            ),
        };
        if total == 0 || rate <= 0.0 {
            return None;
        }
        Some(total.saturating_sub(done) as f64 / rate)
    }

    /// The `/status` document.
    pub fn status(&self) -> Status {
        let details = self.details.lock().map(|d| d.clone()).unwrap_or_default();
        let total = self.snapshot_total.load(Ordering::Relaxed);
        let (started_at, timeline) = self
            .timeline
            .lock()
            .map(|t| (t.started_at, t.entries()))
            .unwrap_or_default();
        let lag_bytes = self.lag_bytes();
        let applied_offset = self.applied_offset();
        let source_offset = self.source_offset.load(Ordering::Relaxed);
        let lag_seconds = self.history.lock().ok().and_then(|history| {
            history.latest()?;
            // At this moment, not at the last sample: the lag grows between samples.
            Some(history.lag_seconds(applied_offset, source_offset, unix_now()))
        });
        Status {
            mode: details.mode.unwrap_or("migrate"),
            phase: self.phase(),
            cutover_requested: self.stop_requested.load(Ordering::SeqCst),
            started_at,
            timeline,
            source: details.source,
            source_server: details.source_server,
            target: details.target,
            target_server: details.target_server,
            source_replid: details.replid,
            shards: self
                .shards
                .get()
                .map(|reader| (reader.0)())
                .unwrap_or_default(),
            replicas: self.replicas.get().map(|reader| (reader.0)()),
            applied_offset,
            source_offset,
            lag_bytes,
            lag_seconds,
            full_sync: FullSyncStatus {
                runs: self.full_syncs.load(Ordering::Relaxed),
                keys: self.snapshot_keys.load(Ordering::Relaxed),
                bytes: self.snapshot_bytes.load(Ordering::Relaxed),
                total_bytes: (total > 0).then_some(total),
                expected_keys: Some(self.expected_keys.load(Ordering::Relaxed))
                    .filter(|&keys| keys > 0),
                keys_per_sec: load_f64(&self.keys_per_sec),
                bytes_per_sec: load_f64(&self.snapshot_bytes_per_sec),
                eta_seconds: self.eta_seconds(),
            },
            keys_written: self.keys_written(),
            commands_applied: self.commands.load(Ordering::Relaxed),
            command_bytes_applied: self.command_bytes.load(Ordering::Relaxed),
            ops_per_sec: load_f64(&self.ops_per_sec),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            commands_skipped: {
                let mut total = details.skipped_before;
                for (reason, count) in details.skipped_now {
                    *total.entry(reason).or_default() += count;
                }
                total
            },
            policy_report: details.policy_report,
            recent_problems: self
                .problems
                .lock()
                .map(|p| p.iter().cloned().collect())
                .unwrap_or_default(),
            next_steps: self.next_steps.lock().ok().and_then(|s| s.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_one_value_per_metric_and_the_phase() {
        let stats = Stats::default();
        stats.set_phase(Phase::Streaming);
        stats.set_offsets(90, 100);
        let text = super::super::prometheus::render(&stats.status());
        assert!(text.contains("\nferry_lag_bytes 10\n"), "{text}");
        assert!(
            text.contains("ferry_phase{phase=\"streaming\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ferry_phase{phase=\"full-sync\"} 0"),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn skipped_commands_add_up_across_sessions() {
        let stats = Stats::default();
        let mut counts = BTreeMap::new();
        counts.insert("it is \"odd\"", 2);
        stats.set_skipped(&counts);
        stats.end_session();
        counts.insert("it is \"odd\"", 3);
        stats.set_skipped(&counts);
        assert_eq!(stats.status().commands_skipped["it is \"odd\""], 5);
        let text = super::super::prometheus::render(&stats.status());
        assert!(
            text.contains("ferry_commands_skipped_total{reason=\"it is \\\"odd\\\"\"} 5"),
            "{text}"
        );
    }

    #[test]
    fn lag_is_never_negative() {
        let stats = Stats::default();
        stats.set_offsets(120, 100);
        assert_eq!(stats.lag_bytes(), 0);
    }
}
