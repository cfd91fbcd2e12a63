//! `ferry migrate --source-aof PATH --target URL`: an append-only file copied once into
//! the target, through the same target setup, writer, command translator and policies
//! as a replication source.
//!
//! ```text
//! sources/aof: manifest ─▶ base: RDB part ─▶ compat ─▶ writer (RESTORE)   (the full sync's)
//!                          then every file's commands ─▶ translator ─▶ stream applier
//! ```
//!
//! One load, no resume: no marker is written and `--state` does not apply; a run that
//! stops part-way leaves a partial copy that the next run replaces (`--flush-target`).
//! The source's `SELECT`s and `MULTI`/`EXEC` pass through the stream applier as a
//! replica's would (a transaction runs whole on the target). Expiries are applied
//! exactly (the AOF holds the DEL of every key its server expired); a target with
//! import mode holds them during the load and leaves it once the load is complete, to
//! expire keys on its own clock from then on, as the server that wrote the AOF would
//! after loading it.

use super::*;
use crate::policy::VectorSetPolicy;
use crate::sources::aof::{self, AofError, AofLayout, CommandStream};
use crate::sources::file::RdbFileSource;
use crate::sources::Source;
use ferry_repl::ReplCommand;
use tokio::sync::mpsc;

/// Commands handed from the file reader to the applier at a time.
const CHUNK: usize = 512;
/// Chunks read ahead of the applier: bounds ferry's memory on any file size.
const CHUNKS_AHEAD: usize = 8;

fn aof_error(error: AofError) -> Error {
    Error::Run(Box::new(error))
}

impl Migration {
    pub(super) async fn run_aof(&self, args: &MigrateArgs, path: &Path) -> Result<(), Error> {
        if let VectorSetPolicy::Export(_) = self.policies.vector_set {
            return Err(Error::Usage(
                "--vector-set export keeps its file current from a live source; with \
                 --source-aof use skip (or fail)"
                    .into(),
            ));
        }
        let layout = aof::open(path).map_err(aof_error)?;
        let (mut client, mut target) = self.connect_target(args, false).await?;
        if target.cluster {
            return Err(self.target_refusal(
                "is a cluster; --source-aof writes into a standalone target".into(),
            ));
        }
        let source_name = path.display().to_string();
        self.events.started(
            &source_name,
            "AOF",
            &self.target_url.address(),
            &target.info.name(),
        );
        self.say(format!(
            "source {source_name} is an AOF of {} files ({}){}; target {} is {} (writes {}{})",
            layout.files.len(),
            crate::display::size(layout.total_bytes()),
            match layout.files.first() {
                Some(base) if base.base && base.rdb => ", its base an RDB",
                _ => "",
            },
            self.target_url,
            target.info.name(),
            target.format.version,
            match target.mode {
                WriteMode::Restore => ", RESTORE",
                WriteMode::PlainOnly => ", plain commands: RESTORE refused",
            }
        ));
        self.enter_import_mode(&mut client, &mut target).await?;
        let entered = target.import_mode;
        match self.load_aof(args, &layout, (client, target)).await {
            Err(failure) => Err(self.settle_import_mode(entered, false, failure).await),
            Ok(()) => {
                if let ImportMode::Entered { was_on: false } = entered {
                    self.leave_import_mode()
                        .await
                        .map_err(|e| self.target_error(e))?;
                    self.say("the load is complete: the target left import mode and expires keys on its own clock");
                }
                Ok(())
            }
        }
    }

    async fn load_aof(
        &self,
        args: &MigrateArgs,
        layout: &AofLayout,
        (client, target): (Client, TargetSetup),
    ) -> Result<(), Error> {
        let pipe = self.target_pipe(client, &target).await?;
        self.clear_for_full_sync(args, &pipe, false, false)
            .await
            .map_err(session_failure)?;
        let mut starts = Vec::new();
        for file in &layout.files {
            let start = match file.rdb {
                true => self.load_rdb_part(&file.path, &pipe, &target).await?,
                false => 0,
            };
            starts.push((file.path.clone(), start));
        }
        self.apply_commands(layout, starts, &pipe, &target).await
    }

    /// The RDB at the start of `path`, written like a full sync's snapshot; returns the
    /// offset after its checksum, where the file's commands begin.
    async fn load_rdb_part(
        &self,
        path: &Path,
        pipe: &Pipe,
        target: &TargetSetup,
    ) -> Result<u64, Error> {
        let started = Instant::now();
        let source = RdbFileSource::open(path)?;
        self.events.start_full_sync(source.total_bytes());
        let counters = Arc::new(WriterCounters::default());
        let compat_target = Target {
            format: target.format,
            name: target.info.name(),
        };
        let policies = self.policies.clone();
        let sink = TargetSink::new(
            pipe.clone(),
            target.format,
            target.mode,
            target.restore_refusal.clone(),
            self.memory.writer,
            counters.clone(),
        );
        let decoded = Arc::new(AtomicU64::new(0));
        let decoded_in_task = decoded.clone();
        let mut load = tokio::task::spawn_blocking(move || -> Result<(u64, Vec<String>), Error> {
            let mut source = source;
            let mut compat = CompatTransform::new(compat_target, policies, false)?;
            let mut sink = sink;
            pipeline::run(&mut source, &mut [&mut compat], &mut sink, &mut |read| {
                decoded_in_task.store(read, Ordering::Relaxed)
            })?;
            Ok((source.bytes_read(), compat.complete()?.lines()))
        });
        let mut ticker = tokio::time::interval(STATS_EVERY);
        let mut last_line = Instant::now();
        let mut key_rate = Rate::new(0, RATE_WINDOW);
        let loaded = loop {
            tokio::select! {
                done = &mut load => break done,
                _ = ticker.tick() => {
                    let keys = counters.keys.load(Ordering::Relaxed);
                    let line = last_line.elapsed() >= PROGRESS_EVERY;
                    if line {
                        last_line = Instant::now();
                    }
                    let rate = key_rate.update(keys);
                    self.events.full_sync_progress(keys, decoded.load(Ordering::Relaxed), rate, line);
                }
            }
        };
        let (end, report) =
            loaded.map_err(|e| Error::from(MigrateError::DecoderStopped(e.to_string())))??;
        pipe.barrier().await.map_err(|e| self.target_error(e))?;
        for line in report {
            self.events.policy_report(&line);
        }
        let keys = counters.keys.load(Ordering::Relaxed);
        self.events.full_sync_progress(keys, end, 0.0, false);
        self.say(format!(
            "{}: RDB part done: {keys} keys ({} by RESTORE, {} with plain commands), {} at or near expiry kept {} s longer, {} function libraries, {} in {:.1} s",
            path.display(),
            counters.restored.load(Ordering::Relaxed),
            counters.plain.load(Ordering::Relaxed),
            counters.near_expiry.load(Ordering::Relaxed),
            crate::policy::EXPIRY_GRACE_MS / 1000,
            counters.functions.load(Ordering::Relaxed),
            crate::display::size(end),
            started.elapsed().as_secs_f64(),
        ));
        Ok(end)
    }

    /// Every file's commands, in order, through the translator into the target.
    async fn apply_commands(
        &self,
        layout: &AofLayout,
        starts: Vec<(PathBuf, u64)>,
        pipe: &Pipe,
        target: &TargetSetup,
    ) -> Result<(), Error> {
        let started = Instant::now();
        let translator = self.translator(target).with_exact_expiries();
        let mut applier = StreamApplier::new(
            pipe.clone(),
            Box::new(translator),
            Mark { offset: 0, db: 0 },
        );
        self.events.phase(Phase::Streaming, Some(0));
        let (sender, mut chunks) =
            mpsc::channel::<Result<Vec<ReplCommand>, AofError>>(CHUNKS_AHEAD);
        let files = layout.files.len();
        // Returns the commands read in each file.
        let reader = tokio::task::spawn_blocking(move || {
            let mut per_file = vec![0u64; files];
            let mut stream = CommandStream::new(starts);
            let mut chunk = Vec::with_capacity(CHUNK);
            loop {
                let next = stream.next_command();
                let done = !matches!(next, Ok(Some(_)));
                match next {
                    Ok(Some(command)) => {
                        per_file[command.file] += 1;
                        chunk.push(ReplCommand {
                            args: command.args,
                            offset_after: command.offset_after,
                        });
                    }
                    Ok(None) => {}
                    Err(error) => {
                        let _ = sender.blocking_send(Ok(std::mem::take(&mut chunk)));
                        let _ = sender.blocking_send(Err(error));
                        return per_file;
                    }
                }
                if (done || chunk.len() >= CHUNK)
                    && sender
                        .blocking_send(Ok(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))))
                        .is_err()
                {
                    return per_file;
                }
                if done {
                    return per_file;
                }
            }
        });
        let counters = pipe.counters();
        let mut last_line = Instant::now();
        let mut ops_rate = Rate::new(0, RATE_WINDOW);
        let mut applied = 0u64;
        let mut failure = None;
        while let Some(chunk) = chunks.recv().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    failure = Some(aof_error(error));
                    break;
                }
            };
            for command in chunk {
                applied += 1;
                applier.apply(command)?;
                if applier.batch_full() {
                    applier.flush().await.map_err(|e| self.target_error(e))?;
                }
            }
            if let Some(error) = pipe.failure() {
                return Err(self.target_error(error));
            }
            let replies = counters.replies.load(Ordering::Relaxed);
            self.events
                .commands(replies, counters.bytes.load(Ordering::Relaxed));
            let offset = applier.position().offset;
            let line = last_line.elapsed() >= PROGRESS_EVERY;
            if line {
                last_line = Instant::now();
            }
            self.events
                .stream_progress(offset, offset, ops_rate.update(replies), line);
        }
        let counts = reader.await.unwrap_or_default();
        // What was read before a bad byte is applied: the error says where it stopped.
        applier.flush().await.map_err(|e| self.target_error(e))?;
        pipe.barrier().await.map_err(|e| self.target_error(e))?;
        self.events.commands_skipped(applier.skipped());
        for line in applier.report_lines() {
            self.events.policy_report(&line);
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        for (file, count) in layout.files.iter().zip(counts) {
            if count > 0 || !file.rdb {
                self.say(format!("{}: {count} commands", file.path.display()));
            }
        }
        let skipped: u64 = applier.skipped().values().sum();
        self.say(format!(
            "AOF loaded: {applied} commands read, {} sent to the target, {skipped} skipped by the policies, in {:.1} s",
            applier.forwarded,
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }
}

/// The session errors of the shared setup steps, as the run's.
fn session_failure(error: SessionError) -> Error {
    match error {
        SessionError::Fatal(error)
        | SessionError::Setup(error)
        | SessionError::Reconnect(error) => error,
        SessionError::SourceLost(error) => Error::Migration(error.to_string()),
    }
}
