//! Sessions through the spool (`--spool-dir`, [`crate::sources::replication::spool`]).
//!
//! A full sync is received into the spool and loaded from it. A session that finds the
//! spool of the snapshot it was loading (or streaming from) continues from the spool:
//!
//! 1. PSYNC with the spool's replication ID at the offset spooled last: the source sends
//!    only what came after; a source that cannot continue it means a new full sync.
//! 2. Mid-load: the load resumes where ferry's loading marker on the target says, with
//!    no FLUSHALL and no new snapshot (a cluster target's load starts again at its first
//!    key, still from the spool).
//! 3. The spooled stream after the target's applied offset, then live commands.
//! 4. Once the target applied the last spooled command, the spool is deleted.

use super::session::Settled;
use super::*;
use crate::sources::replication::spool::{
    check_room, ReceiveError, Receiving, Resume, Resumed, SnapshotPlan, Spool, SpoolFeed,
    SpoolLimit,
};
use crate::state::loading_marker::{self, Loading};
use ferry_repl::ReplCommand;

/// `--spool-dir` and `--spool-max-mb`.
#[derive(Debug, Clone)]
pub(super) struct SpoolSettings {
    pub(super) dir: PathBuf,
    pub(super) limit: SpoolLimit,
}

/// A spool the next session continues from.
pub(super) struct SpoolResume {
    settings: SpoolSettings,
    spool: Spool,
    /// The offset after its last complete command.
    pub(super) end: i64,
    /// Its snapshot was still loading.
    loading: bool,
}

impl SpoolResume {
    pub(super) fn replid(&self) -> &str {
        &self.spool.meta().replid
    }
}

/// Where the stream's commands come from.
pub(super) enum Feed {
    Direct(ReplicaConnection),
    Spooled {
        receiving: Receiving,
        feed: SpoolFeed,
        /// The files were deleted (the target applied past them).
        deleted: bool,
    },
}

impl Feed {
    /// The next command; cancel-safe, like the connection's own.
    pub(super) async fn next_command(&mut self) -> Result<ReplCommand, SessionError> {
        match self {
            Feed::Direct(repl) => repl.next_command().await.map_err(SessionError::SourceLost),
            Feed::Spooled { feed, .. } => feed.next_command().await.map_err(|e| match e {
                ReceiveError::Source(lost) => SessionError::SourceLost(lost),
                ReceiveError::Spool(failed) => {
                    SessionError::Fatal(MigrateError::from(failed).into())
                }
            }),
        }
    }

    /// The offset after the last command received from the source.
    pub(super) fn received(&self) -> i64 {
        match self {
            Feed::Direct(repl) => repl.offset(),
            Feed::Spooled { receiving, .. } => receiving.received(),
        }
    }
}

/// The receiver's way back to a lost source: the session's own connection and PSYNC,
/// with the `+CONTINUE` checked against the source's INFO as the session checks it.
struct SourceResume {
    migration: Migration,
    source: ServerInfo,
}

impl Resume for SourceResume {
    fn resume(
        &self,
        replid: String,
        offset: i64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Resumed> + Send>> {
        let migration = self.migration.clone();
        let source = self.source.clone();
        Box::pin(async move {
            let upgrade = match migration.replica_tls() {
                Ok(upgrade) => upgrade,
                Err(error) => {
                    return Resumed::Never(ReplError::Connect {
                        address: migration.source_url.address(),
                        cause: std::io::Error::other(error.to_string()),
                    })
                }
            };
            let mut repl = match migration.open_replica(&source, upgrade).await {
                Ok(repl) => repl,
                Err(error) => return Resumed::Failed(error),
            };
            match repl.psync(Some(&replid), offset).await {
                Ok(PsyncOutcome::Continue { replid: continued }) => {
                    if let Err(error) = migration.check_continue(&replid, offset, &continued).await
                    {
                        return Resumed::Never(ReplError::ServerError(error.to_string()));
                    }
                    migration.say(format!(
                        "the source connection was lost and resumed: partial resync \
                         (+CONTINUE) at the spooled offset {offset}"
                    ));
                    Resumed::Continued(Box::new(repl), continued)
                }
                Ok(PsyncOutcome::FullResync { .. }) => {
                    Resumed::Never(ReplError::ServerError(format!(
                        "the source cannot continue {replid} from the spooled offset {offset} \
                         (its backlog no longer holds it): a full sync is needed"
                    )))
                }
                Err(error) => Resumed::Failed(error),
            }
        })
    }
}

impl Migration {
    /// How the receiver of a spool gets back to a lost source.
    fn spool_receiving(
        &self,
        settings: &SpoolSettings,
        settled: &Settled<'_>,
    ) -> (SpoolLimit, Arc<dyn Resume>) {
        let resume = SourceResume {
            migration: self.clone(),
            source: settled.source.clone(),
        };
        (settings.limit, Arc::new(resume))
    }

    /// The spool this session continues from, if `--spool-dir` holds one of this run's
    /// snapshot that can still serve; a spool that cannot is deleted, saying why.
    pub(super) fn spool_resume(
        &self,
        state: &MigrationState,
    ) -> Result<Option<SpoolResume>, SessionError> {
        let Some(settings) = &self.spool else {
            return Ok(None);
        };
        let spool_error = |e| SessionError::Fatal(MigrateError::from(e).into());
        let Some(mut spool) = Spool::open(&settings.dir).map_err(spool_error)? else {
            return Ok(None);
        };
        let replid = spool.meta().replid.clone();
        let why = if spool.snapshot_complete() {
            let (end, _) = spool.stream_end().map_err(spool_error)?;
            let loading = state.replid.is_none() && state.loading.as_deref() == Some(&replid);
            let streaming = state.stream_name().as_deref() == Some(replid.as_str())
                && (spool.meta().offset..=end).contains(&state.offset);
            if loading || streaming {
                return Ok(Some(SpoolResume {
                    settings: settings.clone(),
                    spool,
                    end,
                    loading,
                }));
            }
            format!(
                "it holds snapshot {replid} up to offset {end}, and the state file is at {} \
                 offset {}",
                state
                    .stream_name()
                    .or_else(|| state.loading.clone())
                    .unwrap_or_else(|| "no stream".into()),
                state.offset
            )
        } else {
            "its snapshot did not arrive whole (ferry stopped while receiving it)".to_owned()
        };
        self.say(format!(
            "the spool in {} is not used: {why}; deleting it",
            settings.dir.display()
        ));
        Spool::remove_files(&settings.dir).map_err(spool_error)?;
        Ok(None)
    }

    /// After `+CONTINUE` at the spool's end: the rest of the load, if any, then the
    /// spooled stream and the live one. `None`: stopped during the load.
    pub(super) async fn continue_spool(
        &self,
        repl: ReplicaConnection,
        resume: SpoolResume,
        settled: &Settled<'_>,
        state: &mut MigrationState,
        continued: String,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<Option<(Mark, Feed)>, SessionError> {
        let SpoolResume {
            settings,
            spool,
            end,
            loading,
        } = resume;
        let meta = spool.meta().clone();
        let mut receiving =
            Receiving::start(repl, spool, None, self.spool_receiving(&settings, settled))
                .map_err(|e| SessionError::Fatal(MigrateError::from(e).into()))?;
        settled.pipe.report_to(receiving.applied());
        self.say(format!(
            "partial resync accepted (+CONTINUE) at offset {}, the end of the spool in {}: \
             the source sends only what came after it",
            end,
            settings.dir.display()
        ));
        if loading {
            let from = self.load_position(&meta, settled.pipe).await?;
            let size = meta.snapshot_bytes.unwrap_or(0);
            self.say(format!(
                "resuming the load from the spool at byte {} of {} ({} keys on the target \
                 already): no new snapshot, nothing flushed",
                from.at,
                crate::display::size(size),
                from.keys
            ));
            let loaded = tokio::select! {
                loaded = self.load_spooled(&receiving, settled.pipe, settled.target, from, true) => loaded,
                _ = shutdown.as_mut() => return Ok(None),
            };
            loaded?;
            self.loaded(state, &meta.replid, meta.offset)?;
        } else {
            self.say(format!(
                "applying the spooled stream from offset {} (spooled up to {}), then the \
                 live one",
                state.offset, end
            ));
        }
        state.replid = Some(continued.clone());
        self.events.replid(&continued);
        self.events.phase(Phase::Streaming, Some(state.offset));
        let feed = receiving
            .feed(state.offset)
            .map_err(|e| SessionError::Fatal(MigrateError::from(e).into()))?;
        let start = Mark {
            offset: state.offset,
            db: state.db,
        };
        Ok(Some((
            start,
            Feed::Spooled {
                receiving,
                feed,
                deleted: false,
            },
        )))
    }

    /// After `+FULLRESYNC`: the snapshot into a new spool, loaded from there as it
    /// arrives. `None`: stopped during the load.
    pub(super) async fn spool_full_sync(
        &self,
        (repl, settings): (ReplicaConnection, &SpoolSettings),
        settled: &Settled<'_>,
        state: &mut MigrationState,
        (replid, offset): (String, i64),
        (owned, resumed): (bool, bool),
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<Option<(Mark, Feed)>, SessionError> {
        // Refused before the target is emptied: the source's own estimate (a snapshot
        // sent with its size is checked again once the size is known).
        let estimate = self.dataset_bytes().await;
        if let Some(estimate) = estimate {
            std::fs::create_dir_all(&settings.dir).map_err(|e| {
                SessionError::Fatal(Error::Usage(format!(
                    "--spool-dir {}: cannot create it: {e}",
                    settings.dir.display()
                )))
            })?;
            check_room(
                &settings.dir,
                estimate,
                "the source's used_memory_dataset",
                settings.limit,
            )
            .map_err(|e| SessionError::Fatal(MigrateError::from(e).into()))?;
        }
        self.clear_for_full_sync(settled.args, settled.pipe, owned, resumed)
            .await?;
        let spool = Spool::create(&settings.dir, &replid, offset, &self.source_url.address())
            .map_err(|e| SessionError::Fatal(MigrateError::from(e).into()))?;
        // Until the load completes the target holds part of this snapshot: the next
        // start resumes it from the spool.
        self.begin_load(state, Some(replid.clone()))?;
        let plan = Some(SnapshotPlan { estimate });
        let receiving =
            Receiving::start(repl, spool, plan, self.spool_receiving(settings, settled))
                .map_err(|e| SessionError::Fatal(MigrateError::from(e).into()))?;
        settled.pipe.report_to(receiving.applied());
        self.say(format!(
            "full sync: receiving the snapshot into the spool in {} as fast as the source \
             sends it, and loading the target from there",
            settings.dir.display()
        ));
        let from = Loading {
            replid: replid.clone(),
            offset,
            at: 0,
            keys: 0,
        };
        let loaded = tokio::select! {
            loaded = self.load_spooled(&receiving, settled.pipe, settled.target, from, owned) => loaded,
            _ = shutdown.as_mut() => return Ok(None),
        };
        loaded?;
        self.say(format!(
            "the spool holds {} (the snapshot and the commands so far)",
            crate::display::size(receiving.spool().disk_bytes())
        ));
        self.loaded(state, &replid, offset)?;
        self.events.replid(&replid);
        self.events.phase(Phase::Streaming, Some(offset));
        let mut receiving = receiving;
        let feed = receiving
            .feed(offset)
            .map_err(|e| SessionError::Fatal(MigrateError::from(e).into()))?;
        Ok(Some((
            Mark { offset, db: 0 },
            Feed::Spooled {
                receiving,
                feed,
                deleted: false,
            },
        )))
    }

    /// Every tick of the stream: once the target applied the last spooled command the
    /// spool's files go.
    pub(super) fn spool_tick(&self, feed: &mut Feed, applied: i64) {
        let Feed::Spooled {
            receiving,
            feed,
            deleted,
        } = feed
        else {
            return;
        };
        if *deleted {
            return;
        }
        let Some(last) = feed.live_from() else {
            return;
        };
        if applied < last {
            return;
        }
        let bytes = receiving.spool().disk_bytes();
        match Spool::remove_files(receiving.spool().dir()) {
            Ok(()) => self.say(format!(
                "the stream caught up with the spool: deleted its {}; commands now go \
                 straight from the source to the target",
                crate::display::size(bytes)
            )),
            Err(error) => self.say(format!("{error}; delete it by hand")),
        }
        *deleted = true;
    }

    /// Where the interrupted load of `meta`'s snapshot resumes: the target's loading
    /// marker on a standalone target, the first key on a cluster target (or when the
    /// target has no marker, having restarted without what it held).
    async fn load_position(
        &self,
        meta: &crate::sources::replication::spool::SpoolMeta,
        pipe: &Pipe,
    ) -> Result<Loading, SessionError> {
        let start = Loading {
            replid: meta.replid.clone(),
            offset: meta.offset,
            at: 0,
            keys: 0,
        };
        if pipe.is_cluster() {
            return Ok(start);
        }
        let mut client = Client::connect(&self.target_url, self.connect_timeout)
            .await
            .map_err(|e| SessionError::Fatal(self.target_error(e)))?;
        let found = loading_marker::read(&mut client, &meta.replid)
            .await
            .map_err(|e| SessionError::Fatal(self.target_error(e)))?;
        Ok(found.unwrap_or(start))
    }

    /// After the target's connection failed: waits (up to
    /// [`crate::server::reconnect::RECONNECT_FOR`]) until it answers PING again, done
    /// loading what it kept. False when it does not.
    pub(super) async fn target_back(&self) -> bool {
        let started = Instant::now();
        while started.elapsed() < crate::server::reconnect::RECONNECT_FOR {
            if let Ok(mut client) = Client::connect(&self.target_url, self.connect_timeout).await {
                if client.call_ok(&["PING"]).await.is_ok() {
                    self.say(format!("the target {} answers again", self.target_url));
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        false
    }

    /// The source's own estimate of its snapshot when it sends one without a size:
    /// `used_memory_dataset` (the snapshot is smaller, being compact and compressed).
    async fn dataset_bytes(&self) -> Option<u64> {
        let mut client = Client::connect(&self.source_url, self.connect_timeout)
            .await
            .ok()?;
        let info = client.info("memory").await.ok()?;
        info.iter()
            .find(|(name, _)| name == "used_memory_dataset")
            .and_then(|(_, value)| value.trim().parse().ok())
    }
}
