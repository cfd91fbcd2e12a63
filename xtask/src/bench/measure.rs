//! Runs a child process and measures it: wall time, and peak resident memory from the
//! kernel's own accounting of that child (wait4's ru_maxrss), not from sampling.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// One run of a command.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    /// Peak resident set size of the child, in bytes.
    pub peak_rss: u64,
}

/// How a command did over several runs.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    /// The fastest run (least disturbed by the other work on a shared machine).
    pub best_wall: Duration,
    /// The largest peak RSS of any run: memory is reported conservatively.
    pub peak_rss: u64,
    pub runs: usize,
}

/// Why a command did not complete: its exit status and the end of what it printed on stderr.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: String,
    pub stderr_tail: String,
}

impl Refusal {
    /// The most telling line of stderr: the last one that is not a backtrace note.
    pub fn reason(&self) -> String {
        let line = self
            .stderr_tail
            .lines()
            .map(str::trim)
            .rfind(|line| {
                !line.is_empty() && !line.starts_with("note:") && !line.starts_with("stack")
            })
            .unwrap_or("");
        if line.is_empty() {
            self.status.clone()
        } else {
            format!("{line} ({})", self.status)
        }
    }
}

/// Runs `make()` `runs` times; stops at the first run that fails and returns its refusal.
/// `scratch` receives the child's stderr (read back on failure).
pub fn best_of(
    runs: usize,
    scratch: &Path,
    mut make: impl FnMut() -> Command,
) -> Result<std::result::Result<Measurement, Refusal>> {
    let mut best: Option<Measurement> = None;
    for _ in 0..runs.max(1) {
        let sample = match run_once(&mut make(), scratch)? {
            Ok(sample) => sample,
            Err(refusal) => return Ok(Err(refusal)),
        };
        best = Some(match best {
            None => Measurement {
                best_wall: sample.wall,
                peak_rss: sample.peak_rss,
                runs: 1,
            },
            Some(so_far) => Measurement {
                best_wall: so_far.best_wall.min(sample.wall),
                peak_rss: so_far.peak_rss.max(sample.peak_rss),
                runs: so_far.runs + 1,
            },
        });
    }
    best.context("no run").map(Ok)
}

/// Runs `command` once with stdout discarded and stderr in `scratch`.
pub fn run_once(
    command: &mut Command,
    scratch: &Path,
) -> Result<std::result::Result<Sample, Refusal>> {
    let stderr = fs::File::create(scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let started = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot start {:?}", command.get_program()))?;
    let (status, peak_rss) = wait_with_rusage(child.id())?;
    let wall = started.elapsed();
    // `child` was reaped by wait4 above; dropping a std Child neither waits nor kills.
    drop(child);
    if status_succeeded(status) {
        return Ok(Ok(Sample { wall, peak_rss }));
    }
    let text = fs::read(scratch).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    Ok(Err(Refusal {
        status: describe_status(status),
        stderr_tail: lines[lines.len().saturating_sub(12)..].join("\n"),
    }))
}

/// Waits for the child `pid` and returns its raw wait status and peak RSS in bytes.
fn wait_with_rusage(pid: u32) -> Result<(libc::c_int, u64)> {
    let pid = libc::pid_t::try_from(pid).context("process id out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; wait4 fills it in and we read it only on success.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to live locals; pid is our own unreaped child.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            bail!("wait4 on process {pid} failed: {err}");
        }
    }
    // Linux reports ru_maxrss in kilobytes.
    let peak_kb = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    Ok((status, peak_kb * 1024))
}

fn status_succeeded(status: libc::c_int) -> bool {
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

fn describe_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each test its own file: tests run in parallel.
    fn scratch(test: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "xtask-measure-{}-{test}.stderr",
            std::process::id()
        ))
    }

    #[test]
    fn a_process_that_holds_memory_shows_a_larger_peak() {
        let idle = run_once(&mut Command::new("true"), &scratch("idle"))
            .unwrap()
            .unwrap();
        // The shell keeps 64 MB of text in a variable.
        let mut holder = Command::new("sh");
        holder.args([
            "-c",
            "x=$(head -c 64000000 /dev/zero | tr '\\0' a); test ${#x} -gt 0",
        ]);
        let holding = run_once(&mut holder, &scratch("holder")).unwrap().unwrap();
        assert!(idle.peak_rss < 16 << 20, "idle peak {}", idle.peak_rss);
        assert!(
            holding.peak_rss > 64_000_000,
            "holding peak {}",
            holding.peak_rss
        );
    }

    #[test]
    fn a_failing_command_is_a_refusal_with_its_message() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo 'first'; echo 'cannot read: bad type 42' >&2; exit 3",
        ]);
        let refusal = run_once(&mut command, &scratch("failing"))
            .unwrap()
            .unwrap_err();
        assert_eq!(refusal.status, "exit code 3");
        assert_eq!(refusal.reason(), "cannot read: bad type 42 (exit code 3)");
    }
}
