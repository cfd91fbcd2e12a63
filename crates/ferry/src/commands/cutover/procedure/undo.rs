//! After a failed step: what the steps so far changed is put back, in the order that
//! keeps clients safe (clients back, the target a replica again, then writes on the
//! source), and the one-line error says the failure and where each thing stands.

use super::{line, Failure, StepError, Switch};
use crate::commands::cutover::hook;
use crate::commands::cutover::primaries::{Primaries, PrimaryError};

impl Switch<'_> {
    /// Puts back what the steps so far changed, and words the one-line error.
    pub(super) fn fail(&mut self, failure: Failure) {
        let mut after = Vec::new();
        if self.hook_ran {
            // Clients go back before the source takes writes again.
            let plan = self.plan;
            after.push(match &plan.exec_undo {
                // Not cancellable: clients must go back before the source takes writes.
                Some(undo) => match hook::run(
                    undo,
                    (&plan.target.address(), &plan.source.address()),
                    plan.exec_timeout,
                    &|| false,
                ) {
                    Ok(()) => "--exec-undo moved clients back".to_owned(),
                    Err(e) => format!(
                        "--exec-undo failed ({}): clients may be on both servers",
                        line(&e)
                    ),
                },
                None => {
                    "--exec ran and is not undone (no --exec-undo): clients may be on both servers"
                        .to_owned()
                }
            });
        }
        if let Some(primary) = self.promoted_from.take() {
            let (host, port) = &primary;
            let demoted = self.target().and_then(|t| {
                t.replicate_from(Some(&primary))
                    .map_err(StepError::TargetCommand)
            });
            match demoted {
                Ok(()) => after.push(format!("the target follows {host}:{port} again")),
                Err(e) => after.push(format!(
                    "the target stays promoted (REPLICAOF {host} {port} failed: {})",
                    line(&e)
                )),
            }
        }
        if self.paused_at.is_some() {
            match self.unpause_anyway() {
                Ok(()) => {
                    self.record_window();
                    let ms = self.report.pause_window_ms.unwrap_or_default();
                    after.push(format!("the source is unpaused (writes paused {ms:.0} ms)"));
                }
                Err(e) => after.push(format!(
                    "CLIENT UNPAUSE failed ({}): the source unpauses by itself within {} ms",
                    line(&e),
                    self.plan.pause_timeout.as_millis()
                )),
            }
        } else {
            after.push("the source was not paused".to_owned());
        }
        after.push(if self.run_stopped {
            "the migration is stopped: start it again with the same --state to resume".to_owned()
        } else if self.stop_sent {
            "the migration was asked to stop and may be stopping: check it, and start it \
             again with the same --state if it ended"
                .to_owned()
        } else {
            "the migration keeps running".to_owned()
        });
        self.report.failed_step = Some(failure.step);
        self.report.error = Some(format!(
            "{} failed at step {}: {}; {}",
            self.plan.command,
            failure.step,
            line(&*failure.reason),
            after.join("; ")
        ));
    }

    /// CLIENT UNPAUSE on every source primary, on new connections if needed.
    fn unpause_anyway(&mut self) -> Result<(), PrimaryError> {
        match self.source.as_mut() {
            Some(source) => source.unpause(),
            None => Primaries::connect(&self.plan.source)?.unpause(),
        }
    }
}
