//! The copy itself: sessions with the source (subscribe, scan, follow), reads handed to the
//! apply thread in order, and what ends a session.

mod checkpoint;
mod follow;
mod progress;
mod resume;
mod scan;

use super::apply::{self, QuietKeys, Record};
use super::conn::SourceConn;
use super::dirty::{DbKey, DirtyKeys};
use super::fetch::{self, ExpiryRead, Fetched};
use super::scanner;
use super::subscriber;
use super::*;
use crate::sinks::writer::pipe::Batch;
use crate::sinks::writer::{TargetSink, WriterCounters};
use crate::state::ScanCheckpoint;
use crate::transforms::compat::CompatTransform;
use checkpoint::{Checkpoints, ScanPosition};
use progress::Ticks;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

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

pub(super) struct Copier<'a> {
    job: &'a ScanJob<'a>,
    /// The source's primary: `job.source_url` until a Sentinel source fails over.
    source: ServerUrl,
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
    /// How far the current scan got (what a checkpoint records).
    position: ScanPosition,
    /// The next scan goes on from `position` (a resumed run) instead of starting over.
    continuing: bool,
    /// `--state`: the checkpoints and the file they go to.
    checkpoints: Option<Checkpoints>,
}

impl<'a> Copier<'a> {
    pub(super) fn new(job: &'a ScanJob<'a>, pipe: Pipe) -> Self {
        Self {
            job,
            source: job.source_url.clone(),
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
            position: ScanPosition::default(),
            continuing: false,
            checkpoints: job.state.clone().map(Checkpoints::new),
        }
    }

    pub(super) async fn run(
        mut self,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), Error> {
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
        if let Some(checkpoints) = self.checkpoints.as_mut() {
            checkpoints.save_initial()?;
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
        let scope = self.job.scope.clone();
        let applier =
            tokio::task::spawn_blocking(move || apply::run(receiver, (compat, scope), sink, quiet));

        let mut reconnect = Reconnect::default();
        // An earlier run's keys are on the target, and where it got is unknown: the
        // target is walked too, for keys the source no longer has.
        let mut rescan = self
            .checkpoints
            .as_ref()
            .is_some_and(Checkpoints::owned_without_checkpoint);
        if rescan {
            job.events.line(
                "the state file holds no checkpoint (the run before stopped before its first one): copying everything again, the target's keys too",
            );
        }
        let mut saved = self.checkpoints.as_ref().and_then(|c| c.saved().cloned());
        let end = loop {
            let end = self
                .session(&records, rescan, saved.take(), &mut reconnect, shutdown)
                .await;
            rescan = true;
            match end {
                SessionEnd::Lost(error) => {
                    if !reconnect.lost() {
                        break SessionEnd::Fatal(job.source_error(error));
                    }
                    let lost = format!(
                        "lost the source ({error}); reconnecting, then scanning everything again (notifications sent meanwhile are lost)"
                    );
                    job.events.reconnecting(&lost);
                    job.events.line(lost);
                    if !Reconnect::pause(shutdown.as_mut()).await {
                        break SessionEnd::Done;
                    }
                    if let Err(error) = self.follow_sentinel().await {
                        break SessionEnd::Fatal(error);
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
            return Err(job.target_error(failure));
        }
        self.last_checkpoint().await?;
        let resume = match &self.checkpoints {
            Some(checkpoints) => format!(
                "a run with the same --state {} resumes from its checkpoint",
                checkpoints.path().display()
            ),
            None => "without --state a new run copies everything again".into(),
        };
        job.events.line(format!(
            "stopped: {} keys written ({} by RESTORE, {} with plain commands); {resume}",
            self.counters.keys.load(Ordering::Relaxed),
            self.counters.restored.load(Ordering::Relaxed),
            self.counters.plain.load(Ordering::Relaxed),
        ));
        Ok(())
    }

    /// A Sentinel source: asks its sentinels for the primary before the next session; a
    /// promoted one gets the key events turned on (the setting is not replicated). The
    /// next session rescans both sides, as after any loss. Sentinels that do not answer
    /// now are asked again after the next loss.
    async fn follow_sentinel(&mut self) -> Result<(), Error> {
        let job = self.job;
        let Some(sentinels) = &job.source_url.sentinel else {
            return Ok(());
        };
        let now = match crate::server::sentinel::locate(job.source_url, job.connect_timeout).await {
            Ok(now) => now,
            Err(error) => {
                job.events.line(format!(
                    "the sentinels of {:?} did not name a primary now ({error}); trying {} again",
                    sentinels.master_name,
                    self.source.address()
                ));
                return Ok(());
            }
        };
        if now.address() == self.source.address() {
            return Ok(());
        }
        job.events.line(format!(
            "the sentinels of {:?} name {} as the primary now (was {}); following it",
            sentinels.master_name,
            now.address(),
            self.source.address()
        ));
        self.source = now;
        // Its own counters: the last FLUSHDB count seen was the old primary's.
        self.unnotified = None;
        if job.follow {
            job.enable_notifications(&self.source).await?;
        }
        Ok(())
    }

    /// One connection to the source: subscribe, scan everything, then follow changes.
    async fn session(
        &mut self,
        records: &mpsc::Sender<Record>,
        rescan: bool,
        saved: Option<ScanCheckpoint>,
        reconnect: &mut Reconnect,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> SessionEnd {
        let job = self.job;
        // The first connection's failures end the run; later ones are retried.
        let setup_failed = |error: ClientError| {
            if reconnect.retrying() {
                SessionEnd::Lost(error)
            } else {
                SessionEnd::Fatal(job.source_error(error))
            }
        };
        let mut follower = None;
        if job.follow {
            match subscriber::subscribe(&self.source, job.connect_timeout).await {
                Ok(subscription) => {
                    follower = Some(tokio::spawn(subscription.follow(self.dirty.clone())))
                }
                Err(error) => return setup_failed(error),
            }
        }
        let mut conn = match SourceConn::connect(&self.source, job.connect_timeout).await {
            Ok(conn) => conn,
            Err(error) => return setup_failed(error),
        };
        if let Err(error) = conn.leave_keys_untouched().await {
            return setup_failed(error);
        }
        reconnect.connected();
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
                end = self.copy_and_follow(&mut conn, records, rescan, saved) => end,
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

    /// Scans everything (or, from a checkpoint `saved`, catches up and goes on from it),
    /// then (following) copies changed keys as they are notified.
    async fn copy_and_follow(
        &mut self,
        conn: &mut SourceConn,
        records: &mpsc::Sender<Record>,
        mut rescan: bool,
        saved: Option<ScanCheckpoint>,
    ) -> SessionEnd {
        if let Err(end) = self.unseen_changes(conn).await {
            return end;
        }
        if let Some(saved) = saved {
            match self.resume_from(conn, records, saved).await {
                Ok(continuing) => {
                    self.continuing = continuing;
                    rescan = !continuing;
                }
                Err(end) => return end,
            }
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
                let settled = match self.settle(records).await {
                    Ok(()) => self.checkpoint_settled(conn).await,
                    Err(end) => Err(end),
                };
                return match settled {
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
        mut keys: Vec<DbKey>,
    ) -> Result<(), SessionEnd> {
        // Keys the scope leaves out are never read (nor written, nor deleted).
        let scope = &self.job.scope;
        if scope.filters() {
            keys.retain(|(db, key)| scope.keeps(*db, key));
        }
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
