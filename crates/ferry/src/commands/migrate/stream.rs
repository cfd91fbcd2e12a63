//! The command stream, applied until a stop: batches to the target, the applied
//! position saved every second, progress and in-sync reporting.

use super::*;

pub(super) fn save_to(path: &Path, state: &MigrationState) -> Result<(), Error> {
    state::save(path, state).map_err(Error::from)
}

impl Migration {
    /// Applies the command stream until a signal or an error.
    pub(super) async fn stream(
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
                        return Err(self.fatal_target(failure));
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

    pub(super) fn save_state(&self, state: &MigrationState) -> Result<(), Error> {
        if let Some(shard) = &self.shard {
            return shard.save(state, &self.source_url.address());
        }
        match &self.state_path {
            Some(path) => save_to(path, state),
            None => Ok(()),
        }
    }

    /// A log line, naming the shard when this follows one of a cluster source.
    pub(super) fn say(&self, text: impl AsRef<str>) {
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
    pub(super) fn progress(&self, text: String) {
        if let Some(shard) = &self.shard {
            self.events
                .progress_line(&format!("{}: {text}", shard.label(&self.source_url)));
        }
    }

    /// The stream caught up with the source: for a cluster source, once every shard has.
    pub(super) fn report_in_sync(&self, offset: i64) {
        match &self.shard {
            Some(shard) => shard.in_sync(&self.events, &self.source_url, offset),
            None => self.events.in_sync(offset),
        }
    }
}
