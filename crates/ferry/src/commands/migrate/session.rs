//! One connection to the source after another: PSYNC, a full sync or a continuation,
//! then the stream, until a stop or an error; a lost source is resumed within
//! [`crate::server::reconnect::RECONNECT_FOR`].

use super::spooled::Feed;
use super::*;

/// A refused client certificate shows on the first read after a TLS 1.3 handshake; a
/// TLS-only port hangs up on a plaintext PING (silence is no sign of TLS).
pub(super) fn explain_replica_setup(error: ReplError, url: &ServerUrl) -> ReplError {
    let address = url.address();
    match (&error, &url.tls) {
        (ReplError::Io { cause, .. }, Some(tls)) => {
            match crate::tls::explain_io(cause, tls.ca_file.as_deref(), tls.flag_prefix) {
                Some(text) => ReplError::Connect {
                    address,
                    cause: std::io::Error::other(text),
                },
                None => error,
            }
        }
        (ReplError::Closed(_), None) => ReplError::Connect {
            address,
            cause: std::io::Error::other(format!(
                "{error}: is the server expecting TLS? use rediss:// (or valkeys://)"
            )),
        },
        _ => error,
    }
}

/// How a run ended without error.
pub(super) enum Stop {
    Signal,
    DuringFullSync,
}

/// Why a session with the source ended.
#[derive(Debug)]
pub(super) enum SessionError {
    /// The source connection failed mid-way: reconnect and resume.
    SourceLost(ReplError),
    /// Connecting again after a loss failed; try again a little later.
    Reconnect(Error),
    /// Stops the migration; the applied position is kept for a restart.
    Fatal(Error),
    /// The first connection failed: stop.
    Setup(Error),
}

impl From<Error> for SessionError {
    fn from(error: Error) -> Self {
        SessionError::Fatal(error)
    }
}

/// What every session of a run shares: the command line, the source and target as
/// probed at the start, and the pipe to the target.
pub(super) struct Settled<'a> {
    pub(super) args: &'a MigrateArgs,
    pub(super) source: &'a ServerInfo,
    pub(super) target: &'a TargetSetup,
    pub(super) pipe: &'a Pipe,
}

impl Migration {
    /// Sessions with the source one after the other: each lost connection is resumed
    /// (PSYNC) until [`crate::server::reconnect::RECONNECT_FOR`] passes without success.
    pub(super) async fn follow(
        mut self,
        settled: &Settled<'_>,
        state: &mut MigrationState,
        mut owned: bool,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<(), Error> {
        let pipe = settled.pipe;
        let mut reconnect = Reconnect::default();
        // Full syncs cut in a row: each new PSYNC succeeds, so the reconnect timer alone
        // would never run out against a source that always cuts its snapshot.
        let mut cut_snapshots = 0;
        loop {
            let full_syncs_before = self.events.stats().full_syncs();
            let session = self
                .session(settled, state, (owned, &mut reconnect), shutdown)
                .await;
            owned = true;
            if session.is_ok() || matches!(session, Err(SessionError::SourceLost(_))) {
                self.failover_from = None;
            }
            match session {
                Ok(Stop::Signal) => {
                    self.drain(pipe, state).await;
                    self.after_stop().await?;
                    match &self.state_path {
                        Some(path) => self.say(format!(
                            "stopped at offset {}; resume with --state {}",
                            state.offset,
                            path.display()
                        )),
                        None => self.say(format!(
                            "stopped at offset {} (without --state the next run copies everything again)",
                            state.offset
                        )),
                    }
                    return Ok(());
                }
                Ok(Stop::DuringFullSync) => {
                    self.stopped_during_full_sync();
                    return Ok(());
                }
                Err(SessionError::SourceLost(error)) => {
                    self.drain(pipe, state).await;
                    // No replication ID in the state: the loss came before the snapshot
                    // was loaded. A snapshot loaded but cut before the stream caught up
                    // counts too: the next session is a full sync again, and a source
                    // that buffers more than it may for the catch-up cuts every one. (A
                    // shard's second full sync is refused anyway, and the phase is the
                    // whole cluster's.)
                    let stats = self.events.stats();
                    let loaded_but_behind = self.shard.is_none()
                        && stats.full_syncs() > full_syncs_before
                        && stats.phase() != Phase::InSync;
                    if state.replid.is_none() || loaded_but_behind {
                        cut_snapshots += 1;
                        if cut_snapshots >= MAX_CUT_SNAPSHOTS {
                            let cut = MigrateError::SnapshotsCut {
                                source_url: self.source_url.to_string(),
                                count: cut_snapshots,
                                last: error_line(&error),
                            };
                            return Err(self.stopped_with(cut.into(), state));
                        }
                    } else {
                        cut_snapshots = 0;
                    }
                    if !reconnect.lost() {
                        return Err(self.stopped_with(self.source_error(error), state));
                    }
                    let lost = format!("lost the source ({}); reconnecting", error_line(&error));
                    self.events.reconnecting(&lost);
                    self.say(lost);
                    self.shard_lost().await;
                    self.follow_sentinel_source().await;
                    if !Reconnect::pause(shutdown.as_mut()).await {
                        self.say(format!("stopped at offset {}", state.offset));
                        return Ok(());
                    }
                }
                Err(SessionError::Reconnect(error)) => {
                    self.shard_lost().await;
                    self.follow_sentinel_source().await;
                    if !reconnect.lost() {
                        return Err(self.stopped_with(error, state));
                    }
                    if !Reconnect::pause(shutdown.as_mut()).await {
                        self.say(format!("stopped at offset {}", state.offset));
                        return Ok(());
                    }
                }
                Err(SessionError::Fatal(error)) => {
                    if pipe.failure().is_some_and(|f| f.is_connection_loss()) {
                        self.target_lost.store(true, Ordering::Release);
                    }
                    if pipe.failure().is_some_and(|f| f.is_half_moved()) {
                        self.target_resharding.store(true, Ordering::Release);
                    }
                    // Keep what is applied so that a restart resumes from there.
                    self.drain(pipe, state).await;
                    return Err(self.stopped_with(error, state));
                }
                Err(SessionError::Setup(error)) => return Err(error),
            }
        }
    }

    /// PSYNC (or the handshake) refused: point at scan mode.
    /// Checks a `+CONTINUE` against the source's own `INFO replication`
    /// ([`continuation`]): a peer that claims a history or an offset it does not hold is
    /// refused before anything is streamed from it.
    pub(super) async fn check_continue(
        &self,
        asked: &str,
        offset: i64,
        continued: &str,
    ) -> Result<(), CheckError> {
        continuation::verify_at(
            &self.source_url,
            self.connect_timeout,
            asked,
            offset,
            continued,
        )
        .await
    }

    pub(super) fn replication_error(&self, error: ReplError) -> Error {
        if let Some(reason) = crate::commands::migrate::scan::replication_refused(&error) {
            return MigrateError::ReplicationRefused {
                source_url: self.source_url.to_string(),
                reason: reason.to_string(),
            }
            .into();
        }
        self.source_error(error)
    }

    /// An error that ends the migration, with the position to resume from.
    pub(super) fn stopped_with(&self, error: Error, state: &MigrationState) -> Error {
        let line = self.labelled(crate::error::one_line(crate::error::chain(&error)));
        if state.replid.is_none() {
            return MigrateError::Stopped { line }.into();
        }
        let hint = match &self.state_path {
            Some(path) => format!("; resume with --state {}", path.display()),
            None => String::new(),
        };
        MigrateError::StoppedAt {
            line,
            offset: state.offset,
            hint,
        }
        .into()
    }

    /// One connection to the source: PSYNC, a snapshot if needed, then the stream until it
    /// ends.
    pub(super) async fn session(
        &self,
        settled: &Settled<'_>,
        state: &mut MigrationState,
        (owned, reconnect): (bool, &mut Reconnect),
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<Stop, SessionError> {
        let Settled {
            source: source_info,
            target,
            pipe,
            ..
        } = *settled;
        // The first connection's failures end the run; after a loss they are retried.
        let reconnecting = reconnect.retrying();
        let setup_error = |error: Error| {
            if reconnecting {
                SessionError::Reconnect(error)
            } else {
                SessionError::Setup(error)
            }
        };
        let mut repl = self
            .connect_replica(source_info)
            .await
            .map_err(setup_error)?;
        pipe.report_to(repl.ack_handle());
        let spooled = self.spool_resume(state)?;
        let resume = match &spooled {
            // The source continues from what the spool holds, not from what is applied.
            Some(spool) => Some((spool.replid().to_owned(), spool.end)),
            None => state.replid.clone().map(|id| (id, state.offset)),
        };
        let outcome = repl
            .psync(
                resume.as_ref().map(|(id, _)| id.as_str()),
                resume.as_ref().map_or(0, |r| r.1),
            )
            .await
            .map_err(|e| setup_error(self.replication_error(e)))?;
        let started = match outcome {
            PsyncOutcome::Continue { replid } => {
                if let Some((asked, offset)) = &resume {
                    self.check_continue(asked, *offset, &replid)
                        .await
                        .map_err(|e| match e {
                            CheckError::Refused(refused) => {
                                SessionError::Fatal(self.source_error(refused))
                            }
                            CheckError::Info(_) => setup_error(self.source_error(e)),
                        })?;
                }
                reconnect.connected();
                match spooled {
                    Some(spool) => {
                        self.continue_spool(repl, spool, settled, state, replid, shutdown)
                            .await?
                    }
                    None => Some(self.continued(repl, state, replid)?),
                }
            }
            PsyncOutcome::FullResync { replid, offset } => {
                reconnect.connected();
                if let Some((id, from)) = &resume {
                    self.say(format!(
                        "partial resync refused by source; full sync (it cannot continue {id} \
                         from offset {from}: its backlog no longer holds it, or it is another \
                         replication)"
                    ));
                }
                if let Some(settings) = &self.spool {
                    self.spool_full_sync(
                        (repl, settings),
                        settled,
                        state,
                        (replid, offset),
                        (owned, resume.is_some()),
                        shutdown,
                    )
                    .await?
                } else {
                    self.full_sync(
                        repl,
                        settled,
                        state,
                        (replid, offset),
                        (owned, resume.is_some()),
                        shutdown,
                    )
                    .await?
                }
            }
        };
        let Some((start, mut feed)) = started else {
            return Ok(Stop::DuringFullSync);
        };

        let translator = self.stream_translator(target);
        let applier = StreamApplier::new(pipe.clone(), translator, start);
        let mut applier = self.with_markers(applier, pipe, state).await;
        let result = self
            .stream(&mut feed, &mut applier, pipe, state, shutdown)
            .await;
        self.events.commands_skipped(applier.skipped());
        let split = pipe.split_transactions();
        if split > 0 {
            self.say(format!(
                "{split} source transactions spanned several cluster slots: each ran as one \
                 transaction per slot (atomic per slot, not across slots)"
            ));
        }
        if let Some(held) = pipe
            .as_cluster()
            .map(|c| c.already_held())
            .filter(|n| *n > 0)
        {
            self.say(format!(
                "{held} commands read again after the restart were not applied again: the \
                 target's per-slot markers showed it held them"
            ));
        }
        let redirects = pipe.redirects();
        if redirects > 0 {
            self.say(format!(
                "{redirects} commands followed a MOVED/ASK of the target cluster to the node \
                 now serving their slot"
            ));
        }
        let joined = pipe.joined_primaries();
        if !joined.is_empty() {
            self.say(format!(
                "the target cluster gained {} primaries while ferry wrote ({}): ferry \
                 connected to them and sent their slots' commands there",
                joined.len(),
                joined.join(", ")
            ));
        }
        self.events.end_session();
        for line in applier.report_lines() {
            self.events.policy_report(&line);
        }
        result
    }

    /// After `+CONTINUE` without a spool: the stream goes on from the applied offset.
    fn continued(
        &self,
        repl: ReplicaConnection,
        state: &mut MigrationState,
        replid: String,
    ) -> Result<(Mark, Feed), SessionError> {
        self.say(format!(
            "partial resync accepted (+CONTINUE) at offset {}",
            state.offset
        ));
        if let Some(from) = &self.failover_from {
            self.say(format!(
                "failover followed from {from} without a full sync: the promoted \
                 node continued replication ID {} at offset {}",
                state.replid.as_deref().unwrap_or_default(),
                state.offset
            ));
        }
        self.events.replid(&replid);
        self.events.phase(Phase::Streaming, Some(state.offset));
        let renamed = state.replid.as_deref() != Some(replid.as_str());
        state.replid = Some(replid);
        // A promoted node continues under its own ID: recorded at once, so that /status
        // (which cutover checks against the primary's ID) names it from now on.
        if renamed {
            self.save_state(state).map_err(SessionError::Fatal)?;
        }
        let start = Mark {
            offset: state.offset,
            db: state.db,
        };
        Ok((start, Feed::Direct(repl)))
    }

    /// After `+FULLRESYNC` without a spool: the snapshot straight from the connection
    /// into the target. `None`: stopped during it.
    async fn full_sync(
        &self,
        mut repl: ReplicaConnection,
        settled: &Settled<'_>,
        state: &mut MigrationState,
        (replid, offset): (String, i64),
        (owned, resumed): (bool, bool),
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<Option<(Mark, Feed)>, SessionError> {
        self.clear_for_full_sync(settled.args, settled.pipe, owned, resumed)
            .await?;
        // Until the snapshot is complete the target holds a partial copy: a run
        // that stops now must start over, never resume.
        self.begin_load(state, None)?;
        tokio::select! {
            loaded = self.load_snapshot(&mut repl, settled.pipe, settled.target, (&replid, offset), owned) => loaded?,
            _ = shutdown.as_mut() => return Ok(None),
        }
        self.events.replid(&replid);
        self.events.phase(Phase::Streaming, Some(offset));
        self.loaded(state, &replid, offset)?;
        Ok(Some((Mark { offset, db: 0 }, Feed::Direct(repl))))
    }

    /// A full sync starts loading: the state file holds no position until it is done,
    /// only (with a spool) the snapshot whose load a restart resumes.
    pub(super) fn begin_load(
        &self,
        state: &mut MigrationState,
        loading: Option<String>,
    ) -> Result<(), SessionError> {
        state.replid = None;
        state.offset = 0;
        state.db = 0;
        state.loading = loading;
        state.load_begun = Some(true);
        self.save_state(state).map_err(SessionError::Fatal)
    }

    /// The snapshot is on the target: the state file says so.
    pub(super) fn loaded(
        &self,
        state: &mut MigrationState,
        replid: &str,
        offset: i64,
    ) -> Result<(), SessionError> {
        state.origin = Some(replid.to_owned());
        state.replid = Some(replid.to_owned());
        state.offset = offset;
        state.db = 0;
        state.loading = None;
        state.load_begun = Some(false);
        self.save_state(state).map_err(SessionError::Fatal)
    }

    /// The rules for replicated commands: the policies, for this target.
    pub(super) fn translator(&self, target: &TargetSetup) -> CommandTranslator {
        let compat_target = Target {
            format: target.format,
            name: target.info.name(),
        };
        let translator = CommandTranslator::new(&self.policies, &compat_target);
        match &target.commands {
            Some(names) => translator.with_target_commands(names),
            None => translator,
        }
    }

    pub(super) fn fatal_target(
        &self,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> SessionError {
        SessionError::Fatal(self.target_error(error))
    }

    pub(super) async fn source_info(&self) -> Result<ServerInfo, Error> {
        let mut client = Client::connect(&self.source_url, self.connect_timeout)
            .await
            .map_err(|e| self.source_error(e))?;
        probe::server_info(&mut client)
            .await
            .map_err(|e| self.source_error(e))
    }

    pub(super) async fn connect_replica(
        &self,
        source: &ServerInfo,
    ) -> Result<ReplicaConnection, Error> {
        let upgrade = self.replica_tls().map_err(|e| self.source_error(e))?;
        self.open_replica(source, upgrade)
            .await
            .map_err(|e| self.replication_error(explain_replica_setup(e, &self.source_url)))
    }

    /// The TLS upgrade of the replica connection, when the source URL asks for TLS.
    pub(super) fn replica_tls(
        &self,
    ) -> Result<Option<Arc<dyn StreamUpgrade>>, crate::tls::TlsError> {
        Ok(
            TlsConnector::for_url(&self.source_url, self.connect_timeout)?
                .map(|tls| Arc::new(tls) as Arc<dyn StreamUpgrade>),
        )
    }

    /// The replica connection, its errors as the protocol gives them.
    pub(super) async fn open_replica(
        &self,
        source: &ServerInfo,
        upgrade: Option<Arc<dyn StreamUpgrade>>,
    ) -> Result<ReplicaConnection, ReplError> {
        let announce_version =
            (source.product == "valkey" && source.series().0 >= 9).then(|| source.version.clone());
        let mut options = ConnectOptions {
            username: self.source_url.username.clone(),
            password: self
                .source_url
                .password
                .as_ref()
                .map(|p| Secret::new(p.expose())),
            announce_version,
            connect_timeout: self.connect_timeout,
            read_timeout: self.source_read_timeout,
            upgrade,
            ..ConnectOptions::default()
        };
        // The other workers wait on a worker's acknowledged offset (`shards::peers`).
        if self.share.is_some() {
            options.ack_interval = shards::WORKER_ACK_EVERY;
        }
        ReplicaConnection::connect(&self.source_url.address(), options).await
    }
}
