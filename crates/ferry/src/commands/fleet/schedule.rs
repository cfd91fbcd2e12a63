//! Waves in ascending order; within a wave at most `concurrency` pairs at once, each on
//! a thread of its own. A pair that fails closes its wave: no new pair of it starts, the
//! running ones finish, and no later wave starts.

use super::board::{Board, Phase};
use super::pair;
use super::plan::{PairPlan, Plan};
use super::record;
use crate::control::ControlToken;
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
}

/// Runs every wave of `plan` not already done (per `board`).
pub fn run(plan: &Plan, concurrency: u32, token: &ControlToken, board: &Board) -> Ended {
    let record_path = record::path(&plan.state_dir);
    let mut ended = Ended::default();
    for pairs in plan.waves().values() {
        let todo: VecDeque<&PairPlan> = pairs
            .iter()
            .copied()
            .filter(|pair| {
                board
                    .row(&pair.name)
                    .is_some_and(|row| row.phase != Phase::Done)
            })
            .collect();
        run_wave(
            todo,
            concurrency,
            plan,
            token,
            board,
            &record_path,
            &mut ended,
        );
        if ended.failure.is_some() {
            board.abandon_waiting();
            break;
        }
    }
    ended
}

fn run_wave(
    mut todo: VecDeque<&PairPlan>,
    concurrency: u32,
    plan: &Plan,
    token: &ControlToken,
    board: &Board,
    record_path: &std::path::Path,
    ended: &mut Ended,
) {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let mut running = 0u32;
        loop {
            while ended.failure.is_none() && running < concurrency {
                let Some(pair) = todo.pop_front() else { break };
                running += 1;
                let done_tx = done_tx.clone();
                scope.spawn(move || {
                    // A bug in one pair fails that pair, not the whole fleet's wait.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        pair::run(pair, &plan.state_dir, token, board)
                    }))
                    .unwrap_or(Err(pair::PairError::Panicked));
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
            let result = result.map_err(|e| crate::error::one_line(crate::error::chain(&e)));
            if let Err(error) = &result {
                ended.failure.get_or_insert(Failure {
                    pair: pair.name.clone(),
                    error: error.clone(),
                });
            }
            board.finish(&pair.name, result);
            if let Err(error) = record::save(record_path, &board.rows()) {
                ended.record_error.get_or_insert(error);
            }
        }
    });
}
