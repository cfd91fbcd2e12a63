//! The command stream, applied until a stop: batches to the target, the applied
//! position saved every second, progress and in-sync reporting.

use super::spooled::Feed;
use super::*;

pub(super) fn save_to(path: &Path, state: &MigrationState) -> Result<(), Error> {
    state::save(path, state).map_err(Error::from)
}

impl Migration {
    /// Applies the command stream until a signal or an error.
    pub(super) async fn stream(
        &self,
        feed: &mut Feed,
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
            // The ticker before the commands: a spooled stream always has one ready.
            tokio::select! {
                biased;
                _ = shutdown.as_mut() => return Ok(Stop::Signal),
                _ = ticker.tick() => {
                    if let Some(failure) = pipe.failure() {
                        return Err(self.fatal_target(failure));
                    }
                    let applied = pipe.applied();
                    if let Some(mark) = applied {
                        state.offset = mark.offset;
                        state.db = mark.db;
                    }
                    let received = feed.received();
                    self.spool_tick(feed, state.offset);
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
                    self.stream_progress(state.offset, received, rate, line);
                }
                command = feed.next_command() => {
                    applier.apply(command?)?;
                    // Take whatever already arrived, so the batch carries many commands.
                    while !applier.batch_full() {
                        let more = tokio::select! {
                            biased;
                            command = feed.next_command() => Some(command),
                            _ = std::future::ready(()) => None,
                        };
                        match more {
                            Some(command) => applier.apply(command?)?,
                            None => break,
                        }
                    }
                    // Another worker may take minutes to catch up: a signal ends the wait.
                    tokio::select! {
                        biased;
                        _ = shutdown.as_mut() => return Ok(Stop::Signal),
                        ready = self.before_batch(applier.position().offset) => ready?,
                    }
                    applier.flush().await.map_err(|e| self.fatal_target(e))?;
                }
            }
        }
    }

    /// Waits (bounded) for what is in flight, then records the applied position.
    pub(super) async fn drain(&self, pipe: &Pipe, state: &mut MigrationState) {
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
}
