//! Drain: the source is paused, so its stream stops at the offsets just read; the run
//! applies up to them, and then the target holds every write the source acknowledged.

use super::{describe_offsets, StepError, StepResult, Switch, POLL};
use std::time::Instant;

impl Switch<'_> {
    /// Waits until the run reports each primary's offset applied on the target.
    pub(super) fn drain(&mut self) -> StepResult {
        let plan = self.plan;
        let wanted = self.paused_offsets.clone();
        let deadline = Instant::now() + plan.drain_timeout;
        loop {
            let status = self.run_status()?;
            let mut applied = Vec::with_capacity(wanted.len());
            for index in 0..wanted.len() {
                applied.push(self.applied_for(&status, index)?);
            }
            if applied.iter().zip(&wanted).all(|(have, want)| have >= want) {
                let addresses = self.source()?.addresses();
                return Ok((
                    (),
                    format!("applied offset {}", describe_offsets(&addresses, &applied)),
                ));
            }
            if Instant::now() >= deadline {
                let addresses = self.source()?.addresses();
                return Err(StepError::NotDrained {
                    applied: describe_offsets(&addresses, &applied),
                    wanted: describe_offsets(&addresses, &wanted),
                    timeout_ms: plan.drain_timeout.as_millis(),
                });
            }
            self.not_interrupted()?;
            std::thread::sleep(POLL);
        }
    }
}
