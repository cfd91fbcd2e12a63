//! Following changes: notified keys read again, keys that change without notifications
//! re-read, and the checks that call for a rescan.

use super::{Copier, SessionEnd, Ticks};
use crate::commands::migrate::scan::apply::Record;
use crate::commands::migrate::scan::conn::SourceConn;
use crate::commands::migrate::scan::scanner::{self, Walk};
use crate::commands::migrate::scan::{FLUSHES_EVERY, QUIET_EVERY, SWEEP_MIN, TICK};
use crate::observe::Phase;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::mpsc;

impl Copier<'_> {
    /// Copies changed keys as they are notified; returns when a rescan is due (the
    /// changed-key budget overflowed, or the source flushed or swapped databases).
    pub(super) async fn follow(
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
            let tick = if dirty.is_empty() {
                tokio::select! {
                    _ = dirty.changed() => false,
                    _ = ticker.tick() => true,
                }
            } else {
                // Keys are waiting: no wait, but the periodic checks still get their turn.
                tokio::select! {
                    biased;
                    _ = ticker.tick() => true,
                    _ = std::future::ready(()) => false,
                }
            };
            if records.is_closed() {
                return Err(SessionEnd::ApplyStopped);
            }
            if let Some(failure) = self.pipe.failure() {
                return Err(SessionEnd::Fatal(self.job.target_error(failure)));
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
            // A source writing faster than keys are copied must not starve the checks.
            let drain_until = Instant::now() + TICK;
            while !self.dirty.is_empty() && Instant::now() < drain_until {
                self.copy_dirty(conn, records).await?;
            }
            if !self.in_sync && self.dirty.is_empty() {
                // Once written, every change notified before the drain emptied the set is on
                // the target (as replication mode's "applied reached received" at a moment).
                self.settle(records).await?;
                if !self.dirty.overflowed() {
                    self.in_sync = true;
                    self.job.events.phase(Phase::InSync, None);
                    self.job.events.line(
                        "in sync: every key scanned and every notified change copied; following changes",
                    );
                }
            }
            if tick {
                self.checkpoint(conn, records).await?;
            }
            ticks.follow(self);
        }
    }
}
