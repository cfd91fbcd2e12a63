//! Where every pair is now: the one table the status page, the record (`fleet.json`) and
//! the final report read. Pair threads write their row; nothing here holds a password
//! (addresses are `host:port`).

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Instant;

/// A pair's phase, as the page and the reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Not started yet (its wave, or a slot, has not come).
    Waiting,
    FullSync,
    Streaming,
    Cutover,
    Verifying,
    Done,
    Failed,
    /// Never started: the fleet stopped at a failure first.
    NotStarted,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::FullSync => "full sync",
            Phase::Streaming => "streaming",
            Phase::Cutover => "cutover",
            Phase::Verifying => "verifying",
            Phase::Done => "done",
            Phase::Failed => "failed",
            Phase::NotStarted => "not started",
        }
    }

    /// Done or failed: the row goes into the record.
    pub fn is_finished(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed)
    }
}

/// What `verify` found for a pair after its cutover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    pub keys_compared: u64,
    pub differing: u64,
}

impl Verified {
    pub fn describe(&self) -> String {
        match self.differing {
            0 => "equal".to_owned(),
            n => format!("{n} differ"),
        }
    }
}

/// One pair's row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    pub wave: u32,
    /// host:port of each side.
    pub source: String,
    pub target: String,
    pub phase: Phase,
    /// Keys copied so far (the migration's count), then the keys verify compared.
    pub keys: u64,
    /// Bytes of the source's stream not yet on the target, while streaming.
    pub lag_bytes: Option<i64>,
    /// From the pair's start to its end (or now).
    pub seconds: f64,
    pub verify: Option<Verified>,
    /// Why it failed, one line.
    pub error: Option<String>,
    /// Whether the pair is cut over (`switch` in the plan).
    pub switch: bool,
    /// The cutover happened (in this run or an earlier one): clients are on the target.
    #[serde(default)]
    pub switched: bool,
    /// Done by an earlier run of the same plan (from `fleet.json`), not redone.
    #[serde(default)]
    pub earlier_run: bool,
    #[serde(skip)]
    started: Option<Instant>,
}

impl Row {
    pub fn new(name: &str, wave: u32, source: String, target: String) -> Row {
        Row {
            name: name.to_owned(),
            wave,
            switch: true,
            switched: false,
            source,
            target,
            phase: Phase::Waiting,
            keys: 0,
            lag_bytes: None,
            seconds: 0.0,
            verify: None,
            error: None,
            earlier_run: false,
            started: None,
        }
    }
}

/// Every pair's row, in the plan's order.
#[derive(Debug)]
pub struct Board {
    rows: Mutex<Vec<Row>>,
}

impl Board {
    pub fn new(rows: Vec<Row>) -> Board {
        Board {
            rows: Mutex::new(rows),
        }
    }

    /// The rows as they are now, with the running pairs' time up to date.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = self.lock().clone();
        for row in &mut rows {
            if let (Some(started), false) = (row.started, row.phase.is_finished()) {
                row.seconds = started.elapsed().as_secs_f64();
            }
        }
        rows
    }

    pub fn row(&self, name: &str) -> Option<Row> {
        self.lock().iter().find(|row| row.name == name).cloned()
    }

    /// Changes `name`'s row.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut Row)) {
        if let Some(row) = self.lock().iter_mut().find(|row| row.name == name) {
            change(row);
        }
    }

    /// The pair starts now.
    pub fn start(&self, name: &str) {
        self.update(name, |row| {
            row.started = Some(Instant::now());
            row.phase = Phase::FullSync;
            row.error = None;
            row.verify = None;
        });
    }

    /// The pair's cutover is done.
    pub fn set_switched(&self, name: &str) {
        self.update(name, |row| row.switched = true);
    }

    pub fn set_phase(&self, name: &str, phase: Phase) {
        self.update(name, |row| row.phase = phase);
    }

    /// The pair ended, well or not: its time stops.
    pub fn finish(&self, name: &str, result: Result<Verified, String>) {
        self.update(name, |row| {
            if let Some(started) = row.started {
                row.seconds = started.elapsed().as_secs_f64();
            }
            row.lag_bytes = None;
            match result {
                Ok(verified) => {
                    row.phase = Phase::Done;
                    row.keys = verified.keys_compared;
                    row.verify = Some(verified);
                }
                Err(error) => {
                    row.phase = Phase::Failed;
                    row.error = Some(error);
                }
            }
        });
    }

    /// Every pair still waiting will not start in this run.
    pub fn abandon_waiting(&self) {
        for row in self.lock().iter_mut() {
            if row.phase == Phase::Waiting {
                row.phase = Phase::NotStarted;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Row>> {
        // A pair thread that panicked left its row as it was; the table stays usable.
        self.rows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
