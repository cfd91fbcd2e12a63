//! A run that starts from a checkpoint: it checks that the checkpoint still holds, then
//! catches up on what changed while ferry was stopped (its notifications are lost) in
//! the part already copied, without reading it all again: keys the source no longer has
//! are deleted on the target, and only keys touched since the checkpoint (by their
//! `OBJECT IDLETIME`) are copied again. The scan then goes on from the checkpoint.

use super::checkpoint::ScanPosition;
use super::{with_db, Copier, SessionEnd, Ticks};
use crate::commands::migrate::scan::apply::Record;
use crate::commands::migrate::scan::conn::SourceConn;
use crate::commands::migrate::scan::facts;
use crate::commands::migrate::scan::fetch::Fetched;
use crate::commands::migrate::scan::scanner::{self, cursor_reached, Pace, Walk};
use crate::commands::migrate::scan::touched::{self, Idle, IdleError};
use crate::commands::migrate::scan::ScanJob;
use crate::server::client::ClientError;
use crate::state::ScanCheckpoint;
use bytes::Bytes;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::mpsc;

/// Added to the time ferry was stopped when judging idle times: they count whole
/// seconds of a clock the source updates about once a second, and a notification sent
/// just before a checkpoint may have been on its way.
const IDLE_MARGIN_SECS: u64 = 5;

/// The catch-up's pace, its idea of "touched since the checkpoint", and what it did.
struct CatchUp {
    pace: Pace,
    /// Seconds from the checkpoint to when the source's clock was read, and when that
    /// was; `None` once idle times cannot be trusted (every passed key is copied again).
    touched: Option<(u64, Instant)>,
    checked: u64,
    copied: u64,
    deleted: u64,
}

impl CatchUp {
    /// The longest idle time of a key touched since the checkpoint, now.
    fn idle_limit(&self) -> Option<u64> {
        let (stopped_secs, read) = self.touched?;
        // Whole seconds lost on both clocks: one more.
        Some(stopped_secs + read.elapsed().as_secs() + 1 + IDLE_MARGIN_SECS)
    }
}

impl Copier<'_> {
    /// Resumes from `saved`: `Ok(true)` when the scan goes on from it, `Ok(false)` when it
    /// no longer holds and everything is to be copied again (the target too).
    pub(super) async fn resume_from(
        &mut self,
        conn: &mut SourceConn,
        records: &mpsc::Sender<Record>,
        saved: ScanCheckpoint,
    ) -> Result<bool, SessionEnd> {
        let job = self.job;
        let now = facts::read(conn).await.map_err(lost_or_refused(job))?;
        let facts_read = Instant::now();
        if now.run_id != saved.run_id {
            job.events.line(
                "the source restarted since the checkpoint (its run_id changed): its SCAN cursors and idle times mean nothing now; copying everything again",
            );
            return Ok(false);
        }
        if let (Some(before), Some(calls)) = (saved.unnotified_calls, self.unnotified) {
            if before != calls {
                job.events.line(
                    "the source ran FLUSHDB, FLUSHALL or SWAPDB while ferry was stopped, which notify no keys; copying everything again",
                );
                return Ok(false);
            }
        }
        let position = ScanPosition::from_saved(&saved.dbs);
        let stopped_secs = (now.time_ms - saved.source_time_ms).max(0) as u64 / 1000;
        job.events.line(format!(
            "resuming the scan from the checkpoint taken {stopped_secs} s ago (by the source's clock): {}",
            position.describe()
        ));
        let idle_trusted = saved.forks.is_some() && saved.forks == now.forks;
        if !idle_trusted {
            job.events.line(
                "the source forked since the checkpoint (BGSAVE, AOF rewrite, a replica's sync) or does not count its forks: writes made while a fork runs leave idle times alone, so every key already copied is copied again",
            );
        }
        let mut done = CatchUp {
            pace: Pace::new(job.keys_per_sec),
            // The source's clock moves on from `now` by about ferry's.
            touched: idle_trusted.then_some((stopped_secs, facts_read)),
            checked: 0,
            copied: 0,
            deleted: 0,
        };
        self.delete_gone(conn, records, &mut done).await?;
        self.copy_touched(conn, records, &position, &mut done)
            .await?;
        job.events.line(format!(
            "caught up with the downtime: {} keys already copied checked, {} changed while ferry was stopped copied again, {} gone from the source deleted on the target",
            done.checked, done.copied, done.deleted
        ));
        self.position = position;
        Ok(true)
    }

    /// Walks the part of the source already copied (`position`) and copies again the keys
    /// touched since the checkpoint, by their idle time (all of them when idle times
    /// cannot be trusted).
    async fn copy_touched(
        &mut self,
        conn: &mut SourceConn,
        records: &mpsc::Sender<Record>,
        position: &ScanPosition,
        done: &mut CatchUp,
    ) -> Result<(), SessionEnd> {
        let mut ticks = Ticks::new(self.counters.keys.load(Ordering::Relaxed));
        for (db, stop) in position.parts() {
            let mut walk = Walk::new(BTreeSet::from([db]));
            while !walk.done() {
                let (db, keys) = walk.step(conn).await.map_err(SessionEnd::Lost)?;
                let keys = self.in_scope(db, keys);
                done.pace.take(keys.len() as u64).await;
                done.checked += keys.len() as u64;
                let touched = match done.idle_limit() {
                    Some(limit) => match touched::idle_times(conn, db, &keys).await {
                        Ok(idle) => keys
                            .into_iter()
                            .zip(idle)
                            .filter(|(_, idle)| matches!(idle, Idle::Seconds(s) if *s <= limit))
                            .map(|(key, _)| key)
                            .collect(),
                        Err(IdleError::Refused(reason)) => {
                            done.touched = None;
                            self.job.events.line(format!(
                                "OBJECT IDLETIME is refused ({reason}): under an LFU maxmemory-policy the source keeps no idle times, so every key already copied is copied again"
                            ));
                            keys
                        }
                        Err(IdleError::Failed(error)) => return Err(SessionEnd::Lost(error)),
                    },
                    None => keys,
                };
                done.copied += touched.len() as u64;
                self.copy(conn, records, with_db(db, touched)).await?;
                self.copy_dirty(conn, records).await?;
                ticks.scan(self, false);
                if let (Some(stop), Some(cursor)) = (stop, walk.cursor_in(db)) {
                    if cursor_reached(cursor, stop) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Deletes the target's keys that the source no longer has (deleted while ferry was
    /// stopped): the target's keys walked, the source asked `EXISTS` for each.
    async fn delete_gone(
        &mut self,
        conn: &mut SourceConn,
        records: &mpsc::Sender<Record>,
        done: &mut CatchUp,
    ) -> Result<(), SessionEnd> {
        let job = self.job;
        if !job.owns_target {
            return Ok(());
        }
        let target_failed = |e: ClientError| SessionEnd::Fatal(job.target_error(e));
        let mut target = SourceConn::connect(job.target_url, job.connect_timeout)
            .await
            .map_err(target_failed)?;
        let dbs = scanner::databases(&mut target)
            .await
            .map_err(target_failed)?;
        let mut walk = Walk::new(dbs);
        while !walk.done() {
            let (target_db, keys) = walk.step(&mut target).await.map_err(target_failed)?;
            // Keys of databases the scope does not write here are not ferry's.
            let Some(db) = job.scope.source_db(target_db) else {
                continue;
            };
            let keys = self.in_scope(db, keys);
            done.pace.take(keys.len() as u64).await;
            let exist = touched::exist(conn, db, &keys)
                .await
                .map_err(lost_or_refused(job))?;
            for (key, exists) in keys.into_iter().zip(exist) {
                if !exists {
                    done.deleted += 1;
                    records
                        .send(Record::Key(Fetched::Gone { db, key }, None))
                        .await
                        .map_err(|_| SessionEnd::ApplyStopped)?;
                }
            }
        }
        Ok(())
    }

    /// The keys of source database `db` that the scope moves.
    fn in_scope(&self, db: u64, mut keys: Vec<Bytes>) -> Vec<Bytes> {
        let scope = &self.job.scope;
        if scope.filters() {
            keys.retain(|key| scope.keeps(db, key));
        }
        keys
    }
}

/// A refused command ends the run (reconnecting cures nothing); a lost connection is
/// retried.
fn lost_or_refused<'a>(job: &'a ScanJob<'a>) -> impl Fn(ClientError) -> SessionEnd + 'a {
    move |error| match error {
        ClientError::Command { .. } => SessionEnd::Fatal(job.source_error(error)),
        other => SessionEnd::Lost(other),
    }
}
