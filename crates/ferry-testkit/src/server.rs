//! A real Redis/Valkey server process in its own temporary folder, on a free loopback port.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::manifest::{servers_manifest, ServerEntry};
use crate::tls::ServerTls;
use crate::ServerKind;

/// The dump file name every started server uses.
pub const DB_FILENAME: &str = "dump.rdb";
/// How long a server may take to answer PING (loading a large RDB included).
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Command replies may be slow (SAVE, large LRANGE) but never this slow.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
const PORT_ATTEMPTS: usize = 8;

/// A running server. Dropping it kills the process and removes its folder, also when a test
/// panics.
pub struct Server {
    kind: ServerKind,
    port: u16,
    /// The TLS port, for servers started with [`Server::start_with_tls`].
    tls_port: Option<u16>,
    entry: ServerEntry,
    child: Child,
    log: PathBuf,
    /// The command-line configuration it was started with, kept for [`Server::restart`].
    extra: Vec<String>,
    // Declared last: the process is killed (in Drop) before its folder goes away.
    dir: TempDir,
}

enum StartFailure {
    PortTaken,
    Failed(anyhow::Error),
}

impl Server {
    /// Starts an empty server: no persistence, debug commands enabled where they exist.
    pub fn start(kind: ServerKind) -> Result<Server> {
        Self::launch(kind, None, &[], None)
    }

    /// Starts a sentinel (`--sentinel`) with these lines added to its configuration file
    /// (`sentinel monitor …`), which it rewrites as it learns the group.
    pub fn start_sentinel(kind: ServerKind, config: &[String]) -> Result<Server> {
        Self::launch_with(kind, None, &["--sentinel"], None, config)
    }

    /// [`Server::start_sentinel`] serving TLS on [`Server::tls_port`] too (its plain port
    /// stays open for the test's own clients).
    pub fn start_sentinel_with_tls(
        kind: ServerKind,
        tls: &ServerTls,
        config: &[String],
    ) -> Result<Server> {
        Self::launch_with(kind, None, &["--sentinel"], Some(tls), config)
    }

    /// Starts a server that loads `rdb` at startup. If the server refuses the file (exits
    /// while loading), the error carries the last lines of its log.
    pub fn start_with_rdb(kind: ServerKind, rdb: &Path) -> Result<Server> {
        Self::launch(kind, Some(rdb), &[], None)
    }

    /// Starts a server with extra command-line configuration, e.g. `["--maxmemory", "10mb"]`.
    pub fn start_with_args(kind: ServerKind, extra: &[&str]) -> Result<Server> {
        Self::launch(kind, None, extra, None)
    }

    /// Starts a server that also serves TLS on [`Server::tls_port`] (see
    /// [`Server::tls_url`]). Its plain port stays open on loopback for the test's own
    /// clients (seeding, snapshots), which speak no TLS; what is under test connects to
    /// the TLS port only.
    pub fn start_with_tls(kind: ServerKind, tls: &ServerTls, extra: &[&str]) -> Result<Server> {
        Self::launch(kind, None, extra, Some(tls))
    }

    fn launch(
        kind: ServerKind,
        rdb: Option<&Path>,
        extra: &[&str],
        tls: Option<&ServerTls>,
    ) -> Result<Server> {
        Self::launch_with(kind, rdb, extra, tls, &[])
    }

    fn launch_with(
        kind: ServerKind,
        rdb: Option<&Path>,
        extra: &[&str],
        tls: Option<&ServerTls>,
        config_lines: &[String],
    ) -> Result<Server> {
        let manifest = servers_manifest()?;
        let entry = manifest.entry(kind)?.clone();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let tls_port = match tls {
                Some(_) => Some(loop {
                    let other = free_port()?;
                    if other != port {
                        break other;
                    }
                }),
                None => None,
            };
            let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            if let (Some(tls), Some(tls_port)) = (tls, tls_port) {
                extra.extend(tls.args(tls_port));
            }
            let extra_args: Vec<&str> = extra.iter().map(String::as_str).collect();
            let dir = tempfile::Builder::new()
                .prefix(&format!("ferry-{}-", kind.name()))
                .tempdir()
                .context("cannot create a temporary folder for the server")?;
            if let Some(rdb) = rdb {
                fs::copy(rdb, dir.path().join(DB_FILENAME))
                    .with_context(|| format!("cannot copy {} for {kind}", rdb.display()))?;
            }
            let config = dir.path().join("server.conf");
            let mut text = config_text(kind, port, dir.path());
            for line in config_lines {
                text.push_str(line);
                text.push('\n');
            }
            fs::write(&config, text).context("cannot write the server configuration")?;
            let log = dir.path().join("server.log");
            let child = spawn(&entry, &config, &extra_args, dir.path(), &log)
                .with_context(|| format!("cannot start {kind}"))?;
            let server = Server {
                kind,
                port,
                tls_port,
                entry: entry.clone(),
                child,
                log,
                extra,
                dir,
            };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                // Another process took the port between our probe and the server's bind.
                Err(StartFailure::PortTaken) => continue,
                Err(StartFailure::Failed(err)) => return Err(err),
            }
        }
        bail!("{kind}: no free port after {PORT_ATTEMPTS} attempts")
    }

    /// Stops the server with `SHUTDOWN SAVE` (its data saved to its dump file, and to its
    /// append-only file when that is on) and starts it again on the same port, folder and
    /// configuration, so it comes back with its data.
    pub fn restart(&mut self) -> Result<()> {
        let mut connection = self.try_client()?;
        // The server exits while answering: the reply, if any, does not matter.
        let _ = redis::cmd("SHUTDOWN")
            .arg("SAVE")
            .query::<()>(&mut connection);
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!(
                    "{} did not exit within {READY_TIMEOUT:?} of SHUTDOWN SAVE; last log lines:\n{}",
                    self.kind,
                    self.log_tail(15)
                );
            }
            sleep(Duration::from_millis(20));
        }
        self.start_again()
    }

    /// Kills the server (SIGKILL: nothing saved, as in a crash or a power cut) and starts it
    /// again on the same port, folder and configuration. It comes back with what it had
    /// persisted by itself (its append-only file), or empty without persistence.
    pub fn crash_and_restart(&mut self) -> Result<()> {
        self.kill()?;
        self.start_again()
    }

    /// Kills the server (SIGKILL) and waits for it to be gone; [`Server::start_again`]
    /// brings it back. In between its files can be changed (e.g. an append-only file cut
    /// short, as a machine crash before fsync leaves it).
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Starts a stopped server again on the same port, folder and configuration.
    pub fn start_again(&mut self) -> Result<()> {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let config = self.dir.path().join("server.conf");
        self.child = spawn(&self.entry, &config, &extra, self.dir.path(), &self.log)
            .with_context(|| format!("cannot restart {}", self.kind))?;
        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(StartFailure::PortTaken) => {
                bail!("{}: port {} taken while it restarted", self.kind, self.port)
            }
            Err(StartFailure::Failed(err)) => Err(err),
        }
    }

    fn wait_ready(&self) -> Result<(), StartFailure> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.has_exited() {
                let tail = self.log_tail(15);
                if tail.contains("Address already in use") {
                    return Err(StartFailure::PortTaken);
                }
                return Err(StartFailure::Failed(anyhow::anyhow!(
                    "{} exited during startup; last log lines:\n{tail}",
                    self.kind
                )));
            }
            let last_error = match self.ping() {
                Ok(()) => return Ok(()),
                Err(err) => err,
            };
            if Instant::now() > deadline {
                return Err(StartFailure::Failed(anyhow::anyhow!(
                    "{} did not answer PING within {READY_TIMEOUT:?} ({last_error}); last log lines:\n{}",
                    self.kind,
                    self.log_tail(15)
                )));
            }
            sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> Result<()> {
        let client = redis::Client::open(self.url())?;
        let mut connection = client.get_connection_with_timeout(Duration::from_millis(500))?;
        connection.set_read_timeout(Some(Duration::from_secs(2)))?;
        // While loading, the server answers -LOADING; that is "not ready yet".
        redis::cmd("PING").query::<String>(&mut connection)?;
        Ok(())
    }

    fn has_exited(&self) -> bool {
        // try_wait needs &mut; a fresh status check through /proc keeps `&self` usable.
        let status = fs::read_to_string(format!("/proc/{}/stat", self.child.id()));
        match status {
            // Field 3 is the state; Z (zombie) or X means the process is gone.
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|state| state == "Z" || state == "X"),
            Err(_) => true,
        }
    }

    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The server process's id (to pause it with SIGSTOP, for instance).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The TLS port; panics for a server started without TLS.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
            .unwrap_or_else(|| panic!("{} was started without TLS", self.kind))
    }

    /// `rediss://127.0.0.1:TLS_PORT`
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port())
    }

    /// The server's working folder (its dump file lands here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the manifest says about this server (version, tool argv prefixes).
    pub fn entry(&self) -> &ServerEntry {
        &self.entry
    }

    /// A new connection. Panics (with the log tail) if the server cannot be reached: meant
    /// for tests, where that is a failure anyway. See [`Server::try_client`].
    pub fn client(&self) -> redis::Connection {
        self.try_client().unwrap_or_else(|err| panic!("{err:#}"))
    }

    pub fn try_client(&self) -> Result<redis::Connection> {
        let connect = || -> redis::RedisResult<redis::Connection> {
            let client = redis::Client::open(self.url())?;
            let connection = client.get_connection_with_timeout(Duration::from_secs(5))?;
            connection.set_read_timeout(Some(COMMAND_TIMEOUT))?;
            connection.set_write_timeout(Some(COMMAND_TIMEOUT))?;
            Ok(connection)
        };
        connect().with_context(|| {
            format!(
                "cannot connect to {} at {}; last log lines:\n{}",
                self.kind,
                self.url(),
                self.log_tail(15)
            )
        })
    }

    /// Runs SAVE and returns the dump file's path.
    pub fn save(&self) -> Result<PathBuf> {
        let mut connection = self.try_client()?;
        redis::cmd("SAVE")
            .query::<()>(&mut connection)
            .with_context(|| format!("SAVE failed on {}", self.kind))?;
        let dir: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("dir")
            .query(&mut connection)?;
        let file: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("dbfilename")
            .query(&mut connection)?;
        match (dir.get(1), file.get(1)) {
            (Some(dir), Some(file)) => Ok(Path::new(dir).join(file)),
            _ => bail!("{}: CONFIG GET dir/dbfilename gave no answer", self.kind),
        }
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `redis-cli`/`valkey-cli` of the same version, pointed at this server.
    pub fn cli_command(&self) -> Command {
        self.tool_command(&self.entry.cli)
    }

    /// `redis-benchmark`/`valkey-benchmark` of the same version, pointed at this server.
    pub fn benchmark_command(&self) -> Command {
        self.tool_command(&self.entry.benchmark)
    }

    fn tool_command(&self, argv: &[String]) -> Command {
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .args(["-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string());
        command
    }
}

/// Lines of a server's log shown when a test fails while the server runs.
const LOG_LINES_ON_FAILURE: usize = 15;

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test (one that fails only now and then, on a loaded CI machine above
        // all) leaves nothing else behind: its servers' folders go with it.
        if std::thread::panicking() {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_LINES_ON_FAILURE)..];
            eprintln!(
                "--- {} on port {}, last lines of its log:\n{}",
                self.entry.name,
                self.port,
                tail.join("\n")
            );
        }
    }
}

fn config_text(kind: ServerKind, port: u16, dir: &Path) -> String {
    let mut lines = vec![
        "bind 127.0.0.1".to_string(),
        format!("port {port}"),
        "protected-mode no".to_string(),
        "daemonize no".to_string(),
        "save \"\"".to_string(),
        "appendonly no".to_string(),
        format!("dir {:?}", dir.display().to_string()),
        format!("dbfilename {DB_FILENAME}"),
        // Logs go to stdout, which is redirected to server.log.
        "logfile \"\"".to_string(),
    ];
    if kind.is_redis7_or_later() {
        lines.push("enable-debug-command yes".to_string());
    }
    lines.join("\n") + "\n"
}

fn spawn(
    entry: &ServerEntry,
    config: &Path,
    extra: &[&str],
    dir: &Path,
    log: &Path,
) -> Result<Child> {
    let Some((program, prefix)) = entry.server.split_first() else {
        bail!("{}: empty server command in the manifest", entry.name);
    };
    // Append mode: stdout and stderr share the file without overwriting each other.
    let log = fs::OpenOptions::new().create(true).append(true).open(log)?;
    Ok(Command::new(program)
        .args(prefix)
        .arg(config)
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?)
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}
