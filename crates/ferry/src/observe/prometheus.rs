//! `/metrics`: the status document in the Prometheus text format (version 0.0.4), named
//! by Prometheus's conventions (`ferry_` prefix, base units in the name, `_total` on
//! counters only; rates are left to PromQL's `rate()`), labelled by shard and replica.
//! `promtool check metrics` passes on it (tests/it/status_page.rs).
//!
//! Rendered by hand: `metrics-exporter-prometheus` (≈6.5k lines) always brings
//! `metrics-util`, `quanta` and `indexmap`, its default listener brings `hyper`, and it
//! installs a process-wide recorder; a few dozen values read from our own atomics need
//! none of that.

use super::events::Phase;
use super::status::Status;
use std::fmt::Write as _;

/// Every metric name `/metrics` can show (a dashboard's queries are checked against it).
pub const NAMES: [&str; 23] = [
    "ferry_info",
    "ferry_start_time_seconds",
    "ferry_phase",
    "ferry_full_syncs_total",
    "ferry_full_sync_keys",
    "ferry_full_sync_decoded_bytes",
    "ferry_full_sync_size_bytes",
    "ferry_full_sync_keys_written_total",
    "ferry_applied_offset_bytes",
    "ferry_source_offset_bytes",
    "ferry_lag_bytes",
    "ferry_lag_seconds",
    "ferry_commands_applied_total",
    "ferry_commands_applied_bytes_total",
    "ferry_commands_skipped_total",
    "ferry_reconnects_total",
    "ferry_policy_reports",
    "ferry_problems",
    "ferry_shard_applied_offset_bytes",
    "ferry_shard_lag_bytes",
    "ferry_shard_failovers_total",
    "ferry_replica_acked_offset_bytes",
    "ferry_replica_lag_bytes",
];

/// One metric family being written: its HELP and TYPE once, then its samples.
struct Family<'a> {
    text: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(text: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        debug_assert!(NAMES.contains(&name), "{name} is not listed in NAMES");
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { text }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.text, "{name}");
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{}\"", label(value)))
                .collect();
            let _ = write!(self.text, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A metric with one unlabelled value.
fn single(text: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    Family::new(text, name, kind, help).sample(name, &[], value);
}

pub fn render(status: &Status) -> String {
    let mut text = String::with_capacity(4096);
    let t = &mut text;
    Family::new(t, "ferry_info", "gauge", "Always 1; the labels say what runs.").sample(
        "ferry_info",
        &[("mode", status.mode), ("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    single(
        t,
        "ferry_start_time_seconds",
        "gauge",
        "Unix time the run started.",
        number(status.started_at),
    );
    let mut phases = Family::new(t, "ferry_phase", "gauge", "1 for the phase the run is in.");
    for phase in Phase::ALL {
        let value = u8::from(phase == status.phase);
        phases.sample("ferry_phase", &[("phase", phase.name())], value);
    }
    single(
        t,
        "ferry_full_syncs_total",
        "counter",
        "Full syncs started.",
        status.full_sync.runs,
    );
    single(
        t,
        "ferry_full_sync_keys",
        "gauge",
        "Keys written by the current or last full sync.",
        status.full_sync.keys,
    );
    single(
        t,
        "ferry_full_sync_decoded_bytes",
        "gauge",
        "Snapshot bytes decoded by the current or last full sync.",
        status.full_sync.bytes,
    );
    single(
        t,
        "ferry_full_sync_size_bytes",
        "gauge",
        "Size of the current or last snapshot; 0 when unknown (diskless).",
        status.full_sync.total_bytes.unwrap_or(0),
    );
    single(
        t,
        "ferry_full_sync_keys_written_total",
        "counter",
        "Keys written by every full sync of the run.",
        status.keys_written,
    );
    single(
        t,
        "ferry_applied_offset_bytes",
        "gauge",
        "Replication offset acknowledged by the target.",
        status.applied_offset,
    );
    single(
        t,
        "ferry_source_offset_bytes",
        "gauge",
        "Replication offset received from the source.",
        status.source_offset,
    );
    single(
        t,
        "ferry_lag_bytes",
        "gauge",
        "Source offset minus applied offset.",
        status.lag_bytes,
    );
    single(
        t,
        "ferry_lag_seconds",
        "gauge",
        "How long ago the source was at the applied offset.",
        number(status.lag_seconds.unwrap_or(0.0)),
    );
    single(
        t,
        "ferry_commands_applied_total",
        "counter",
        "Commands acknowledged by the target (full sync and stream).",
        status.commands_applied,
    );
    single(
        t,
        "ferry_commands_applied_bytes_total",
        "counter",
        "Bytes of the commands acknowledged by the target.",
        status.command_bytes_applied,
    );
    let mut skipped = Family::new(
        t,
        "ferry_commands_skipped_total",
        "counter",
        "Replicated commands left out by a policy, by reason.",
    );
    for (reason, count) in &status.commands_skipped {
        skipped.sample("ferry_commands_skipped_total", &[("reason", reason)], count);
    }
    single(
        t,
        "ferry_reconnects_total",
        "counter",
        "Times the source connection was lost and retried.",
        status.reconnects,
    );
    single(
        t,
        "ferry_policy_reports",
        "gauge",
        "Policy decisions reported (each is a line in /status policy_report).",
        status.policy_report.len(),
    );
    single(
        t,
        "ferry_problems",
        "gauge",
        "Problems listed in /status recent_problems (the last 20).",
        status.recent_problems.len(),
    );
    if !status.shards.is_empty() {
        shards(t, status);
    }
    if let Some(replicas) = &status.replicas {
        let mut acked = Family::new(
            t,
            "ferry_replica_acked_offset_bytes",
            "gauge",
            "Source offset a relay's replica acknowledged.",
        );
        for replica in replicas {
            let labels = [("replica", replica.address.as_str())];
            acked.sample("ferry_replica_acked_offset_bytes", &labels, replica.acked_offset);
        }
        let mut lag = Family::new(
            t,
            "ferry_replica_lag_bytes",
            "gauge",
            "Source offset minus what a relay's replica acknowledged.",
        );
        for replica in replicas {
            let labels = [("replica", replica.address.as_str())];
            lag.sample("ferry_replica_lag_bytes", &labels, replica.lag_bytes);
        }
    }
    text
}

fn shards(t: &mut String, status: &Status) {
    let labels = |shard: &super::status::ShardStatus| {
        [("shard", shard.slots.clone()), ("node", shard.node.clone())]
    };
    let families: [(&str, &str, &str, fn(&super::status::ShardStatus) -> i64); 3] = [
        (
            "ferry_shard_applied_offset_bytes",
            "gauge",
            "A source shard's replication offset acknowledged by the target.",
            |s| s.applied_offset,
        ),
        (
            "ferry_shard_lag_bytes",
            "gauge",
            "A source shard's offset minus its applied offset.",
            |s| (s.source_offset - s.applied_offset).max(0),
        ),
        (
            "ferry_shard_failovers_total",
            "counter",
            "Failovers of a source shard's primary followed.",
            |s| s.failovers as i64,
        ),
    ];
    for (name, kind, help, value) in families {
        let mut family = Family::new(t, name, kind, help);
        for shard in &status.shards {
            let owned = labels(shard);
            let pairs: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
            family.sample(name, &pairs, value(shard));
        }
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
