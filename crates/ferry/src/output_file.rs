//! An output file that appears whole or not at all: written as `NAME.tmp` beside its final
//! place and renamed on success, so a failed run leaves no half file behind.

use crate::error::Error;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// Owns the temporary file's name until [`OutputFile::commit`]; removes it if dropped before.
#[derive(Debug)]
pub struct OutputFile {
    path: PathBuf,
    tmp_path: PathBuf,
    committed: bool,
}

impl OutputFile {
    /// Refuses an existing `path` unless `force`. Returns the guard and the file to write.
    pub fn create(path: &Path, force: bool) -> Result<(Self, File), Error> {
        check_writable(path, force)?;
        let tmp_path = tmp_path_for(path);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp_path)
            .map_err(|source| Error::Write {
                path: tmp_path.clone(),
                source,
            })?;
        Ok((
            Self {
                path: path.to_owned(),
                tmp_path,
                committed: false,
            },
            file,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the written data durable and moves it to its final name.
    pub fn commit(mut self, file: File) -> Result<(), Error> {
        let write_error = |source| Error::Write {
            path: self.path.clone(),
            source,
        };
        file.sync_all().map_err(write_error)?;
        drop(file);
        std::fs::rename(&self.tmp_path, &self.path).map_err(write_error)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the run already failed with a better error than this one.
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

/// Fails with [`Error::OutputExists`] if `path` exists and `force` is not set; used before
/// any work starts so that a refused run costs nothing.
pub fn check_writable(path: &Path, force: bool) -> Result<(), Error> {
    if !force && std::fs::symlink_metadata(path).is_ok() {
        return Err(Error::OutputExists {
            path: path.to_owned(),
        });
    }
    Ok(())
}

fn tmp_path_for(path: &Path) -> PathBuf {
    let mut name: OsString = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.rdb");
        let (guard, mut file) = OutputFile::create(&path, false).unwrap();
        file.write_all(b"data").unwrap();
        assert!(!path.exists());
        guard.commit(file).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        assert!(!dir.path().join("out.rdb.tmp").exists());
    }

    #[test]
    fn dropping_without_commit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.rdb");
        let (guard, mut file) = OutputFile::create(&path, false).unwrap();
        file.write_all(b"half").unwrap();
        drop((guard, file));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn existing_file_needs_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.rdb");
        std::fs::write(&path, b"old").unwrap();
        assert!(matches!(
            OutputFile::create(&path, false),
            Err(Error::OutputExists { .. })
        ));
        let (guard, mut file) = OutputFile::create(&path, true).unwrap();
        file.write_all(b"new").unwrap();
        guard.commit(file).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }
}

/// Asks the kernel to start writing out data this often, so that the final `fsync` of
/// [`OutputFile::commit`] waits for the last stretch only, not the whole file.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// A file being written that starts the disk writes of what it has been given as it goes
/// (Linux `sync_file_range`, which does not wait), while the program goes on producing.
#[derive(Debug)]
pub struct WritebackFile {
    file: File,
    written: u64,
    /// Writeback was started for everything before this offset.
    started: u64,
}

impl WritebackFile {
    pub fn new(file: File) -> Self {
        Self {
            file,
            written: 0,
            started: 0,
        }
    }

    pub fn into_file(self) -> File {
        self.file
    }

    #[cfg(target_os = "linux")]
    fn start_writeback(&mut self) {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (
            i64::try_from(self.started),
            i64::try_from(self.written - self.started),
        ) else {
            return;
        };
        // SAFETY: a plain system call on a descriptor this value owns; no memory is shared.
        // Only a hint: a failure leaves the work to the final fsync, which reports errors.
        unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                offset,
                len,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        self.started = self.written;
    }

    #[cfg(not(target_os = "linux"))]
    fn start_writeback(&mut self) {
        self.started = self.written;
    }
}

impl std::io::Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= WRITEBACK_EVERY {
            self.start_writeback();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}
