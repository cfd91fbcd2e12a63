//! A full sync: the source's snapshot decoded as it arrives and written to the target
//! by RESTORE, ending with the marker of the snapshot's offset.

use super::*;

impl Migration {
    /// Streams the snapshot through the decoder, the compatibility transform and the
    /// writer; returns once the target acknowledged all of it. `reload`: ferry loaded this
    /// target before, so a vector-set export file it wrote then may be replaced.
    pub(super) async fn load_snapshot(
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
        let scope = self.scope.clone();
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
            let mut scoped = ScopeTransform::for_scope(scope);
            pipeline::run_scoped(
                &mut source,
                scoped.as_mut(),
                &mut compat,
                &mut sink,
                &mut |_| {},
            )?;
            let mut lines: Vec<String> = scoped.iter().map(ScopeTransform::report_line).collect();
            lines.extend(compat.complete()?.lines());
            Ok(lines)
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
                    self.full_sync_progress(keys, received, keys_per_sec, line);
                }
            }
        };
        let decoded_result = decode
            .await
            .map_err(|e| Error::from(MigrateError::DecoderStopped(e.to_string())))?;
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
            self.push_load_marker(&mut done, replid, offset);
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
}
