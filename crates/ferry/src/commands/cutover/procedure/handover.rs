//! Clients move to the target: a replica target is promoted (`promote`), then the
//! operator's `--exec` hook points clients at it (`hook`). Both are undone on a later
//! failure ([`super::undo`]).

use super::{StepError, StepResult, Switch};
use crate::commands::cutover::hook;

impl Switch<'_> {
    /// The target stops following (relay mode) and takes writes.
    pub(super) fn promote(&mut self) -> StepResult {
        let target = self.target()?;
        let before = target.replication().map_err(StepError::TargetCommand)?;
        target
            .replicate_from(None)
            .map_err(StepError::TargetCommand)?;
        let detail = match &before.primary {
            Some((host, port)) => format!("REPLICAOF NO ONE (was replica of {host}:{port})"),
            None => "REPLICAOF NO ONE".to_owned(),
        };
        self.promoted_from = before.primary;
        Ok(((), detail))
    }

    pub(super) fn hook(&mut self) -> StepResult {
        let plan = self.plan;
        let Some(command) = &plan.exec else {
            return Ok(((), String::new()));
        };
        // A hook that fails may have moved some clients already: undo counts from here.
        self.hook_ran = true;
        let interrupt = self.interrupt;
        hook::run(
            command,
            (&plan.source.address(), &plan.target.address()),
            plan.exec_timeout,
            &|| interrupt.requested(),
        )?;
        Ok(((), "--exec exited 0".to_owned()))
    }
}
