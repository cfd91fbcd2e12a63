//! `ferry migrate --source URL --target URL [--state PATH]`: ferry becomes a replica of the
//! source and writes everything into the target, then follows every change until stopped.
//!
//! ```text
//! target: connect, INFO, DUMP probe ─┐
//! source: connect, INFO, PSYNC ──────┴─┬─ +CONTINUE ─────────────────────────┐
//!                                      └─ FULLRESYNC: snapshot ─▶ decoder ─▶ │
//!                                           compat ─▶ RESTORE pipeline       │
//!                                                                            ▼
//!                   command stream ─▶ translator seam ─▶ pipeline ─▶ applied offset
//!                                                         (ACK to source, state file)
//! ```

use crate::cli::{MigrateArgs, MigrateMode};
use crate::error::Error;
use crate::observe::metrics::RATE_WINDOW;
use crate::observe::{Observer, Phase, Rate};
use crate::pipeline;
use crate::policy::Policies;
use crate::sinks::writer::client::Client;
use crate::sinks::writer::cluster::markers::AllApplied;
use crate::sinks::writer::cluster::split::StreamMarkers;
use crate::sinks::writer::cluster::{self, ClusterPipe};
use crate::sinks::writer::marker::{self, Applied, ShardApplied};
use crate::sinks::writer::pipe::{Batch, Mark, Pipe};
use crate::sinks::writer::probe::{self, ImportMode, ServerInfo};
use crate::sinks::writer::DRAIN_TIMEOUT;
use crate::sinks::writer::{TargetSink, WriteMode, WriterCounters, WriterLimits};
use crate::sources::replication::continuation::{self, CheckError};
use crate::sources::replication::stream::StreamApplier;
use crate::sources::replication::translate::CommandTransform;
use crate::sources::replication::SnapshotSource;
use crate::sources::{RECONNECT_FOR, RECONNECT_PAUSE};
use crate::state::{self, MigrationState, Reconciled};
use crate::target::Target;
use crate::tls::TlsConnector;
use crate::transforms::commands::CommandTranslator;
use crate::transforms::compat::{CompatTransform, ExportedKeys};
use crate::url::ServerUrl;
use ferry_codec::Format;
use ferry_repl::{
    snapshot_channel, ConnectOptions, PsyncOutcome, ReplError, ReplicaConnection, Secret,
    SnapshotFraming, StreamUpgrade,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod import_mode;
mod in_sync;
mod shards;
mod vector_export;

/// How often the state file is rewritten while streaming.
const STATE_EVERY: Duration = Duration::from_secs(1);
/// Full syncs cut by the source one after the other before the run stops.
const MAX_CUT_SNAPSHOTS: u32 = 3;
/// How often a progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// How often the numbers behind bars, `/metrics` and `/status` are refreshed.
const STATS_EVERY: Duration = Duration::from_millis(250);

pub fn run(args: MigrateArgs, out: &mut dyn Write) -> Result<(), Error> {
    let _ = out;
    super::run_async(migrate(args))
}

/// The settings derived from `--max-memory-mb`.
#[derive(Debug, Clone, Copy)]
struct MemoryPlan {
    /// Bytes of commands sent to the target and not yet acknowledged.
    in_flight_bytes: usize,
    /// Snapshot chunks (64 KiB each) between the network and the decoder.
    snapshot_chunks: usize,
    writer: WriterLimits,
}

impl MemoryPlan {
    fn new(max_memory_mb: u64) -> Self {
        let total = (max_memory_mb as usize).saturating_mul(1 << 20);
        Self {
            in_flight_bytes: total / 4,
            snapshot_chunks: 16,
            writer: WriterLimits {
                // A held value, its payload and the command carrying it: three copies.
                restore_bytes: total / 8,
                batch_bytes: 256 << 10,
            },
        }
    }

    /// This plan split among `readers` running at once (the shards of a cluster source).
    fn shared_by(self, readers: usize) -> Self {
        let readers = readers.max(1);
        Self {
            in_flight_bytes: (self.in_flight_bytes / readers).max(1 << 20),
            snapshot_chunks: self.snapshot_chunks,
            writer: WriterLimits {
                restore_bytes: (self.writer.restore_bytes / readers).max(1 << 20),
                batch_bytes: self.writer.batch_bytes,
            },
        }
    }
}

#[derive(Clone)]
struct Migration {
    source_url: ServerUrl,
    target_url: ServerUrl,
    state_path: Option<PathBuf>,
    policies: Policies,
    memory: MemoryPlan,
    connect_timeout: Duration,
    /// `--target-reply-timeout`.
    reply_timeout: Duration,
    /// `--source-read-timeout`.
    source_read_timeout: Duration,
    events: Arc<Observer>,
    /// Set when this runs one shard of a cluster source ([`shards`]).
    shard: Option<Arc<shards::ShardContext>>,
    /// The node a failover of this shard moved away from, until a session continued.
    failover_from: Option<String>,
    /// Under `--vector-set export`: the vector sets the export covers (`vector_export`).
    exported_keys: ExportedKeys,
    /// A cluster target's per-slot markers as this run found them, by stream: each
    /// stream's first session takes its own, to leave out what the target holds.
    held_markers: Arc<std::sync::Mutex<AllApplied>>,
}

async fn migrate(args: MigrateArgs) -> Result<(), Error> {
    let source_url = args
        .source_connection
        .settings()
        .apply(parse_url(&args.source, "--source")?)?;
    let target_url = args
        .target_connection
        .settings()
        .apply(parse_url(&args.target, "--target")?)?;
    let job = Migration {
        source_url,
        target_url,
        state_path: args.state.clone(),
        policies: Policies::from(args.policies.clone()),
        memory: MemoryPlan::new(args.max_memory_mb),
        connect_timeout: Duration::from_secs(args.connect_timeout),
        reply_timeout: Duration::from_secs(args.target_reply_timeout),
        source_read_timeout: Duration::from_secs(args.source_read_timeout),
        events: Arc::new(Observer::new(args.json)),
        shard: None,
        failover_from: None,
        exported_keys: ExportedKeys::default(),
        held_markers: Arc::default(),
    };
    let control = args.control.token()?;
    if let Some(addr) = args.metrics_addr {
        let stoppable = control.is_some();
        let bound = crate::observe::http::serve(addr, job.events.stats().clone(), control)
            .await
            .map_err(|e| Error::Usage(format!("--metrics-addr {addr}: cannot listen: {e}")))?;
        job.events
            .line(format!("serving /metrics and /status on http://{bound}"));
        job.events.line(stop_endpoint_line(stoppable));
    }
    let result = job.run(&args).await;
    job.events.stopped(None);
    if let Err(error) = &result {
        job.events.error(&error_line(error));
    }
    result
}

/// A refused client certificate shows on the first read after a TLS 1.3 handshake; a
/// TLS-only port hangs up on a plaintext PING (silence is no sign of TLS).
fn explain_replica_setup(error: ReplError, url: &ServerUrl) -> ReplError {
    let address = url.address();
    match (&error, &url.tls) {
        (ReplError::Io { cause, .. }, Some(tls)) => {
            match crate::tls::explain_io(cause, tls.ca_file.as_deref(), tls.flag_prefix) {
                Some(text) => ReplError::Connect {
                    address,
                    cause: std::io::Error::other(text),
                },
                None => error,
            }
        }
        (ReplError::Closed(_), None) => ReplError::Connect {
            address,
            cause: std::io::Error::other(format!(
                "{error}: is the server expecting TLS? use rediss:// (or valkeys://)"
            )),
        },
        _ => error,
    }
}

fn parse_url(text: &str, flag: &str) -> Result<ServerUrl, Error> {
    let url = ServerUrl::parse(text).map_err(|e| Error::Usage(format!("{flag}: {e}")))?;
    if url.db.is_some_and(|db| db != 0) {
        return Err(Error::Usage(format!(
            "{flag}: migrate copies every database; leave the /db part out of the URL"
        )));
    }
    Ok(url)
}

/// What the target turned out to be.
struct TargetSetup {
    /// Taken by the pipe once setup is done.
    client: Option<Client>,
    info: ServerInfo,
    format: Format,
    mode: WriteMode,
    restore_refusal: String,
    /// Every command the target has, when it says (`COMMAND LIST`).
    commands: Option<Vec<bytes::Bytes>>,
    /// Whether the target is in import mode and this connection its import source: it
    /// deletes no key on its own clock (see `probe::enter_import_mode`).
    import_mode: ImportMode,
    /// The target is a cluster: commands are routed by slot over one connection per
    /// primary (`sinks::writer::cluster`).
    cluster: bool,
}

impl TargetSetup {
    fn take_client(&mut self) -> Result<Client, Error> {
        self.client.take().ok_or_else(|| {
            Error::Migration("internal: the target connection was taken twice".into())
        })
    }
}

/// How a run ended without error.
enum Stop {
    Signal,
    DuringFullSync,
}

/// Why a session with the source ended.
#[derive(Debug)]
enum SessionError {
    /// The source connection failed mid-way: reconnect and resume.
    SourceLost(ReplError),
    /// Connecting again after a loss failed; try again a little later.
    Reconnect(Error),
    /// Stops the migration; the applied position is kept for a restart.
    Fatal(Error),
    /// The first connection failed: stop.
    Setup(Error),
}

impl From<Error> for SessionError {
    fn from(error: Error) -> Self {
        SessionError::Fatal(error)
    }
}

fn error_line(error: &(dyn std::error::Error + 'static)) -> String {
    crate::error::one_line(crate::error::chain(error))
}

impl Migration {
    fn source_error(&self, error: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Source {
            url: self.source_url.to_string(),
            source: Box::new(error),
        }
    }

    fn target_error(&self, error: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Target {
            url: self.target_url.to_string(),
            source: Box::new(error),
        }
    }

    fn target_refusal(&self, reason: String) -> Error {
        Error::Target {
            url: self.target_url.to_string(),
            source: reason.into(),
        }
    }

    async fn run(&self, args: &MigrateArgs) -> Result<(), Error> {
        let saved = match &self.state_path {
            Some(path) => state::load(path)?,
            None => None,
        };
        if let (Some(saved), Some(path)) = (&saved, &self.state_path) {
            if saved.target != self.target_url.to_string() {
                return Err(Error::Migration(format!(
                    "the state file {} belongs to target {}, not {}; use another --state file",
                    path.display(),
                    saved.target,
                    self.target_url
                )));
            }
        }
        // ferry wrote the target's data in an earlier run: it may replace it.
        let owned = saved.is_some();

        let mut target = self.connect_target(args, owned).await?;
        let source_info = self.source_info().await?;
        let cluster_source = self
            .source_is_cluster()
            .await
            .map_err(|e| self.source_error(e))?;
        if cluster_source && args.mode == MigrateMode::Scan {
            // Scan mode reads the one node it is given: a cluster would be copied in part.
            return Err(Error::Usage(format!(
                "--mode scan reads one server, and {} is a node of a cluster (it would copy \
                 only that node's slots); migrate a cluster source in replication mode",
                self.source_url
            )));
        }
        if let Some(saved) = &saved {
            self.check_state_kind(saved, cluster_source)?;
        }
        self.events.started(
            &self.source_url.address(),
            &source_info.name(),
            &self.target_url.address(),
            &target.info.name(),
        );
        self.events.line(format!(
            "source {} is {}; target {} is {} (writes {}{})",
            self.source_url,
            source_info.name(),
            self.target_url,
            target.info.name(),
            target.format.version,
            match target.mode {
                WriteMode::Restore => ", RESTORE",
                WriteMode::PlainOnly => ", plain commands: RESTORE refused",
            }
        ));
        let mut state = saved.unwrap_or_else(|| {
            MigrationState::new(
                self.target_url.to_string(),
                target.format.version.to_string(),
            )
        });
        state.format = target.format.version.to_string();
        self.enter_import_mode(&mut target).await?;
        let entered = target.import_mode;
        match self
            .run_entered(args, &source_info, cluster_source, target, state, owned)
            .await
        {
            Err(failure) => Err(self.settle_import_mode(entered, owned, failure).await),
            done => done,
        }
    }

    /// The run once both servers answered and the target's import mode is set.
    async fn run_entered(
        &self,
        args: &MigrateArgs,
        source_info: &ServerInfo,
        cluster_source: bool,
        mut target: TargetSetup,
        mut state: MigrationState,
        owned: bool,
    ) -> Result<(), Error> {
        if cluster_source {
            return self
                .run_cluster_source(args, source_info, target, state, owned)
                .await;
        }
        // Scan mode keeps no position (and no marker): it always copies everything.
        // A cluster target's markers are per slot: read below, used by the stream's
        // first session to leave out what the target holds; the state file says
        // where to resume.
        if owned && args.mode == MigrateMode::Replication && !target.cluster {
            self.resume_from_target(args, &mut target, &mut state)
                .await?;
        }
        let pipe = self.target_pipe(&mut target).await?;
        if owned && args.mode == MigrateMode::Replication && state.replid.is_some() {
            self.read_held_markers(&pipe).await?;
        }
        let live = pipe.clone();
        self.events
            .stats()
            .set_live_applied(move || live.applied().map(|mark| mark.offset));

        let shutdown = shutdown_or_stop(self.events.stats().clone(), self.events.clone());
        tokio::pin!(shutdown);
        if args.mode == MigrateMode::Scan {
            let job = self.scan_job(args, source_info, &target, owned);
            return crate::sources::scan::run(job, pipe, &mut shutdown).await;
        }
        self.clone()
            .follow(
                args,
                source_info,
                &target,
                &pipe,
                &mut state,
                owned,
                &mut shutdown,
            )
            .await
    }

    /// Sessions with the source one after the other: each lost connection is resumed
    /// (PSYNC) until [`RECONNECT_FOR`] passes without success.
    #[allow(clippy::too_many_arguments)]
    async fn follow(
        mut self,
        args: &MigrateArgs,
        source_info: &ServerInfo,
        target: &TargetSetup,
        pipe: &Pipe,
        state: &mut MigrationState,
        mut owned: bool,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<(), Error> {
        let mut lost_since: Option<Instant> = None;
        // Full syncs cut in a row: each new PSYNC succeeds, so the reconnect timer alone
        // would never run out against a source that always cuts its snapshot.
        let mut cut_snapshots = 0;
        loop {
            let session = self
                .session(
                    args,
                    source_info,
                    target,
                    pipe,
                    state,
                    (owned, &mut lost_since),
                    shutdown,
                )
                .await;
            owned = true;
            if session.is_ok() || matches!(session, Err(SessionError::SourceLost(_))) {
                self.failover_from = None;
            }
            match session {
                Ok(Stop::Signal) => {
                    self.drain(pipe, state).await;
                    // Only a standalone source's stream notes the sets it changes.
                    if self.shard.is_none() {
                        self.refresh_vector_export().await?;
                    }
                    match &self.state_path {
                        Some(path) => self.say(format!(
                            "stopped at offset {}; resume with --state {}",
                            state.offset,
                            path.display()
                        )),
                        None => self.say(format!(
                            "stopped at offset {} (without --state the next run copies everything again)",
                            state.offset
                        )),
                    }
                    return Ok(());
                }
                Ok(Stop::DuringFullSync) => {
                    match self.shard.is_some() {
                        // The other shards' keys stay: only a flush makes a reload clean.
                        true => self.say(
                            "stopped during this shard's full sync; the next run needs \
                             --flush-target",
                        ),
                        false => {
                            self.say("stopped during the full sync; the next run starts it over")
                        }
                    }
                    return Ok(());
                }
                Err(SessionError::SourceLost(error)) => {
                    self.drain(pipe, state).await;
                    // No replication ID in the state: the loss came before the snapshot
                    // was loaded.
                    if state.replid.is_none() {
                        cut_snapshots += 1;
                        if cut_snapshots >= MAX_CUT_SNAPSHOTS {
                            return Err(self.stopped_with(
                                Error::Migration(format!(
                                    "source {}: {cut_snapshots} full syncs in a row were cut \
                                     ({}); is the source's client-output-buffer-limit for \
                                     replicas or its repl-timeout too small?",
                                    self.source_url,
                                    error_line(&error)
                                )),
                                state,
                            ));
                        }
                    } else {
                        cut_snapshots = 0;
                    }
                    let since = *lost_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > RECONNECT_FOR {
                        return Err(self.stopped_with(self.source_error(error), state));
                    }
                    self.events.reconnecting();
                    self.say(format!(
                        "lost the source ({}); reconnecting",
                        error_line(&error)
                    ));
                    self.shard_lost().await;
                    tokio::select! {
                        _ = tokio::time::sleep(RECONNECT_PAUSE) => {}
                        _ = shutdown.as_mut() => {
                            self.say(format!("stopped at offset {}", state.offset));
                            return Ok(());
                        }
                    }
                }
                Err(SessionError::Reconnect(error)) => {
                    self.shard_lost().await;
                    let since = *lost_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > RECONNECT_FOR {
                        return Err(self.stopped_with(error, state));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(RECONNECT_PAUSE) => {}
                        _ = shutdown.as_mut() => {
                            self.say(format!("stopped at offset {}", state.offset));
                            return Ok(());
                        }
                    }
                }
                Err(SessionError::Fatal(error)) => {
                    // Keep what is applied so that a restart resumes from there.
                    self.drain(pipe, state).await;
                    return Err(self.stopped_with(error, state));
                }
                Err(SessionError::Setup(error)) => return Err(error),
            }
        }
    }

    /// What `--mode scan` needs (sources/scan/).
    fn scan_job<'a>(
        &'a self,
        args: &MigrateArgs,
        source: &'a ServerInfo,
        target: &TargetSetup,
        owned: bool,
    ) -> crate::sources::scan::ScanJob<'a> {
        crate::sources::scan::ScanJob {
            source_url: &self.source_url,
            source,
            target_url: &self.target_url,
            target: Target {
                format: target.format,
                name: target.info.name(),
            },
            write_mode: target.mode,
            restore_refusal: target.restore_refusal.clone(),
            writer_limits: self.memory.writer,
            dirty_budget_bytes: self.memory.writer.restore_bytes,
            queued_bytes: self.memory.in_flight_bytes,
            policies: self.policies.clone(),
            connect_timeout: self.connect_timeout,
            keys_per_sec: args.scan_keys_per_sec,
            follow: !args.no_follow,
            flush_target: args.flush_target,
            owns_target: owned || args.flush_target || target.info.total_keys() == 0,
            state_given: self.state_path.is_some(),
            events: &self.events,
        }
    }

    /// PSYNC (or the handshake) refused: point at scan mode.
    /// Checks a `+CONTINUE` against the source's own `INFO replication`
    /// ([`continuation`]): a peer that claims a history or an offset it does not hold is
    /// refused before anything is streamed from it.
    async fn check_continue(
        &self,
        asked: &str,
        offset: i64,
        continued: &str,
    ) -> Result<(), CheckError> {
        continuation::verify_at(
            &self.source_url,
            self.connect_timeout,
            asked,
            offset,
            continued,
        )
        .await
    }

    fn replication_error(&self, error: ReplError) -> Error {
        if let Some(reason) = crate::sources::scan::replication_refused(&error) {
            return Error::Migration(format!(
                "source {} refuses replication ({reason}); use --mode scan to copy it with SCAN/DUMP and keyspace notifications",
                self.source_url,
            ));
        }
        self.source_error(error)
    }

    /// Reads ferry's marker on the target and makes it the resume point: the target's own
    /// record of what it holds, written with its data, wins over the state file (which
    /// trails by up to a second, or recorded writes a restarted target did not keep).
    async fn resume_from_target(
        &self,
        args: &MigrateArgs,
        target: &mut TargetSetup,
        state: &mut MigrationState,
    ) -> Result<(), Error> {
        let client = target.client.as_mut().ok_or_else(|| {
            Error::Migration("internal: the target connection was taken before resuming".into())
        })?;
        let found = marker::read(client)
            .await
            .map_err(|e| self.target_error(e))?;
        let (saved_replid, saved_offset) = (state.replid.clone(), state.offset);
        let line = match state::resume_from_target(state, found.as_ref()) {
            Reconciled::FullSync | Reconciled::Agrees => return Ok(()),
            Reconciled::StateBehind { bytes } => format!(
                "the target holds offset {} by its marker, {bytes} bytes past the state file's \
                 {saved_offset} (written every second); resuming from the target's",
                state.offset
            ),
            Reconciled::TargetLost { bytes } => format!(
                "the target lost its last {bytes} bytes of writes (its marker says offset {}, \
                 the state file {saved_offset}); applying them again from offset {}",
                state.offset, state.offset
            ),
            Reconciled::OtherReplid { saved } => format!(
                "the target's marker names replication ID {} at offset {} (the state file: \
                 {saved} at {saved_offset}); resuming from the target's",
                state.replid.as_deref().unwrap_or_default(),
                state.offset
            ),
            Reconciled::MarkerMissing => {
                let keys = target.info.total_keys();
                if keys > 0 && !args.flush_target && !args.allow_non_empty {
                    return Err(self.target_refusal(format!(
                        "holds {keys} keys but no ferry marker ({} in db {}), while the state \
                         file says offset {saved_offset} of {} was applied: the target lost \
                         writes, or the marker was removed (cutover); pass --flush-target to \
                         copy everything again",
                        marker::KEY,
                        marker::DB,
                        saved_replid.as_deref().unwrap_or_default()
                    )));
                }
                format!(
                    "the target lost its data (no ferry marker on it, while the state file says \
                     offset {saved_offset} was applied); full sync"
                )
            }
        };
        self.events.line(line);
        self.save_state(state)
    }

    /// On a cluster target: reads every stream's per-slot markers, for the first session
    /// of each stream to leave out what the target holds.
    async fn read_held_markers(&self, pipe: &Pipe) -> Result<(), Error> {
        let Some(cluster) = pipe.as_cluster() else {
            return Ok(());
        };
        let found = cluster
            .read_markers()
            .await
            .map_err(|e| self.target_error(e))?;
        let slots: usize = found.values().map(|a| a.by_slot.len()).sum();
        self.events.line(format!(
            "read ferry's resume markers on the target cluster: {slots} slot markers of {} \
             streams; what they show applied is not applied again",
            found.len()
        ));
        *self
            .held_markers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = found;
        Ok(())
    }

    /// What the target held of `stream` when this run started (taken: only the first
    /// session after a restart replays).
    fn take_held(&self, stream: &str) -> crate::sinks::writer::cluster::markers::Applied {
        self.held_markers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(stream)
            .unwrap_or_default()
    }

    /// An error that ends the migration, with the position to resume from.
    fn stopped_with(&self, error: Error, state: &MigrationState) -> Error {
        let mut line = crate::error::one_line(crate::error::chain(&error));
        if let Some(shard) = &self.shard {
            line = format!("{}: {line}", shard.label(&self.source_url));
        }
        if state.replid.is_none() {
            return Error::Migration(line);
        }
        let hint = match &self.state_path {
            Some(path) => format!("; resume with --state {}", path.display()),
            None => String::new(),
        };
        Error::Migration(format!(
            "{line}; last applied offset {}{hint}",
            state.offset
        ))
    }

    /// One connection to the source: PSYNC, a snapshot if needed, then the stream until it
    /// ends.
    #[allow(clippy::too_many_arguments)]
    async fn session(
        &self,
        args: &MigrateArgs,
        source_info: &ServerInfo,
        target: &TargetSetup,
        pipe: &Pipe,
        state: &mut MigrationState,
        (owned, lost_since): (bool, &mut Option<Instant>),
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<Stop, SessionError> {
        // The first connection's failures end the run; after a loss they are retried.
        let reconnecting = lost_since.is_some();
        let setup_error = |error: Error| {
            if reconnecting {
                SessionError::Reconnect(error)
            } else {
                SessionError::Setup(error)
            }
        };
        let mut repl = self
            .connect_replica(source_info)
            .await
            .map_err(setup_error)?;
        pipe.report_to(repl.ack_handle());
        let resume = state.replid.clone().map(|id| (id, state.offset));
        let outcome = repl
            .psync(
                resume.as_ref().map(|(id, _)| id.as_str()),
                resume.as_ref().map_or(0, |r| r.1),
            )
            .await
            .map_err(|e| setup_error(self.replication_error(e)))?;
        let start = match outcome {
            PsyncOutcome::Continue { replid } => {
                if let Some((asked, offset)) = &resume {
                    self.check_continue(asked, *offset, &replid)
                        .await
                        .map_err(|e| match e {
                            CheckError::Refused(refused) => {
                                SessionError::Fatal(self.source_error(refused))
                            }
                            CheckError::Info(_) => setup_error(self.source_error(e)),
                        })?;
                }
                *lost_since = None;
                self.say(format!(
                    "partial resync accepted (+CONTINUE) at offset {}",
                    state.offset
                ));
                if let Some(from) = &self.failover_from {
                    self.say(format!(
                        "failover followed from {from} without a full sync: the promoted \
                         node continued replication ID {} at offset {}",
                        state.replid.as_deref().unwrap_or_default(),
                        state.offset
                    ));
                }
                self.events.replid(&replid);
                self.events.phase(Phase::Streaming, Some(state.offset));
                state.replid = Some(replid);
                Mark {
                    offset: state.offset,
                    db: state.db,
                }
            }
            PsyncOutcome::FullResync { replid, offset } => {
                *lost_since = None;
                if let Some((id, from)) = &resume {
                    self.say(format!(
                        "partial resync refused by source; full sync (it cannot continue {id} \
                         from offset {from}: its backlog no longer holds it, or it is another \
                         replication)"
                    ));
                }
                if let Some(shard) = &self.shard {
                    // The target holds the other shards' keys: never flushed here.
                    shard.begin_full_sync(resume.is_some())?;
                }
                if let Some(cluster) = pipe.as_cluster() {
                    // The snapshot's keys carry no stream position.
                    cluster.write_markers(None).await;
                }
                let flush =
                    self.shard.is_none() && (args.flush_target || (owned && !args.allow_non_empty));
                let mut batch = Batch::default();
                if flush {
                    batch.push(&["FLUSHALL"]);
                }
                // A marker of an earlier load must not outlive the data it described.
                if self.shard.is_none() {
                    marker::push_delete(&mut batch);
                }
                pipe.send(batch).await.map_err(|e| self.fatal_target(e))?;
                pipe.barrier().await.map_err(|e| self.fatal_target(e))?;
                if flush {
                    self.say("emptied the target (FLUSHALL)");
                } else if owned && self.shard.is_none() {
                    self.say(
                        "reloading over the target's keys (--allow-non-empty): keys deleted \
                         on the source meanwhile may remain",
                    );
                }
                // Until the snapshot is complete the target holds a partial copy: a run
                // that stops now must start over, never resume.
                state.replid = None;
                state.offset = 0;
                state.db = 0;
                self.save_state(state).map_err(SessionError::Fatal)?;
                tokio::select! {
                    loaded = self.load_snapshot(&mut repl, pipe, target, (&replid, offset), owned) => loaded?,
                    _ = shutdown.as_mut() => return Ok(Stop::DuringFullSync),
                }
                self.events.replid(&replid);
                self.events.phase(Phase::Streaming, Some(offset));
                state.origin = Some(replid.clone());
                state.replid = Some(replid);
                state.offset = offset;
                state.db = 0;
                self.save_state(state).map_err(SessionError::Fatal)?;
                Mark { offset, db: 0 }
            }
        };

        let mut translator: Box<dyn CommandTransform> = Box::new(self.translator(target));
        if let Some(shard) = &self.shard {
            translator = shard.transform(translator);
        }
        let replid = state.replid.clone().unwrap_or_default();
        let stream_name = state.stream_name().unwrap_or_default();
        let mut applier = StreamApplier::new(pipe.clone(), translator, start);
        // Every batch carries ferry's marker, atomically with its data: on a cluster
        // target one per slot (a transaction cannot span slots), written by the writer.
        match (pipe.as_cluster(), &self.shard) {
            (Some(cluster), _) => {
                let held = self.take_held(&stream_name);
                if let Some(highest) = held.highest() {
                    applier = applier.replaying_until(highest);
                }
                cluster
                    .write_markers(Some(StreamMarkers {
                        stream: stream_name,
                        held,
                    }))
                    .await;
            }
            (None, Some(_)) => applier = applier.with_shard_marker(stream_name, replid),
            (None, None) => applier = applier.with_marker(replid),
        }
        let result = self
            .stream(&mut repl, &mut applier, pipe, state, shutdown)
            .await;
        self.events.commands_skipped(applier.skipped());
        let split = pipe.split_transactions();
        if split > 0 {
            self.say(format!(
                "{split} source transactions spanned several cluster slots: each ran as one \
                 transaction per slot (atomic per slot, not across slots)"
            ));
        }
        if let Some(held) = pipe
            .as_cluster()
            .map(|c| c.already_held())
            .filter(|n| *n > 0)
        {
            self.say(format!(
                "{held} commands read again after the restart were not applied again: the \
                 target's per-slot markers showed it held them"
            ));
        }
        let redirects = pipe.redirects();
        if redirects > 0 {
            self.say(format!(
                "{redirects} commands followed a MOVED/ASK of the target cluster to the node \
                 now serving their slot"
            ));
        }
        let joined = pipe.joined_primaries();
        if !joined.is_empty() {
            self.say(format!(
                "the target cluster gained {} primaries while ferry wrote ({}): ferry \
                 connected to them and sent their slots' commands there",
                joined.len(),
                joined.join(", ")
            ));
        }
        self.events.end_session();
        for line in applier.report_lines() {
            self.events.policy_report(&line);
        }
        result
    }

    /// The rules for replicated commands: the policies, for this target.
    fn translator(&self, target: &TargetSetup) -> CommandTranslator {
        let compat_target = Target {
            format: target.format,
            name: target.info.name(),
        };
        let mut translator = CommandTranslator::new(&self.policies, &compat_target);
        // A cluster source's export stays as of the full sync: reading the sets again
        // would need every shard's node (not done yet).
        if self.shard.is_none() {
            translator = translator.with_exported_keys(self.exported_keys.clone());
        }
        match &target.commands {
            Some(names) => translator.with_target_commands(names),
            None => translator,
        }
    }

    fn fatal_target(&self, error: impl std::error::Error + Send + Sync + 'static) -> SessionError {
        SessionError::Fatal(self.target_error(error))
    }

    /// The pipe to the target: its one connection, or one per primary of a cluster.
    async fn target_pipe(&self, target: &mut TargetSetup) -> Result<Pipe, Error> {
        let client = target.take_client()?;
        let (pipe, nodes) = self.open_pipe(client, target.cluster).await?;
        let Some(nodes) = nodes else {
            return Ok(pipe);
        };
        self.events.line(format!(
            "target is a cluster of {} primaries: keys are routed by slot, database 0 only; \
             ferry's resume marker is kept per slot, in each slot's transaction",
            nodes
        ));
        Ok(pipe)
    }

    /// A pipe over `client` (the target's connection), and the number of primaries when
    /// the target is a cluster.
    async fn open_pipe(
        &self,
        mut client: Client,
        cluster: bool,
    ) -> Result<(Pipe, Option<usize>), Error> {
        client.set_stall_timeout(self.reply_timeout);
        if !cluster {
            let (reader, writer) = client.into_split();
            return Ok((
                Pipe::start(reader, writer, self.memory.in_flight_bytes),
                None,
            ));
        }
        let cluster = ClusterPipe::connect(
            &self.target_url,
            &mut client,
            self.connect_timeout,
            self.memory.in_flight_bytes,
        )
        .await
        .map_err(|e| self.target_error(e))?;
        let nodes = cluster.nodes();
        Ok((Pipe::cluster(cluster), Some(nodes)))
    }

    async fn connect_target(&self, args: &MigrateArgs, owned: bool) -> Result<TargetSetup, Error> {
        let mut client = Client::connect(&self.target_url, self.connect_timeout)
            .await
            .map_err(|e| self.target_error(e))?;
        let info = probe::server_info(&mut client)
            .await
            .map_err(|e| self.target_error(e))?;
        if info.is_replica {
            return Err(self.target_refusal(format!(
                "is a replica ({} with role:slave); ferry must write into a primary",
                info.name()
            )));
        }
        if !owned && info.total_keys() > 0 && !args.allow_non_empty && !args.flush_target {
            let per_db: Vec<String> = info
                .keys_per_db
                .iter()
                .map(|(db, keys)| format!("db{db} {keys}"))
                .collect();
            return Err(self.target_refusal(format!(
                "is not empty ({} keys: {}); pass --flush-target to empty it first or \
                 --allow-non-empty to write over it",
                info.total_keys(),
                per_db.join(", ")
            )));
        }
        let cluster = probe::is_cluster(&mut client)
            .await
            .map_err(|e| self.target_error(e))?;
        let probe_tag = match cluster {
            true => Some(
                cluster::probe_tag(&mut client, &self.target_url.host)
                    .await
                    .map_err(|e| self.target_error(e))?,
            ),
            false => None,
        };
        let dump = probe::dump_probe(&mut client, probe_tag.as_deref())
            .await
            .map_err(|e| self.target_error(e))?;
        let expected = info.expected_format();
        let format = match dump.dump_version.and_then(probe::format_from_dump) {
            Some(found) => {
                if found != expected {
                    self.say(format!(
                        "target {} dumps {} (expected {} from its version); using {}",
                        info.name(),
                        found.version,
                        expected.version,
                        found.version
                    ));
                }
                found
            }
            None => expected,
        };
        let (mode, restore_refusal) = match dump.restore_refused {
            None => (WriteMode::Restore, String::new()),
            Some(reason) => {
                self.say(format!(
                    "the target refuses RESTORE ({reason}); writing plain commands (streams cannot be copied)"
                ));
                (WriteMode::PlainOnly, reason)
            }
        };
        let commands = probe::command_names(&mut client)
            .await
            .map_err(|e| self.target_error(e))?;
        Ok(TargetSetup {
            import_mode: ImportMode::Absent,
            cluster,
            commands,
            client: Some(client),
            info,
            format,
            mode,
            restore_refusal,
        })
    }

    async fn source_info(&self) -> Result<ServerInfo, Error> {
        let mut client = Client::connect(&self.source_url, self.connect_timeout)
            .await
            .map_err(|e| self.source_error(e))?;
        probe::server_info(&mut client)
            .await
            .map_err(|e| self.source_error(e))
    }

    async fn connect_replica(&self, source: &ServerInfo) -> Result<ReplicaConnection, Error> {
        let announce_version =
            (source.product == "valkey" && source.series().0 >= 9).then(|| source.version.clone());
        let options = ConnectOptions {
            username: self.source_url.username.clone(),
            password: self
                .source_url
                .password
                .as_ref()
                .map(|p| Secret::new(p.expose())),
            announce_version,
            connect_timeout: self.connect_timeout,
            read_timeout: self.source_read_timeout,
            upgrade: TlsConnector::for_url(&self.source_url, self.connect_timeout)
                .map_err(|e| self.source_error(e))?
                .map(|tls| Arc::new(tls) as Arc<dyn StreamUpgrade>),
            ..ConnectOptions::default()
        };
        ReplicaConnection::connect(&self.source_url.address(), options)
            .await
            .map_err(|e| self.replication_error(explain_replica_setup(e, &self.source_url)))
    }

    /// Streams the snapshot through the decoder, the compatibility transform and the
    /// writer; returns once the target acknowledged all of it. `reload`: ferry loaded this
    /// target before, so a vector-set export file it wrote then may be replaced.
    async fn load_snapshot(
        &self,
        repl: &mut ReplicaConnection,
        pipe: &Pipe,
        target: &TargetSetup,
        (replid, offset): (&str, i64),
        reload: bool,
    ) -> Result<(), SessionError> {
        let started = Instant::now();
        let stream = repl.snapshot().await.map_err(SessionError::SourceLost)?;
        let total = match stream.framing() {
            SnapshotFraming::Sized(len) => Some(len),
            SnapshotFraming::EndMark => None,
        };
        self.say(match total {
            Some(len) => format!(
                "full sync: receiving a {} snapshot",
                crate::display::size(len)
            ),
            None => "full sync: receiving a diskless snapshot".to_owned(),
        });
        self.events.start_full_sync(total);
        let (sender, reader) = snapshot_channel(self.memory.snapshot_chunks);
        let counters = Arc::new(WriterCounters::default());
        let decoded = Arc::new(AtomicU64::new(0));
        let compat_target = Target {
            format: target.format,
            name: target.info.name(),
        };
        let policies = self.policies.clone();
        let exported_keys = self.exported_keys.clone();
        let sink = TargetSink::new(
            pipe.clone(),
            target.format,
            target.mode,
            target.restore_refusal.clone(),
            self.memory.writer,
            counters.clone(),
        );
        let decoded_for_source = decoded.clone();
        let decode = tokio::task::spawn_blocking(move || -> Result<Vec<String>, Error> {
            let mut source = SnapshotSource::new(reader, total, decoded_for_source);
            let mut compat = CompatTransform::new(compat_target, policies, reload)?
                .with_exported_keys(exported_keys);
            let mut sink = sink;
            pipeline::run(&mut source, &mut [&mut compat], &mut sink, &mut |_| {})?;
            Ok(compat.complete()?.lines())
        });

        let forward = stream.forward(sender);
        tokio::pin!(forward);
        let mut ticker = tokio::time::interval(STATS_EVERY);
        ticker.tick().await;
        let mut last_line = Instant::now();
        let mut key_rate = Rate::new(0, RATE_WINDOW);
        let mut byte_rate = Rate::new(0, RATE_WINDOW);
        let pipe_counters = pipe.counters();
        let forwarded = loop {
            tokio::select! {
                result = &mut forward => break result,
                _ = ticker.tick() => {
                    let keys = counters.keys.load(Ordering::Relaxed);
                    let received = decoded.load(Ordering::Relaxed);
                    let keys_per_sec = key_rate.update(keys);
                    self.events.full_sync_rates(keys_per_sec, byte_rate.update(received));
                    self.events.commands(
                        pipe_counters.replies.load(Ordering::Relaxed),
                        pipe_counters.bytes.load(Ordering::Relaxed),
                    );
                    let line = last_line.elapsed() >= PROGRESS_EVERY;
                    if line {
                        last_line = Instant::now();
                    }
                    self.events.full_sync_progress(keys, received, keys_per_sec, line && self.shard.is_none());
                    if line && self.shard.is_some() {
                        self.progress(format!(
                            "full sync: {keys} keys written ({keys_per_sec:.0} keys/s), {} decoded",
                            crate::display::size(received)
                        ));
                    }
                }
            }
        };
        let decoded_result = decode
            .await
            .map_err(|e| Error::Migration(format!("the snapshot decoder stopped: {e}")))?;
        match (forwarded, decoded_result) {
            (Err(error), _) if !matches!(error, ReplError::ReaderGone) => {
                return Err(SessionError::SourceLost(error))
            }
            (_, Err(error)) => return Err(SessionError::Fatal(error)),
            (_, Ok(report)) => {
                for line in report {
                    self.events.policy_report(&line);
                }
            }
        }
        // The snapshot counts as applied once every write before this mark is acknowledged;
        // the marker says so on the target (the stream's batches then move it on).
        let mut done = Batch {
            mark: Some(Mark { offset, db: 0 }),
            ..Batch::default()
        };
        // A cluster target's markers are per slot, written by the stream's batches.
        if !pipe.is_cluster() {
            done.push_framing(&["SELECT", &marker::DB.to_string()]);
            match self.shard {
                None => {
                    let applied = Applied {
                        replid: replid.to_owned(),
                        offset,
                        db: 0,
                    };
                    marker::push_write(&mut done, &applied, marker::DB, &[]);
                }
                Some(_) => {
                    let applied = ShardApplied {
                        replid: replid.to_owned(),
                        offset,
                    };
                    marker::push_shard_write(&mut done, replid, &applied, marker::DB);
                }
            }
        }
        pipe.send(done).await.map_err(|e| self.fatal_target(e))?;
        pipe.barrier().await.map_err(|e| self.fatal_target(e))?;
        let seconds = started.elapsed().as_secs_f64();
        let keys = counters.keys.load(Ordering::Relaxed);
        self.events
            .full_sync_progress(keys, decoded.load(Ordering::Relaxed), 0.0, false);
        self.say(format!(
            "full sync done: {keys} keys ({} by RESTORE, {} with plain commands), {} at or near expiry kept until the source deletes them, {} function libraries, {} in {seconds:.1} s ({:.0} keys/s)",
            counters.restored.load(Ordering::Relaxed),
            counters.plain.load(Ordering::Relaxed),
            counters.near_expiry.load(Ordering::Relaxed),
            counters.functions.load(Ordering::Relaxed),
            crate::display::size(decoded.load(Ordering::Relaxed)),
            keys as f64 / seconds.max(1e-3),
        ));
        Ok(())
    }

    /// Applies the command stream until a signal or an error.
    async fn stream(
        &self,
        repl: &mut ReplicaConnection,
        applier: &mut StreamApplier,
        pipe: &Pipe,
        state: &mut MigrationState,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<Stop, SessionError> {
        applier.flush().await.map_err(|e| self.fatal_target(e))?;
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        let mut last_save = Instant::now();
        let counters = pipe.counters();
        let mut ops_rate = Rate::new(counters.replies.load(Ordering::Relaxed), RATE_WINDOW);
        let mut last_line = Instant::now();
        let mut in_sync = false;
        let mut catch_up = in_sync::CatchUp::default();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.as_mut() => return Ok(Stop::Signal),
                command = repl.next_command() => {
                    applier.apply(command.map_err(SessionError::SourceLost)?)?;
                    // Take whatever already arrived, so the batch carries many commands.
                    while !applier.batch_full() {
                        let more = tokio::select! {
                            biased;
                            command = repl.next_command() => Some(command),
                            _ = std::future::ready(()) => None,
                        };
                        match more {
                            Some(command) => applier.apply(command.map_err(SessionError::SourceLost)?)?,
                            None => break,
                        }
                    }
                    if let Some(shard) = &self.shard {
                        shard.read_up_to(applier.position().offset);
                        shard.settle().await;
                    }
                    applier.flush().await.map_err(|e| self.fatal_target(e))?;
                }
                _ = ticker.tick() => {
                    if let Some(failure) = pipe.failure() {
                        return Err(SessionError::Fatal(self.target_refusal(failure)));
                    }
                    let applied = pipe.applied();
                    if let Some(mark) = applied {
                        state.offset = mark.offset;
                        state.db = mark.db;
                    }
                    let received = repl.offset();
                    if !in_sync && catch_up.in_sync(Instant::now(), received, state.offset) {
                        in_sync = true;
                        self.report_in_sync(state.offset);
                    }
                    if last_save.elapsed() >= STATE_EVERY {
                        self.save_state(state)?;
                        last_save = Instant::now();
                    }
                    self.events.commands_skipped(applier.skipped());
                    let replies = counters.replies.load(Ordering::Relaxed);
                    self.events.commands(replies, counters.bytes.load(Ordering::Relaxed));
                    let line = last_line.elapsed() >= PROGRESS_EVERY;
                    if line {
                        last_line = Instant::now();
                    }
                    let rate = ops_rate.update(replies);
                    // A cluster source's numbers are the sums over its shards: the lag is
                    // every shard's together.
                    let (all_applied, all_received, all_rate) = match &self.shard {
                        Some(shard) => shard.totals(state.offset, received, rate),
                        None => (state.offset, received, rate),
                    };
                    self.events.stream_progress(all_applied, all_received, all_rate, line && self.shard.is_none());
                    if line && self.shard.is_some() {
                        self.progress(format!(
                            "streaming: applied offset {}, lag {} bytes, {rate:.0} commands/s",
                            state.offset,
                            (received - state.offset).max(0)
                        ));
                    }
                }
            }
        }
    }

    /// Waits (bounded) for what is in flight, then records the applied position.
    async fn drain(&self, pipe: &Pipe, state: &mut MigrationState) {
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, pipe.barrier()).await;
        if let Some(mark) = pipe.applied() {
            state.offset = mark.offset;
            state.db = mark.db;
        }
        if let Err(error) = self.save_state(state) {
            self.events
                .line(crate::error::one_line(crate::error::chain(&error)));
        }
    }

    fn save_state(&self, state: &MigrationState) -> Result<(), Error> {
        if let Some(shard) = &self.shard {
            return shard.save(state, &self.source_url.address());
        }
        match &self.state_path {
            Some(path) => save_to(path, state),
            None => Ok(()),
        }
    }

    /// A log line, naming the shard when this follows one of a cluster source.
    fn say(&self, text: impl AsRef<str>) {
        match &self.shard {
            Some(shard) => self.events.line(format!(
                "{}: {}",
                shard.label(&self.source_url),
                text.as_ref()
            )),
            None => self.events.line(text),
        }
    }

    /// A periodic progress line of one shard.
    fn progress(&self, text: String) {
        if let Some(shard) = &self.shard {
            self.events
                .progress_line(&format!("{}: {text}", shard.label(&self.source_url)));
        }
    }

    /// The stream caught up with the source: for a cluster source, once every shard has.
    fn report_in_sync(&self, offset: i64) {
        match &self.shard {
            Some(shard) => shard.in_sync(&self.events, &self.source_url, offset),
            None => self.events.in_sync(offset),
        }
    }
}

fn save_to(path: &Path, state: &MigrationState) -> Result<(), Error> {
    state::save(path, state).map_err(Error::from)
}

/// Says whether `POST /stop` (cutover) can end this run.
pub fn stop_endpoint_line(stoppable: bool) -> &'static str {
    if stoppable {
        "POST /stop (cutover) needs the control token"
    } else {
        "POST /stop is off: no --control-token-file or --control-token-env, so cutover cannot stop this run"
    }
}

/// Resolves on Ctrl-C, SIGTERM or `POST /stop` (cutover).
async fn shutdown_or_stop(stats: Arc<crate::observe::Stats>, events: Arc<Observer>) {
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = stats.stop_requested() => events.line("stopping: asked to by POST /stop (cutover)"),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(term) => { term.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
