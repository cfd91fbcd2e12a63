//! The spool of a full sync (`--spool-dir`): the snapshot and the command stream kept on
//! local disk as the source sends them, and applied from there at the target's pace.
//!
//! Why: while a replica loads a snapshot, the source keeps every new write for it in the
//! replica's output buffer, and past `client-output-buffer-limit replica` drops it; the
//! next attempt starts over, and a large dataset under load may never finish. Read at
//! network speed into files, the transfer is all the buffer has to cover. And since the
//! files outlive the process, a crash of ferry or a restart of the target resumes the load
//! from them (at the last key the target acknowledged, which ferry's loading marker on the
//! target records) rather than from a new snapshot; a lost source resumes by partial
//! resync from the offset spooled.
//!
//! ```text
//! source ─▶ receiver ─┬─▶ snapshot.rdb ─▶ TailReader ─▶ decoder ─▶ … ─▶ target
//!                     ├─▶ stream.spool ─▶ SpoolFeed ─▶ applier ─▶ target
//!                     └─▶ (once the feed read the file to its end) channel ─┘
//! ```
//!
//! Once the feed has read every spooled command it takes later ones from the connection
//! directly, and the files are deleted once the target acknowledged the last of them.
//! Files: `meta` (`spool.json`), `records` (a command and its offset), `receiver` (the
//! connection's bytes into the files), `tail` (the snapshot read while it grows), `feed`
//! (commands from the file, then live), `disk` (free space).

mod disk;
mod feed;
mod meta;
mod receiver;
mod records;
mod tail;

pub use disk::free_bytes;
pub use feed::SpoolFeed;
pub use meta::SpoolMeta;
pub use receiver::{
    check_room, ReceiveError, Receiving, Resume, Resumed, SnapshotPlan, SpoolLimit,
};
pub use tail::TailReader;

use std::path::{Path, PathBuf};

const META_FILE: &str = "spool.json";
const SNAPSHOT_FILE: &str = "snapshot.rdb";
const STREAM_FILE: &str = "stream.spool";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool: {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("spool: {path} is damaged ({reason}); delete the spool folder to start over")]
    Corrupt { path: String, reason: String },
    #[error(
        "spool: {dir} can take {room} ({why}), and the snapshot needs {needed} ({basis}); \
         free space, point --spool-dir elsewhere, or raise --spool-max-mb"
    )]
    NoRoom {
        dir: String,
        room: String,
        /// What bounds the room: the free space or the limit.
        why: String,
        needed: String,
        basis: String,
    },
}

impl SpoolError {
    fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        SpoolError::Io {
            action,
            path: path.display().to_string(),
            source,
        }
    }
}

/// A spool folder and what it holds.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    meta: SpoolMeta,
    /// [`Spool::stream_end`], once found: a resumed session asks before PSYNC and the
    /// receiver again, and the stream file may be gigabytes long.
    end: Option<(i64, u64)>,
}

impl Spool {
    /// The spool in `dir`, when one was begun there.
    pub fn open(dir: &Path) -> Result<Option<Spool>, SpoolError> {
        let Some(meta) = meta::load(&dir.join(META_FILE))? else {
            return Ok(None);
        };
        if meta.version != meta::META_VERSION {
            return Err(SpoolError::Corrupt {
                path: dir.join(META_FILE).display().to_string(),
                reason: format!("version {} is not this ferry's", meta.version),
            });
        }
        Ok(Some(Spool {
            dir: dir.to_owned(),
            meta,
            end: None,
        }))
    }

    /// Begins a spool for the snapshot `+FULLRESYNC replid offset`, replacing whatever
    /// `dir` held.
    pub fn create(
        dir: &Path,
        replid: &str,
        offset: i64,
        source: &str,
    ) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir).map_err(|e| SpoolError::io("cannot create", dir, e))?;
        Self::remove_files(dir)?;
        let meta = SpoolMeta {
            version: meta::META_VERSION,
            replid: replid.to_owned(),
            offset,
            source: source.to_owned(),
            snapshot_bytes: None,
        };
        for name in [SNAPSHOT_FILE, STREAM_FILE] {
            let path = dir.join(name);
            std::fs::File::create(&path).map_err(|e| SpoolError::io("cannot create", &path, e))?;
        }
        meta::save(&dir.join(META_FILE), &meta)?;
        Ok(Spool {
            dir: dir.to_owned(),
            end: Some((meta.offset, 0)),
            meta,
        })
    }

    /// Deletes the spool's files (the description first: a spool without it is no
    /// spool, whatever else a kill leaves).
    pub fn remove_files(dir: &Path) -> Result<(), SpoolError> {
        for name in [META_FILE, SNAPSHOT_FILE, STREAM_FILE] {
            let path = dir.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(SpoolError::io("cannot delete", &path, error)),
            }
        }
        Ok(())
    }

    pub fn meta(&self) -> &SpoolMeta {
        &self.meta
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether every byte of the snapshot arrived.
    pub fn snapshot_complete(&self) -> bool {
        self.meta.snapshot_bytes.is_some()
    }

    /// The offset after the last complete command spooled, and the stream file's length
    /// up to it. A record cut short by a kill is cut off, so appending continues cleanly.
    pub fn stream_end(&mut self) -> Result<(i64, u64), SpoolError> {
        if let Some(end) = self.end {
            return Ok(end);
        }
        let path = self.stream_path();
        let mut reader = records::RecordReader::open(&path)?;
        let mut end = self.meta.offset;
        while let Some(command) = reader.next_record()? {
            end = command.offset_after;
        }
        let complete = reader.consumed();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| SpoolError::io("cannot open", &path, e))?;
        file.set_len(complete)
            .map_err(|e| SpoolError::io("cannot truncate", &path, e))?;
        self.end = Some((end, complete));
        Ok((end, complete))
    }

    /// Bytes the spool's files take.
    pub fn disk_bytes(&self) -> u64 {
        [SNAPSHOT_FILE, STREAM_FILE]
            .iter()
            .filter_map(|name| std::fs::metadata(self.dir.join(name)).ok())
            .map(|meta| meta.len())
            .sum()
    }

    fn snapshot_path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }

    fn stream_path(&self) -> PathBuf {
        self.dir.join(STREAM_FILE)
    }

    fn meta_path(&self) -> PathBuf {
        self.dir.join(META_FILE)
    }

    fn snapshot_received(&mut self, bytes: u64) -> Result<(), SpoolError> {
        self.meta.snapshot_bytes = Some(bytes);
        meta::save(&self.meta_path(), &self.meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_reads_back_what_created_it_and_removal_leaves_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool =
            Spool::create(dir.path(), "a".repeat(40).as_str(), 1234, "127.0.0.1:6379").unwrap();
        assert!(!spool.snapshot_complete());
        assert_eq!(spool.stream_end().unwrap(), (1234, 0));
        let mut again = Spool::open(dir.path()).unwrap().unwrap();
        assert_eq!(again.meta(), spool.meta());
        assert_eq!(again.stream_end().unwrap(), (1234, 0), "read from the file");
        Spool::remove_files(dir.path()).unwrap();
        assert!(Spool::open(dir.path()).unwrap().is_none());
    }
}
