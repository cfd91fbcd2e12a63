//! A run from start to end: both servers probed, the state file and the target's
//! ownership checked, import mode entered, then a cluster source's shards, the scan
//! mode, or the replication sessions of a standalone source.

use super::*;
use crate::state::StateMode;

impl Migration {
    pub(super) async fn run(&self, args: &MigrateArgs) -> Result<(), Error> {
        let saved = match &self.state_path {
            Some(path) => state::load(path)?,
            None => None,
        };
        if let (Some(saved), Some(path)) = (&saved, &self.state_path) {
            if saved.target != self.target_url.to_string() {
                return Err(MigrateError::StateOfAnotherTarget {
                    path: path.display().to_string(),
                    saved: saved.target.clone(),
                    target: self.target_url.to_string(),
                }
                .into());
            }
        }
        if let (Some(saved), Some(path)) = (&saved, &self.state_path) {
            let now = self.scope.describe();
            if saved.scope != now {
                return Err(MigrateError::StateOfAnotherScope {
                    path: path.display().to_string(),
                    saved: saved.scope.clone(),
                    now,
                }
                .into());
            }
        }
        if let (Some(saved), Some(path)) = (&saved, &self.state_path) {
            let now = match args.mode {
                MigrateMode::Scan => StateMode::Scan,
                MigrateMode::Replication => StateMode::Replication,
            };
            if saved.mode != now {
                return Err(MigrateError::StateOfAnotherMode {
                    path: path.display().to_string(),
                    written_by: saved.mode.name(),
                    now: now.name(),
                }
                .into());
            }
        }
        // ferry wrote the target's data in an earlier run: it may replace it.
        let owned = saved.is_some();

        let (mut client, mut target) = self.connect_target(args, owned).await?;
        let source_info = self.source_info().await?;
        let cluster_source = self
            .source_is_cluster()
            .await
            .map_err(|e| self.source_error(e))?;
        if cluster_source && args.mode == MigrateMode::Scan {
            // Scan mode reads the one node it is given: a cluster would be copied in part.
            return Err(Error::Usage(format!(
                "--mode scan reads one server, and {} is a node of a cluster (it would copy \
                 only that node's slots); migrate a cluster source in replication mode",
                self.source_url
            )));
        }
        if let (Some(share), false) = (self.share, cluster_source) {
            return Err(Error::Usage(format!(
                "--shards {share} splits a cluster source over workers, and {} is not a \
                 cluster node; migrate it in one process",
                self.source_url
            )));
        }
        if let Some(saved) = &saved {
            self.check_state_kind(saved, cluster_source)?;
        }
        if target.cluster && !cluster_source {
            check_cluster_databases(&source_info, &self.scope, target.databases)?;
        }
        // One node of a cluster, or a scope that leaves keys out, would mislead.
        if !cluster_source && self.scope.is_everything() {
            self.events
                .stats()
                .set_expected_keys(source_info.total_keys());
        }
        self.events.started(
            &self.source_url.address(),
            &source_info.name(),
            &self.target_url.address(),
            &target.info.name(),
        );
        self.events.line(format!(
            "source {} is {}; target {} is {} (writes {}{})",
            self.source_url,
            source_info.name(),
            self.target_url,
            target.info.name(),
            target.format.version,
            match target.mode {
                WriteMode::Restore => ", RESTORE",
                WriteMode::PlainOnly => ", plain commands: RESTORE refused",
            }
        ));
        let mut state = saved.unwrap_or_else(|| {
            MigrationState::new(
                self.target_url.to_string(),
                target.format.version.to_string(),
            )
        });
        state.format = target.format.version.to_string();
        state.scope = self.scope.describe();
        self.enter_import_mode(&mut client, &mut target).await?;
        let entered = target.import_mode;
        match self
            .run_entered(
                args,
                &source_info,
                cluster_source,
                (client, target),
                state,
                owned,
            )
            .await
        {
            Err(failure) => Err(self.settle_import_mode(entered, owned, failure).await),
            done => done,
        }
    }

    /// The run once both servers answered and the target's import mode is set.
    pub(super) async fn run_entered(
        &self,
        args: &MigrateArgs,
        source_info: &ServerInfo,
        cluster_source: bool,
        (mut client, target): (Client, TargetSetup),
        mut state: MigrationState,
        owned: bool,
    ) -> Result<(), Error> {
        if cluster_source {
            return self
                .run_cluster_source(args, source_info, (client, target), state, owned)
                .await;
        }
        // Scan mode keeps its own checkpoint in the state file (and no marker).
        // A cluster target's markers are per slot: read below, used by the stream's
        // first session to leave out what the target holds; the state file says
        // where to resume.
        if owned && args.mode == MigrateMode::Replication && !target.cluster {
            self.resume_from_target(args, &mut client, &target, &mut state)
                .await?;
        }
        let pipe = self.target_pipe(client, &target).await?;
        if owned && args.mode == MigrateMode::Replication && state.replid.is_some() {
            self.read_held_markers(&pipe).await?;
        }
        let live = pipe.clone();
        self.events
            .stats()
            .set_live_applied(move || live.applied().map(|mark| mark.offset));

        let shutdown = shutdown_or_stop(self.events.stats().clone(), self.events.clone());
        tokio::pin!(shutdown);
        if args.mode == MigrateMode::Scan {
            let job = self.scan_job(args, source_info, &target, owned, state);
            return crate::commands::migrate::scan::run(job, pipe, &mut shutdown).await;
        }
        self.clone()
            .follow(
                &session::Settled {
                    args,
                    source: source_info,
                    target: &target,
                    pipe: &pipe,
                },
                &mut state,
                owned,
                &mut shutdown,
            )
            .await
    }
}

/// Refuses, before anything is copied, a source whose databases a cluster target lacks
/// (all but 0 before Valkey 9.0 or without `cluster-databases`).
fn check_cluster_databases(
    source: &ServerInfo,
    scope: &Scope,
    databases: u64,
) -> Result<(), MigrateError> {
    // The databases the scope keeps, each landing where --db-map puts it.
    let used: Vec<u64> = source
        .keys_per_db
        .iter()
        .filter(|(db, keys)| **keys > 0 && scope.keeps_db(**db))
        .map(|(db, _)| *db)
        .collect();
    let Some(highest) = used.iter().map(|db| scope.target_db(*db)).max() else {
        return Ok(());
    };
    if highest < databases {
        return Ok(());
    }
    let used: Vec<String> = used.iter().map(u64::to_string).collect();
    Err(MigrateError::DatabasesTheClusterLacks {
        used: used.join(", "),
        has: crate::server::cluster::databases_held(databases),
        needed: highest + 1,
    })
}
