//! Waves in ascending order; within a wave at most `concurrency` pairs at once, each on
//! a thread of its own. A pair that fails closes its wave: no new pair of it starts, the
//! running ones finish, and no later wave starts. An interrupt stops the running pairs
//! and starts none.

use super::board::{Phase, Verified};
use super::pair::{self, PairError};
use super::plan::{PairPlan, Plan};
use crate::error::Error;
use std::collections::VecDeque;
use std::sync::mpsc;

/// The first pair that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub pair: String,
    pub error: String,
}

/// How the fleet ended.
#[derive(Debug, Default)]
pub struct Ended {
    pub failure: Option<Failure>,
    /// The record could not be written at some point (the run went on).
    pub record_error: Option<Error>,
    /// Ctrl-C or SIGTERM stopped the fleet.
    pub interrupted: bool,
}

/// The plan, its limit and what every pair runs with.
pub struct Fleet<'a> {
    pub plan: &'a Plan,
    pub concurrency: u32,
    pub pairs: pair::Context<'a>,
}

impl Fleet<'_> {
    /// Runs every wave of the plan not already done (per the board).
    pub fn run(&self) -> Ended {
        let mut ended = Ended::default();
        for pairs in self.plan.waves().values() {
            let todo: VecDeque<&PairPlan> = pairs
                .iter()
                .copied()
                .filter(|pair| {
                    self.pairs
                        .board
                        .row(&pair.name)
                        .is_some_and(|row| row.phase != Phase::Done)
                })
                .collect();
            self.run_wave(todo, &mut ended);
            ended.interrupted = self.pairs.interrupt.requested();
            if ended.failure.is_some() || ended.interrupted {
                self.pairs.board.abandon_waiting();
                break;
            }
        }
        ended
    }

    fn run_wave(&self, mut todo: VecDeque<&PairPlan>, ended: &mut Ended) {
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::scope(|scope| {
            let mut running = 0u32;
            loop {
                while ended.failure.is_none()
                    && !self.pairs.interrupt.requested()
                    && running < self.concurrency
                {
                    let Some(pair) = todo.pop_front() else { break };
                    running += 1;
                    let done_tx = done_tx.clone();
                    scope.spawn(move || {
                        // A bug in one pair fails that pair, not the whole fleet's wait.
                        let life = std::panic::AssertUnwindSafe(|| pair::run(pair, &self.pairs));
                        let result =
                            std::panic::catch_unwind(life).unwrap_or(Err(PairError::Panicked));
                        // The receiver lives until every sender is done.
                        let _ = done_tx.send((pair, result));
                    });
                }
                if running == 0 {
                    break;
                }
                let Ok((pair, result)) = done_rx.recv() else {
                    break;
                };
                running -= 1;
                self.finished(pair, result, ended);
            }
        });
    }

    /// Records a pair's end; the first failure (not an interrupt) closes the wave.
    fn finished(&self, pair: &PairPlan, result: Result<Verified, PairError>, ended: &mut Ended) {
        let result = result.map_err(|error| {
            let line = crate::error::one_line(crate::error::chain(&error));
            if !matches!(error, PairError::Interrupted) {
                ended.failure.get_or_insert(Failure {
                    pair: pair.name.clone(),
                    error: line.clone(),
                });
            }
            line
        });
        self.pairs.board.finish(&pair.name, result);
        if let Err(error) = self.pairs.recorder.save(&self.pairs.board.rows()) {
            ended.record_error.get_or_insert(error);
        }
    }
}
