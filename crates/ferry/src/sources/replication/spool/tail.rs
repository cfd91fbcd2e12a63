//! The spooled snapshot as the decoder's input, read while the receiver still writes it:
//! a read past what is on disk waits for more, and ends only at the snapshot's end.

use super::receiver::Shared;
use super::SpoolError;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How long a read at the end of what arrived sleeps before looking again. The decoder
/// runs on a blocking thread, so a short sleep is simpler than a wake-up, and costs only
/// when the load has caught up with the network.
const WAIT: Duration = Duration::from_millis(2);

pub struct TailReader {
    file: std::fs::File,
    read: u64,
    shared: Arc<Shared>,
}

impl TailReader {
    pub(super) fn open(path: &Path, shared: Arc<Shared>) -> Result<Self, SpoolError> {
        let file = std::fs::File::open(path).map_err(|e| SpoolError::io("cannot open", path, e))?;
        Ok(Self {
            file,
            read: 0,
            shared,
        })
    }
}

impl Read for TailReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let written = self.shared.snapshot_written.load(Ordering::Acquire);
            if self.read < written {
                let want = buf.len().min((written - self.read) as usize);
                let got = self.file.read(&mut buf[..want])?;
                if got > 0 {
                    self.read += got as u64;
                    return Ok(got);
                }
            } else if self.shared.snapshot_done.load(Ordering::Acquire) {
                return Ok(0);
            } else if self.shared.ended.load(Ordering::Acquire) {
                return Err(std::io::Error::other(
                    "the source connection ended before the whole snapshot arrived",
                ));
            }
            std::thread::sleep(WAIT);
        }
    }
}
