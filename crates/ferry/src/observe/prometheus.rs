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
    Family::new(
        t,
        "ferry_info",
        "gauge",
        "Always 1; the labels say what runs.",
    )
    .sample(
        "ferry_info",
        &[
            ("mode", status.mode),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
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
            acked.sample(
                "ferry_replica_acked_offset_bytes",
                &labels,
                replica.acked_offset,
            );
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

/// Name, type, help and value of a per-shard metric.
type ShardFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&super::status::ShardStatus) -> i64,
);

fn shards(t: &mut String, status: &Status) {
    let labels = |shard: &super::status::ShardStatus| {
        [("shard", shard.slots.clone()), ("node", shard.node.clone())]
    };
    let families: [ShardFamily; 3] = [
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

#[cfg(test)]
mod tests {
    use super::NAMES;
    use serde_json::Value;
    use std::collections::BTreeSet;

    /// deploy/grafana/ferry.json, the dashboard shipped for these metrics.
    const DASHBOARD: &str = include_str!("../../../../deploy/grafana/ferry.json");

    fn panels(dashboard: &Value) -> Vec<&Value> {
        dashboard["panels"]
            .as_array()
            .expect("a panels list")
            .iter()
            .filter(|panel| panel["type"] != "row")
            .collect()
    }

    /// The `ferry_…` names a PromQL expression reads.
    fn metric_names(expr: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let bytes = expr.as_bytes();
        let mut at = 0;
        while let Some(found) = expr[at..].find("ferry_") {
            let start = at + found;
            let glued =
                start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let end = expr[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(expr.len(), |len| start + len);
            if !glued {
                names.insert(expr[start..end].to_owned());
            }
            at = end;
        }
        names
    }

    /// The fields Grafana's dashboard model (schema v1, `kinds/dashboard`) requires for an
    /// import, checked on every panel and variable: a dashboard missing one imports as an
    /// error or as empty panels.
    #[test]
    fn the_dashboard_has_what_an_import_needs() {
        let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
        for field in ["title", "uid"] {
            assert!(dashboard[field].is_string(), "no {field}");
        }
        let uid = dashboard["uid"].as_str().unwrap();
        assert!(
            (1..=40).contains(&uid.len()),
            "a uid has at most 40 characters: {uid}"
        );
        assert!(dashboard["schemaVersion"].as_u64().unwrap_or(0) >= 36);
        assert!(
            dashboard["id"].is_null(),
            "an id ties the file to one Grafana"
        );
        let variables = dashboard["templating"]["list"]
            .as_array()
            .expect("templating.list");
        let datasource = variables
            .iter()
            .find(|v| v["type"] == "datasource")
            .expect("a data source variable, so the importer picks its Prometheus");
        assert_eq!(datasource["query"], "prometheus");
        let mut ids = BTreeSet::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            let id = panel["id"].as_u64().expect("a panel id");
            assert!(ids.insert(id), "panel id {id} twice");
            let grid = &panel["gridPos"];
            let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
            assert!(x + w <= 24 && grid["h"].as_u64().unwrap() > 0, "{panel}");
            assert!(
                panel["title"].is_string() && panel["type"].is_string(),
                "{panel}"
            );
        }
        for panel in panels(&dashboard) {
            let kind = panel["type"].as_str().unwrap();
            assert!(
                ["timeseries", "stat", "gauge", "table", "bargauge"].contains(&kind),
                "{kind} is not a core panel"
            );
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{}", panel["title"]);
            let ref_ids: BTreeSet<&str> =
                targets.iter().filter_map(|t| t["refId"].as_str()).collect();
            assert_eq!(
                ref_ids.len(),
                targets.len(),
                "refIds are unique: {}",
                panel["title"]
            );
        }
    }

    #[test]
    fn every_dashboard_query_names_metrics_ferry_serves_and_every_metric_is_shown() {
        let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
        let served: BTreeSet<&str> = NAMES.into_iter().collect();
        let mut used = BTreeSet::new();
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().expect("a PromQL expr");
                let names = metric_names(expr);
                assert!(!names.is_empty(), "{expr} reads no ferry metric");
                for name in names {
                    assert!(
                        served.contains(name.as_str()),
                        "{name} in {expr:?} is not served"
                    );
                    used.insert(name);
                }
            }
        }
        for variable in dashboard["templating"]["list"].as_array().unwrap() {
            if let Some(query) = variable["definition"].as_str() {
                for name in metric_names(query) {
                    assert!(served.contains(name.as_str()), "{name} in {query:?}");
                    used.insert(name);
                }
            }
        }
        let unshown: Vec<&&str> = served
            .iter()
            .filter(|name| !used.contains(**name))
            .collect();
        assert!(
            unshown
                .iter()
                .all(|name| **name == "ferry_start_time_seconds"),
            "metrics no panel shows: {unshown:?}"
        );
    }

    #[test]
    fn names_are_read_out_of_promql() {
        let names =
            metric_names("rate(ferry_commands_applied_total{job=~\"$job\"}[1m]) / x_ferry_no");
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["ferry_commands_applied_total"]
        );
    }
}
