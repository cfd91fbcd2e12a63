//! One `ferry migrate` process kept running the way an operator's service manager keeps
//! it: started again when it exits, with the same arguments and state file. Every exit
//! that the soak did not cause is recorded with ferry's last error line, for the report.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The pause before a restart, as `RestartSec=` would give.
const RESTART_AFTER: Duration = Duration::from_secs(1);

pub struct Supervised {
    ferry: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    /// Exits the soak did not cause: ferry's last `ferry: …` line for each.
    pub exits: Vec<String>,
}

impl Supervised {
    pub fn start(ferry: &Path, args: Vec<String>, log: PathBuf) -> Result<Supervised> {
        let mut run = Supervised {
            ferry: ferry.to_path_buf(),
            args,
            log,
            child: None,
            exits: Vec::new(),
        };
        run.spawn()?;
        Ok(run)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let child = Command::new(&self.ferry)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start {}", self.ferry.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Restarts ferry if it exited on its own; returns its last error line then.
    pub fn check(&mut self) -> Result<Option<String>> {
        let exited = match self.child.as_mut() {
            Some(child) => child.try_wait()?.is_some(),
            None => true,
        };
        if !exited {
            return Ok(None);
        }
        let line = last_error_line(&self.log).unwrap_or_else(|| "(no error line)".into());
        self.exits.push(line.clone());
        sleep(RESTART_AFTER);
        self.spawn()?;
        Ok(Some(line))
    }

    /// SIGKILL, as an OOM kill or a lost machine, then a restart.
    pub fn kill_and_restart(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        sleep(RESTART_AFTER);
        self.spawn()
    }

    /// SIGTERM and the wait for a clean exit.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) touches no memory of ours; the pid is our own unreaped child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                anyhow::bail!("ferry did not stop within 60 s of SIGTERM");
            }
            sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    pub fn log(&self) -> &Path {
        &self.log
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last `ferry: …` line of a log, which is the error line of an exit.
pub fn last_error_line(log: &Path) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .find(|line| line.starts_with("ferry: "))
        .map(str::to_owned)
}

/// How often a log says `needle` (full syncs, reconnects).
pub fn count_in_log(log: &Path, needle: &str) -> usize {
    fs::read_to_string(log).map_or(0, |text| text.matches(needle).count())
}
