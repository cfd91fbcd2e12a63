//! The command line.

use crate::connection::{SourceConnectionArgs, TargetConnectionArgs};
use crate::control::ControlTokenArgs;
use crate::filter::FilterArgs;
use crate::policy::PolicyArgs;
use crate::target::profile_names;
use clap::{ArgGroup, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

/// Move Redis data into Valkey, and prove nothing was lost.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Summarize an RDB file: version, keys per database and type, and what each Valkey
    /// release cannot load from it.
    Inspect(InspectArgs),
    /// Rewrite an RDB file for another server release.
    Convert(ConvertArgs),
    /// Whether a Redis server (or its RDB file) can move to Valkey, and what would break.
    Assess(AssessArgs),
    /// Compare a target with its source, key by key, and report every difference.
    Verify(VerifyArgs),
    /// Follow a live source as its replica and write everything into the target: a full
    /// copy, then every change, until stopped (Ctrl-C). Resumable with --state. For
    /// sources that refuse replication: --mode scan (SCAN/DUMP, keyspace notifications).
    Migrate(MigrateArgs),
    /// Stand between a source and Valkey replicas: replicas attach with REPLICAOF to the
    /// listen address and get a full sync in their own RDB format, then every change.
    Relay(RelayArgs),
    /// Switch clients from the source to the target while `migrate` runs: pause writes on
    /// the source, wait until the target has every one, check a sample, run the --exec
    /// hook, stop the migration, unpause. Any failure unpauses and changes nothing.
    Cutover(CutoverArgs),
    /// Undo a cutover made with --keep-rollback: the same switch, from the target (now
    /// live) back to the old source, which the reverse migration kept up to date.
    Rollback(RollbackArgs),
    /// Run many standalone migrations from one plan (TOML): waves, a concurrency limit,
    /// each pair copied, cut over and verified, one report and one status page.
    Fleet(FleetArgs),
    /// Print ferry's man page or a shell's completion script, made from this command
    /// line's own definition (`ferry generate man > ferry.1`).
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// What to print.
    #[arg(value_enum)]
    pub what: Generated,
    /// With `man`: write every page into this folder (ferry.1 and one per subcommand,
    /// ferry-migrate.1 …) instead of printing ferry.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generated {
    /// The man page (roff), for `man -l` or `share/man/man1/ferry.1`; with --dir, one
    /// page per subcommand too.
    Man,
    /// bash completion, for `share/bash-completion/completions/ferry`.
    Bash,
    /// zsh completion, for a `site-functions/_ferry`.
    Zsh,
    /// fish completion, for `vendor_completions.d/ferry.fish`.
    Fish,
}

pub use crate::commands::assess::AssessArgs;
pub use crate::commands::fleet::FleetArgs;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The RDB file, or an AOF: a Redis 7+ appendonlydir (or its manifest), or a single
    /// AOF (with or without an RDB preamble).
    pub file: PathBuf,
    /// Print a JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["to", "rdb_version"])))]
pub struct ConvertArgs {
    /// The RDB file to read.
    pub input: PathBuf,
    /// The RDB file to write; it appears only once complete.
    pub output: PathBuf,
    /// The release to write for (the list is filled in by `command()`).
    #[arg(long, value_name = "PROFILE")]
    pub to: Option<String>,
    /// The RDB version to write: 9, 10, 11, 12 (Redis) or 80 (Valkey 9).
    #[arg(long, value_name = "N")]
    pub rdb_version: Option<u16>,
    #[command(flatten)]
    pub policies: PolicyArgs,
    /// Which keys and databases to write (see docs/filters.md).
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Write strings uncompressed (no LZF).
    #[arg(long)]
    pub no_compress: bool,
    /// The target's `databases` setting: a file with a database at or past it is one the
    /// target refuses, so convert refuses to write it.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub databases: u64,
    /// Replace OUTPUT (and an export file) if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    // `[user@]` is URL syntax in --help, not a link (a `\[` would show there).
    #[allow(rustdoc::broken_intra_doc_links)]
    /// The server the data came from: redis://[user@]host:port (valkey://; rediss:// or
    /// valkeys:// for TLS). Give the password with --source-password-file or -env.
    #[arg(long, value_name = "URL", env = "FERRY_SOURCE", hide_env_values = true)]
    pub source: String,
    // `[user@]` is URL syntax in --help, not a link (a `\[` would show there).
    #[allow(rustdoc::broken_intra_doc_links)]
    /// The server the data went to: redis://[user@]host:port (valkey://; rediss:// or
    /// valkeys:// for TLS). Give the password with --target-password-file or -env.
    #[arg(long, value_name = "URL", env = "FERRY_TARGET", hide_env_values = true)]
    pub target: String,
    /// Compare about N random keys instead of all of them.
    #[arg(long, value_name = "N")]
    pub sample: Option<u64>,
    /// Rounds in all; later ones re-check only keys that differed (in-flight writes).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// How far expiry times may differ, in ms.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub ttl_tolerance_ms: u64,
    /// At most N commands per second to each server.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_ops_per_sec: Option<u32>,
    /// Print a JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write the result as a static HTML page to FILE (to attach to a change
    /// ticket): counts per database and type, the differences by kind with their keys,
    /// what policies excused. Replaces FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
    /// The policies the migration ran with: what they changed is not a difference.
    #[command(flatten)]
    pub policies: PolicyArgs,
    /// The scope the migration ran with: only those keys are compared, each mapped
    /// database against its place on the target.
    #[command(flatten)]
    pub filters: FilterArgs,
    // Last: their help headings would otherwise take in the options after them.
    #[command(flatten)]
    pub source_connection: SourceConnectionArgs,
    #[command(flatten)]
    pub target_connection: TargetConnectionArgs,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    // `[user@]` is URL syntax in --help, not a link (a `\[` would show there).
    #[allow(rustdoc::broken_intra_doc_links)]
    /// The server to copy from: redis://[user@]host:port (valkey://; rediss:// or
    /// valkeys:// for TLS). Give the password with --source-password-file or -env.
    #[arg(
        long,
        value_name = "URL",
        env = "FERRY_SOURCE",
        hide_env_values = true,
        required_unless_present = "source_aof"
    )]
    pub source: Option<String>,
    /// Copy from an append-only file instead of a server, once: a Redis 7+
    /// `appendonlydir` (or its manifest), or a single AOF (with or without an RDB
    /// preamble). Its RDB part goes in by RESTORE, its commands as a replication
    /// stream's would, under the same policies.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["source", "state", "mode"])]
    pub source_aof: Option<PathBuf>,
    // `[user@]` is URL syntax in --help, not a link (a `\[` would show there).
    #[allow(rustdoc::broken_intra_doc_links)]
    /// The server to write into: redis://[user@]host:port (valkey://; rediss:// or
    /// valkeys:// for TLS). Give the password with --target-password-file or -env.
    #[arg(long, value_name = "URL", env = "FERRY_TARGET", hide_env_values = true)]
    pub target: String,
    /// Keep the position here (the replication offset; with --mode scan, its checkpoint);
    /// a restart with the same file resumes where the last run stopped (partial resync,
    /// or the scan's cursors) instead of copying everything again.
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Receive a full sync into this folder at network speed and load the target from
    /// it: the source then only buffers writes for the transfer, not for the load, and a
    /// crash of ferry or a restart of the target resumes the load from the folder instead
    /// of a new snapshot. Needs --state. Deleted once the stream has caught up.
    #[arg(
        long,
        value_name = "DIR",
        requires = "state",
        conflicts_with = "source_aof"
    )]
    pub spool_dir: Option<PathBuf>,
    /// The most the spool may hold, snapshot and stream together. A snapshot larger than
    /// this (or than the free space) is refused before it is written; a stream that
    /// reaches it is applied as it arrives, as without a spool. Default: no limit but the
    /// disk's.
    #[arg(long, value_name = "N", requires = "spool_dir", value_parser = clap::value_parser!(u64).range(1..))]
    pub spool_max_mb: Option<u64>,
    /// Write into a target that already holds keys (they are overwritten where the source
    /// has the same names, kept otherwise).
    #[arg(long, conflicts_with = "flush_target")]
    pub allow_non_empty: bool,
    /// Empty the target (FLUSHALL) before copying.
    #[arg(long)]
    pub flush_target: bool,
    /// A cluster source split over N ferry processes (workers): this one follows share K
    /// (0 to N-1) of the source's primaries, ordered by their first slot. Each worker
    /// has its own --state and --metrics-addr; one `ferry cutover` with every worker's
    /// --status switches them together. The target must be empty when the first worker
    /// starts: workers never empty it (each would delete the others' keys).
    #[arg(long, value_name = "K/N", conflicts_with_all = ["flush_target", "source_aof"])]
    pub shards: Option<ShardShare>,
    #[command(flatten)]
    pub policies: PolicyArgs,
    /// Which keys and databases to move (see docs/filters.md).
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Bound on ferry's buffers: writes in flight, snapshot chunks, the largest value
    /// held for one RESTORE (bigger ones are written with plain commands).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(16..))]
    pub max_memory_mb: u64,
    /// Seconds to connect to either server: TCP, TLS handshake and the first reply (AUTH,
    /// PING) together.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_timeout: u64,
    /// Seconds the target may send nothing while it owes replies to written commands
    /// before the run stops (it is stuck or gone).
    #[arg(long, value_name = "SECONDS",
          default_value_t = crate::server::client::DEFAULT_STALL_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub target_reply_timeout: u64,
    /// Seconds the source may send nothing on the replication link before ferry takes it
    /// as lost and reconnects (a partial resync where the backlog allows), as a replica's
    /// `repl-timeout` does. The source PINGs its replicas every `repl-ping-replica-period`
    /// (10 s by default): keep this well above that.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub source_read_timeout: u64,
    /// Print events as JSON lines on stdout (phases, progress, policy reports, every log
    /// line), for automation. Stderr keeps its plain lines.
    #[arg(long)]
    pub json: bool,
    /// Serve GET /metrics (Prometheus) and GET /status (JSON) on this address, e.g.
    /// 127.0.0.1:9121 (port 0 picks a free port; the address is logged), and POST /stop
    /// for cutover when a control token is given. Off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// How to read the source: `replication` (as a replica: PSYNC) or `scan` (SCAN + DUMP
    /// and keyspace notifications, for managed services that refuse SYNC/PSYNC; see
    /// docs/migrate.md for what it cannot guarantee).
    #[arg(long, value_enum, default_value_t = MigrateMode::Replication)]
    pub mode: MigrateMode,
    /// Scan mode: keys read per second by the scan (SCAN + DUMP), to bound the load on
    /// the source. Changed keys are read as their notifications come.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SCAN_KEYS_PER_SEC,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub scan_keys_per_sec: u32,
    /// Scan mode: copy once and exit, without following changes (no keyspace
    /// notifications needed; writes during the copy may be missed).
    #[arg(long)]
    pub no_follow: bool,
    // Last: their help headings would otherwise take in the options after them.
    #[command(flatten)]
    pub control: ControlTokenArgs,
    #[command(flatten)]
    pub source_connection: SourceConnectionArgs,
    #[command(flatten)]
    pub target_connection: TargetConnectionArgs,
}

/// `--shards K/N`: which of N workers this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardShare {
    /// 0-based, below `count`.
    pub index: usize,
    pub count: usize,
}

impl ShardShare {
    /// Whether this worker follows the `position`-th primary (by first slot).
    pub fn takes(&self, position: usize) -> bool {
        position % self.count == self.index
    }
}

impl std::fmt::Display for ShardShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for ShardShare {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wrong = || format!("{text:?} is not K/N (share K of N workers, 0 <= K < N)");
        let (index, count) = text.split_once('/').ok_or_else(wrong)?;
        let index: usize = index.trim().parse().map_err(|_| wrong())?;
        let count: usize = count.trim().parse().map_err(|_| wrong())?;
        if count == 0 || index >= count {
            return Err(wrong());
        }
        Ok(Self { index, count })
    }
}

/// Scan mode's default pace: gentle enough for a production source.
pub const DEFAULT_SCAN_KEYS_PER_SEC: u32 = 5_000;

/// How `migrate` reads the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MigrateMode {
    Replication,
    Scan,
}

/// The steps cutover and rollback share.
#[derive(Debug, Clone, Args)]
pub struct SwitchArgs {
    /// The running migration's --metrics-addr (host:port or http://host:port). For a
    /// cluster source split over workers (migrate --shards K/N), once per worker: every
    /// source primary is then paused, drained against its worker and switched at once.
    #[arg(long, value_name = "ADDR", required = true)]
    pub status: Vec<String>,
    /// A shell command (run with `sh -c`) that moves clients to the new server while
    /// writes are paused: DNS, configuration, proxy. A non-zero exit aborts the switch.
    /// It sees FERRY_FROM and FERRY_TO (host:port of the old and new server).
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// A shell command that moves clients back, run (like --exec) if a step after --exec
    /// fails: the switch is then undone entirely.
    #[arg(long, value_name = "CMD", requires = "exec")]
    pub exec_undo: Option<String>,
    /// Longest the --exec command may run, in ms.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub exec_timeout_ms: u64,
    /// Refuse to start unless the target is at most this many bytes of the source's
    /// replication stream behind.
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20)]
    pub max_lag_bytes: u64,
    /// Safety timeout of the write pause (CLIENT PAUSE): if ferry dies mid-way the source
    /// unpauses by itself after this. Cover the drain, the check and the --exec hook.
    #[arg(long, value_name = "MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub pause_timeout_ms: u64,
    /// Longest wait for the target to apply every write made before the pause, in ms.
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    pub drain_timeout_ms: u64,
    /// Keys the quick verify compares during the pause; 0 skips it.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub verify_sample: u64,
    /// Longest the quick verify may take, in ms (a sampled key with a huge value reads
    /// slowly); past it the switch fails and unpauses.
    #[arg(long, value_name = "MS", default_value_t = 1_000)]
    pub verify_timeout_ms: u64,
    /// Promote the target (REPLICAOF NO ONE) before the hook: for `ferry relay`, where
    /// the target is a replica. Implied when the status says mode "relay".
    #[arg(long)]
    pub promote: bool,
    /// Leave the source's client connections open at unpause. By default they are closed
    /// (CLIENT KILL TYPE normal) so that a write blocked by the pause is never run on the
    /// old server: the client sees an error, reconnects (now to the new server) and
    /// retries.
    #[arg(long)]
    pub keep_clients: bool,
    /// Print the result as one JSON document (one line) instead of text.
    #[arg(long)]
    pub json: bool,
    /// The policies the migration ran with (the quick verify excuses what they change).
    #[command(flatten)]
    pub policies: PolicyArgs,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("rollback").args(["rollback_state", "rollback_metrics_addr"]).multiple(true).requires("keep_rollback")))]
pub struct CutoverArgs {
    /// The migration's source (the server clients use now).
    #[arg(long, value_name = "URL", env = "FERRY_SOURCE", hide_env_values = true)]
    pub source: String,
    /// The migration's target (the server clients move to).
    #[arg(long, value_name = "URL", env = "FERRY_TARGET", hide_env_values = true)]
    pub target: String,
    #[command(flatten)]
    pub switch: SwitchArgs,
    /// After the cutover, keep running as `ferry migrate` in reverse (target → source)
    /// so that the old source receives every write made on the target: `ferry rollback`
    /// can then switch back. The old source is emptied and reloaded from the target.
    #[arg(long, requires = "rollback_state")]
    pub keep_rollback: bool,
    /// The reverse migration's state file (written by cutover; it lets the reverse
    /// migration replace the old source's data).
    #[arg(long, value_name = "PATH")]
    pub rollback_state: Option<PathBuf>,
    /// The reverse migration's --metrics-addr, for `ferry rollback --status`.
    #[arg(long, value_name = "ADDR")]
    pub rollback_metrics_addr: Option<std::net::SocketAddr>,
    // Last: their help headings would otherwise take in the options after them. The
    // token stops the run (POST /stop) and guards the reverse migration's own listener.
    #[command(flatten)]
    pub control: ControlTokenArgs,
    #[command(flatten)]
    pub source_connection: SourceConnectionArgs,
    #[command(flatten)]
    pub target_connection: TargetConnectionArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The server clients use now: the target of the cutover (the reverse migration's
    /// source).
    #[arg(long, value_name = "URL")]
    pub source: String,
    /// The server to move back to: the cutover's old source.
    #[arg(long, value_name = "URL")]
    pub target: String,
    #[command(flatten)]
    pub switch: SwitchArgs,
    // Last: their help headings would otherwise take in the options after them.
    #[command(flatten)]
    pub control: ControlTokenArgs,
    #[command(flatten)]
    pub source_connection: SourceConnectionArgs,
    #[command(flatten)]
    pub target_connection: TargetConnectionArgs,
}

#[derive(Debug, Args)]
pub struct RelayArgs {
    // `[user@]` is URL syntax in --help, not a link (a `\[` would show there).
    #[allow(rustdoc::broken_intra_doc_links)]
    /// The server to follow: redis://[user[:password]@]host:port (or valkey://).
    #[arg(long, value_name = "URL", env = "FERRY_SOURCE", hide_env_values = true)]
    pub source: String,
    /// Where replicas connect (REPLICAOF host port): HOST:PORT, or PORT alone for
    /// loopback only (127.0.0.1:PORT). 0.0.0.0:6390 opens it to every interface.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: String,
    /// Keep each history's position here, so that a restarted ferry lets its replicas
    /// continue (partial resync) where the source allows.
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub policies: PolicyArgs,
    /// Which keys and databases the replicas get (see docs/filters.md).
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Replicas must AUTH with the password in this file (their masterauth).
    #[arg(long, value_name = "FILE")]
    pub requirepass_file: Option<PathBuf>,
    /// Serve this format to every replica instead of the one its REPLCONF version
    /// implies (valkey-8.1, valkey-9.1, ...).
    #[arg(long, value_name = "PROFILE")]
    pub replica_format: Option<String>,
    /// Size of each history's backlog, the stream kept for replicas that reconnect.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub backlog_mb: u64,
    /// How long a history with no replica attached is kept (and its source followed).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub backlog_ttl: u64,
    /// Seconds to connect to the source: TCP, TLS handshake and the first reply (AUTH,
    /// PING) together.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_timeout: u64,
    /// Serve GET /metrics (Prometheus) and GET /status (JSON) on this address: the source
    /// offset the replicas' ACKs cover is `ferry_applied_offset`. `ferry cutover --status`
    /// reads it (and POST /stop ends the relay, given the control token). Off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Serve replicas over TLS with this certificate (PEM); they connect with
    /// tls-replication yes and trust its CA (their tls-ca-cert-file).
    #[arg(long, value_name = "FILE", requires = "listen_tls_key")]
    pub listen_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --listen-tls-cert.
    #[arg(long, value_name = "FILE", requires = "listen_tls_cert")]
    pub listen_tls_key: Option<PathBuf>,
    /// Replicas must present a client certificate signed by this CA (PEM): their
    /// tls-client-cert-file, or their tls-cert-file when that is not set.
    #[arg(long, value_name = "FILE", requires = "listen_tls_cert")]
    pub listen_tls_ca: Option<PathBuf>,
    // Last: their help headings would otherwise take in the options after them.
    #[command(flatten)]
    pub control: ControlTokenArgs,
    #[command(flatten)]
    pub source_connection: SourceConnectionArgs,
}

/// The clap command with the help texts that depend on the codec's tables.
pub fn command() -> clap::Command {
    let profiles = profile_names().join(", ");
    Cli::command().mut_subcommand("convert", |convert| {
        convert.mut_arg("to", |arg| {
            arg.help(format!("The release to write for: {profiles}"))
        })
    })
}

/// Parses the arguments; clap's error (or help) when they don't parse.
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches)
}

/// A clap usage error on one line: its first paragraph, without the `error: ` prefix.
pub fn usage_error_line(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let paragraph: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty())
        .collect();
    let line = paragraph.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn convert_needs_exactly_one_target() {
        assert!(parse(["ferry", "convert", "a", "b"]).is_err());
        assert!(parse([
            "ferry",
            "convert",
            "a",
            "b",
            "--to",
            "valkey-8.1",
            "--rdb-version",
            "11"
        ])
        .is_err());
        let cli = parse(["ferry", "convert", "a", "b", "--rdb-version", "11"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Convert(ConvertArgs {
                rdb_version: Some(11),
                ..
            })
        ));
    }

    #[test]
    fn usage_errors_fit_on_one_line() {
        let err = parse(["ferry", "convert", "a", "b"]).unwrap_err();
        let line = usage_error_line(&err);
        assert!(!line.contains('\n') && !line.starts_with("error"), "{line}");
        assert!(line.contains("--to"), "{line}");

        let err = parse([
            "ferry", "convert", "a", "b", "--to", "x", "--module", "drop",
        ])
        .unwrap_err();
        let line = usage_error_line(&err);
        assert!(
            line.contains("--module") && line.contains("fail or skip"),
            "{line}"
        );
    }

    #[test]
    fn a_worker_share_is_k_of_n_with_k_below_n() {
        let share: ShardShare = "1/3".parse().unwrap();
        assert_eq!((share.index, share.count), (1, 3));
        assert!([0, 2, 3, 5].iter().all(|&p| share.takes(p) == (p % 3 == 1)));
        for wrong in ["3/3", "0/0", "1", "a/3", "-1/3", "1/3/4"] {
            assert!(wrong.parse::<ShardShare>().is_err(), "{wrong}");
        }
        let err = parse([
            "ferry",
            "migrate",
            "--source",
            "redis://a:1",
            "--target",
            "redis://b:2",
            "--shards",
            "2/2",
        ])
        .unwrap_err();
        assert!(usage_error_line(&err).contains("0 <= K < N"), "{err}");
        assert!(parse([
            "ferry",
            "migrate",
            "--source",
            "redis://a:1",
            "--target",
            "redis://b:2",
            "--shards",
            "0/2",
            "--flush-target",
        ])
        .is_err());
    }

    #[test]
    fn help_lists_the_profiles() {
        let help = command()
            .find_subcommand_mut("convert")
            .unwrap()
            .render_help()
            .to_string();
        assert!(help.contains("valkey-9.1"), "{help}");
    }
}
