//! Where following one shard of a cluster source differs from following a standalone
//! source: the session loop ([`super::session`]) is the same for both and asks here.
//!
//! A shard shares the target with the other shards (never flushed by its full sync, a
//! second full sync refused), keeps its position in its entry of the state file and its
//! marker in a field of the shards' marker, prefixes its log lines with its slots, adds
//! its numbers to the cluster's totals, waits for the other shards before restoring keys
//! moved between them, and keeps no vector-set export current.

use super::*;

impl Migration {
    /// `line`, prefixed with the shard it is about.
    pub(super) fn labelled(&self, line: String) -> String {
        match &self.shard {
            Some(shard) => format!("{}: {line}", shard.label(&self.source_url)),
            None => line,
        }
    }

    /// Before a full sync loads: a standalone source's empties the target (as asked) and
    /// removes an earlier marker; a shard's keeps the other shards' keys, and refuses a
    /// second full sync over its own (`resumed`: the source refused a saved position).
    pub(super) async fn clear_for_full_sync(
        &self,
        args: &MigrateArgs,
        pipe: &Pipe,
        owned: bool,
        resumed: bool,
    ) -> Result<(), SessionError> {
        if let Some(shard) = &self.shard {
            shard.begin_full_sync(resumed)?;
        }
        if let Some(cluster) = pipe.as_cluster() {
            // The snapshot's keys carry no stream position.
            cluster.write_markers(None).await;
        }
        if self.shard.is_some() {
            return Ok(());
        }
        let flush = args.flush_target || (owned && !args.allow_non_empty);
        let mut batch = Batch::default();
        if flush {
            batch.push(&["FLUSHALL"]);
        }
        // A marker of an earlier load must not outlive the data it described.
        marker::push_delete(&mut batch);
        pipe.send(batch).await.map_err(|e| self.fatal_target(e))?;
        pipe.barrier().await.map_err(|e| self.fatal_target(e))?;
        if flush {
            self.say("emptied the target (FLUSHALL)");
        } else if owned {
            self.say(
                "reloading over the target's keys (--allow-non-empty): keys deleted on the \
                 source meanwhile may remain",
            );
        }
        Ok(())
    }

    /// The marker of a completed full sync at `offset`, on a standalone target.
    pub(super) fn push_load_marker(&self, batch: &mut Batch, replid: &str, offset: i64) {
        batch.push_framing(&["SELECT", &marker::DB.to_string()]);
        match self.shard {
            None => {
                let applied = Applied {
                    replid: replid.to_owned(),
                    offset,
                    db: 0,
                };
                marker::push_write(batch, &applied, marker::DB, &[]);
            }
            Some(_) => {
                let applied = ShardApplied {
                    replid: replid.to_owned(),
                    offset,
                };
                // A shard's stream is named by its full sync's replication ID.
                marker::push_shard_write(batch, replid, &applied, marker::DB);
            }
        }
    }

    /// The stream's command transform: the policies, the export's keys (a standalone
    /// source's; a cluster source's export stays as of the full sync, since reading the
    /// sets again would need every shard's node), and a shard's rules for moved keys.
    pub(super) fn stream_translator(&self, target: &TargetSetup) -> Box<dyn CommandTransform> {
        let translator = self.translator(target);
        let translator = match &self.shard {
            Some(shard) => shard.transform(Box::new(translator)),
            None => Box::new(translator.with_exported_keys(self.exported_keys.clone())),
        };
        // The scope goes first: the rules behind it see only kept keys.
        if self.scope.is_everything() {
            translator
        } else {
            Box::new(ScopedCommands::new(self.scope.clone(), translator))
        }
    }

    /// Every batch carries ferry's marker, atomically with its data: on a cluster target
    /// one per slot (a transaction cannot span slots, so the writer writes them), on a
    /// standalone target the source's or the shard's.
    pub(super) async fn with_markers(
        &self,
        applier: StreamApplier,
        pipe: &Pipe,
        state: &MigrationState,
    ) -> StreamApplier {
        let replid = state.replid.clone().unwrap_or_default();
        let stream = state.stream_name().unwrap_or_default();
        match (pipe.as_cluster(), &self.shard) {
            (Some(cluster), _) => {
                let held = self.take_held(&stream);
                let applier = match held.highest() {
                    Some(highest) => applier.replaying_until(highest),
                    None => applier,
                };
                cluster
                    .write_markers(Some(StreamMarkers { stream, held }))
                    .await;
                applier
            }
            (None, Some(_)) => applier.with_shard_marker(stream, replid),
            (None, None) => applier.with_marker(replid),
        }
    }

    /// Before a batch goes: a shard that read a RESTORE of a key moved from another shard
    /// waits for the other shards' writes, and a worker's for the other workers' (see
    /// `ShardContext::settle`).
    pub(super) async fn before_batch(&self, read_up_to: i64) -> Result<(), SessionError> {
        if let Some(shard) = &self.shard {
            shard.read_up_to(read_up_to);
            shard
                .settle()
                .await
                .map_err(|e| SessionError::Fatal(e.into()))?;
        }
        Ok(())
    }

    /// After a clean stop: the vector-set export made current (only a standalone source's
    /// stream notes the sets it changes).
    pub(super) async fn after_stop(&self) -> Result<(), Error> {
        match self.shard {
            None => self.refresh_vector_export().await,
            Some(_) => Ok(()),
        }
    }

    pub(super) fn stopped_during_full_sync(&self) {
        if let Some(spool) = &self.spool {
            return self.say(format!(
                "stopped during the full sync; the next run with the same --state and \
                 --spool-dir resumes the load from the spool in {}",
                spool.dir.display()
            ));
        }
        match self.shard {
            // The other shards' keys stay: only a flush makes a reload clean.
            Some(_) => {
                self.say("stopped during this shard's full sync; the next run needs --flush-target")
            }
            None => self.say("stopped during the full sync; the next run starts it over"),
        }
    }

    /// The full sync's progress: a standalone source's on the bar and in the events; a
    /// shard's in a line of its own every [`PROGRESS_EVERY`] (`line`).
    pub(super) fn full_sync_progress(&self, keys: u64, received: u64, rate: f64, line: bool) {
        self.events
            .full_sync_progress(keys, received, rate, line && self.shard.is_none());
        if line && self.shard.is_some() {
            self.progress(format!(
                "full sync: {keys} keys written ({rate:.0} keys/s), {} decoded",
                crate::display::size(received)
            ));
        }
    }

    /// The stream's progress. A cluster source's numbers are the sums over its shards: the
    /// lag is every shard's together.
    pub(super) fn stream_progress(&self, applied: i64, received: i64, rate: f64, line: bool) {
        let (all_applied, all_received, all_rate) = match &self.shard {
            Some(shard) => shard.totals(applied, received, rate),
            None => (applied, received, rate),
        };
        self.events.stream_progress(
            all_applied,
            all_received,
            all_rate,
            line && self.shard.is_none(),
        );
        if line && self.shard.is_some() {
            self.progress(format!(
                "streaming: applied offset {applied}, lag {} bytes, {rate:.0} commands/s",
                (received - applied).max(0)
            ));
        }
    }

    pub(super) fn save_state(&self, state: &MigrationState) -> Result<(), Error> {
        if let Some(shard) = &self.shard {
            return shard.save(state, &self.source_url.address());
        }
        match &self.state_path {
            Some(path) => super::stream::save_to(path, state),
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
