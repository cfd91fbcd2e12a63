//! Stop: the run ends while the source is still paused, so that nothing written on the
//! old source from now on reaches the target (which clients now write to). Past this
//! step an interrupt no longer undoes the switch: finishing is quicker and safer.

use super::{StepError, StepResult, Switch, POLL};
use std::time::{Duration, Instant};

/// Longest wait for the run to exit after `POST /stop`; it has nothing left to apply.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Switch<'_> {
    pub(super) fn stop_run(&mut self) -> StepResult {
        // Past the pause, writes reach the source again: the run must go on carrying them.
        self.pause_in_force("before the migration was stopped")?;
        // Every worker is told first, then waited for: they stop together.
        for endpoint in &self.plan.runs {
            endpoint.stop()?;
        }
        self.stop_sent = true;
        let deadline = Instant::now() + STOP_TIMEOUT;
        for endpoint in &self.plan.runs {
            loop {
                match endpoint.status() {
                    Ok(status) if status.phase == "stopped" => break,
                    Err(error) if error.is_refused() => break,
                    Ok(_) | Err(_) if Instant::now() >= deadline => {
                        return Err(StepError::NotStopped {
                            run: endpoint.addr,
                            timeout_s: STOP_TIMEOUT.as_secs(),
                        })
                    }
                    _ => std::thread::sleep(POLL),
                }
            }
        }
        self.run_stopped = true;
        let which = match self.plan.runs.len() {
            1 => "run",
            _ => "runs",
        };
        Ok((
            (),
            format!("the {which} at {} stopped", self.run_addresses()),
        ))
    }
}
