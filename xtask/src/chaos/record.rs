//! What a soak did and found: the faults it fired, when, and the end state.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The faults fired in one scenario, in order, with the time of each.
pub struct FaultLog {
    started: Instant,
    pub fired: BTreeMap<&'static str, u32>,
    pub events: Vec<String>,
}

impl FaultLog {
    pub fn new() -> FaultLog {
        FaultLog {
            started: Instant::now(),
            fired: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    /// Notes one fault (or one thing ferry did, such as an exit) and prints it.
    pub fn note(&mut self, kind: &'static str, detail: impl AsRef<str>) {
        *self.fired.entry(kind).or_default() += 1;
        self.event(format!("{kind}: {}", detail.as_ref()));
    }

    pub fn event(&mut self, text: String) {
        let line = format!("{:>7.1} s  {text}", self.started.elapsed().as_secs_f64());
        println!("  {line}");
        self.events.push(line);
    }

    pub fn total(&self) -> u32 {
        self.fired.values().sum()
    }
}

/// One scenario's result, for the report.
pub struct Outcome {
    pub name: String,
    pub minutes: f64,
    pub faults: FaultLog,
    /// The exits ferry made by itself (each restarted by the soak), with their last line.
    pub ferry_exits: Vec<String>,
    /// Snapshots ferry received (each a full sync), from its log.
    pub full_syncs: usize,
    /// From the end of the load to the first clean verify.
    pub time_to_equal: Duration,
    pub keys: usize,
    pub verify_exit: i32,
    /// Differences the independent key-by-key comparison found.
    pub differences: Vec<String>,
}

impl Outcome {
    pub fn clean(&self) -> bool {
        self.verify_exit == 0 && self.differences.is_empty()
    }
}

/// Exit lines grouped by their message, without the offset and state file that follow
/// it, most frequent first.
fn exits_by_message(lines: &[String]) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in lines {
        let message = line.split("; last applied offset").next().unwrap_or(line);
        *counts.entry(message.to_string()).or_default() += 1;
    }
    let mut grouped: Vec<(String, usize)> = counts.into_iter().collect();
    grouped.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    grouped
}

/// The report's markdown: one table, then each scenario's faults and ferry's exits.
pub fn markdown(outcomes: &[Outcome], seed: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Seed {seed}. Each scenario runs a write load and a migration while faults fire; \
         then the load stops, ferry catches up, `ferry verify` compares, and the test kit's \
         snapshots compare key by key.\n"
    );
    let _ = writeln!(
        out,
        "| scenario | minutes | faults fired | ferry's own exits | full syncs | \
         time to equal s | keys | verify | differences |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|---|--:|");
    for o in outcomes {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {} | {} | {} | {:.1} | {} | {} | {} |",
            o.name,
            o.minutes,
            o.faults.total(),
            o.ferry_exits.len(),
            o.full_syncs,
            o.time_to_equal.as_secs_f64(),
            o.keys,
            if o.verify_exit == 0 {
                "clean".to_string()
            } else {
                format!("exit {}", o.verify_exit)
            },
            o.differences.len()
        );
    }
    for o in outcomes {
        let _ = writeln!(out, "\n### {}\n", o.name);
        let kinds: Vec<String> = o
            .faults
            .fired
            .iter()
            .map(|(kind, n)| format!("{kind} ×{n}"))
            .collect();
        let _ = writeln!(out, "Faults: {}.\n", kinds.join(", "));
        if o.ferry_exits.is_empty() {
            let _ = writeln!(out, "ferry never exited on its own.");
        } else {
            let _ = writeln!(
                out,
                "ferry's own exits ({}, each restarted 1 s later), by message:\n",
                o.ferry_exits.len()
            );
            for (line, count) in exits_by_message(&o.ferry_exits) {
                let _ = writeln!(out, "- ×{count} `{line}`");
            }
        }
        if !o.differences.is_empty() {
            let _ = writeln!(out, "\nFirst differences:\n");
            for line in o.differences.iter().take(20) {
                let _ = writeln!(out, "- {line}");
            }
        }
    }
    out
}
