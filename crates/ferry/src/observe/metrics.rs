//! The live numbers of a migration: atomics written by the migration's periodic tick (never
//! per key), read by `/metrics` (Prometheus text format) and `/status` (JSON).
//!
//! The Prometheus text is rendered here by hand. `metrics-exporter-prometheus` (≈6.5k
//! lines) always brings `metrics-util`, `quanta` and `indexmap`, its default listener
//! brings `hyper`, and it installs a process-wide recorder; a dozen values read from our
//! own atomics need none of that.

use super::events::Phase;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Everything `/metrics` and `/status` report.
#[derive(Debug, Default)]
pub struct Stats {
    phase: AtomicU8,
    /// Keys written by the current (or last) full sync.
    snapshot_keys: AtomicU64,
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

    pub fn start_full_sync(&self, total_bytes: Option<u64>) {
        self.full_syncs.fetch_add(1, Ordering::Relaxed);
        self.snapshot_keys.store(0, Ordering::Relaxed);
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

    /// Seconds left in the full sync at the current decode rate, when the size is known.
    fn eta_seconds(&self) -> Option<f64> {
        let total = self.snapshot_total.load(Ordering::Relaxed);
        let rate = load_f64(&self.snapshot_bytes_per_sec);
        if self.phase() != Phase::FullSync || total == 0 || rate <= 0.0 {
            return None;
        }
        let left = total.saturating_sub(self.snapshot_bytes.load(Ordering::Relaxed));
        Some(left as f64 / rate)
    }

    /// The `/status` document.
    pub fn status(&self) -> Status {
        let details = self.details.lock().map(|d| d.clone()).unwrap_or_default();
        let total = self.snapshot_total.load(Ordering::Relaxed);
        Status {
            mode: details.mode.unwrap_or("migrate"),
            phase: self.phase(),
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
            applied_offset: self.applied_offset(),
            source_offset: self.source_offset.load(Ordering::Relaxed),
            lag_bytes: self.lag_bytes(),
            full_sync: FullSyncStatus {
                runs: self.full_syncs.load(Ordering::Relaxed),
                keys: self.snapshot_keys.load(Ordering::Relaxed),
                bytes: self.snapshot_bytes.load(Ordering::Relaxed),
                total_bytes: (total > 0).then_some(total),
                keys_per_sec: load_f64(&self.keys_per_sec),
                bytes_per_sec: load_f64(&self.snapshot_bytes_per_sec),
                eta_seconds: self.eta_seconds(),
            },
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
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let status = self.status();
        let mut text = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "ferry_full_syncs_total",
            "counter",
            "Full syncs started.",
            status.full_sync.runs.to_string(),
        );
        metric(
            "ferry_full_sync_keys_written",
            "gauge",
            "Keys written by the current or last full sync.",
            status.full_sync.keys.to_string(),
        );
        metric(
            "ferry_full_sync_bytes",
            "gauge",
            "Snapshot bytes decoded by the current or last full sync.",
            status.full_sync.bytes.to_string(),
        );
        metric(
            "ferry_full_sync_total_bytes",
            "gauge",
            "Size of the current or last snapshot; 0 when unknown (diskless).",
            status.full_sync.total_bytes.unwrap_or(0).to_string(),
        );
        metric(
            "ferry_full_sync_keys_per_second",
            "gauge",
            "Keys written per second during the full sync.",
            number(status.full_sync.keys_per_sec),
        );
        metric(
            "ferry_applied_offset",
            "gauge",
            "Replication offset acknowledged by the target.",
            status.applied_offset.to_string(),
        );
        metric(
            "ferry_source_offset",
            "gauge",
            "Replication offset received from the source.",
            status.source_offset.to_string(),
        );
        metric(
            "ferry_lag_bytes",
            "gauge",
            "Source offset minus applied offset.",
            status.lag_bytes.to_string(),
        );
        metric(
            "ferry_commands_applied_total",
            "counter",
            "Commands acknowledged by the target.",
            status.commands_applied.to_string(),
        );
        metric(
            "ferry_command_bytes_applied_total",
            "counter",
            "Bytes of commands acknowledged by the target.",
            status.command_bytes_applied.to_string(),
        );
        metric(
            "ferry_ops_per_second",
            "gauge",
            "Commands acknowledged per second while streaming.",
            number(status.ops_per_sec),
        );
        metric(
            "ferry_reconnects_total",
            "counter",
            "Times the source connection was lost and retried.",
            status.reconnects.to_string(),
        );
        metric(
            "ferry_policy_reports",
            "gauge",
            "Policy decisions reported (each is a line in /status policy_report).",
            status.policy_report.len().to_string(),
        );
        let _ = writeln!(
            text,
            "# HELP ferry_commands_skipped_total Replicated commands left out, by reason.\n# TYPE ferry_commands_skipped_total counter"
        );
        for (reason, count) in &status.commands_skipped {
            let _ = writeln!(
                text,
                "ferry_commands_skipped_total{{reason=\"{}\"}} {count}",
                label(reason)
            );
        }
        let _ = writeln!(
            text,
            "# HELP ferry_phase 1 for the phase the migration is in.\n# TYPE ferry_phase gauge"
        );
        for phase in Phase::ALL {
            let value = u8::from(phase == status.phase);
            let _ = writeln!(text, "ferry_phase{{phase=\"{}\"}} {value}", phase.name());
        }
        text
    }
}

/// A label value with the text format's escapes.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.3}")
    } else {
        "0".to_owned()
    }
}

#[derive(Debug, Serialize)]
pub struct Status {
    /// `migrate` or `relay`.
    pub mode: &'static str,
    pub phase: Phase,
    pub source: String,
    pub source_server: String,
    pub target: String,
    pub target_server: String,
    pub source_replid: Option<String>,
    /// A cluster source's shards (absent for one server): the offsets above are their sums.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardStatus>,
    pub applied_offset: i64,
    pub source_offset: i64,
    pub lag_bytes: i64,
    pub full_sync: FullSyncStatus,
    pub commands_applied: u64,
    pub command_bytes_applied: u64,
    pub ops_per_sec: f64,
    pub reconnects: u64,
    /// Replicated commands the translator left out (policy decisions), by reason.
    pub commands_skipped: BTreeMap<String, u64>,
    pub policy_report: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct FullSyncStatus {
    pub runs: u64,
    pub keys: u64,
    pub bytes: u64,
    pub total_bytes: Option<u64>,
    pub keys_per_sec: f64,
    pub bytes_per_sec: f64,
    pub eta_seconds: Option<f64>,
}

/// The window the runs measure their rates (keys/s, commands/s) over.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A per-second rate of a growing count, measured over at least `window`.
#[derive(Debug)]
pub struct Rate {
    window: Duration,
    since: Instant,
    from: u64,
    last: f64,
}

impl Rate {
    pub fn new(start: u64, window: Duration) -> Self {
        Self {
            window,
            since: Instant::now(),
            from: start,
            last: 0.0,
        }
    }

    /// The rate over the last full window, updated once the window has passed.
    pub fn update(&mut self, now_count: u64) -> f64 {
        let elapsed = self.since.elapsed();
        if elapsed >= self.window {
            self.last = now_count.saturating_sub(self.from) as f64 / elapsed.as_secs_f64();
            self.from = now_count;
            self.since = Instant::now();
        }
        self.last
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
        let text = stats.prometheus();
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
        let text = stats.prometheus();
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
