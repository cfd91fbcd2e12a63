//! The switch itself, shared by cutover and rollback:
//!
//! ```text
//! preflight ─ pause ─ offset ─ drain ─ verify ─ [promote] ─ [hook] ─ stop ─ check ─
//!             release ─ kill ─ unpause
//!             └── writes paused on the source, from pause to unpause ──┘
//! ```
//!
//! Once the source is paused every failure unpauses it; a promotion is undone; the
//! migration keeps running unless the failure came after it was stopped (then its state
//! file resumes it).
//!
//! A cluster source is paused, read, drained and checked primary by primary
//! ([`Primaries`]), each against its own shard of the run's `/status`; a source split
//! over workers (`migrate --shards K/N`) against the worker following that primary, all
//! workers' statuses read as one (`runs.rs`).
//!
//! The order of the steps is `Switch::steps` below, the one place to read it; each step's
//! work is in the file named for it, and `undo.rs` puts back what the steps did.

mod drain;
mod error;
mod handover;
mod pause;
mod preflight;
mod release;
mod runs;
mod stop;
mod undo;
mod verify;

pub use error::StepError;

use super::interrupt::Interrupt;
use super::primaries::Primaries;
use super::report::{StepTime, SwitchReport};
use super::server::ServerLink;
use super::status::StatusEndpoint;
use crate::error::{chain, one_line};
use crate::policy::Policies;
use crate::url::ServerUrl;
use std::time::{Duration, Instant};

/// How often `/status` is read while waiting; the run refreshes it every 100 ms.
const POLL: Duration = Duration::from_millis(5);

/// Everything the switch needs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `cutover` or `rollback`, for messages.
    pub command: &'static str,
    /// The running migration's source (clients leave it) and target (they move to it).
    pub source: ServerUrl,
    pub target: ServerUrl,
    /// The run's `--status`, or each worker's.
    pub runs: Vec<StatusEndpoint>,
    pub exec: Option<String>,
    /// Moves clients back if a step after the hook fails.
    pub exec_undo: Option<String>,
    pub exec_timeout: Duration,
    pub max_lag_bytes: u64,
    pub pause_timeout: Duration,
    pub drain_timeout: Duration,
    pub verify_sample: u64,
    pub verify_timeout: Duration,
    pub promote: bool,
    pub kill_clients: bool,
    pub policies: Policies,
}

/// A step's value and the detail its line in the report shows.
type StepResult<T = ()> = Result<(T, String), StepError>;

/// A failed step: its name and why (boxed: it travels up through every step).
struct Failure {
    step: &'static str,
    reason: Box<StepError>,
}

/// An error and its sources, one line.
fn line(error: &(dyn std::error::Error + 'static)) -> String {
    one_line(chain(error))
}

/// The switch as it goes: what has been done so far, so a failure can be undone.
struct Switch<'a> {
    plan: &'a Plan,
    interrupt: &'a Interrupt,
    report: SwitchReport,
    source: Option<Primaries>,
    target: Option<ServerLink>,
    /// Whether the target is a cluster: markers per slot, no import mode, nothing to promote.
    target_cluster: bool,
    paused_at: Option<Instant>,
    /// Each source primary's offset once paused, in the order of [`Primaries::list`].
    paused_offsets: Vec<i64>,
    /// The target's primary before promotion, to go back to.
    promoted_from: Option<(String, u16)>,
    run_stopped: bool,
    stop_sent: bool,
    hook_ran: bool,
}

/// Runs the switch; the report says how it went (`ok`, the failed step, the pause). An
/// `interrupt` before the migration is told to stop undoes it like a failure.
pub fn run(plan: &Plan, interrupt: &Interrupt) -> SwitchReport {
    let mut switch = Switch {
        plan,
        interrupt,
        report: SwitchReport::new(plan.command, plan.source.address(), plan.target.address()),
        source: None,
        target: None,
        target_cluster: false,
        paused_at: None,
        paused_offsets: Vec::new(),
        promoted_from: None,
        run_stopped: false,
        stop_sent: false,
        hook_ran: false,
    };
    match switch.steps() {
        Ok(()) => switch.report.ok = true,
        Err(failure) => switch.fail(failure),
    }
    switch.report
}

impl Switch<'_> {
    fn steps(&mut self) -> Result<(), Failure> {
        let status = self.step("preflight", Self::preflight)?;
        let promote = self.plan.promote || status.is_relay();
        self.step("pause", Self::pause)?;
        self.step("offset", Self::offset)?;
        self.step("drain", Self::drain)?;
        if self.plan.verify_sample > 0 {
            self.step("verify", Self::verify)?;
        }
        if promote {
            self.step("promote", Self::promote)?;
        }
        if self.plan.exec.is_some() {
            self.step("hook", Self::hook)?;
        }
        self.step("stop", Self::stop_run)?;
        self.step("check", Self::check)?;
        self.step("release", Self::release_target)?;
        if self.plan.kill_clients {
            self.step("kill", Self::kill_clients)?;
        }
        self.step("unpause", Self::unpause)?;
        Ok(())
    }

    /// Times one step and records it.
    fn step<T>(
        &mut self,
        name: &'static str,
        action: impl FnOnce(&mut Self) -> StepResult<T>,
    ) -> Result<T, Failure> {
        let failure = |reason| Failure {
            step: name,
            reason: Box::new(reason),
        };
        self.not_interrupted().map_err(failure)?;
        let started = Instant::now();
        let result = action(self);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok((value, detail)) => {
                self.report.steps.push(StepTime {
                    step: name,
                    ms,
                    detail,
                });
                Ok(value)
            }
            Err(reason) => Err(failure(reason)),
        }
    }

    /// Fails once the operator asked to stop, unless the migration was already told to
    /// stop: from there finishing is quicker and safer than undoing.
    fn not_interrupted(&self) -> Result<(), StepError> {
        if self.interrupt.requested() && !self.stop_sent {
            return Err(StepError::Interrupted);
        }
        Ok(())
    }

    fn source(&mut self) -> Result<&mut Primaries, StepError> {
        self.source
            .as_mut()
            .ok_or(StepError::NoConnection("source"))
    }

    fn target(&mut self) -> Result<&mut ServerLink, StepError> {
        self.target
            .as_mut()
            .ok_or(StepError::NoConnection("target"))
    }
}

/// `1234`, or `127.0.0.1:7000 1234, 127.0.0.1:7001 99` for several primaries.
fn describe_offsets(addresses: &[String], offsets: &[i64]) -> String {
    match offsets {
        [one] => one.to_string(),
        _ => addresses
            .iter()
            .zip(offsets)
            .map(|(address, offset)| format!("{address} {offset}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
