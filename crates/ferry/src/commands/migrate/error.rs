//! How a migration stops on its own account (the servers' and the layers' errors have
//! types of their own): each case one line that says what happened and what to do.

/// A migration that cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// `line` (already labelled with its shard) before any position was applied.
    #[error("{line}")]
    Stopped { line: String },
    /// `line` after `offset` was applied; `hint` says how to resume (`--state`).
    #[error("{line}; last applied offset {offset}{hint}")]
    StoppedAt {
        line: String,
        offset: i64,
        hint: String,
    },
    #[error(
        "source {source_url}: {count} full syncs in a row were cut ({last}); is the source's \
         client-output-buffer-limit for replicas or its repl-timeout too small? --spool-dir \
         receives the snapshot at network speed, so the source only buffers for the transfer"
    )]
    SnapshotsCut {
        source_url: String,
        count: u32,
        last: String,
    },
    #[error(
        "source {source_url} refuses replication ({reason}); use --mode scan to copy it with \
         SCAN/DUMP and keyspace notifications"
    )]
    ReplicationRefused { source_url: String, reason: String },
    #[error(transparent)]
    Spool(#[from] crate::sources::replication::spool::SpoolError),
    #[error("the snapshot decoder stopped: {0}")]
    DecoderStopped(String),
    #[error(
        "the state file {path} belongs to target {saved}, not {target}; use another --state file"
    )]
    StateOfAnotherTarget {
        path: String,
        saved: String,
        target: String,
    },
    #[error(
        "the state file {path} was written for the scope {saved:?}, and this run has \
         {now:?}: the target holds the other scope's keys; run with the same --match, \
         --exclude, --db and --db-map, or use another --state file"
    )]
    StateOfAnotherScope {
        path: String,
        saved: String,
        now: String,
    },
    #[error(
        "the state file {path} was written for {written_for} source, and {source_url} is \
         {now}; use another --state file"
    )]
    StateOfAnotherKind {
        path: String,
        written_for: &'static str,
        source_url: String,
        now: &'static str,
    },
    #[error(
        "the state file {path} was written by --mode {written_by}, and this run is --mode \
         {now}: its position means nothing here; use another --state file"
    )]
    StateOfAnotherMode {
        path: String,
        written_by: &'static str,
        now: &'static str,
    },
    #[error(
        "the state file {path} holds a scan of source {saved}, not {source_url}: the target \
         holds that source's keys; use another --state file, or --flush-target to start over"
    )]
    StateOfAnotherSource {
        path: String,
        saved: String,
        source_url: String,
    },
    #[error(
        "the source offers this shard only a full sync (FULLRESYNC) while the target holds its \
         keys from before, and reloading over them would keep keys deleted meanwhile; rerun \
         with --flush-target to copy the whole cluster again"
    )]
    ShardFullSyncAgain,
    #[error(
        "the source's shard {slots} at {primary} is not in the state file (a primary that \
         joined the cluster since, or one that took over while slots moved): its keys cannot \
         be resumed; rerun with --flush-target"
    )]
    ShardNotSaved { slots: String, primary: String },
    #[error(
        "the state file's shard {slots} at {node} is no longer a primary of the source \
         cluster: the writes it had not passed on yet cannot be read; rerun with \
         --flush-target"
    )]
    SavedShardGone { slots: String, node: String },
    #[error(
        "the source's slots {slots} are served by {primary}, a primary that joined the \
         cluster after ferry started and whose stream ferry does not read (keys moved there \
         would be lost on the target); restart ferry with --flush-target to follow every \
         primary"
    )]
    UnfollowedPrimary { slots: String, primary: String },
    #[error(
        "--shards {share}: the source cluster has {primaries} primaries serving slots, so \
         this worker would follow none; run at most {primaries} workers"
    )]
    EmptyShare { share: String, primaries: usize },
    #[error(
        "worker {share} stopped before a cutover (a signal): its primaries are no longer \
         followed; exiting non-zero so that a scheduler starts it again (it resumes from \
         its --state)"
    )]
    WorkerStopped { share: String },
    #[error(
        "keys moved into this worker's share (worker {share}) from {origin}: the worker \
         following {origin} applied its stream only up to offset {acknowledged} of \
         {wanted} in {waited_s} s without moving on (stopped, or waiting on this one: \
         slots moved both ways at once); writing the moved keys first could let older \
         writes land on them, so this worker stops: rerun it with its --state once that \
         worker runs"
    )]
    OriginWorkerStuck {
        share: String,
        origin: String,
        acknowledged: i64,
        wanted: i64,
        waited_s: u64,
    },
    #[error(
        "the source holds keys in databases {used}, and the target cluster has {has}: \
         Valkey 9.0 or later started with cluster-databases {needed} or more keeps them all; \
         or copy part with --db N, or merge into database 0 with --db-map SRC:0"
    )]
    DatabasesTheClusterLacks {
        used: String,
        has: String,
        needed: u64,
    },
}

impl From<MigrateError> for crate::error::Error {
    fn from(error: MigrateError) -> Self {
        crate::error::Error::Run(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message is one line of single-spaced words: a line break inside a string
    /// literal without its `\` once put twenty spaces in the middle of two of them.
    #[test]
    fn messages_are_one_line_single_spaced() {
        let text = || "x".to_string();
        let all = [
            MigrateError::ShardNotSaved {
                slots: text(),
                primary: text(),
            },
            MigrateError::SavedShardGone {
                slots: text(),
                node: text(),
            },
            MigrateError::UnfollowedPrimary {
                slots: text(),
                primary: text(),
            },
            MigrateError::EmptyShare {
                share: text(),
                primaries: 3,
            },
            MigrateError::OriginWorkerStuck {
                share: text(),
                origin: text(),
                acknowledged: 1,
                wanted: 2,
                waited_s: 300,
            },
            MigrateError::WorkerStopped { share: text() },
            MigrateError::ShardFullSyncAgain,
            MigrateError::SnapshotsCut {
                source_url: text(),
                count: 3,
                last: text(),
            },
            MigrateError::ReplicationRefused {
                source_url: text(),
                reason: text(),
            },
            MigrateError::StateOfAnotherKind {
                path: text(),
                written_for: "a cluster",
                source_url: text(),
                now: "not a cluster",
            },
            MigrateError::StateOfAnotherTarget {
                path: text(),
                saved: text(),
                target: text(),
            },
            MigrateError::StateOfAnotherMode {
                path: text(),
                written_by: "replication",
                now: "scan",
            },
            MigrateError::StateOfAnotherSource {
                path: text(),
                saved: text(),
                source_url: text(),
            },
        ];
        for error in all {
            let line = error.to_string();
            assert!(!line.contains('\n') && !line.contains("  "), "{line:?}");
        }
    }
}
