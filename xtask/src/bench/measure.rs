//! Runs a child process and measures it: wall time, and peak resident memory from the
//! kernel's own accounting of that child (wait4's ru_maxrss), not from sampling.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// One run of a command.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    /// Peak resident set size of the child, in bytes.
    pub peak_rss: u64,
    /// CPU time the child used (user + system): its own cost, whatever else runs.
    pub cpu: Duration,
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
    /// What the command used until it ended all the same.
    pub sample: Sample,
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

/// The hidden xtask command that runs one measured process (see [`helper`]).
pub const HELPER: &str = "__measure";

/// Runs `command` once, through the [`helper`], with stdout discarded and stderr in
/// `scratch`.
///
/// Why a helper: Linux starts a process's ru_maxrss at the high-water mark of the memory it
/// was exec'd from, so a child spawned straight from this (large) process would report at
/// least this process's own peak. The helper is a fresh, small process.
pub fn run_once(
    command: &mut Command,
    scratch: &Path,
) -> Result<std::result::Result<Sample, Refusal>> {
    let stderr = fs::File::create(scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let output = through_helper(command)?
        .stdin(Stdio::null())
        .stderr(stderr)
        .output()
        .with_context(|| format!("cannot start {:?}", command.get_program()))?;
    finish(command, scratch, &output)
}

/// `command` wrapped in the [`helper`], with the same folder and environment.
fn through_helper(command: &Command) -> Result<Command> {
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    let mut wrapped = Command::new(exe);
    wrapped
        .arg(HELPER)
        .arg("--")
        .arg(command.get_program())
        .args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(name, value),
            None => wrapped.env_remove(name),
        };
    }
    Ok(wrapped)
}

/// Reads the helper's report: the sample, or why the measured process failed.
fn finish(
    command: &Command,
    scratch: &Path,
    output: &std::process::Output,
) -> Result<std::result::Result<Sample, Refusal>> {
    let report = String::from_utf8_lossy(&output.stdout);
    let Some((status, sample)) = parse_report(&report) else {
        bail!(
            "the measuring helper failed ({}) for {:?}: {}",
            output.status,
            command.get_program(),
            fs::read_to_string(scratch).unwrap_or_default().trim()
        );
    };
    if status_succeeded(status) {
        return Ok(Ok(sample));
    }
    let text = fs::read(scratch).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    Ok(Err(Refusal {
        status: describe_status(status),
        stderr_tail: lines[lines.len().saturating_sub(12)..].join("\n"),
        sample,
    }))
}

/// A measured process that runs until it is stopped: a long-running command (`ferry
/// migrate`) whose progress is read from its stderr meanwhile.
pub struct Running {
    helper: std::process::Child,
    command: Command,
    scratch: PathBuf,
    started: Instant,
}

/// Starts `command` through the [`helper`], stderr to `scratch`; see [`Running::stop`].
pub fn spawn(command: Command, scratch: &Path) -> Result<Running> {
    let stderr = fs::File::create(scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let started = Instant::now();
    let helper = through_helper(&command)?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot start {:?}", command.get_program()))?;
    Ok(Running {
        helper,
        command,
        scratch: scratch.to_path_buf(),
        started,
    })
}

impl Running {
    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// What the process has printed on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.scratch).unwrap_or_default()).into_owned()
    }

    /// Waits until the process prints `line` on stderr; the time since its start.
    /// `within` only catches a hang; an exit before the line is an error.
    pub fn wait_for_line(&mut self, line: &str, within: Duration) -> Result<Duration> {
        loop {
            let stderr = self.stderr();
            if stderr.contains(line) {
                return Ok(self.elapsed());
            }
            if self.has_exited() {
                bail!(
                    "{:?} ended before {line:?}:\n{stderr}",
                    self.command.get_program()
                );
            }
            if self.elapsed() > within {
                bail!("no {line:?} after {within:?}:\n{stderr}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process (and so the helper) has ended.
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.helper.try_wait(), Ok(None))
    }

    /// Sends `signal` to the measured process, waits for it, and returns its sample (peak
    /// RSS over its whole life) or why it failed.
    pub fn stop(mut self, signal: libc::c_int) -> Result<std::result::Result<Sample, Refusal>> {
        if let Some(pid) = self.measured_pid() {
            // SAFETY: plain syscall; the pid is the helper's own unreaped child.
            unsafe { libc::kill(pid, signal) };
        }
        let output = std::mem::replace(&mut self.helper, placeholder()?)
            .wait_with_output()
            .context("waiting for the measuring helper")?;
        finish(&self.command, &self.scratch, &output)
    }

    /// The helper's only child: the measured process.
    fn measured_pid(&self) -> Option<libc::pid_t> {
        let helper = self.helper.id();
        let children = fs::read_to_string(format!("/proc/{helper}/task/{helper}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }
}

/// A finished child to leave in place of the helper once it is waited for.
fn placeholder() -> Result<std::process::Child> {
    let mut child = Command::new("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start `true`")?;
    let _ = child.wait();
    Ok(child)
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(pid) = self.measured_pid() {
            // SAFETY: as in `stop`.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.helper.wait();
    }
}

/// `cargo xtask __measure -- PROGRAM ARGS…`: runs the program (stdout discarded, stderr
/// inherited), then prints "WAIT_STATUS WALL_NS PEAK_RSS_BYTES CPU_NS" on stdout.
pub fn helper(args: &[String]) -> Result<()> {
    let Some((program, rest)) = args
        .strip_prefix(&["--".to_string()])
        .and_then(|argv| argv.split_first())
    else {
        bail!("usage: xtask {HELPER} -- PROGRAM [ARGS...]");
    };
    let mut command = Command::new(program);
    command.args(rest);
    let (status, sample) = spawn_and_wait(&mut command)?;
    println!(
        "{status} {} {} {}",
        sample.wall.as_nanos(),
        sample.peak_rss,
        sample.cpu.as_nanos()
    );
    Ok(())
}

fn parse_report(report: &str) -> Option<(libc::c_int, Sample)> {
    let mut fields = report.split_whitespace();
    let status = fields.next()?.parse().ok()?;
    let wall = Duration::from_nanos(fields.next()?.parse().ok()?);
    let peak_rss = fields.next()?.parse().ok()?;
    let cpu = Duration::from_nanos(fields.next()?.parse().ok()?);
    Some((
        status,
        Sample {
            wall,
            peak_rss,
            cpu,
        },
    ))
}

/// Spawns `command` (stdout discarded, stderr inherited) and waits for it: its raw wait
/// status, wall time and peak RSS.
fn spawn_and_wait(command: &mut Command) -> Result<(libc::c_int, Sample)> {
    let started = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {:?}", command.get_program()))?;
    let (status, peak_rss, cpu) = wait_with_rusage(child.id())?;
    let wall = started.elapsed();
    // `child` was reaped by wait4 above; dropping a std Child neither waits nor kills.
    drop(child);
    Ok((
        status,
        Sample {
            wall,
            peak_rss,
            cpu,
        },
    ))
}

/// Waits for the child `pid` and returns its raw wait status, peak RSS in bytes and CPU
/// time.
fn wait_with_rusage(pid: u32) -> Result<(libc::c_int, u64, Duration)> {
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
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Ok((
        status,
        peak_kb * 1024,
        time(usage.ru_utime) + time(usage.ru_stime),
    ))
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

    #[test]
    fn a_process_that_holds_memory_shows_a_larger_peak() {
        // Measured directly: the test binary is small, so it does not inflate the peak.
        let (status, idle) = spawn_and_wait(&mut Command::new("true")).unwrap();
        assert!(status_succeeded(status));
        // The shell keeps 64 MB of text in a variable.
        let mut holder = Command::new("sh");
        holder.args([
            "-c",
            "x=$(head -c 64000000 /dev/zero | tr '\\0' a); test ${#x} -gt 0",
        ]);
        let (status, holding) = spawn_and_wait(&mut holder).unwrap();
        assert!(status_succeeded(status));
        assert!(idle.peak_rss < 16 << 20, "idle peak {}", idle.peak_rss);
        assert!(
            holding.peak_rss > 64_000_000,
            "holding peak {}",
            holding.peak_rss
        );
    }

    #[test]
    fn a_failure_is_described_by_its_status() {
        let mut command = Command::new("sh");
        command.args(["-c", "exit 3"]);
        let (status, _) = spawn_and_wait(&mut command).unwrap();
        assert!(!status_succeeded(status));
        assert_eq!(describe_status(status), "exit code 3");
        let (status, _) = spawn_and_wait(Command::new("sh").args(["-c", "kill -9 $$"])).unwrap();
        assert_eq!(describe_status(status), "killed by signal 9");
    }

    #[test]
    fn the_helpers_report_reads_back() {
        let (status, sample) = parse_report("768 1500000000 27000000 900000000\n").unwrap();
        assert_eq!(describe_status(status), "exit code 3");
        assert_eq!(sample.wall, Duration::from_millis(1500));
        assert_eq!(sample.peak_rss, 27_000_000);
        assert_eq!(sample.cpu, Duration::from_millis(900));
        assert!(parse_report("").is_none());
        assert!(parse_report("0 12").is_none());
        assert!(
            parse_report("0 12 34").is_none(),
            "a report without the CPU time"
        );
    }

    const NO_SAMPLE: Sample = Sample {
        wall: Duration::ZERO,
        peak_rss: 0,
        cpu: Duration::ZERO,
    };

    #[test]
    fn the_refusal_reason_is_the_last_telling_stderr_line() {
        let refusal = Refusal {
            status: "exit code 101".into(),
            stderr_tail: "thread 'main' panicked at src/x.rs:1:1:\nunknown type 42\n\
                          note: run with `RUST_BACKTRACE=1`\n"
                .into(),
            sample: NO_SAMPLE,
        };
        assert_eq!(refusal.reason(), "unknown type 42 (exit code 101)");
        let silent = Refusal {
            status: "killed by signal 9".into(),
            stderr_tail: String::new(),
            sample: NO_SAMPLE,
        };
        assert_eq!(silent.reason(), "killed by signal 9");
    }
}
