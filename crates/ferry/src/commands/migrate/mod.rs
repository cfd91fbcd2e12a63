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
use crate::filter::Scope;
use crate::observe::rate::RATE_WINDOW;
use crate::observe::{Observer, Phase, Rate};
use crate::pipeline;
use crate::policy::Policies;
use crate::server::client::Client;
use crate::server::cluster;
use crate::server::probe::{self, ImportMode, ServerInfo};
use crate::server::reconnect::Reconnect;
use crate::sinks::applier::StreamApplier;
use crate::sinks::writer::cluster::split::StreamMarkers;
use crate::sinks::writer::cluster::ClusterPipe;
use crate::sinks::writer::pipe::{Batch, Mark, Pipe};
use crate::sinks::writer::DRAIN_TIMEOUT;
use crate::sinks::writer::{TargetSink, WriteMode, WriterCounters, WriterLimits};
use crate::sources::replication::continuation::{self, CheckError};
use crate::sources::replication::spool::SpoolLimit;
use crate::sources::replication::SnapshotSource;
use crate::state::marker::{self, Applied, ShardApplied};
use crate::state::slot_markers::AllApplied;
use crate::state::{self, MigrationState, Reconciled};
use crate::target::Target;
use crate::tls::TlsConnector;
use crate::transforms::commands::transform::CommandTransform;
use crate::transforms::commands::CommandTranslator;
use crate::transforms::compat::{CompatTransform, ExportedKeys};
use crate::transforms::filter::{ScopeTransform, ScopedCommands};
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

mod aof;
mod error;
mod full_sync;
mod import_mode;
mod in_sync;
mod memory;
mod next_steps;
mod reader;
mod run;
pub mod scan;
mod scan_mode;
mod sentinel;
mod session;
mod shards;
mod spooled;
mod stream;
mod target;
mod vector_export;

pub use error::MigrateError;
use memory::MemoryPlan;
use session::{SessionError, Stop};
use target::TargetSetup;

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
    /// `--shards K/N`: this process follows only share K of a cluster source's primaries.
    share: Option<crate::cli::ShardShare>,
    /// The node a failover of this shard moved away from, until a session continued.
    failover_from: Option<String>,
    /// Under `--vector-set export`: the vector sets the export covers (`vector_export`).
    exported_keys: ExportedKeys,
    /// A cluster target's per-slot markers as this run found them, by stream: each
    /// stream's first session takes its own, to leave out what the target holds.
    held_markers: Arc<std::sync::Mutex<AllApplied>>,
    /// The keys and databases moved, and where (`--match`, `--db`, `--db-map`, ...).
    scope: Scope,
    /// `--spool-dir`: full syncs go through a spool on disk (a cluster source's shards
    /// each in a folder of their own).
    spool: Option<spooled::SpoolSettings>,
    /// Set when a run stopped because the connection to the target failed (a restart):
    /// with a spool, the run waits for the target and resumes.
    target_lost: Arc<std::sync::atomic::AtomicBool>,
    /// Set when a run stopped because a resharding of a cluster target had left a
    /// transaction's keys on two nodes: the run resumes once the slot has moved.
    target_resharding: Arc<std::sync::atomic::AtomicBool>,
}

/// A resharding tool moves a slot's keys in quick batches: a slot seen half moved is
/// whole again within seconds, unless the resharding itself stopped half way.
const HALF_MOVED_PAUSE: Duration = Duration::from_secs(1);
const HALF_MOVED_RETRIES: u32 = 60;

async fn migrate(args: MigrateArgs) -> Result<(), Error> {
    let source_url = match (&args.source_aof, &args.source) {
        (None, Some(source)) => Some(
            args.source_connection
                .settings()
                .apply(parse_url(source, "--source")?)?,
        ),
        (None, None) => {
            return Err(Error::Usage(
                "give --source URL or --source-aof PATH".into(),
            ))
        }
        (Some(_), _) => None,
    };
    let target_url = args
        .target_connection
        .settings()
        .apply(parse_url(&args.target, "--target")?)?;
    // An AOF run has no source server: nothing on its path reads `source_url`.
    let source_url = source_url.unwrap_or_else(|| target_url.clone());
    let mut job = Migration {
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
        share: args.shards,
        failover_from: None,
        exported_keys: ExportedKeys::default(),
        held_markers: Arc::default(),
        scope: args
            .filters
            .scope()
            .map_err(|e| Error::Usage(e.to_string()))?,
        spool: args.spool_dir.clone().map(|dir| spooled::SpoolSettings {
            dir,
            limit: SpoolLimit {
                max_bytes: args.spool_max_mb.map_or(u64::MAX, |mb| mb << 20),
            },
        }),
        target_lost: Arc::default(),
        target_resharding: Arc::default(),
    };
    if job.spool.is_some() && args.mode == MigrateMode::Scan {
        return Err(Error::Usage(
            "--spool-dir spools a replication full sync; --mode scan has none".into(),
        ));
    }
    let control = args.control.token()?;
    if let Some(addr) = args.metrics_addr {
        let stoppable = control.is_some();
        let bound = crate::observe::http::serve(addr, job.events.stats().clone(), control)
            .await
            .map_err(|e| Error::Usage(format!("--metrics-addr {addr}: cannot listen: {e}")))?;
        // An AOF has no server to verify against.
        if args.source_aof.is_none() {
            job.events.stats().set_next_steps(next_steps::next_steps(
                &args,
                &job.source_url,
                &job.target_url,
                bound,
            ));
        }
        job.events
            .line(format!("serving /metrics and /status on http://{bound}"));
        job.events.line(stop_endpoint_line(stoppable));
    }
    let timeout = job.connect_timeout;
    if args.source_aof.is_none() {
        job.source_url = sentinel::locate(&job.source_url, "source", timeout, &job.events).await?;
    }
    job.target_url = sentinel::locate(&job.target_url, "target", timeout, &job.events).await?;
    let mut result = match &args.source_aof {
        Some(path) => job.run_aof(&args, path).await,
        None => job.run(&args).await,
    };
    // A target behind Sentinel that failed over: the same run again resumes from ferry's
    // marker on the promoted primary (what a restart with the same --state does). A
    // target that restarted, with a spool: the same run again resumes from the spool.
    let mut half_moved_retries = 0;
    while let Err(error) = &result {
        if args.source_aof.is_some() || job.state_path.is_none() {
            break;
        }
        if job.target_resharding.swap(false, Ordering::AcqRel) {
            half_moved_retries += 1;
            if half_moved_retries > HALF_MOVED_RETRIES {
                break;
            }
            job.events.line(format!(
                "the run stopped ({}); resuming from ferry's markers in {} s, once the \
                 resharding has moved the slot (attempt {half_moved_retries} of \
                 {HALF_MOVED_RETRIES})",
                error_line(error),
                HALF_MOVED_PAUSE.as_secs()
            ));
            tokio::time::sleep(HALF_MOVED_PAUSE).await;
        } else if job.target_url.sentinel.is_some() {
            job.events.line(format!(
                "the run stopped ({}); asking the target's sentinels whether it failed over",
                error_line(error)
            ));
            if !job.target_failed_over().await {
                break;
            }
        } else if job.spool.is_some() && job.target_lost.swap(false, Ordering::AcqRel) {
            job.events.line(format!(
                "the run stopped ({}); waiting for the target to answer again, then resuming \
                 from the spool",
                error_line(error)
            ));
            if !job.target_back().await {
                break;
            }
        } else {
            break;
        }
        result = job.run(&args).await;
    }
    // A worker that ends before its cutover leaves its share unfollowed: a scheduler
    // (a Kubernetes Job) must see a failure, and start it again to resume, not a success.
    if let (Ok(()), Some(share)) = (&result, job.share) {
        if !job.events.stats().stop_was_requested() {
            result = Err(MigrateError::WorkerStopped {
                share: share.to_string(),
            }
            .into());
        }
    }
    job.events.stopped(None);
    if let Err(error) = &result {
        job.events.error(&error_line(error));
    }
    result
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
        _ = crate::server::shutdown::signal() => {}
        _ = stats.stop_requested() => events.line("stopping: asked to by POST /stop (cutover)"),
    }
}
