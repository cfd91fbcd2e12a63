//! A reader whose system calls run on a thread of their own: the next block is copied out
//! of the page cache while the decoder works on the last one. At most [`AHEAD`] blocks of
//! [`BLOCK`] bytes wait, whatever the file's size, so memory stays bounded.

use std::io::{self, ErrorKind, Read};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

/// Bytes asked of the source in one go.
const BLOCK: usize = 256 * 1024;
/// Blocks read and not yet taken.
const AHEAD: usize = 2;

/// A block and how many of its bytes were read.
type Filled = io::Result<(Vec<u8>, usize)>;

pub struct ReadAhead {
    current: Vec<u8>,
    /// `current[at..len]` is not taken yet.
    at: usize,
    len: usize,
    /// `None` once the source is exhausted or failed (its error was handed out).
    filled: Option<Receiver<Filled>>,
    /// Taken blocks, back to the thread for reuse.
    taken: Sender<Vec<u8>>,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    pub fn new<R: Read + Send + 'static>(mut inner: R) -> io::Result<Self> {
        let (fill, filled) = mpsc::sync_channel::<Filled>(AHEAD);
        let (taken, reuse) = mpsc::channel::<Vec<u8>>();
        let thread = std::thread::Builder::new()
            .name("ferry-read".into())
            .spawn(move || loop {
                let mut block = reuse.try_recv().unwrap_or_else(|_| vec![0; BLOCK]);
                let result = fill_block(&mut inner, &mut block).map(|n| (block, n));
                let last = !matches!(result, Ok((_, n)) if n > 0);
                // The reader may be gone (dropped after an error of its own): then stop.
                if fill.send(result).is_err() || last {
                    return;
                }
            })?;
        Ok(Self {
            current: Vec::new(),
            at: 0,
            len: 0,
            filled: Some(filled),
            taken,
            thread: Some(thread),
        })
    }

    /// Makes the next block current; false at the end of the source.
    fn next_block(&mut self) -> io::Result<bool> {
        let Some(filled) = self.filled.as_ref() else {
            return Ok(false);
        };
        match filled.recv() {
            Ok(Ok((block, n))) if n > 0 => {
                let done = std::mem::replace(&mut self.current, block);
                if done.capacity() != 0 {
                    // The thread may have ended; then the block is simply freed.
                    let _ = self.taken.send(done);
                }
                self.at = 0;
                self.len = n;
                Ok(true)
            }
            Ok(Ok(_)) | Err(_) => {
                self.filled = None;
                Ok(false)
            }
            Ok(Err(error)) => {
                self.filled = None;
                Err(error)
            }
        }
    }
}

/// Reads until `block` is full or the source ends; the bytes read.
fn fill_block(inner: &mut impl Read, block: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < block.len() {
        match inner.read(&mut block[n..]) {
            Ok(0) => break,
            Ok(got) => n += got,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // The bytes read so far go out first; a lasting error comes again next time.
            Err(_) if n > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.len && !self.next_block()? {
            return Ok(0);
        }
        let n = buf.len().min(self.len - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // The thread stops at its next send, which now fails.
        self.filled = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives `data` in reads of at most `step` bytes, then fails if `fail_at_end`.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
        fail_at_end: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() && self.fail_at_end {
                return Err(io::Error::other("disk read error"));
            }
            let n = buf.len().min(self.step).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 253) as u8).collect()
    }

    #[test]
    fn gives_every_byte_in_order_whatever_the_read_sizes() {
        for (len, step) in [
            (0, 1),
            (10, 3),
            (BLOCK * 3 + 5, 4096),
            (BLOCK * 2, BLOCK * 2),
        ] {
            let source = Trickle {
                data: data(len),
                at: 0,
                step,
                fail_at_end: false,
            };
            let mut reader = ReadAhead::new(source).unwrap();
            let mut out = Vec::new();
            let mut piece = vec![0; 1000];
            loop {
                let n = reader.read(&mut piece).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&piece[..n]);
            }
            assert!(out == data(len), "len {len} step {step}");
            assert_eq!(reader.read(&mut piece).unwrap(), 0, "stays at the end");
        }
    }

    #[test]
    fn a_read_error_comes_after_the_bytes_before_it() {
        let source = Trickle {
            data: data(BLOCK + 100),
            at: 0,
            step: 777,
            fail_at_end: true,
        };
        let mut reader = ReadAhead::new(source).unwrap();
        let mut out = Vec::new();
        let error = reader.read_to_end(&mut out).unwrap_err();
        assert_eq!(error.to_string(), "disk read error");
        assert!(out == data(BLOCK + 100));
    }
}
