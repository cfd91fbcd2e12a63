//! `state_dir/fleet.json`: each finished pair's row (done or failed) and each pair cut
//! over, rewritten whole after every such change. A rerun of the same plan skips the pairs
//! it lists as done with the same source and target, only verifies again those cut over
//! already (their clients are on the target: no second migration, no second switch), and
//! starts the others again from their migrate state files. It holds addresses and counts,
//! never a password.

use super::board::{Phase, Row};
use crate::error::Error;
use crate::output_file::OutputFile;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{}: cannot read it", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a fleet record (delete it to start the fleet over)", path.display())]
    Malformed {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RecordFile {
    pairs: Vec<Row>,
}

/// The record's path in `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("fleet.json")
}

/// The pairs an earlier run finished (none when there is no record yet).
pub fn load(path: &Path) -> Result<Vec<Row>, RecordError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RecordError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let file: RecordFile =
        serde_json::from_slice(&text).map_err(|source| RecordError::Malformed {
            path: path.to_owned(),
            source,
        })?;
    Ok(file.pairs)
}

/// The earlier run's row for `row`'s pair when it finished that same pair: done, and
/// between the same two servers.
pub fn done_before<'a>(earlier: &'a [Row], row: &Row) -> Option<&'a Row> {
    earlier.iter().find(|old| {
        old.name == row.name
            && old.phase == Phase::Done
            && old.source == row.source
            && old.target == row.target
    })
}

/// The earlier run's row for `row`'s pair when that run cut it over (between the same
/// two servers) without finishing it.
pub fn switched_before<'a>(earlier: &'a [Row], row: &Row) -> Option<&'a Row> {
    earlier.iter().find(|old| {
        old.name == row.name
            && old.switched
            && old.phase != Phase::Done
            && old.source == row.source
            && old.target == row.target
    })
}

/// Writes the record from the pairs' threads and the scheduler, one at a time.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    writing: std::sync::Mutex<()>,
}

impl Recorder {
    pub fn new(path: PathBuf) -> Recorder {
        Recorder {
            path,
            writing: std::sync::Mutex::new(()),
        }
    }

    /// Writes what `rows` hold now.
    pub fn save(&self, rows: &[Row]) -> Result<(), Error> {
        let _one_writer = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        save(&self.path, rows)
    }
}

/// Writes the finished and the cut-over rows of `rows`, replacing the file whole.
pub fn save(path: &Path, rows: &[Row]) -> Result<(), Error> {
    let file = RecordFile {
        pairs: rows
            .iter()
            .filter(|row| row.phase.is_finished() || row.switched)
            .cloned()
            .collect(),
    };
    let text = serde_json::to_string_pretty(&file).unwrap_or_default();
    let (guard, mut out) = OutputFile::create(path, true)?;
    out.write_all(text.as_bytes())
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })?;
    guard.commit(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fleet::board::Verified;

    #[test]
    fn a_saved_done_pair_is_found_again_and_a_changed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        assert!(load(&path).unwrap().is_empty());
        let mut done = Row::new("a", 1, "h:1".into(), "h:2".into());
        done.phase = Phase::Done;
        done.verify = Some(Verified {
            keys_compared: 5,
            differing: 0,
        });
        let mut failed = Row::new("b", 1, "h:3".into(), "h:4".into());
        failed.phase = Phase::Failed;
        let waiting = Row::new("c", 2, "h:5".into(), "h:6".into());
        let mut switched = Row::new("d", 2, "h:7".into(), "h:8".into());
        switched.phase = Phase::Verifying;
        switched.switched = true;
        let recorder = Recorder::new(path.clone());
        let rows = [
            done.clone(),
            failed.clone(),
            waiting.clone(),
            switched.clone(),
        ];
        recorder.save(&rows).unwrap();
        let earlier = load(&path).unwrap();
        assert_eq!(earlier.len(), 3);
        assert!(done_before(&earlier, &done).is_some());
        assert!(done_before(&earlier, &failed).is_none());
        assert!(done_before(&earlier, &waiting).is_none());
        assert!(done_before(&earlier, &switched).is_none());
        assert!(switched_before(&earlier, &switched).is_some());
        assert!(switched_before(&earlier, &failed).is_none());
        let moved = Row::new("a", 1, "h:1".into(), "h:9".into());
        assert!(done_before(&earlier, &moved).is_none());

        std::fs::write(&path, "{").unwrap();
        assert!(load(&path)
            .unwrap_err()
            .to_string()
            .contains("not a fleet record"));
    }
}
