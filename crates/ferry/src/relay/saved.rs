//! The relay's state file (`--state PATH`): for each history, where a restarted ferry
//! can pick it up again: its replication ID, the replica's format, and a pair of offsets
//! at a command boundary at or before what its replica ACKed (the relay's and the
//! source's). A replica that reconnects after the restart with that ID and an offset at
//! or after the pair gets `+CONTINUE`: ferry asks the source to continue from the pair's
//! source offset and rebuilds the relay's stream from there, byte for byte the same.
//!
//! Replaced atomically (temporary file, fsync, rename), like `migrate`'s.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayState {
    pub version: u32,
    /// `relay` marks the file as a relay's (a migrate state file is refused).
    pub kind: String,
    pub source: String,
    pub histories: Vec<SavedHistory>,
    /// The scope the histories were relayed with, in its canonical form; empty (and
    /// absent) when everything was relayed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedHistory {
    pub replid: String,
    /// The RDB version number the stream is translated for (11, 80, ...).
    pub rdb_version: u16,
    pub source_replid: String,
    pub relay_offset: i64,
    pub source_offset: i64,
}

impl RelayState {
    pub fn new(source: String, histories: Vec<SavedHistory>) -> Self {
        Self {
            version: STATE_VERSION,
            kind: "relay".into(),
            source,
            histories,
            scope: String::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("cannot read the state file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state file {} is not a ferry relay state file ({reason}); remove it or use another --state", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("cannot write the state file {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the state; `Ok(None)` on a first run (no file).
pub fn load(path: &Path) -> Result<Option<RelayState>, SavedError> {
    let text = match crate::state::read_if_present(path) {
        Ok(Some(text)) => text,
        Ok(None) => return Ok(None),
        Err(source) => {
            return Err(SavedError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let malformed = |reason: String| SavedError::Malformed {
        path: path.to_owned(),
        reason,
    };
    let state: RelayState = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
    if state.version != STATE_VERSION || state.kind != "relay" {
        return Err(malformed(format!(
            "version {} kind {:?}",
            state.version, state.kind
        )));
    }
    Ok(Some(state))
}

/// Replaces the state file atomically.
pub fn save(path: &Path, state: &RelayState) -> Result<(), SavedError> {
    let write_error = |source| SavedError::Write {
        path: path.to_owned(),
        source,
    };
    let text = serde_json::to_vec_pretty(state).map_err(|e| write_error(e.into()))?;
    crate::state::write_atomically(path, &text).map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.state");
        assert_eq!(load(&path).unwrap(), None);
        let state = RelayState::new(
            "redis://h:1".into(),
            vec![SavedHistory {
                replid: "a".repeat(40),
                rdb_version: 11,
                source_replid: "b".repeat(40),
                relay_offset: 10,
                source_offset: 12,
            }],
        );
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state));
        std::fs::write(&path, "{\"version\":1,\"replid\":null}").unwrap();
        assert!(load(&path)
            .unwrap_err()
            .to_string()
            .contains("not a ferry relay state"));
    }
}
