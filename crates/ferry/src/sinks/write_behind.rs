//! A writer whose system calls run on a thread of their own: the encoder fills the next
//! block while the last one is copied into the page cache, which on a file of many small
//! keys is a good part of a conversion's time. At most [`IN_FLIGHT`] blocks of [`BLOCK`]
//! bytes exist at once, whatever is written, so memory stays bounded.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Bytes handed to the destination in one write.
const BLOCK: usize = 256 * 1024;
/// Full blocks waiting for or being written by the thread.
const IN_FLIGHT: usize = 3;

pub struct WriteBehind<W: Write + Send + 'static> {
    current: Vec<u8>,
    full: Option<SyncSender<Vec<u8>>>,
    /// Blocks the thread has written, back for reuse.
    empty: Receiver<Vec<u8>>,
    /// Blocks sent and not yet back.
    in_flight: usize,
    thread: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> WriteBehind<W> {
    pub fn new(mut inner: W) -> io::Result<Self> {
        let (full, blocks) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (done, empty) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ferry-write".into())
            .spawn(move || {
                for mut block in blocks {
                    // An error ends the thread; the producer learns it at its next send.
                    inner.write_all(&block)?;
                    block.clear();
                    // The producer may be gone already (it stopped on an error of its own).
                    let _ = done.send(block);
                }
                inner.flush()?;
                Ok(inner)
            })?;
        Ok(Self {
            current: Vec::with_capacity(BLOCK),
            full: Some(full),
            empty,
            in_flight: 0,
            thread: Some(thread),
        })
    }

    /// Writes what is buffered, waits for the thread and hands the destination back.
    pub fn finish(mut self) -> io::Result<W> {
        self.send_current()?;
        self.full = None;
        self.join()
    }

    fn send_current(&mut self) -> io::Result<()> {
        if self.current.is_empty() {
            return Ok(());
        }
        let next = match self.empty.try_recv() {
            Ok(block) => {
                self.in_flight -= 1;
                block
            }
            Err(_) => Vec::with_capacity(BLOCK),
        };
        let block = std::mem::replace(&mut self.current, next);
        let Some(full) = self.full.as_ref() else {
            return Err(stopped());
        };
        if full.send(block).is_err() {
            // The thread ended on an error: that error is the one to report.
            self.full = None;
            return Err(self.join().err().unwrap_or_else(stopped));
        }
        self.in_flight += 1;
        Ok(())
    }

    fn join(&mut self) -> io::Result<W> {
        let Some(thread) = self.thread.take() else {
            return Err(stopped());
        };
        thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the file writing thread panicked")))
    }
}

fn stopped() -> io::Error {
    io::Error::other("the file writing thread stopped after an earlier error")
}

impl<W: Write + Send + 'static> Write for WriteBehind<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.current.len());
        self.current.extend_from_slice(&buf[..n]);
        if self.current.len() == BLOCK {
            self.send_current()?;
        }
        Ok(n)
    }

    /// Returns once every byte written so far has been handed to the destination.
    fn flush(&mut self) -> io::Result<()> {
        self.send_current()?;
        while self.in_flight > 0 {
            if self.empty.recv().is_err() {
                self.full = None;
                return Err(self.join().err().unwrap_or_else(stopped));
            }
            self.in_flight -= 1;
        }
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for WriteBehind<W> {
    fn drop(&mut self) {
        // Dropped without `finish` (a failed run): let the thread end; its result is moot.
        self.full = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records what reaches it; fails every write once `fail_after` bytes went through.
    #[derive(Clone)]
    struct Recorder {
        bytes: Arc<Mutex<Vec<u8>>>,
        fail_after: usize,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut bytes = self.bytes.lock().unwrap();
            if bytes.len() + buf.len() > self.fail_after {
                return Err(io::Error::other("disk full"));
            }
            bytes.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn recorder(fail_after: usize) -> Recorder {
        Recorder {
            bytes: Arc::default(),
            fail_after,
        }
    }

    #[test]
    fn every_byte_arrives_in_order_across_many_blocks() {
        let sink = recorder(usize::MAX);
        let mut writer = WriteBehind::new(sink.clone()).unwrap();
        let mut expected = Vec::new();
        for i in 0..20_000u32 {
            // Small writes and a few much larger than a block.
            let piece: Vec<u8> = if i % 5000 == 0 {
                (0..BLOCK * 2 + 17).map(|j| (j % 251) as u8).collect()
            } else {
                i.to_le_bytes().repeat((i % 7) as usize)
            };
            writer.write_all(&piece).unwrap();
            expected.extend_from_slice(&piece);
        }
        writer.flush().unwrap();
        assert_eq!(sink.bytes.lock().unwrap().len(), expected.len());
        writer.finish().unwrap();
        assert!(*sink.bytes.lock().unwrap() == expected);
    }

    #[test]
    fn a_failed_write_is_reported_not_lost() {
        let mut writer = WriteBehind::new(recorder(BLOCK + 10)).unwrap();
        let block = vec![7u8; BLOCK];
        // The thread takes the first block; the second fails there, and that error comes
        // back to a later write or to finish, never an Ok for bytes that were not written.
        let mut error = None;
        for _ in 0..IN_FLIGHT + 3 {
            if let Err(e) = writer.write_all(&block) {
                error = Some(e);
                break;
            }
        }
        let error = match error {
            Some(e) => e,
            None => writer
                .finish()
                .err()
                .expect("finish reports the failed write"),
        };
        assert_eq!(error.to_string(), "disk full");
    }
}
