//! The checkpoint in the state file (`--state`): a candidate is taken about every second
//! (the scan's position, the source's clock), and saved once every key read before it
//! and every change notified before it is acknowledged by the target. So the saved
//! position trails the writer: a key read but not yet applied is read again after a
//! restart.

use super::{Copier, SessionEnd};
use crate::commands::migrate::scan::apply::Record;
use crate::commands::migrate::scan::conn::SourceConn;
use crate::commands::migrate::scan::dirty::Watermark;
use crate::commands::migrate::scan::facts::{self, SourceFacts};
use crate::commands::migrate::scan::ScanState;
use crate::error::Error;
use crate::server::client::ClientError;
use crate::state::{self, DbScan, ScanCheckpoint};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How often a checkpoint is taken.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// How far a scan got: each database walked or being walked, with the cursor its SCAN
/// goes on from (`None` once done).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ScanPosition {
    dbs: BTreeMap<u64, Option<Bytes>>,
}

impl ScanPosition {
    pub(super) fn from_saved(saved: &[DbScan]) -> Self {
        let dbs = saved
            .iter()
            .map(|db| {
                let cursor = (!db.done).then(|| Bytes::from(db.cursor.clone()));
                (db.db, cursor)
            })
            .collect();
        Self { dbs }
    }

    fn to_saved(&self) -> Vec<DbScan> {
        self.dbs
            .iter()
            .map(|(db, cursor)| DbScan {
                db: *db,
                done: cursor.is_none(),
                cursor: cursor
                    .as_ref()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Every key of `db` before `cursor` (all of them: `None`) is handed to the writer.
    pub(super) fn passed(&mut self, db: u64, cursor: Option<&Bytes>) {
        self.dbs.insert(db, cursor.cloned());
    }

    pub(super) fn done(&self) -> BTreeSet<u64> {
        self.dbs
            .iter()
            .filter(|(_, cursor)| cursor.is_none())
            .map(|(db, _)| *db)
            .collect()
    }

    /// The database being walked and its cursor.
    pub(super) fn at(&self) -> Option<(u64, Bytes)> {
        self.dbs
            .iter()
            .find_map(|(db, cursor)| Some((*db, cursor.clone()?)))
    }

    /// Each database with its cursor (`None`: the whole database was passed).
    pub(super) fn parts(&self) -> impl Iterator<Item = (u64, Option<&Bytes>)> {
        self.dbs.iter().map(|(db, cursor)| (*db, cursor.as_ref()))
    }

    /// `db 0 done, db 3 at cursor 1234`
    pub(super) fn describe(&self) -> String {
        if self.dbs.is_empty() {
            return "nothing scanned yet".into();
        }
        let parts: Vec<String> = self
            .dbs
            .iter()
            .map(|(db, cursor)| match cursor {
                None => format!("db {db} done"),
                Some(cursor) => format!("db {db} at cursor {}", String::from_utf8_lossy(cursor)),
            })
            .collect();
        parts.join(", ")
    }
}

/// A checkpoint waiting for the target.
#[derive(Debug)]
struct Candidate {
    position: ScanPosition,
    facts: SourceFacts,
    unnotified: Option<u64>,
    /// The changed keys held when it was taken: they must be read first.
    dirty: Watermark,
}

/// The state file and the checkpoints on their way to it.
pub(super) struct Checkpoints {
    state: ScanState,
    /// Taken, waiting for the changed keys it holds to be read.
    pending: Option<Candidate>,
    /// Everything it covers is handed to the writer; the task says when the target
    /// acknowledged it.
    armed: Option<(Candidate, JoinHandle<bool>)>,
    last: Option<Instant>,
    /// The source refused what a checkpoint reads (said once).
    refused: bool,
}

impl Checkpoints {
    pub(super) fn new(state: ScanState) -> Self {
        Self {
            state,
            pending: None,
            armed: None,
            last: None,
            refused: false,
        }
    }

    /// The state file as it was found: where a resumed run starts.
    pub(super) fn saved(&self) -> Option<&ScanCheckpoint> {
        self.state.saved.as_ref()
    }

    /// An earlier run wrote the target and left no checkpoint: what it wrote is unknown.
    pub(super) fn owned_without_checkpoint(&self) -> bool {
        self.state.owned && self.state.saved.is_none()
    }

    pub(super) fn path(&self) -> &std::path::Path {
        &self.state.path
    }

    /// Writes the file as it stands (the saved checkpoint, if any, still holds).
    pub(super) fn save_initial(&mut self) -> Result<(), Error> {
        self.state.file.scan = self.state.saved.clone();
        state::save(&self.state.path, &self.state.file).map_err(Error::from)
    }

    fn commit(&mut self, candidate: Candidate, source: String) -> Result<(), Error> {
        self.state.file.scan = Some(ScanCheckpoint {
            source,
            run_id: candidate.facts.run_id,
            source_time_ms: candidate.facts.time_ms,
            unnotified_calls: candidate.unnotified,
            forks: candidate.facts.forks,
            dbs: candidate.position.to_saved(),
        });
        state::save(&self.state.path, &self.state.file).map_err(Error::from)
    }
}

impl Copier<'_> {
    /// A new scan from the start: a candidate taken on the old position is void (one
    /// already handed to the writer still holds).
    pub(super) fn restart_checkpoints(&mut self) {
        if let Some(checkpoints) = self.checkpoints.as_mut() {
            checkpoints.pending = None;
        }
    }

    /// Moves the checkpoint on: saves an acknowledged one, hands a ready one to the
    /// writer, or takes a new one when due. Call it between reads, never inside one.
    pub(super) async fn checkpoint(
        &mut self,
        conn: &mut SourceConn,
        records: &mpsc::Sender<Record>,
    ) -> Result<(), SessionEnd> {
        let source = self.job.source_url.to_string();
        let Some(checkpoints) = self.checkpoints.as_mut() else {
            return Ok(());
        };
        if checkpoints
            .armed
            .as_ref()
            .is_some_and(|(_, task)| task.is_finished())
        {
            if let Some((candidate, task)) = checkpoints.armed.take() {
                if task.await.unwrap_or(false) {
                    checkpoints.commit(candidate, source)?;
                }
            }
        }
        if checkpoints.armed.is_none() {
            if let Some(candidate) = checkpoints.pending.take() {
                match self.dirty.drained_past(candidate.dirty) {
                    // Keys dropped by an overflow were not read: the rescan takes over.
                    None => {}
                    Some(false) => checkpoints.pending = Some(candidate),
                    Some(true) => {
                        let (done, wait) = oneshot::channel();
                        records
                            .send(Record::Flush(done))
                            .await
                            .map_err(|_| SessionEnd::ApplyStopped)?;
                        let pipe = self.pipe.clone();
                        let task = tokio::spawn(async move {
                            wait.await.is_ok() && pipe.barrier().await.is_ok()
                        });
                        checkpoints.armed = Some((candidate, task));
                    }
                }
            }
        }
        let due = checkpoints
            .last
            .is_none_or(|last| last.elapsed() >= CHECKPOINT_EVERY);
        if checkpoints.pending.is_some() || checkpoints.refused || !due {
            return Ok(());
        }
        checkpoints.last = Some(Instant::now());
        let facts = match facts::read(conn).await {
            Ok(facts) => facts,
            Err(error @ ClientError::Command { .. }) => {
                checkpoints.refused = true;
                self.job.events.line(format!(
                    "no checkpoint is written: the source refused what it needs ({error}); a restart scans everything again"
                ));
                return Ok(());
            }
            Err(error) => return Err(SessionEnd::Lost(error)),
        };
        // Read after the clock: a change notified before it is held now.
        let dirty = self.dirty.watermark();
        checkpoints.pending = Some(Candidate {
            position: self.position.clone(),
            facts,
            unnotified: self.unnotified,
            dirty,
        });
        Ok(())
    }

    /// After everything read is acknowledged (a copy done with `--no-follow`): the
    /// checkpoint of this moment.
    pub(super) async fn checkpoint_settled(
        &mut self,
        conn: &mut SourceConn,
    ) -> Result<(), SessionEnd> {
        let source = self.job.source_url.to_string();
        let Some(checkpoints) = self.checkpoints.as_mut() else {
            return Ok(());
        };
        let facts = facts::read(conn).await.map_err(SessionEnd::Lost)?;
        let candidate = Candidate {
            position: self.position.clone(),
            facts,
            unnotified: self.unnotified,
            dirty: self.dirty.watermark(),
        };
        checkpoints.commit(candidate, source)?;
        Ok(())
    }

    /// At a clean stop, once the writer drained: saves the checkpoint handed to it.
    pub(super) async fn last_checkpoint(&mut self) -> Result<(), Error> {
        let source = self.job.source_url.to_string();
        let Some(checkpoints) = self.checkpoints.as_mut() else {
            return Ok(());
        };
        if let Some((candidate, task)) = checkpoints.armed.take() {
            if task.await.unwrap_or(false) {
                checkpoints.commit(candidate, source)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_goes_to_the_file_and_back() {
        let mut position = ScanPosition::default();
        position.passed(0, None);
        position.passed(3, Some(&Bytes::from_static(b"1234")));
        let saved = position.to_saved();
        assert_eq!(
            saved,
            vec![
                DbScan {
                    db: 0,
                    done: true,
                    cursor: String::new()
                },
                DbScan {
                    db: 3,
                    done: false,
                    cursor: "1234".into()
                },
            ]
        );
        let back = ScanPosition::from_saved(&saved);
        assert_eq!(back, position);
        assert_eq!(back.done(), BTreeSet::from([0]));
        assert_eq!(back.at(), Some((3, Bytes::from_static(b"1234"))));
        assert_eq!(back.describe(), "db 0 done, db 3 at cursor 1234");
        assert_eq!(ScanPosition::default().describe(), "nothing scanned yet");
    }
}
