//! The write pause on the source: taken (`pause`), the offsets read under it (`offset`),
//! proved to have held once the run stopped (`check`), and lifted (`kill`, `unpause`).
//! A write acknowledged outside the window is on the target; one inside it waits.

use super::{describe_offsets, StepError, StepResult, Switch};
use std::time::{Duration, Instant};

/// `*1\r\n$4\r\nPING\r\n`: what a paused primary still adds to its stream.
const PING_BYTES: i64 = 14;
/// Slack for the two clocks timing the pause (ours and the server's).
const PAUSE_MARGIN: Duration = Duration::from_millis(200);

impl Switch<'_> {
    pub(super) fn pause(&mut self) -> StepResult {
        let timeout = self.plan.pause_timeout;
        // The window counts from the moment the command leaves: writes may already wait.
        self.paused_at = Some(Instant::now());
        if let Err(error) = self.source()?.pause_writes(timeout) {
            if !error.maybe_paused {
                self.paused_at = None;
            }
            return Err(error.into());
        }
        let primaries = self.source()?.list.len();
        Ok((
            (),
            match primaries {
                1 => format!("CLIENT PAUSE {} WRITE", timeout.as_millis()),
                n => format!(
                    "CLIENT PAUSE {} WRITE on {n} primaries",
                    timeout.as_millis()
                ),
            },
        ))
    }

    /// Every write the source accepted before the pause is at or below its offset now.
    pub(super) fn offset(&mut self) -> StepResult {
        let source = self.source()?;
        let offsets: Vec<i64> = source.replication()?.iter().map(|r| r.offset).collect();
        let detail = describe_offsets(&source.addresses(), &offsets);
        if source.cluster {
            self.report.paused_offsets = source
                .addresses()
                .into_iter()
                .zip(offsets.iter().copied())
                .collect();
        } else {
            self.report.paused_offset = offsets.first().copied();
        }
        self.paused_offsets = offsets;
        Ok(((), format!("source offset {detail}")))
    }

    /// Proof that no write reached the source since its offsets were read: the pause was
    /// still in force (the server's timer started after ours), and each primary's offset
    /// moved by replication PINGs at most (a primary keeps sending them while paused).
    pub(super) fn check(&mut self) -> StepResult {
        let wanted = self.paused_offsets.clone();
        self.pause_in_force(
            "while the migration stopped; writes made since may be missing on the target",
        )?;
        let source = self.source()?;
        let now: Vec<i64> = source.replication()?.iter().map(|r| r.offset).collect();
        let addresses = source.addresses();
        let mut moved_total = 0;
        for ((address, before), after) in addresses.iter().zip(&wanted).zip(&now) {
            let moved = after - before;
            if moved < 0 || moved % PING_BYTES != 0 {
                return Err(StepError::WrittenWhilePaused {
                    before: *before,
                    after: *after,
                    primary: address.clone(),
                });
            }
            moved_total += moved;
        }
        Ok((
            (),
            format!(
                "pause held; source offset {} (+{moved_total} bytes of PINGs)",
                describe_offsets(&addresses, &now)
            ),
        ))
    }

    /// Fails if the pause's safety timeout may have run out by now (`when` says where).
    pub(super) fn pause_in_force(&self, when: &'static str) -> Result<(), StepError> {
        let timeout = self.plan.pause_timeout;
        let paused_for = self.paused_at.map(|at| at.elapsed()).unwrap_or_default();
        if paused_for + PAUSE_MARGIN >= timeout {
            return Err(StepError::PauseRanOut {
                timeout_ms: timeout.as_millis(),
                when,
            });
        }
        Ok(())
    }

    pub(super) fn kill_clients(&mut self) -> StepResult {
        let killed = self.source()?.kill_clients()?;
        Ok(((), format!("closed {killed} client connections")))
    }

    pub(super) fn unpause(&mut self) -> StepResult {
        self.source()?.unpause()?;
        self.record_window();
        Ok(((), "CLIENT UNPAUSE".to_owned()))
    }

    /// The pause window's length, in the report, once writes flow again.
    pub(super) fn record_window(&mut self) {
        if let Some(at) = self.paused_at.take() {
            self.report.pause_window_ms = Some(at.elapsed().as_secs_f64() * 1000.0);
        }
    }
}
