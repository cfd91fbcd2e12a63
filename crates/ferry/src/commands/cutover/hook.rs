//! The user's `--exec` command: run through `sh -c` while writes are paused, bounded in
//! time. Its output goes to ferry's stderr (stdout may carry ferry's JSON).

use std::process::{Child, Command, Stdio};
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
    #[error("interrupted (Ctrl-C or SIGTERM) while --exec ran; killed")]
    Interrupted,
}

/// How often a running hook is checked; small next to a pause window.
const POLL: Duration = Duration::from_millis(5);

/// Runs `command` with `FERRY_FROM`/`FERRY_TO` (host:port of the old and new server); it is
/// killed when `cancelled` turns true.
pub fn run(
    command: &str,
    (from, to): (&str, &str),
    timeout: Duration,
    cancelled: &dyn Fn() -> bool,
) -> Result<(), HookError> {
    let mut shell = Command::new("sh");
    // Its own process group, so that a kill reaches what the script started too.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut shell, 0);
    let mut child = shell
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
                kill(&mut child);
                return Err(HookError::TimedOut(timeout.as_millis() as u64));
            }
            None if cancelled() => {
                kill(&mut child);
                return Err(HookError::Interrupted);
            }
            None => std::thread::sleep(POLL),
        }
    }
}

/// Kills the hook and everything it started, then reaps it.
fn kill(child: &mut Child) {
    #[cfg(unix)]
    if let Ok(group) = i32::try_from(child.id()) {
        // SAFETY: kill(2) takes plain integers; the group is the one the hook leads.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_the_environment() {
        let long = Duration::from_secs(10);
        assert!(run(
            "test \"$FERRY_FROM $FERRY_TO\" = 'a:1 b:2'",
            ("a:1", "b:2"),
            long,
            &|| false
        )
        .is_ok());
        let err = run("exit 3", ("a:1", "b:2"), long, &|| false).unwrap_err();
        assert!(
            matches!(err, HookError::Failed(s) if s.code() == Some(3)),
            "{err}"
        );
    }

    #[test]
    fn a_hook_that_hangs_is_killed() {
        let started = Instant::now();
        let err = run("sleep 30", ("a", "b"), Duration::from_millis(200), &|| {
            false
        })
        .unwrap_err();
        assert!(matches!(err, HookError::TimedOut(200)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn an_interrupted_hook_is_killed_at_once() {
        let started = Instant::now();
        let asked_at = started + Duration::from_millis(100);
        let cancelled = || Instant::now() >= asked_at;
        let err = run("sleep 30", ("a", "b"), Duration::from_secs(60), &cancelled).unwrap_err();
        assert!(matches!(err, HookError::Interrupted), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
