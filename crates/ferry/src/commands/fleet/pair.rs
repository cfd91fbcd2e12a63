//! One pair's life: migrate until in sync, cut over (ferry cutover's own procedure,
//! against the child's `/status`), then verify the target against the source.
//!
//! ```text
//! waiting ─ full sync ─ streaming ─ (in sync) cutover ─ verifying ─ done
//!                 └──────── any failure ─────────┴──────────┴──── failed
//! ```
//!
//! A pair with `switch = false` is verified while its migration still streams, and the
//! migration is then stopped (its state file resumes it): no cutover.

use super::board::{Board, Phase, Verified};
use super::child::{ChildError, MigrateChild};
use super::plan::PairPlan;
use super::record::Recorder;
use crate::commands::cutover::interrupt::Interrupt;
use crate::commands::cutover::procedure::{self, Plan as SwitchPlan};
use crate::commands::cutover::status::StatusError;
use crate::control::ControlToken;
use crate::error::{chain, one_line, Error};
use crate::verify::{self, VerifyOptions};
use std::path::Path;
use std::time::Duration;

/// How often the migration's `/status` is read while it syncs.
const POLL: Duration = Duration::from_millis(100);
/// A `/status` request that fails is retried after this (the run may be exiting)...
const UNANSWERED_GRACE: Duration = Duration::from_secs(1);
/// ...and fails the pair after this many in a row.
const MAX_UNANSWERED: u32 = 3;
/// Longest wait for the migration to exit once the cutover stopped it.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a pair failed; its `Display` is the report's one line.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("cannot create {}: {source}", path.display())]
    Folder {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Migration(#[from] ChildError),
    #[error("the migration's /status: {}", one_line(chain(.0)))]
    Status(StatusError),
    /// The procedure's own line: the step that failed, why, and what state it left.
    #[error("{0}")]
    Cutover(String),
    #[error("verify: {}", one_line(chain(.0)))]
    Verify(Error),
    #[error("verify found {differing} of {compared} keys differing")]
    Differences { differing: u64, compared: u64 },
    #[error("internal error (please report)")]
    Panicked,
    #[error("cut over, but cannot record it: {}", one_line(chain(.0)))]
    Record(Error),
    /// Ctrl-C or SIGTERM to the fleet: the migration was stopped (it keeps its state
    /// file), a cutover under way undone.
    #[error("interrupted (Ctrl-C or SIGTERM); a rerun resumes it")]
    Interrupted,
}

/// What every pair runs with.
pub struct Context<'a> {
    /// `state_dir/<pair>/` holds the pair's migrate state file and log.
    pub state_dir: &'a Path,
    pub token: &'a ControlToken,
    pub board: &'a Board,
    pub interrupt: &'a Interrupt,
    pub recorder: &'a Recorder,
}

/// Runs the pair to its end; the board follows every phase.
pub fn run(pair: &PairPlan, fleet: &Context) -> Result<Verified, PairError> {
    let (board, interrupt) = (fleet.board, fleet.interrupt);
    board.start(&pair.name);
    if board.row(&pair.name).is_some_and(|row| row.switched) {
        // Cut over by an earlier run: the clients are on the target, so neither a second
        // migration nor a second switch; only the comparison is left.
        board.set_phase(&pair.name, Phase::Verifying);
        return verify(pair);
    }
    let dir = fleet.state_dir.join(&pair.name);
    std::fs::create_dir_all(&dir).map_err(|source| PairError::Folder {
        path: dir.clone(),
        source,
    })?;
    let mut child = MigrateChild::start(pair, &dir, fleet.token)?;
    wait_in_sync(pair, &mut child, board, interrupt)?;
    if pair.switch {
        board.set_phase(&pair.name, Phase::Cutover);
        cut_over(pair, &child, interrupt)?;
        board.set_switched(&pair.name);
        fleet
            .recorder
            .save(&board.rows())
            .map_err(PairError::Record)?;
        child.wait(EXIT_TIMEOUT)?;
        board.set_phase(&pair.name, Phase::Verifying);
        verify(pair)
    } else {
        // Compared while the migration still streams: verify's later rounds re-check
        // the keys that in-flight writes made differ.
        board.set_phase(&pair.name, Phase::Verifying);
        let verified = verify(pair)?;
        child.endpoint().stop().map_err(PairError::Status)?;
        child.wait(EXIT_TIMEOUT)?;
        Ok(verified)
    }
}

/// Follows the migration's `/status` until it reports the target in sync.
fn wait_in_sync(
    pair: &PairPlan,
    child: &mut MigrateChild,
    board: &Board,
    interrupt: &Interrupt,
) -> Result<(), PairError> {
    let mut unanswered = 0;
    loop {
        if interrupt.requested() {
            return Err(PairError::Interrupted);
        }
        child.check_running()?;
        let status = match child.endpoint().status() {
            Ok(status) => {
                unanswered = 0;
                status
            }
            Err(error) => {
                child.check_running_for(UNANSWERED_GRACE)?;
                unanswered += 1;
                if unanswered >= MAX_UNANSWERED {
                    return Err(PairError::Status(error));
                }
                continue;
            }
        };
        let phase = match status.phase.as_str() {
            "starting" | "full-sync" => Phase::FullSync,
            _ => Phase::Streaming,
        };
        board.update(&pair.name, |row| {
            row.phase = phase;
            row.keys = status.keys_written;
            row.lag_bytes = Some(status.lag_bytes);
        });
        if status.phase == "in-sync" {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

/// `ferry cutover`'s procedure with its defaults and the pair's hook.
fn cut_over(pair: &PairPlan, child: &MigrateChild, interrupt: &Interrupt) -> Result<(), PairError> {
    let plan = SwitchPlan {
        command: "cutover",
        source: pair.source.clone(),
        target: pair.target.clone(),
        runs: vec![child.endpoint().clone()],
        exec: pair.exec.clone(),
        exec_undo: pair.exec_undo.clone(),
        exec_timeout: Duration::from_secs(10),
        max_lag_bytes: 8 << 20,
        pause_timeout: Duration::from_secs(30),
        drain_timeout: Duration::from_secs(5),
        verify_sample: 100,
        verify_timeout: Duration::from_secs(1),
        promote: false,
        kill_clients: true,
        policies: pair.policies.clone(),
    };
    let report = procedure::run(&plan, interrupt);
    match report.error {
        None if report.ok => Ok(()),
        // The procedure undid the switch for the interrupt (or failed as it came).
        _ if interrupt.requested() => Err(PairError::Interrupted),
        error => Err(PairError::Cutover(error.unwrap_or_else(|| {
            format!(
                "cutover failed at step {}",
                report.failed_step.unwrap_or("?")
            )
        }))),
    }
}

/// Every key of the target against the source, under the pair's policies.
fn verify(pair: &PairPlan) -> Result<Verified, PairError> {
    let options = VerifyOptions {
        policies: pair.policies.clone(),
        ..VerifyOptions::new(pair.source.clone(), pair.target.clone())
    };
    let report = verify::run(&options).map_err(PairError::Verify)?;
    let verified = Verified {
        keys_compared: report.summary.keys_compared,
        differing: report.summary.differing,
    };
    match verified.differing {
        0 => Ok(verified),
        differing => Err(PairError::Differences {
            differing,
            compared: verified.keys_compared,
        }),
    }
}
