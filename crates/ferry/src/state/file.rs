//! The migration state file (`--state PATH`): where to resume the source's replication
//! stream, and proof that ferry owns the target's data.
//!
//! It is replaced atomically (a temporary file in the same folder, fsync, rename), so a
//! kill at any moment leaves either the old or the new state, never a torn one.
//!
//! It is written every second, so it can trail the target; and a restarted target may have
//! kept less than it acknowledged. What the target holds is told by ferry's marker on the
//! target ([`crate::state::marker`]), written atomically with the data: on start,
//! [`resume_from_target`] makes the marker win. The file keeps what the target cannot
//! tell: that ferry owns the target, and that a full sync was under way.

use crate::state::marker::Applied;
use crate::state::scan::{ScanCheckpoint, StateMode};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bumped when the meaning of a field changes; an unknown version is refused.
const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationState {
    pub version: u32,
    /// The source's replication ID; `None` while a full sync is loading (the target then
    /// holds a partial copy and the next start must reload it).
    pub replid: Option<String>,
    /// Every command of the stream up to this offset is applied on the target.
    pub offset: i64,
    /// The database the replication stream had selected at `offset`. A primary does not
    /// repeat SELECT after a partial resync, so the replica must remember it.
    pub db: u64,
    /// The replication ID of the full sync this stream began with: the stream's name in
    /// ferry's markers on a cluster target, kept while a failover changes `replid`.
    /// Absent in files of earlier versions (then `replid` names the stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The replication ID of a spooled snapshot being loaded (`--spool-dir`): the next
    /// start resumes its load from the spool. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loading: Option<String>,
    /// A full sync began writing to the target and has not completed (`Some(true)`), or
    /// none did since (`Some(false)`); absent in files of earlier versions. A cluster
    /// source's shard that never began can be loaded after a restart without a flush.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_begun: Option<bool>,
    /// The target, without its password.
    pub target: String,
    /// The target's format, e.g. `RDB 11`.
    pub format: String,
    /// A cluster source: one entry per shard, each followed on its own (the fields above
    /// then stay unset). Absent for a standalone source, so files of either kind and of
    /// earlier versions read the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardState>,
    /// A cluster source stopped during a resharding: keys a shard restored from another
    /// (`sources::replication::moves`), so that the other's older writes and DEL, read
    /// after the restart, are still left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moved_keys: Vec<MovedKeyState>,
    /// The scope the target was written with (`--match`, `--db`, ...), in its canonical
    /// form; empty (and absent from the file) when everything moved.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// The `--mode` that wrote the file (absent: replication).
    #[serde(default, skip_serializing_if = "StateMode::is_replication")]
    pub mode: StateMode,
    /// Scan mode: where the scan stands ([`ScanCheckpoint`]); absent until the first
    /// checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanCheckpoint>,
}

/// A key moved to another shard of a cluster source, as the state file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedKeyState {
    /// The key's bytes in hex (a key may be any bytes).
    pub key: String,
    /// `host:port` of the node whose stream restored it (a shard's `node`).
    pub restored_by: String,
}

/// Where one shard of a cluster source is: its slots, the node last followed, and its
/// own replication position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardState {
    /// The shard's slot ranges, `[first, last]` inclusive: what identifies it on restart.
    pub slots: Vec<[u16; 2]>,
    /// `host:port` of the node followed (after a failover, the promoted replica).
    pub node: String,
    /// `None` until the shard's full sync completed.
    pub replid: Option<String>,
    pub offset: i64,
    /// The replication ID of the shard's full sync ([`MigrationState::origin`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The shard's spooled snapshot being loaded ([`MigrationState::loading`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loading: Option<String>,
    /// Whether the shard's full sync began writing ([`MigrationState::load_begun`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_begun: Option<bool>,
}

impl ShardState {
    /// A new shard, nothing of it written yet.
    pub fn fresh(slots: Vec<[u16; 2]>, node: String) -> Self {
        Self {
            slots,
            node,
            replid: None,
            offset: 0,
            origin: None,
            loading: None,
            load_begun: Some(false),
        }
    }

    /// Whether the target may hold keys of this shard: its full sync completed or began.
    /// A file of an earlier version, which did not record a begun load, is taken to.
    pub fn may_hold_keys(&self) -> bool {
        self.replid.is_some() || self.loading.is_some() || self.load_begun != Some(false)
    }
}

impl MigrationState {
    /// The stream's name in ferry's markers: [`MigrationState::origin`], or for a file
    /// of an earlier version the replication ID.
    pub fn stream_name(&self) -> Option<String> {
        self.origin.clone().or_else(|| self.replid.clone())
    }

    pub fn new(target: String, format: String) -> Self {
        Self {
            version: STATE_VERSION,
            replid: None,
            offset: 0,
            db: 0,
            origin: None,
            loading: None,
            load_begun: None,
            target,
            format,
            shards: Vec::new(),
            moved_keys: Vec::new(),
            scope: String::new(),
            mode: StateMode::Replication,
            scan: None,
        }
    }
}

/// How the saved state and the target's marker were reconciled on start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// Nothing to resume (a first run, or a full sync that did not finish).
    FullSync,
    /// The marker says what the state says.
    Agrees,
    /// The target holds more than the state file recorded (it is written every second).
    StateBehind { bytes: i64 },
    /// The target kept less than it acknowledged: its last `bytes` of writes are lost and
    /// will be applied again.
    TargetLost { bytes: i64 },
    /// The marker names another replication ID (the source changed it, e.g. after a
    /// failover, before the state file caught up): resuming from the marker.
    OtherReplid { saved: String },
    /// The target has no marker while the state says data was applied: it lost its data
    /// (restarted without persistence, flushed) or the marker was removed (cutover).
    MarkerMissing,
}

/// Makes the target's marker the resume point. `state` is the saved state; after the call
/// it resumes from what the target holds, or (marker missing) asks for a full sync.
pub fn resume_from_target(state: &mut MigrationState, marker: Option<&Applied>) -> Reconciled {
    let Some(saved) = state.replid.clone() else {
        return Reconciled::FullSync;
    };
    let Some(marker) = marker else {
        state.replid = None;
        state.offset = 0;
        state.db = 0;
        return Reconciled::MarkerMissing;
    };
    let outcome = if marker.replid != saved {
        Reconciled::OtherReplid { saved }
    } else if marker.offset < state.offset {
        Reconciled::TargetLost {
            bytes: state.offset - marker.offset,
        }
    } else if marker.offset > state.offset {
        Reconciled::StateBehind {
            bytes: marker.offset - state.offset,
        }
    } else if marker.db != state.db {
        // Same offset, another database: the marker was written with the data.
        Reconciled::StateBehind { bytes: 0 }
    } else {
        Reconciled::Agrees
    };
    state.replid = Some(marker.replid.clone());
    state.offset = marker.offset;
    state.db = marker.db;
    outcome
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state file {} is not a ferry state file ({reason}); remove it to start over", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("cannot write the state file {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the state; `Ok(None)` when the file does not exist (a first run).
pub fn load(path: &Path) -> Result<Option<MigrationState>, StateError> {
    let text = match read_if_present(path) {
        Ok(Some(text)) => text,
        Ok(None) => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let malformed = |reason: String| StateError::Malformed {
        path: path.to_owned(),
        reason,
    };
    let state: MigrationState =
        serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
    if state.version != STATE_VERSION {
        return Err(malformed(format!("version {}", state.version)));
    }
    Ok(Some(state))
}

/// Replaces the state file atomically.
pub fn save(path: &Path, state: &MigrationState) -> Result<(), StateError> {
    let write_error = |source| StateError::Write {
        path: path.to_owned(),
        source,
    };
    let text = serde_json::to_vec_pretty(state).map_err(|e| write_error(e.into()))?;
    write_atomically(path, &text).map_err(write_error)
}

/// The file's text; `None` when it does not exist (a first run).
pub(crate) fn read_if_present(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `text` and a newline to a temporary file beside `path`, syncs it and renames it
/// over `path`: a kill at any moment leaves the old file or the new one, never a torn one.
pub(crate) fn write_atomically(path: &Path, text: &[u8]) -> std::io::Result<()> {
    let temporary = temporary_path(path);
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "state".into());
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.state");
        assert_eq!(load(&path).unwrap(), None);
        let mut state = MigrationState::new("redis://h:1".into(), "RDB 11".into());
        state.replid = Some("a".repeat(40));
        state.offset = 12345;
        state.db = 5;
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state.clone()));
        state.offset = 99999;
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap().unwrap().offset, 99999);
        assert!(!temporary_path(&path).exists());
    }

    fn saved(offset: i64) -> MigrationState {
        let mut state = MigrationState::new("redis://h:1".into(), "RDB 11".into());
        state.replid = Some("r1".into());
        state.offset = offset;
        state.db = 2;
        state
    }

    fn marker(replid: &str, offset: i64, db: u64) -> Applied {
        Applied {
            replid: replid.into(),
            offset,
            db,
        }
    }

    #[test]
    fn the_target_marker_is_the_resume_point() {
        let mut state = saved(100);
        let outcome = resume_from_target(&mut state, Some(&marker("r1", 70, 1)));
        assert_eq!(outcome, Reconciled::TargetLost { bytes: 30 });
        assert_eq!((state.offset, state.db), (70, 1));

        let mut state = saved(100);
        let outcome = resume_from_target(&mut state, Some(&marker("r1", 160, 2)));
        assert_eq!(outcome, Reconciled::StateBehind { bytes: 60 });
        assert_eq!(state.offset, 160);

        let mut state = saved(100);
        let outcome = resume_from_target(&mut state, Some(&marker("r2", 5, 0)));
        assert_eq!(outcome, Reconciled::OtherReplid { saved: "r1".into() });
        assert_eq!((state.replid.as_deref(), state.offset), (Some("r2"), 5));

        let mut state = saved(100);
        assert_eq!(
            resume_from_target(&mut state, Some(&marker("r1", 100, 2))),
            Reconciled::Agrees
        );
    }

    #[test]
    fn a_missing_marker_or_an_unfinished_load_means_a_full_sync() {
        let mut state = saved(100);
        assert_eq!(
            resume_from_target(&mut state, None),
            Reconciled::MarkerMissing
        );
        assert_eq!((state.replid, state.offset), (None, 0));

        // A full sync was loading: whatever the marker says, the data is partial.
        let mut state = saved(100);
        state.replid = None;
        assert_eq!(
            resume_from_target(&mut state, Some(&marker("r1", 100, 2))),
            Reconciled::FullSync
        );
        assert_eq!(state.replid, None);
    }

    #[test]
    fn a_standalone_file_without_shards_still_loads_and_shards_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.state");
        std::fs::write(
            &path,
            r#"{"version":1,"replid":"r","offset":7,"db":0,"target":"redis://h:1","format":"RDB 11"}"#,
        )
        .unwrap();
        let old = load(&path).unwrap().unwrap();
        assert!(old.shards.is_empty());
        assert_eq!(old.offset, 7);
        let text = serde_json::to_string(&old).unwrap();
        assert!(!text.contains("shards"), "{text}");

        let mut state = MigrationState::new("redis://h:1".into(), "RDB 11".into());
        state.shards.push(ShardState {
            slots: vec![[0, 5460], [10000, 10001]],
            node: "127.0.0.1:7000".into(),
            replid: Some("b".repeat(40)),
            offset: 42,
            origin: Some("c".repeat(40)),
            loading: None,
            load_begun: Some(false),
        });
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state));
    }

    #[test]
    fn a_foreign_file_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, "hello").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("not a ferry state file"), "{err}");
    }
}
