//! One pair's `ferry migrate`: a child process of this same binary, with the pair's state
//! file, a `/status` listener on a free loopback port and the fleet's control token (in
//! its environment, never on its command line). Its stderr goes to `migrate.log` in the
//! pair's folder; the line naming its listener and its last line are kept.

use super::plan::{PairPlan, PasswordFrom};
use crate::commands::cutover::status::StatusEndpoint;
use crate::control::ControlToken;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The variable the child reads the control token from.
const TOKEN_VAR: &str = "FERRY_FLEET_CONTROL_TOKEN";
/// What migrate logs once its listener is bound (see `commands/migrate`).
const SERVING: &str = "serving /metrics and /status on http://";
/// Longest wait for the child to name its listener (it binds before connecting).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the migration could not be started or watched.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("cannot start `ferry migrate`")]
    Spawn(#[source] std::io::Error),
    #[error("cannot write {}", path.display())]
    Log {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the migration exited ({status}): {last_line}")]
    Exited {
        status: ExitStatus,
        last_line: String,
    },
    #[error("the migration did not report its /status address within {} s", START_TIMEOUT.as_secs())]
    NoListener,
}

/// A running `ferry migrate`.
pub struct MigrateChild {
    process: Child,
    endpoint: StatusEndpoint,
    last_line: Arc<Mutex<String>>,
    log_thread: Option<JoinHandle<()>>,
}

impl MigrateChild {
    /// Starts the migration of `pair` with its state in `dir` and waits until it serves
    /// `/status`.
    pub fn start(pair: &PairPlan, dir: &Path, token: &ControlToken) -> Result<Self, ChildError> {
        let exe = std::env::current_exe().map_err(ChildError::Spawn)?;
        let log_path = dir.join("migrate.log");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| ChildError::Log {
                path: log_path.clone(),
                source,
            })?;
        let mut command = Command::new(exe);
        command
            .args(arguments(pair, dir))
            .env(TOKEN_VAR, token.expose())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        die_with_parent(&mut command);
        let mut process = command.spawn().map_err(ChildError::Spawn)?;
        let stderr = process.stderr.take().ok_or_else(|| {
            ChildError::Spawn(std::io::Error::other("the child's stderr is not a pipe"))
        })?;
        let last_line = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let kept = last_line.clone();
        let log_thread = std::thread::Builder::new()
            .name("ferry-fleet-log".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    // The log is for people after the fact; a full disk must not stop
                    // the migration.
                    let _ = writeln!(log, "{line}");
                    if let Some(address) = line.split(SERVING).nth(1) {
                        let _ = address_tx.send(address.trim().to_owned());
                    }
                    if let Ok(mut last) = kept.lock() {
                        *last = line;
                    }
                }
            })
            .map_err(ChildError::Spawn)?;
        let mut child = MigrateChild {
            process,
            endpoint: StatusEndpoint {
                addr: "127.0.0.1:0".parse().expect("a socket address"),
                token: Some(token.clone()),
            },
            last_line,
            log_thread: Some(log_thread),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match address_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(address) => {
                    if let Ok(parsed) = StatusEndpoint::parse(&address) {
                        child.endpoint.addr = parsed.addr;
                        return Ok(child);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            child.check_running()?;
            if Instant::now() >= deadline {
                break;
            }
        }
        child.check_running()?;
        Err(ChildError::NoListener)
    }

    /// Its listener, with the token `POST /stop` needs.
    pub fn endpoint(&self) -> &StatusEndpoint {
        &self.endpoint
    }

    /// An error when the migration has exited (whatever its status: it should not have).
    pub fn check_running(&mut self) -> Result<(), ChildError> {
        match self.process.try_wait().map_err(ChildError::Spawn)? {
            None => Ok(()),
            Some(status) => Err(self.exited(status)),
        }
    }

    /// [`MigrateChild::check_running`] for up to `timeout`: a run that stops answering
    /// is usually exiting, and its own last line says why better than the refused
    /// request does.
    pub fn check_running_for(&mut self, timeout: Duration) -> Result<(), ChildError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            if Instant::now() >= deadline {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `timeout` for the migration to end; an error unless it exited 0.
    pub fn wait(&mut self, timeout: Duration) -> Result<(), ChildError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.process.try_wait().map_err(ChildError::Spawn)? {
                return match status.success() {
                    true => Ok(()),
                    false => Err(self.exited(status)),
                };
            }
            if Instant::now() >= deadline {
                let _ = self.process.kill();
                let status = self.process.wait().map_err(ChildError::Spawn)?;
                return Err(self.exited(status));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The error for an exit: its status and the last line it wrote (its `ferry: …`
    /// error line), read to the end first.
    fn exited(&mut self, status: ExitStatus) -> ChildError {
        if let Some(thread) = self.log_thread.take() {
            let _ = thread.join();
        }
        let last = self.last_line.lock().map(|l| l.clone()).unwrap_or_default();
        ChildError::Exited {
            status,
            last_line: last.strip_prefix("ferry: ").unwrap_or(&last).to_owned(),
        }
    }
}

/// How long a migration asked to stop (SIGTERM) may drain before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Drop for MigrateChild {
    /// A pair that failed or was interrupted before its cutover leaves no migration
    /// behind: asked to stop as by Ctrl-C (it drains and keeps its state file), killed if
    /// it does not within `STOP_TIMEOUT`.
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            terminate(&self.process);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while let Ok(None) = self.process.try_wait() {
                if Instant::now() >= deadline {
                    let _ = self.process.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.process.wait();
        }
    }
}

#[cfg(unix)]
fn terminate(process: &Child) {
    if let Ok(pid) = i32::try_from(process.id()) {
        // SAFETY: kill(2) takes plain integers; the pid is our own child's, not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

#[cfg(not(unix))]
fn terminate(_process: &Child) {}

/// `ferry migrate`'s command line for the pair: URLs without passwords, the password
/// and token by variable name or file.
fn arguments(pair: &PairPlan, dir: &Path) -> Vec<String> {
    let mut args = vec![
        "migrate".to_owned(),
        "--source".into(),
        url_without_password(&pair.source),
        "--target".into(),
        url_without_password(&pair.target),
        "--state".into(),
        dir.join("migrate.state").display().to_string(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
        "--control-token-env".into(),
        TOKEN_VAR.into(),
    ];
    for (side, password) in [
        ("source", &pair.source_password),
        ("target", &pair.target_password),
    ] {
        match password {
            Some(PasswordFrom::Env(var)) => {
                args.extend([format!("--{side}-password-env"), var.clone()])
            }
            Some(PasswordFrom::File(path)) => args.extend([
                format!("--{side}-password-file"),
                path.display().to_string(),
            ]),
            None => {}
        }
    }
    args.extend(pair.policy_flags());
    args
}

/// The URL as the plan wrote it: the plan refused passwords in URLs, and the one read
/// from a variable or file goes to the child the same way.
fn url_without_password(url: &crate::url::ServerUrl) -> String {
    let mut url = url.clone();
    url.password = None;
    url.to_string()
}

/// The migration ends with the fleet, even when the fleet is killed outright: it would
/// otherwise go on streaming into its target with nobody to cut it over. In a process
/// group of its own, so that a terminal's Ctrl-C reaches the fleet alone, which then
/// stops its pairs in order ([`super::signals`]).
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    // SAFETY: prctl(2) with plain integers, the only call between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
}

#[cfg(not(unix))]
fn die_with_parent(_command: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fleet::plan;

    #[test]
    fn the_command_line_holds_no_password() {
        let text = r#"
state_dir = "s"
[[pair]]
name = "a"
source = "redis://u@10.0.0.1:6379"
target = "redis://10.0.1.1:6379"
source_password_env = "SRC"
target_password_file = "pw"
vector_set = "skip"
"#;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "file-secret\n").unwrap();
        let plan = plan::parse(&dir.path().join("p.toml"), text, &|_| {
            Some("env-secret".into())
        })
        .unwrap();
        let args = arguments(&plan.pairs[0], Path::new("/state/a")).join(" ");
        assert!(!args.contains("secret"), "{args}");
        assert!(args.contains("--source redis://u@10.0.0.1:6379"), "{args}");
        assert!(args.contains("--source-password-env SRC"), "{args}");
        assert!(args.contains("--target-password-file"), "{args}");
        assert!(args.contains("--vector-set skip"), "{args}");
        assert!(
            args.contains("--control-token-env FERRY_FLEET_CONTROL_TOKEN"),
            "{args}"
        );
    }
}
