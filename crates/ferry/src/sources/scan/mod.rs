//! `ferry migrate --mode scan`: for sources that refuse replication (managed services deny
//! SYNC/PSYNC), the keyspace is read with commands and changes are followed through
//! keyspace notifications.
//!
//! ```text
//! CONFIG notify-keyspace-events ─▶ PSUBSCRIBE __keyevent@*__:* (confirmed) ─▶ dirty keys
//!                                                                               │
//! SCAN (paced) ─▶ keys ─┬──────────────────────────────────────────────────────┘
//!                       ▼
//!        DUMP + PEXPIRETIME (pipelined) ─▶ apply thread: DUMP decode ─▶ compat ─▶ writer
//!                                          (gone: DEL)
//! ```
//!
//! Subscribing before the scan means every change made while or after a key is read is
//! notified, and the key is read again after it; reads and writes keep one order (one
//! source connection, one apply thread, one target pipe), so the last read wins. What
//! notifications cannot tell (FLUSHALL, FLUSHDB, SWAPDB, changes while disconnected) is
//! documented in docs/migrate.md; a lost subscription triggers a rescan of everything.

mod apply;
mod conn;
mod dirty;
mod fetch;
mod notify;
mod scanner;
mod subscriber;

use crate::error::Error;
use crate::observe::{Observer, Phase, Rate};
use crate::policy::{Policies, VectorSetPolicy};
use crate::sinks::writer::client::{Client, ClientError};
use crate::sinks::writer::pipe::{Batch, Pipe};
use crate::sinks::writer::probe::ServerInfo;
use crate::sinks::writer::{TargetSink, WriteMode, WriterCounters, WriterLimits};
use crate::target::Target;
use crate::transforms::compat::CompatTransform;
use crate::url::ServerUrl;
use apply::{QuietKeys, Record};
use conn::SourceConn;
use dirty::{DbKey, DirtyKeys};
use ferry_repl::ReplError;
use fetch::{ExpiryRead, Fetched};
use scanner::{Pace, Walk};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Changed keys read per round trip.
const DIRTY_BATCH: usize = 256;
/// Records between the fetcher and the apply thread (their bytes are bounded by
/// [`ScanJob::queued_bytes`]).
const APPLY_QUEUE: usize = 1024;
/// How often progress, `/status` and the stream-group re-read are looked at.
const TICK: Duration = Duration::from_millis(250);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Keys that change without notifications (streams with consumer groups, vector sets)
/// are read again this often.
const QUIET_EVERY: Duration = Duration::from_secs(2);
/// Keys examined per step (each tick) of the vector-set walk, at least.
const SWEEP_MIN: usize = 200;
/// How often INFO commandstats is read for FLUSHDB/FLUSHALL/SWAPDB.
const FLUSHES_EVERY: Duration = Duration::from_secs(1);
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// How long a probe key's notification may take.
const PROBE_WAIT: Duration = Duration::from_secs(3);
/// How long a lost source is retried.
const RECONNECT_FOR: Duration = Duration::from_secs(300);
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);
/// Longest wait for the target to acknowledge what is in flight when stopping.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything scan mode needs from `migrate`'s setup.
pub struct ScanJob<'a> {
    pub source_url: &'a ServerUrl,
    pub source: &'a ServerInfo,
    pub target_url: &'a ServerUrl,
    pub target: Target,
    pub write_mode: WriteMode,
    pub restore_refusal: String,
    pub writer_limits: WriterLimits,
    /// Key names held as changed-and-not-copied before giving up and rescanning.
    pub dirty_budget_bytes: usize,
    /// Bytes of DUMP payloads read and not yet written (one bigger value goes alone).
    pub queued_bytes: usize,
    pub policies: Policies,
    pub connect_timeout: Duration,
    pub keys_per_sec: u32,
    /// Follow changes (keyspace notifications); `false` copies once and exits.
    pub follow: bool,
    pub flush_target: bool,
    /// ferry may delete target keys the source lacks (the target was empty or flushed).
    pub owns_target: bool,
    /// `--state` was passed (scan mode does not use it).
    pub state_given: bool,
    pub events: &'a Observer,
}

/// The server's words when a replication error means the source refuses to be replicated
/// (PSYNC or SYNC denied by an ACL or renamed away), so that `migrate` can point at
/// `--mode scan`.
pub fn replication_refused(error: &ReplError) -> Option<&str> {
    let text = match error {
        ReplError::Auth(text) | ReplError::ServerError(text) => text,
        _ => return None,
    };
    let lower = text.to_ascii_lowercase();
    let names_command = ["psync", "sync", "replconf"]
        .iter()
        .any(|name| lower.contains(name));
    let refusal = lower.contains("noperm")
        || lower.contains("no permissions")
        || lower.contains("unknown command");
    (names_command && refusal).then_some(text.as_str())
}

/// Runs scan mode until `shutdown` resolves (or once through with `follow` off).
pub async fn run(
    job: ScanJob<'_>,
    pipe: Pipe,
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
) -> Result<(), Error> {
    if let VectorSetPolicy::Export(_) = job.policies.vector_set {
        return Err(Error::Usage(
            "--vector-set export is not available with --mode scan: a vector set read again \
             (rescans, renames) would be exported again; use --vector-set skip here and export \
             from an RDB file with ferry convert"
                .into(),
        ));
    }
    let restore_to = if job.follow {
        job.enable_notifications().await?
    } else {
        job.events.line(
            "--no-follow: copying once without following changes; writes made during the copy may be missed",
        );
        None
    };
    if job.state_given {
        job.events.line(
            "scan mode keeps no resume position: --state is not written, and a restart scans everything again",
        );
    }
    let result = Copier::new(&job, pipe).run(shutdown).await;
    if let Some(original) = restore_to {
        job.restore_notifications(&original).await;
    }
    result
}

impl ScanJob<'_> {
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

    /// Turns on the key events ferry follows; the original value, if changed.
    async fn enable_notifications(&self) -> Result<Option<String>, Error> {
        let mut client = Client::connect(self.source_url, self.connect_timeout)
            .await
            .map_err(|e| self.source_error(e))?;
        let setting = notify::enable(&mut client)
            .await
            .map_err(|e| self.source_error(e))?;
        match setting {
            notify::Setting::Changed(was) => {
                self.events.line(format!(
                    "set notify-keyspace-events on the source to \"{}\" (was \"{was}\"); it is put back when ferry stops",
                    notify::with_needed(&was)
                ));
                Ok(Some(was))
            }
            notify::Setting::AlreadyOn => {
                self.events.line(
                    "the source already sends the key events ferry follows (notify-keyspace-events)",
                );
                Ok(None)
            }
            notify::Setting::Unknown { reason } => {
                if self.probe_notifications(&mut client).await? {
                    self.events.line(format!(
                        "CONFIG is refused ({reason}), but a probe key's changes were notified: notify-keyspace-events is on (ferry cannot check that it has every class it needs: E and A)"
                    ));
                    Ok(None)
                } else {
                    Err(self.source_error(notify::NotifyError::NotObserved { reason }))
                }
            }
        }
    }

    /// Writes and deletes a probe key (`ferry:notify-probe:…`) and says whether its key
    /// events arrived: the only check left when CONFIG is refused.
    async fn probe_notifications(&self, client: &mut Client) -> Result<bool, Error> {
        let subscription = subscriber::subscribe(self.source_url, self.connect_timeout)
            .await
            .map_err(|e| self.source_error(e))?;
        let seen = Arc::new(DirtyKeys::new(1 << 20));
        let follower = tokio::spawn(subscription.follow(seen.clone()));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let key = format!("ferry:notify-probe:{}:{nanos}", std::process::id());
        let written = async {
            client
                .call_ok(&["SET", key.as_str(), "1", "PX", "10000"])
                .await?;
            client.call_ok(&["DEL", key.as_str()]).await
        }
        .await;
        let arrived = match written {
            Ok(_) => {
                let wait = async {
                    while !seen
                        .take(usize::MAX)
                        .iter()
                        .any(|(_, k)| k.as_ref() == key.as_bytes())
                    {
                        seen.changed().await;
                    }
                };
                tokio::time::timeout(PROBE_WAIT, wait).await.is_ok()
            }
            Err(error) => {
                follower.abort();
                return Err(self.source_error(error));
            }
        };
        follower.abort();
        Ok(arrived)
    }

    async fn restore_notifications(&self, original: &str) {
        let restored = async {
            let mut client = Client::connect(self.source_url, self.connect_timeout).await?;
            notify::restore(&mut client, original).await
        }
        .await;
        match restored {
            Ok(()) => self.events.line(format!(
                "put notify-keyspace-events back to \"{original}\" on the source"
            )),
            Err(error) => self.events.line(format!(
                "could not put notify-keyspace-events back to \"{original}\" on the source ({error}); set it by hand"
            )),
        }
    }
}

/// Why a session with the source ended.
enum SessionEnd {
    /// Shutdown, or a one-shot copy done.
    Done,
    /// The source connection (or the subscription) failed: reconnect and rescan.
    Lost(ClientError),
    Fatal(Error),
    /// The apply thread stopped; its result says why.
    ApplyStopped,
}

impl From<Error> for SessionEnd {
    fn from(error: Error) -> Self {
        SessionEnd::Fatal(error)
    }
}

struct Copier<'a> {
    job: &'a ScanJob<'a>,
    pipe: Pipe,
    dirty: Arc<DirtyKeys>,
    quiet: Arc<QuietKeys>,
    counters: Arc<WriterCounters>,
    /// DUMP payload bytes read.
    bytes_read: AtomicU64,
    /// Keys read from the source (present or gone).
    keys_read: u64,
    /// Bytes of values read and not yet written ([`ScanJob::queued_bytes`]).
    queued: Arc<tokio::sync::Semaphore>,
    /// FLUSHDB/FLUSHALL/SWAPDB calls last seen (`INFO commandstats`); `None` before the
    /// first look or when refused.
    unnotified: Option<u64>,
    /// INFO commandstats was refused (said once).
    commandstats_refused: bool,
    expiry: ExpiryRead,
    in_sync: bool,
}

impl<'a> Copier<'a> {
    fn new(job: &'a ScanJob<'a>, pipe: Pipe) -> Self {
        Self {
            job,
            pipe,
            dirty: Arc::new(DirtyKeys::new(job.dirty_budget_bytes)),
            quiet: Arc::new(QuietKeys::new(
                job.target.format.has_builtin_module("vectorset"),
            )),
            counters: Arc::new(WriterCounters::default()),
            bytes_read: AtomicU64::new(0),
            keys_read: 0,
            queued: Arc::new(tokio::sync::Semaphore::new(job.queued_bytes)),
            unnotified: None,
            commandstats_refused: false,
            expiry: ExpiryRead::for_source(&job.source.product, job.source.series()),
            in_sync: false,
        }
    }

    async fn run(mut self, shutdown: &mut Pin<&mut impl Future<Output = ()>>) -> Result<(), Error> {
        let job = self.job;
        if job.flush_target {
            let mut batch = Batch::default();
            batch.push(&["FLUSHALL"]);
            self.pipe
                .send(batch)
                .await
                .map_err(|e| job.target_error(e))?;
            self.pipe.barrier().await.map_err(|e| job.target_error(e))?;
            job.events.line("emptied the target (FLUSHALL)");
        }
        let compat = CompatTransform::new(job.target.clone(), job.policies.clone(), false)?;
        let sink = TargetSink::new(
            self.pipe.clone(),
            job.target.format,
            job.write_mode,
            job.restore_refusal.clone(),
            job.writer_limits,
            self.counters.clone(),
        );
        let (records, receiver) = mpsc::channel(APPLY_QUEUE);
        let quiet = self.quiet.clone();
        let applier =
            tokio::task::spawn_blocking(move || apply::run(receiver, compat, sink, quiet));

        let mut lost_since: Option<Instant> = None;
        let mut rescan = false;
        let end = loop {
            let end = self
                .session(&records, rescan, &mut lost_since, shutdown)
                .await;
            rescan = true;
            match end {
                SessionEnd::Lost(error) => {
                    let since = *lost_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > RECONNECT_FOR {
                        break SessionEnd::Fatal(job.source_error(error));
                    }
                    job.events.reconnecting();
                    job.events.line(format!(
                        "lost the source ({error}); reconnecting, then scanning everything again (notifications sent meanwhile are lost)"
                    ));
                    tokio::select! {
                        _ = tokio::time::sleep(RECONNECT_PAUSE) => {}
                        _ = shutdown.as_mut() => break SessionEnd::Done,
                    }
                }
                other => break other,
            }
        };

        drop(records);
        let applied = applier
            .await
            .map_err(|e| Error::Migration(format!("the scan writer stopped: {e}")))?;
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, self.pipe.barrier()).await;
        let report = match (end, applied) {
            (SessionEnd::Fatal(error), _) => return Err(error),
            (_, Err(error)) => return Err(error),
            (SessionEnd::ApplyStopped, Ok(_)) => {
                return Err(Error::Migration("the scan writer stopped".into()))
            }
            (_, Ok(report)) => report,
        };
        for line in report {
            job.events.policy_report(&line);
        }
        if let Some(failure) = self.pipe.failure() {
            return Err(job.target_error(crate::sinks::writer::pipe::PipeError(failure)));
        }
        job.events.line(format!(
            "stopped: {} keys written ({} by RESTORE, {} with plain commands); scan mode keeps no resume position, a new run copies everything again",
            self.counters.keys.load(Ordering::Relaxed),
            self.counters.restored.load(Ordering::Relaxed),
            self.counters.plain.load(Ordering::Relaxed),
        ));
        Ok(())
    }

    /// One connection to the source: subscribe, scan everything, then follow changes.
    async fn session(
        &mut self,
        records: &mpsc::Sender<Record>,
        rescan: bool,
        lost_since: &mut Option<Instant>,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> SessionEnd {
        let job = self.job;
        // The first connection's failures end the run; later ones are retried.
        let setup_failed = |error: ClientError| {
            if lost_since.is_some() {
                SessionEnd::Lost(error)
            } else {
                SessionEnd::Fatal(job.source_error(error))
            }
        };
        let mut follower = None;
        if job.follow {
            match subscriber::subscribe(job.source_url, job.connect_timeout).await {
                Ok(subscription) => {
                    follower = Some(tokio::spawn(subscription.follow(self.dirty.clone())))
                }
                Err(error) => return setup_failed(error),
            }
        }
        let mut conn = match SourceConn::connect(job.source_url, job.connect_timeout).await {
            Ok(conn) => conn,
            Err(error) => return setup_failed(error),
        };
        *lost_since = None;
        let abort = follower.as_ref().map(|task| task.abort_handle());
        let subscription_lost = async {
            match follower.as_mut() {
                Some(task) => match task.await {
                    Ok(error) => error,
                    Err(join) => ClientError::Protocol(format!("the subscriber stopped: {join}")),
                },
                None => std::future::pending().await,
            }
        };
        let end = {
            tokio::pin!(subscription_lost);
            tokio::select! {
                biased;
                _ = shutdown.as_mut() => SessionEnd::Done,
                error = &mut subscription_lost => SessionEnd::Lost(error),
                end = self.copy_and_follow(&mut conn, records, rescan) => end,
            }
        };
        if let Some(task) = abort {
            task.abort();
        }
        if matches!(end, SessionEnd::Done) {
            // Whatever was read goes out before the pipe is drained.
            let (done, wait) = oneshot::channel();
            if records.send(Record::Flush(done)).await.is_ok() {
                let _ = wait.await;
            }
        }
        end
    }

    /// Scans everything, then (following) copies changed keys as they are notified.
    async fn copy_and_follow(
        &mut self,
        conn: &mut SourceConn,
        records: &mpsc::Sender<Record>,
        mut rescan: bool,
    ) -> SessionEnd {
        if let Err(end) = self.unseen_changes(conn).await {
            return end;
        }
        loop {
            if let Err(end) = self.scan_all(conn, records, rescan).await {
                return end;
            }
            match self.unseen_changes(conn).await {
                Ok(true) if self.job.follow => {
                    rescan = true;
                    continue;
                }
                Ok(_) => {}
                Err(end) => return end,
            }
            if !self.job.follow {
                return match self.settle(records).await {
                    Ok(()) => {
                        self.job
                            .events
                            .line("copy done (--no-follow); later changes are not copied");
                        SessionEnd::Done
                    }
                    Err(end) => end,
                };
            }
            if let Err(end) = self.follow(conn, records).await {
                return end;
            }
            // Changes no notification named: found by scanning again.
            rescan = true;
        }
    }

    /// Whether the source ran FLUSHDB, FLUSHALL or SWAPDB since the last look: they
    /// notify no keys, so only a rescan (of the target too) finds what they changed.
    async fn unseen_changes(&mut self, conn: &mut SourceConn) -> Result<bool, SessionEnd> {
        let calls = scanner::unnotified_calls(conn)
            .await
            .map_err(SessionEnd::Lost)?;
        let Some(calls) = calls else {
            if !self.commandstats_refused {
                self.commandstats_refused = true;
                self.job.events.line(
                    "INFO commandstats is refused: FLUSHDB, FLUSHALL and SWAPDB on the source will go unnoticed",
                );
            }
            return Ok(false);
        };
        let changed = self.unnotified.is_some_and(|before| before != calls);
        self.unnotified = Some(calls);
        if changed {
            self.job.events.line(
                "the source ran FLUSHDB, FLUSHALL or SWAPDB, which notify no keys; scanning everything again",
            );
        }
        Ok(changed)
    }

    /// Reads every key of the source (and, on a rescan of a target ferry owns, every key
    /// of the target, so that keys deleted unseen are deleted there too).
    async fn scan_all(
        &mut self,
        conn: &mut SourceConn,
        records: &mpsc::Sender<Record>,
        rescan: bool,
    ) -> Result<(), SessionEnd> {
        let job = self.job;
        let started = Instant::now();
        let written_before = self.counters.keys.load(Ordering::Relaxed);
        let near_expiry_before = self.counters.near_expiry.load(Ordering::Relaxed);
        let read_before = self.keys_read;
        job.events.start_full_sync(None);
        let mut pace = Pace::new(job.keys_per_sec);
        let mut ticks = Ticks::new(written_before);
        if rescan && job.follow {
            if job.owns_target {
                // A value read before a flush or swap and still on its way would land
                // behind the target's SCAN, unseen by it: everything read so far goes in
                // first.
                self.settle(records).await?;
                let mut target = SourceConn::connect(job.target_url, job.connect_timeout)
                    .await
                    .map_err(|e| SessionEnd::Fatal(job.target_error(e)))?;
                let dbs = scanner::databases(&mut target)
                    .await
                    .map_err(|e| SessionEnd::Fatal(job.target_error(e)))?;
                let mut walk = Walk::new(dbs);
                while !walk.done() {
                    let (db, keys) = walk
                        .step(&mut target)
                        .await
                        .map_err(|e| SessionEnd::Fatal(job.target_error(e)))?;
                    pace.take(keys.len() as u64).await;
                    self.copy(conn, records, with_db(db, keys)).await?;
                    self.copy_dirty(conn, records).await?;
                    ticks.scan(self, false);
                }
            } else {
                job.events.line(
                    "--allow-non-empty: keys deleted on the source while ferry could not follow stay on the target",
                );
            }
        }
        self.copy_functions(conn, records).await?;
        let dbs = scanner::databases(conn).await.map_err(SessionEnd::Lost)?;
        let mut walk = Walk::new(dbs);
        while !walk.done() {
            let (db, keys) = walk.step(conn).await.map_err(SessionEnd::Lost)?;
            pace.take(keys.len() as u64).await;
            self.copy(conn, records, with_db(db, keys)).await?;
            self.copy_dirty(conn, records).await?;
            ticks.scan(self, false);
        }
        ticks.scan(self, true);
        let read = self.keys_read - read_before;
        let seconds = started.elapsed().as_secs_f64();
        job.events.line(format!(
            "scan done: {read} keys read in {seconds:.1} s ({:.0} keys/s), {} at or near expiry kept until the source's expiry is seen",
            read as f64 / seconds.max(1e-3),
            self.counters.near_expiry.load(Ordering::Relaxed) - near_expiry_before,
        ));
        job.events.phase(Phase::Streaming, None);
        Ok(())
    }

    /// Function libraries, read once per scan: changing them notifies nothing.
    async fn copy_functions(
        &mut self,
        conn: &mut SourceConn,
        records: &mpsc::Sender<Record>,
    ) -> Result<(), SessionEnd> {
        let source = self.job.source;
        if source.product != "valkey" && source.series().0 < 7 {
            return Ok(());
        }
        match fetch::function_libraries(conn)
            .await
            .map_err(SessionEnd::Lost)?
        {
            Ok(libraries) => {
                for code in libraries {
                    records
                        .send(Record::Function(code))
                        .await
                        .map_err(|_| SessionEnd::ApplyStopped)?;
                }
            }
            Err(refusal) => self.job.events.line(format!(
                "function libraries are not copied: the source refused to list them ({refusal})"
            )),
        }
        Ok(())
    }

    /// Copies changed keys as they are notified; returns when a rescan is due (the
    /// changed-key budget overflowed, or the source flushed or swapped databases).
    async fn follow(
        &mut self,
        conn: &mut SourceConn,
        records: &mpsc::Sender<Record>,
    ) -> Result<(), SessionEnd> {
        let mut ticker = tokio::time::interval(TICK);
        let mut ticks = Ticks::new(self.pipe.counters().replies.load(Ordering::Relaxed));
        let mut quiet_read = Instant::now();
        // New vector sets notify nothing either: a slow walk over keys of that type finds
        // them (only for a target that stores them).
        let mut sweep: Option<Walk> = None;
        let sweep_count = (self.job.keys_per_sec as usize / 4).max(SWEEP_MIN);
        let mut flushes_read = Instant::now();
        let dirty = self.dirty.clone();
        loop {
            let tick = tokio::select! {
                _ = dirty.changed() => false,
                _ = ticker.tick() => true,
            };
            if records.is_closed() {
                return Err(SessionEnd::ApplyStopped);
            }
            if let Some(failure) = self.pipe.failure() {
                return Err(SessionEnd::Fatal(
                    self.job
                        .target_error(crate::sinks::writer::pipe::PipeError(failure)),
                ));
            }
            if self.dirty.take_overflow() {
                self.job.events.line(
                    "more changed keys than --max-memory-mb allows to remember; scanning everything again",
                );
                return Ok(());
            }
            if flushes_read.elapsed() >= FLUSHES_EVERY {
                flushes_read = Instant::now();
                if self.unseen_changes(conn).await? {
                    return Ok(());
                }
            }
            if self.quiet.modules && tick {
                if sweep.as_ref().is_none_or(Walk::done) {
                    let dbs = scanner::databases(conn).await.map_err(SessionEnd::Lost)?;
                    sweep = Some(Walk::of_type(dbs, "vectorset", sweep_count));
                }
                if let Some(walk) = sweep.as_mut() {
                    let (db, keys) = walk.step(conn).await.map_err(SessionEnd::Lost)?;
                    for key in keys {
                        self.dirty.mark(db, key);
                    }
                }
            }
            if quiet_read.elapsed() >= QUIET_EVERY {
                quiet_read = Instant::now();
                for (db, key) in self.quiet.all() {
                    self.dirty.mark(db, key);
                }
            }
            while !self.dirty.is_empty() {
                self.copy_dirty(conn, records).await?;
            }
            if !self.in_sync {
                // Every change notified before the drain above is now on the target (as
                // replication mode's "applied reached received" at one moment).
                self.settle(records).await?;
                if !self.dirty.overflowed() {
                    self.in_sync = true;
                    self.job.events.phase(Phase::InSync, None);
                    self.job.events.line(
                        "in sync: every key scanned and every notified change copied; following changes",
                    );
                }
            }
            ticks.follow(self);
        }
    }

    /// Reads one batch of changed keys, if any.
    async fn copy_dirty(
        &mut self,
        conn: &mut SourceConn,
        records: &mpsc::Sender<Record>,
    ) -> Result<(), SessionEnd> {
        let keys = self.dirty.take(DIRTY_BATCH);
        if keys.is_empty() {
            return Ok(());
        }
        self.copy(conn, records, keys).await
    }

    /// Reads `keys` from the source and hands them to the apply thread.
    async fn copy(
        &mut self,
        conn: &mut SourceConn,
        records: &mpsc::Sender<Record>,
        keys: Vec<DbKey>,
    ) -> Result<(), SessionEnd> {
        if keys.is_empty() {
            return Ok(());
        }
        let lost = |error: ClientError| match error {
            // A refused command is not cured by reconnecting.
            ClientError::Command { .. } => SessionEnd::Fatal(self.job.source_error(error)),
            other => SessionEnd::Lost(other),
        };
        let mut request = fetch::Request::send(conn, keys, self.expiry)
            .await
            .map_err(lost)?;
        while let Some(record) = request.next(conn).await.map_err(lost)? {
            self.keys_read += 1;
            let budget = match &record {
                Fetched::Value { payload, .. } => {
                    self.bytes_read
                        .fetch_add(payload.len() as u64, Ordering::Relaxed);
                    // Wait while the values on their way to the target use the budget up.
                    let cost = payload.len().min(self.job.queued_bytes).max(1);
                    let permit = self
                        .queued
                        .clone()
                        .acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
                        .await
                        .map_err(|_| SessionEnd::ApplyStopped)?;
                    Some(permit)
                }
                Fetched::Gone { .. } => None,
            };
            records
                .send(Record::Key(record, budget))
                .await
                .map_err(|_| SessionEnd::ApplyStopped)?;
        }
        Ok(())
    }

    /// Waits until everything read so far is acknowledged by the target.
    async fn settle(&self, records: &mpsc::Sender<Record>) -> Result<(), SessionEnd> {
        let (done, wait) = oneshot::channel();
        records
            .send(Record::Flush(done))
            .await
            .map_err(|_| SessionEnd::ApplyStopped)?;
        wait.await.map_err(|_| SessionEnd::ApplyStopped)?;
        self.pipe
            .barrier()
            .await
            .map_err(|e| SessionEnd::Fatal(self.job.target_error(e)))
    }
}

fn with_db(db: u64, keys: Vec<bytes::Bytes>) -> Vec<DbKey> {
    keys.into_iter().map(|key| (db, key)).collect()
}

/// Progress lines, `/metrics` and `/status`, at most every [`TICK`].
struct Ticks {
    last: Instant,
    last_line: Instant,
    rate: Rate,
}

impl Ticks {
    fn new(start: u64) -> Self {
        Self {
            last: Instant::now(),
            last_line: Instant::now(),
            rate: Rate::new(start, RATE_WINDOW),
        }
    }

    fn due(&mut self, force: bool) -> Option<bool> {
        if !force && self.last.elapsed() < TICK {
            return None;
        }
        self.last = Instant::now();
        let line = self.last_line.elapsed() >= PROGRESS_EVERY;
        if line {
            self.last_line = Instant::now();
        }
        Some(line && !force)
    }

    /// During a scan: keys written, payload bytes read, keys/s.
    fn scan(&mut self, copier: &Copier<'_>, force: bool) {
        let Some(line) = self.due(force) else { return };
        let events = copier.job.events;
        let keys = copier.counters.keys.load(Ordering::Relaxed);
        let bytes = copier.bytes_read.load(Ordering::Relaxed);
        let keys_per_sec = self.rate.update(keys);
        events.full_sync_rates(keys_per_sec, 0.0);
        let pipe = copier.pipe.counters();
        events.commands(
            pipe.replies.load(Ordering::Relaxed),
            pipe.bytes.load(Ordering::Relaxed),
        );
        events.full_sync_progress(keys, bytes, keys_per_sec, line);
    }

    /// While following: notifications received and handled (the "offsets" of scan mode),
    /// commands/s.
    fn follow(&mut self, copier: &Copier<'_>) {
        let Some(line) = self.due(false) else { return };
        let events = copier.job.events;
        let pipe = copier.pipe.counters();
        let replies = pipe.replies.load(Ordering::Relaxed);
        events.commands(replies, pipe.bytes.load(Ordering::Relaxed));
        let received = copier.dirty.received.load(Ordering::Relaxed) as i64;
        let pending = copier.dirty.len() as i64;
        let ops_per_sec = self.rate.update(replies);
        events.stream_progress(received - pending, received, ops_per_sec, false);
        if line {
            events.line(format!(
                "following: {received} notifications, {pending} changed keys waiting, {ops_per_sec:.0} commands/s"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denied_or_renamed_psync_is_a_refusal_other_errors_are_not() {
        let denied = ReplError::Auth(
            "NOPERM User migrator has no permissions to run the 'psync' command".into(),
        );
        assert!(replication_refused(&denied).is_some());
        let renamed = ReplError::ServerError(
            "ERR unknown command 'PSYNC', with args beginning with: '?' '-1'".into(),
        );
        assert!(replication_refused(&renamed).is_some());
        let password = ReplError::Auth("WRONGPASS invalid username-password pair".into());
        assert!(replication_refused(&password).is_none());
        let loading = ReplError::ServerError("LOADING Redis is loading the dataset".into());
        assert!(replication_refused(&loading).is_none());
    }
}
