//! The user's `--exec` command: run through `sh -c` while writes are paused, bounded in
//! time. Its output goes to ferry's stderr (stdout may carry ferry's JSON).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("cannot start sh")]
    Start(#[source] std::io::Error),
    #[error("--exec exited with {0}")]
    Failed(std::process::ExitStatus),
    #[error("--exec still running after {0} ms; killed")]
    TimedOut(u64),
    #[error("waiting for --exec failed")]
    Wait(#[source] std::io::Error),
}

/// How often a running hook is checked; small next to a pause window.
const POLL: Duration = Duration::from_millis(5);

/// Runs `command` with `FERRY_FROM`/`FERRY_TO` (host:port of the old and new server).
pub fn run(command: &str, from: &str, to: &str, timeout: Duration) -> Result<(), HookError> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("FERRY_FROM", from)
        .env("FERRY_TO", to)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .spawn()
        .map_err(HookError::Start)?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait().map_err(HookError::Wait)? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => return Err(HookError::Failed(status)),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HookError::TimedOut(timeout.as_millis() as u64));
            }
            None => std::thread::sleep(POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_the_environment() {
        let long = Duration::from_secs(10);
        assert!(run(
            "test \"$FERRY_FROM $FERRY_TO\" = 'a:1 b:2'",
            "a:1",
            "b:2",
            long
        )
        .is_ok());
        let err = run("exit 3", "a:1", "b:2", long).unwrap_err();
        assert!(
            matches!(err, HookError::Failed(s) if s.code() == Some(3)),
            "{err}"
        );
    }

    #[test]
    fn a_hook_that_hangs_is_killed() {
        let started = Instant::now();
        let err = run("sleep 30", "a", "b", Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, HookError::TimedOut(200)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
