//! What a migration tells the outside: plain log lines on stderr, progress bars when
//! stderr is a terminal, `--json` events on stdout, and live numbers for `/status`,
//! `/metrics` and the status page at `/`. The migration calls an [`Observer`] at phase
//! changes and on its periodic tick; nothing here runs per key.

pub mod events;
pub mod history;
pub mod http;
pub mod page;
pub mod progress;
pub mod prometheus;
pub mod rate;
pub mod stats;
pub mod status;

pub use events::{Event, JsonLines, Phase};
pub use rate::Rate;
pub use stats::Stats;

use progress::Bars;
use std::io::Write;
use std::sync::Arc;

#[derive(Debug)]
pub struct Observer {
    stats: Arc<Stats>,
    json: JsonLines,
    bars: Bars,
}

impl Observer {
    pub fn new(json: bool) -> Self {
        Self {
            stats: Arc::new(Stats::default()),
            json: JsonLines { enabled: json },
            bars: Bars::new(),
        }
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// A log line: `ferry: …` on stderr (above a bar if one is drawn) and a `log` event.
    pub fn line(&self, text: impl AsRef<str>) {
        let text = text.as_ref();
        let line = format!("ferry: {text}");
        if !self.bars.println(&line) {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
        self.json.emit(&Event::Log { message: text });
    }

    /// A periodic progress line: left out when a bar shows the same.
    pub fn progress_line(&self, text: &str) {
        if !self.bars.active() {
            let _ = writeln!(std::io::stderr(), "ferry: {text}");
        }
    }

    /// Both servers answered. `source`/`target` are `host:port` (no password).
    pub fn started(&self, source: &str, source_server: &str, target: &str, target_server: &str) {
        self.stats
            .set_servers(source, source_server, target, target_server);
        self.json.emit(&Event::Started {
            source,
            source_server,
            target,
            target_server,
        });
    }

    pub fn phase(&self, phase: Phase, offset: Option<i64>) {
        if self.stats.phase() == phase {
            return;
        }
        self.stats.set_phase(phase);
        match phase {
            Phase::Streaming => self.bars.start_streaming(),
            Phase::FullSync | Phase::InSync => {}
            Phase::Starting | Phase::Reconnecting | Phase::Stopped => self.bars.clear(),
        }
        self.json.emit(&Event::Phase { phase, offset });
    }

    pub fn replid(&self, replid: &str) {
        self.stats.set_replid(replid);
    }

    pub fn start_full_sync(&self, total_bytes: Option<u64>) {
        self.stats.start_full_sync(total_bytes);
        self.phase(Phase::FullSync, None);
        self.bars.start_full_sync(total_bytes);
    }

    /// The full sync's tick: cheap, may run often. `line` says whether to log it.
    pub fn full_sync_progress(&self, keys: u64, bytes: u64, keys_per_sec: f64, line: bool) {
        self.stats.set_full_sync(keys, bytes);
        self.bars.full_sync(keys, bytes, keys_per_sec);
        if line {
            let status = self.stats.status();
            let of = status
                .full_sync
                .total_bytes
                .map(|t| format!(" of {}", crate::display::size(t)))
                .unwrap_or_default();
            self.progress_line(&format!(
                "full sync: {keys} keys written ({keys_per_sec:.0} keys/s), {}{of} decoded",
                crate::display::size(bytes)
            ));
            self.json.emit(&Event::FullSyncProgress {
                keys,
                bytes,
                total_bytes: status.full_sync.total_bytes,
                keys_per_sec,
            });
        }
    }

    pub fn full_sync_rates(&self, keys_per_sec: f64, bytes_per_sec: f64) {
        self.stats.set_full_sync_rates(keys_per_sec, bytes_per_sec);
    }

    /// Commands acknowledged by the target so far, and their bytes.
    pub fn commands(&self, commands: u64, bytes: u64) {
        self.stats.set_commands(commands, bytes);
    }

    /// The stream's tick: offsets and rate. `line` says whether to log it.
    pub fn stream_progress(&self, applied: i64, received: i64, ops_per_sec: f64, line: bool) {
        self.stats.set_offsets(applied, received);
        self.stats.set_ops_per_sec(ops_per_sec);
        let lag = self.stats.lag_bytes();
        self.bars
            .streaming(self.stats.phase().name(), applied, lag, ops_per_sec);
        if line {
            self.progress_line(&format!(
                "streaming: applied offset {applied}, lag {lag} bytes, {ops_per_sec:.0} commands/s"
            ));
            self.json.emit(&Event::StreamProgress {
                applied_offset: applied,
                source_offset: received,
                lag_bytes: lag,
                ops_per_sec,
            });
        }
    }

    /// The applied offset reached what was received. The stderr line is what scripts
    /// (and the tests) wait for: keep its wording.
    pub fn in_sync(&self, offset: i64) {
        self.phase(Phase::InSync, Some(offset));
        self.line(format!("in sync at offset {offset}"));
    }

    /// A policy decision's report line: logged, kept for `/status`, and a `policy` event.
    pub fn policy_report(&self, line: &str) {
        self.stats.add_policy_report(line);
        self.json.emit(&Event::Policy { report: line });
        self.line(line);
    }

    /// Replicated commands the translator left out this session, by reason.
    pub fn commands_skipped(&self, counts: &std::collections::BTreeMap<&'static str, u64>) {
        self.stats.set_skipped(counts);
    }

    /// A session with the source ended.
    pub fn end_session(&self) {
        self.stats.end_session();
    }

    /// The source was lost for `reason`; the run retries.
    pub fn reconnecting(&self, reason: &str) {
        self.stats.add_reconnect();
        self.stats.note_problem(reason);
        self.phase(Phase::Reconnecting, None);
    }

    /// The run failed: an `error` event (`main` prints the stderr line).
    pub fn error(&self, message: &str) {
        self.stats.note_problem(message);
        self.json.emit(&Event::Error { message });
    }

    pub fn stopped(&self, offset: Option<i64>) {
        self.phase(Phase::Stopped, offset);
    }
}
