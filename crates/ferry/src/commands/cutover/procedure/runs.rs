//! The run or runs the switch moves clients away from: one `migrate` (or `relay`) at
//! `--status`, or the workers that split one cluster source (`migrate --shards K/N`),
//! one `--status` each. Their statuses read as one: every worker's shards together, the
//! phase the least advanced of theirs; each shard keeps the address of its worker.

use super::{StepError, Switch};
use crate::commands::cutover::status::RunStatus;
use std::net::SocketAddr;

impl Switch<'_> {
    /// Every run's `/status`, read now and merged.
    pub(super) fn run_status(&self) -> Result<RunStatus, StepError> {
        let mut statuses = Vec::with_capacity(self.plan.runs.len());
        for endpoint in &self.plan.runs {
            statuses.push(endpoint.status()?);
        }
        merge(statuses)
    }

    /// The `--status` addresses, comma-separated.
    pub(super) fn run_addresses(&self) -> String {
        addresses(self.plan.runs.iter().map(|endpoint| endpoint.addr))
    }
}

fn addresses(runs: impl Iterator<Item = SocketAddr>) -> String {
    runs.map(|addr| addr.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How far a phase is from the switch: streaming and in-sync are ready.
fn readiness(phase: &str) -> u8 {
    match phase {
        "in-sync" => 2,
        "streaming" => 1,
        _ => 0,
    }
}

fn merge(statuses: Vec<RunStatus>) -> Result<RunStatus, StepError> {
    let mut statuses = statuses.into_iter();
    let mut whole = statuses.next().ok_or(StepError::NoConnection("run"))?;
    for status in statuses {
        if status.source != whole.source || status.target != whole.target {
            return Err(StepError::RunsDisagree {
                runs: addresses([whole.run, status.run].into_iter().flatten()),
                copies: format!(
                    "{} -> {}, {} -> {}",
                    whole.source, whole.target, status.source, status.target
                ),
            });
        }
        if readiness(&status.phase) < readiness(&whole.phase) {
            whole.phase = status.phase;
            whole.run = status.run;
        }
        whole.shards.extend(status.shards);
    }
    Ok(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(port: u16, phase: &str, nodes: &[&str]) -> RunStatus {
        let shards: Vec<String> = nodes
            .iter()
            .map(|node| format!(r#"{{"node":"{node}","replid":"r","applied_offset":7}}"#))
            .collect();
        let mut status: RunStatus = serde_json::from_str(&format!(
            r#"{{"phase":"{phase}","source":"s:1","target":"t:2","source_replid":null,
                "applied_offset":0,"shards":[{}]}}"#,
            shards.join(",")
        ))
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        status.run = Some(addr);
        for shard in &mut status.shards {
            shard.run = Some(addr);
        }
        status
    }

    #[test]
    fn workers_read_as_one_run_with_every_shard_and_the_least_ready_phase() {
        let whole = merge(vec![
            worker(1, "in-sync", &["a:1"]),
            worker(2, "streaming", &["b:1", "c:1"]),
            worker(3, "in-sync", &["d:1"]),
        ])
        .unwrap();
        assert_eq!(whole.phase, "streaming");
        assert_eq!(whole.run.unwrap().port(), 2);
        let nodes: Vec<(&str, u16)> = whole
            .shards
            .iter()
            .map(|s| (s.node.as_str(), s.run.unwrap().port()))
            .collect();
        assert_eq!(nodes, [("a:1", 1), ("b:1", 2), ("c:1", 2), ("d:1", 3)]);

        let loading = merge(vec![
            worker(1, "in-sync", &["a:1"]),
            worker(2, "full-sync", &["b:1"]),
        ])
        .unwrap();
        assert_eq!(
            (loading.phase.as_str(), loading.run.unwrap().port()),
            ("full-sync", 2)
        );
    }

    #[test]
    fn workers_of_other_servers_are_refused_by_address() {
        let mut other = worker(2, "in-sync", &["b:1"]);
        other.target = "elsewhere:9".into();
        let err = merge(vec![worker(1, "in-sync", &["a:1"]), other]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("127.0.0.1:1, 127.0.0.1:2") && text.contains("s:1 -> elsewhere:9"),
            "{text}"
        );
    }
}
