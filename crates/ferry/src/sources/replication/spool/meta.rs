//! `spool.json`: which snapshot the spool holds and whether all of it arrived. Replaced
//! atomically (temporary file, fsync, rename), like the state file: a kill leaves the old
//! or the new description, never a torn one.

use super::SpoolError;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// Bumped when a field's meaning changes; a spool of another version is not reused.
pub const META_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolMeta {
    pub version: u32,
    /// The snapshot's replication ID and offset, as `+FULLRESYNC` gave them: the spooled
    /// stream continues that history from that offset.
    pub replid: String,
    pub offset: i64,
    /// The source it came from, `host:port` (never a password).
    pub source: String,
    /// The snapshot's size once every byte of it is on disk; `None` while it arrives (a
    /// spool killed then holds a partial snapshot that cannot be loaded).
    pub snapshot_bytes: Option<u64>,
}

pub fn load(path: &Path) -> Result<Option<SpoolMeta>, SpoolError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(SpoolError::io("cannot read", path, error)),
    };
    let meta: SpoolMeta = serde_json::from_str(&text).map_err(|error| SpoolError::Corrupt {
        path: path.display().to_string(),
        reason: error.to_string(),
    })?;
    Ok(Some(meta))
}

pub fn save(path: &Path, meta: &SpoolMeta) -> Result<(), SpoolError> {
    let temporary = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        let mut text = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
        text.push(b'\n');
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|error| SpoolError::io("cannot write", path, error))
}
