//! The fleet's one report: a text table on stdout, or one JSON document (`--json`,
//! `--report FILE`). Addresses and counts only: no password, no token.

use super::board::{Phase, Row};
use super::schedule::Failure;
use serde::Serialize;
use std::io::Write;

#[derive(Debug, Serialize)]
pub struct FleetReport {
    /// Every pair done and verified equal.
    pub ok: bool,
    pub concurrency: u32,
    pub seconds: f64,
    /// The pair that stopped the fleet.
    pub failed: Option<FailedPair>,
    pub pairs: Vec<Row>,
}

#[derive(Debug, Serialize)]
pub struct FailedPair {
    pub pair: String,
    pub error: String,
}

impl FleetReport {
    pub fn new(rows: Vec<Row>, concurrency: u32, seconds: f64, failure: Option<Failure>) -> Self {
        FleetReport {
            ok: failure.is_none() && rows.iter().all(|row| row.phase == Phase::Done),
            concurrency,
            seconds,
            failed: failure.map(|f| FailedPair {
                pair: f.pair,
                error: f.error,
            }),
            pairs: rows,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let header = [
            "pair",
            "wave",
            "source -> target",
            "keys",
            "time",
            "verify",
            "result",
        ];
        let lines: Vec<[String; 7]> = self.pairs.iter().map(cells).collect();
        let mut widths = header.map(str::len);
        for line in &lines {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let write_line = |out: &mut dyn Write, cells: &[String]| {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                // Numbers right-aligned, the last column unpadded.
                match i {
                    1 | 3 | 4 => text.push_str(&format!("{cell:>width$}  ")),
                    6 => text.push_str(cell),
                    _ => text.push_str(&format!("{cell:<width$}  ")),
                }
            }
            writeln!(out, "{}", text.trim_end())
        };
        write_line(out, &header.map(str::to_owned))?;
        for line in &lines {
            write_line(out, line)?;
        }
        let count = |phase: Phase| self.pairs.iter().filter(|row| row.phase == phase).count();
        let earlier = self.pairs.iter().filter(|row| row.earlier_run).count();
        let done = count(Phase::Done);
        let mut summary = format!(
            "{done} of {} pairs done and verified equal ({earlier} in an earlier run), {:.1} s",
            self.pairs.len(),
            self.seconds
        );
        if let Some(failed) = &self.failed {
            summary.push_str(&format!(
                "; stopped: pair {} failed ({} not started)",
                failed.pair,
                count(Phase::NotStarted)
            ));
        }
        writeln!(out, "{summary}")
    }
}

/// One row's cells: pair, wave, route, keys, time, verify, result (its error if any).
fn cells(row: &Row) -> [String; 7] {
    let mut result = match (&row.error, row.earlier_run) {
        (Some(error), _) => format!("failed: {error}"),
        (None, true) => "done (earlier run)".to_owned(),
        (None, false) => row.phase.name().to_owned(),
    };
    if row.phase == Phase::Done && !row.switch {
        result.push_str(", not switched");
    }
    let time = match row.phase {
        Phase::Waiting | Phase::NotStarted => "-".to_owned(),
        _ => format!("{:.1} s", row.seconds),
    };
    [
        row.name.clone(),
        row.wave.to_string(),
        format!("{} -> {}", row.source, row.target),
        row.keys.to_string(),
        time,
        row.verify.as_ref().map_or("-".to_owned(), |v| v.describe()),
        result,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fleet::board::Verified;

    #[test]
    fn the_table_names_the_failed_pair() {
        let mut done = Row::new("a", 1, "h:1".into(), "h:2".into());
        done.phase = Phase::Done;
        done.keys = 12;
        done.verify = Some(Verified {
            keys_compared: 12,
            differing: 0,
        });
        let mut failed = Row::new("b", 1, "h:3".into(), "h:4".into());
        failed.phase = Phase::Failed;
        failed.error = Some("the migration exited: no".into());
        let mut later = Row::new("c", 2, "h:5".into(), "h:6".into());
        later.phase = Phase::NotStarted;
        let failure = Failure {
            pair: "b".into(),
            error: "the migration exited: no".into(),
        };
        let report = FleetReport::new(vec![done, failed, later], 4, 1.5, Some(failure));
        assert!(!report.ok);
        let mut text = Vec::new();
        report.write_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("h:1 -> h:2"), "{text}");
        assert!(text.contains("equal"), "{text}");
        assert!(text.contains("failed: the migration exited: no"), "{text}");
        assert!(text.contains("not started"), "{text}");
        assert!(
            text.contains("stopped: pair b failed (1 not started)"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["failed"]["pair"], "b");
        assert_eq!(json["pairs"].as_array().unwrap().len(), 3);
    }
}
