//! The target side of a run: connecting and probing it, the pipe to it, and reading
//! ferry's markers there to decide where a restart resumes.

use super::*;

/// What the target turned out to be. Its setup connection travels beside it (see
/// [`Migration::connect_target`]) until [`Migration::target_pipe`] takes it over.
pub(super) struct TargetSetup {
    pub(super) info: ServerInfo,
    pub(super) format: Format,
    pub(super) mode: WriteMode,
    pub(super) restore_refusal: String,
    /// Every command the target has, when it says (`COMMAND LIST`).
    pub(super) commands: Option<Vec<bytes::Bytes>>,
    /// Whether the target is in import mode and this connection its import source: it
    /// deletes no key on its own clock (see `probe::enter_import_mode`).
    pub(super) import_mode: ImportMode,
    /// The target is a cluster: commands are routed by slot over one connection per
    /// primary (`sinks::writer::cluster`).
    pub(super) cluster: bool,
    /// The databases of a cluster target (`cluster-databases`: more than database 0 from
    /// Valkey 9.0); 1 for a standalone one, whose databases ferry does not limit.
    pub(super) databases: u64,
}

impl Migration {
    /// Reads ferry's marker on the target and makes it the resume point: the target's own
    /// record of what it holds, written with its data, wins over the state file (which
    /// trails by up to a second, or recorded writes a restarted target did not keep).
    pub(super) async fn resume_from_target(
        &self,
        args: &MigrateArgs,
        client: &mut Client,
        target: &TargetSetup,
        state: &mut MigrationState,
    ) -> Result<(), Error> {
        let found = marker::read(client)
            .await
            .map_err(|e| self.target_error(e))?;
        let (saved_replid, saved_offset) = (state.replid.clone(), state.offset);
        let line = match state::resume_from_target(state, found.as_ref()) {
            Reconciled::FullSync | Reconciled::Agrees => return Ok(()),
            Reconciled::StateBehind { bytes } => format!(
                "the target holds offset {} by its marker, {bytes} bytes past the state file's \
                 {saved_offset} (written every second); resuming from the target's",
                state.offset
            ),
            Reconciled::TargetLost { bytes } => format!(
                "the target lost its last {bytes} bytes of writes (its marker says offset {}, \
                 the state file {saved_offset}); applying them again from offset {}",
                state.offset, state.offset
            ),
            Reconciled::OtherReplid { saved } => format!(
                "the target's marker names replication ID {} at offset {} (the state file: \
                 {saved} at {saved_offset}); resuming from the target's",
                state.replid.as_deref().unwrap_or_default(),
                state.offset
            ),
            Reconciled::MarkerMissing => {
                let keys = target.info.total_keys();
                if keys > 0 && !args.flush_target && !args.allow_non_empty {
                    return Err(self.target_refusal(format!(
                        "holds {keys} keys but no ferry marker ({} in db {}), while the state \
                         file says offset {saved_offset} of {} was applied: the target lost \
                         writes, or the marker was removed (cutover); pass --flush-target to \
                         copy everything again",
                        marker::KEY,
                        marker::DB,
                        saved_replid.as_deref().unwrap_or_default()
                    )));
                }
                format!(
                    "the target lost its data (no ferry marker on it, while the state file says \
                     offset {saved_offset} was applied); full sync"
                )
            }
        };
        self.events.line(line);
        self.save_state(state)
    }

    /// On a cluster target: reads every stream's per-slot markers, for the first session
    /// of each stream to leave out what the target holds.
    pub(super) async fn read_held_markers(&self, pipe: &Pipe) -> Result<(), Error> {
        let Some(cluster) = pipe.as_cluster() else {
            return Ok(());
        };
        let found = cluster
            .read_markers()
            .await
            .map_err(|e| self.target_error(e))?;
        let slots: usize = found.values().map(|a| a.by_slot.len()).sum();
        self.events.line(format!(
            "read ferry's resume markers on the target cluster: {slots} slot markers of {} \
             streams; what they show applied is not applied again",
            found.len()
        ));
        *self
            .held_markers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = found;
        Ok(())
    }

    /// What the target held of `stream` when this run started (taken: only the first
    /// session after a restart replays).
    pub(super) fn take_held(&self, stream: &str) -> crate::state::slot_markers::Applied {
        self.held_markers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(stream)
            .unwrap_or_default()
    }

    /// The pipe to the target: its one connection, or one per primary of a cluster.
    pub(super) async fn target_pipe(
        &self,
        client: Client,
        target: &TargetSetup,
    ) -> Result<Pipe, Error> {
        let (pipe, nodes) = self.open_pipe(client, target).await?;
        let Some(nodes) = nodes else {
            return Ok(pipe);
        };
        let databases = cluster::databases_held(target.databases);
        self.events.line(format!(
            "target is a cluster of {nodes} primaries: keys are routed by slot, {databases}; \
             ferry's resume marker is kept per slot, in each slot's transaction"
        ));
        Ok(pipe)
    }

    /// A pipe over `client` (the target's connection), and the number of primaries when
    /// the target is a cluster.
    pub(super) async fn open_pipe(
        &self,
        mut client: Client,
        target: &TargetSetup,
    ) -> Result<(Pipe, Option<usize>), Error> {
        client.set_stall_timeout(self.reply_timeout);
        if !target.cluster {
            let (reader, writer) = client.into_split();
            return Ok((
                Pipe::start(reader, writer, self.memory.in_flight_bytes),
                None,
            ));
        }
        let cluster = ClusterPipe::connect(
            &self.target_url,
            &mut client,
            self.connect_timeout,
            self.memory.in_flight_bytes,
            target.databases,
        )
        .await
        .map_err(|e| self.target_error(e))?;
        let nodes = cluster.nodes();
        Ok((Pipe::cluster(cluster), Some(nodes)))
    }

    pub(super) async fn connect_target(
        &self,
        args: &MigrateArgs,
        owned: bool,
    ) -> Result<(Client, TargetSetup), Error> {
        let mut client = Client::connect(&self.target_url, self.connect_timeout)
            .await
            .map_err(|e| self.target_error(e))?;
        let info = probe::server_info(&mut client)
            .await
            .map_err(|e| self.target_error(e))?;
        if info.is_replica {
            return Err(self.target_refusal(format!(
                "is a replica ({} with role:slave); ferry must write into a primary",
                info.name()
            )));
        }
        // A worker (--shards) finds the keys the other workers wrote already.
        let workers = args.shards.is_some();
        if !owned
            && info.total_keys() > 0
            && !args.allow_non_empty
            && !args.flush_target
            && !workers
        {
            let per_db: Vec<String> = info
                .keys_per_db
                .iter()
                .map(|(db, keys)| format!("db{db} {keys}"))
                .collect();
            return Err(self.target_refusal(format!(
                "is not empty ({} keys: {}); pass --flush-target to empty it first or \
                 --allow-non-empty to write over it",
                info.total_keys(),
                per_db.join(", ")
            )));
        }
        let cluster = probe::is_cluster(&mut client)
            .await
            .map_err(|e| self.target_error(e))?;
        let probe_tag = match cluster {
            true => Some(
                cluster::probe_tag(&mut client, &self.target_url.host)
                    .await
                    .map_err(|e| self.target_error(e))?,
            ),
            false => None,
        };
        let databases = match cluster {
            true => cluster::databases(&mut client)
                .await
                .map_err(|e| self.target_error(e))?,
            false => 1,
        };
        let dump = probe::dump_probe(&mut client, probe_tag.as_deref())
            .await
            .map_err(|e| self.target_error(e))?;
        let expected = info.expected_format();
        let format = match dump.dump_version.and_then(probe::format_from_dump) {
            Some(found) => {
                if found != expected {
                    self.say(format!(
                        "target {} dumps {} (expected {} from its version); using {}",
                        info.name(),
                        found.version,
                        expected.version,
                        found.version
                    ));
                }
                found
            }
            None => expected,
        };
        let (mode, restore_refusal) = match dump.restore_refused {
            None => (WriteMode::Restore, String::new()),
            Some(reason) => {
                self.say(format!(
                    "the target refuses RESTORE ({reason}); writing plain commands (streams cannot be copied)"
                ));
                (WriteMode::PlainOnly, reason)
            }
        };
        let commands = probe::command_names(&mut client)
            .await
            .map_err(|e| self.target_error(e))?;
        let setup = TargetSetup {
            import_mode: ImportMode::Absent,
            cluster,
            databases,
            commands,
            info,
            format,
            mode,
            restore_refusal,
        };
        Ok((client, setup))
    }
}
