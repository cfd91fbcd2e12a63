//! A full sync: the source's snapshot decoded as it arrives (or from the spool) and
//! written to the target by RESTORE, ending with the marker of the snapshot's offset.

use super::*;
use crate::sinks::load_checkpoints::CheckpointedSink;
use crate::sinks::Sink;
use crate::sources::replication::spool::{ReceiveError, Receiving};
use crate::sources::Source;
use crate::state::loading_marker::{self, Loading};
use std::future::Future;

/// The decoding thread of a load and the numbers its progress lines read.
struct Load {
    task: tokio::task::JoinHandle<Result<Vec<String>, Error>>,
    counters: Arc<WriterCounters>,
    decoded: Arc<AtomicU64>,
    started: Instant,
}

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
        let decoded = Arc::new(AtomicU64::new(0));
        let source = SnapshotSource::new(reader, total, decoded.clone());
        let counters = Arc::new(WriterCounters::default());
        let sink = Box::new(self.target_sink(pipe, target, counters.clone()));
        let mut load = self.start_load(source, sink, target, reload, (counters, decoded));
        let forwarded = self
            .watch_load(
                stream.forward(sender),
                (&load.counters, &load.decoded),
                pipe,
            )
            .await;
        let decoded_result = (&mut load.task)
            .await
            .map_err(|e| Error::from(MigrateError::DecoderStopped(e.to_string())))?;
        match (forwarded, decoded_result) {
            (Err(error), _) if !matches!(error, ReplError::ReaderGone) => {
                return Err(SessionError::SourceLost(error))
            }
            (_, Err(error)) => return Err(SessionError::Fatal(error)),
            (_, Ok(report)) => self.report_policies(report),
        }
        let mut done = Batch::default();
        if !pipe.is_cluster() {
            self.push_load_marker(&mut done, replid, offset);
        }
        self.finish_load(done, offset, &load, pipe).await
    }

    /// Loads the spooled snapshot `from` its position, at the target's pace, while the
    /// receiver may still be writing it. On a standalone target the loading marker
    /// records the position every second, in order with the keys.
    pub(super) async fn load_spooled(
        &self,
        receiving: &Receiving,
        pipe: &Pipe,
        target: &TargetSetup,
        from: Loading,
        reload: bool,
    ) -> Result<(), SessionError> {
        let total = receiving.spool().meta().snapshot_bytes;
        self.events.start_full_sync(total);
        let decoded = Arc::new(AtomicU64::new(0));
        let reader = receiving
            .snapshot_reader()
            .map_err(|e| SessionError::Fatal(MigrateError::from(e).into()))?;
        // Keys written with the grace of near expiry may be gone from a target that
        // restarted (out of import mode, it expires by its own clock): they go again.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let rewrite_before = now_ms.saturating_add(crate::policy::EXPIRY_GRACE_MS);
        let source = SnapshotSource::new(reader, total, decoded.clone())
            .resuming_at(from.at, rewrite_before);
        let counters = Arc::new(WriterCounters::default());
        counters.keys.store(from.keys, Ordering::Relaxed);
        let sink = self.target_sink(pipe, target, counters.clone());
        let replid = from.replid.clone();
        let offset = from.offset;
        let sink: Box<dyn Sink + Send> = if pipe.is_cluster() {
            // One connection per primary: a marker on one of them would not say what
            // the others hold. A cluster target's resumed load starts at the first key.
            Box::new(sink)
        } else {
            Box::new(CheckpointedSink::new(sink, from, decoded.clone()))
        };
        let mut load = self.start_load(source, sink, target, reload, (counters, decoded));
        let numbers = (load.counters.clone(), load.decoded.clone());
        let joined = self
            .watch_load(&mut load.task, (&numbers.0, &numbers.1), pipe)
            .await;
        let decoded_result =
            joined.map_err(|e| Error::from(MigrateError::DecoderStopped(e.to_string())))?;
        match decoded_result {
            Ok(report) => self.report_policies(report),
            Err(error) => {
                return Err(match receiving.take_failure() {
                    Some(ReceiveError::Source(lost)) => SessionError::SourceLost(lost),
                    Some(ReceiveError::Spool(failed)) => {
                        SessionError::Fatal(MigrateError::from(failed).into())
                    }
                    None => SessionError::Fatal(error),
                })
            }
        }
        let mut done = Batch::default();
        if !pipe.is_cluster() {
            loading_marker::push_delete(&mut done, &replid);
            self.push_load_marker(&mut done, &replid, offset);
        }
        self.finish_load(done, offset, &load, pipe).await
    }

    fn target_sink(
        &self,
        pipe: &Pipe,
        target: &TargetSetup,
        counters: Arc<WriterCounters>,
    ) -> TargetSink {
        // A cluster refuses an MSET whose keys are in several slots.
        let group_keys = if pipe.is_cluster() {
            0
        } else {
            crate::sinks::writer::string_group::GROUP_KEYS
        };
        TargetSink::new(
            pipe.clone(),
            target.format,
            target.mode,
            target.restore_refusal.clone(),
            self.memory.writer,
            counters,
        )
        .grouping_strings(group_keys)
    }

    /// Starts decoding `source` into `sink` through the scope and the policies, on a
    /// blocking thread.
    fn start_load<S>(
        &self,
        mut source: S,
        mut sink: Box<dyn Sink + Send>,
        target: &TargetSetup,
        reload: bool,
        (counters, decoded): (Arc<WriterCounters>, Arc<AtomicU64>),
    ) -> Load
    where
        S: Source + Send + 'static,
    {
        let compat_target = Target {
            format: target.format,
            name: target.info.name(),
        };
        let policies = self.policies.clone();
        let exported_keys = self.exported_keys.clone();
        let scope = self.scope.clone();
        let task = tokio::task::spawn_blocking(move || -> Result<Vec<String>, Error> {
            let mut compat = CompatTransform::new(compat_target, policies, reload)?
                .with_exported_keys(exported_keys);
            let mut scoped = ScopeTransform::for_scope(scope);
            pipeline::run_scoped(
                &mut source,
                scoped.as_mut(),
                &mut compat,
                sink.as_mut(),
                &mut |_| {},
            )?;
            let mut lines: Vec<String> = scoped.iter().map(ScopeTransform::report_line).collect();
            lines.extend(compat.complete()?.lines());
            Ok(lines)
        });
        Load {
            task,
            counters,
            decoded,
            started: Instant::now(),
        }
    }

    /// Awaits `until` while reporting the load's progress.
    async fn watch_load<F: Future>(
        &self,
        until: F,
        (counters, decoded): (&Arc<WriterCounters>, &Arc<AtomicU64>),
        pipe: &Pipe,
    ) -> F::Output {
        tokio::pin!(until);
        let mut ticker = tokio::time::interval(STATS_EVERY);
        ticker.tick().await;
        let mut last_line = Instant::now();
        let mut key_rate = Rate::new(counters.keys.load(Ordering::Relaxed), RATE_WINDOW);
        let mut byte_rate = Rate::new(0, RATE_WINDOW);
        let pipe_counters = pipe.counters();
        loop {
            tokio::select! {
                result = &mut until => return result,
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
        }
    }

    fn report_policies(&self, report: Vec<String>) {
        for line in report {
            self.events.policy_report(&line);
        }
    }

    /// The snapshot counts as applied once every write before `done`'s mark is
    /// acknowledged; `done` carries the markers that say so on the target (the stream's
    /// batches then move them on; a cluster target's are per slot, written by them).
    async fn finish_load(
        &self,
        mut done: Batch,
        offset: i64,
        load: &Load,
        pipe: &Pipe,
    ) -> Result<(), SessionError> {
        done.mark = Some(Mark { offset, db: 0 });
        pipe.send(done).await.map_err(|e| self.fatal_target(e))?;
        pipe.barrier().await.map_err(|e| self.fatal_target(e))?;
        let seconds = load.started.elapsed().as_secs_f64();
        let counters = &load.counters;
        let keys = counters.keys.load(Ordering::Relaxed);
        let decoded = load.decoded.load(Ordering::Relaxed);
        self.events.full_sync_progress(keys, decoded, 0.0, false);
        self.say(format!(
            "full sync done: {keys} keys ({} by RESTORE, {} by MSET, {} with plain commands), {} at or near expiry kept until the source deletes them, {} function libraries, {} in {seconds:.1} s ({:.0} keys/s)",
            counters.restored.load(Ordering::Relaxed),
            counters.grouped.load(Ordering::Relaxed),
            counters.plain.load(Ordering::Relaxed),
            counters.near_expiry.load(Ordering::Relaxed),
            counters.functions.load(Ordering::Relaxed),
            crate::display::size(decoded),
            keys as f64 / seconds.max(1e-3),
        ));
        Ok(())
    }
}
