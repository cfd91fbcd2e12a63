//! Progress lines, `/metrics` and `/status` for scan mode.

use super::Copier;
use crate::commands::migrate::scan::{PROGRESS_EVERY, RATE_WINDOW, TICK};
use crate::observe::Rate;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Progress lines, `/metrics` and `/status`, at most every [`TICK`].
pub(super) struct Ticks {
    last: Instant,
    last_line: Instant,
    rate: Rate,
}

impl Ticks {
    pub(super) fn new(start: u64) -> Self {
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
    pub(super) fn scan(&mut self, copier: &Copier<'_>, force: bool) {
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
    pub(super) fn follow(&mut self, copier: &Copier<'_>) {
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
