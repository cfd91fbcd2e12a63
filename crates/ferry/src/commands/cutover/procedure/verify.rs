//! Verify: with both sides still, a sample of keys is compared, so that a switch never
//! moves clients onto a target that differs. Bounded in time: the source is paused.

use super::{StepError, StepResult, Switch, POLL};
use crate::verify::{self, VerifyOptions};
use std::time::{Duration, Instant};

impl Switch<'_> {
    /// A sample of keys compared while nothing moves.
    pub(super) fn verify(&mut self) -> StepResult {
        let plan = self.plan;
        let options = VerifyOptions {
            // Both sides are still: a second look only rules out a key expiring mid-read.
            rounds: 2,
            round_pause: Duration::from_millis(50),
            policies: plan.policies.clone(),
            ..VerifyOptions::new(plan.source.clone(), plan.target.clone())
        };
        // On its own thread, so that a slow one is abandoned (it only reads) at the limit.
        let (done, outcome) = std::sync::mpsc::channel();
        let sample = plan.verify_sample;
        std::thread::spawn(move || {
            let _ = done.send(verify::run_sampled(&options, sample));
        });
        let deadline = Instant::now() + plan.verify_timeout;
        let report = loop {
            match outcome.recv_timeout(POLL) {
                Ok(result) => break result.map_err(|e| StepError::Verify(Box::new(e)))?,
                Err(_) if Instant::now() >= deadline => {
                    return Err(StepError::VerifySlow {
                        timeout_ms: plan.verify_timeout.as_millis(),
                    })
                }
                Err(_) => self.not_interrupted()?,
            }
        };
        let compared = report.summary.keys_compared;
        if report.is_clean() {
            return Ok(((), format!("{compared} sampled keys equal")));
        }
        let first = report
            .differences
            .first()
            .map(|d| {
                let kinds: Vec<&str> = d.kinds().iter().map(|k| k.name()).collect();
                format!(
                    " (first: db{} {} differs by {})",
                    d.db,
                    d.key,
                    kinds.join(", ")
                )
            })
            .unwrap_or_default();
        Err(StepError::SampleDiffers {
            differing: report.summary.differing,
            compared,
            first,
        })
    }
}
