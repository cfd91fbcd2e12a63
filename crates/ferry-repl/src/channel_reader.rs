//! A bridge from the async snapshot stream to a blocking `std::io::Read`, so the codec's
//! synchronous decoder can run in `spawn_blocking`. The channel is bounded: when the decoder
//! falls behind, the network side waits (backpressure) instead of buffering the snapshot.

use std::io::{self, BufRead, Read};

use bytes::{Buf, Bytes};
use tokio::sync::mpsc;

use crate::error::ReplError;

enum Message {
    Chunk(Bytes),
    End,
    /// The transfer's error, as text: the async side keeps the error itself.
    Failed(String),
}

/// Default capacity: 16 chunks of up to 64 KiB, 1 MiB in flight at most.
pub const DEFAULT_CHANNEL_CHUNKS: usize = 16;

/// A bounded channel of snapshot chunks: the async sender and the blocking reader.
pub fn snapshot_channel(capacity_chunks: usize) -> (SnapshotSender, ChannelReader) {
    let (tx, rx) = mpsc::channel(capacity_chunks.max(1));
    (
        SnapshotSender { tx },
        ChannelReader {
            rx,
            current: Bytes::new(),
            state: ReaderState::Open,
        },
    )
}

/// The async end. Dropping it without [`SnapshotSender::finish`] makes the reader fail
/// with `UnexpectedEof`, so a transfer cut short never looks like a complete snapshot.
#[derive(Debug)]
pub struct SnapshotSender {
    tx: mpsc::Sender<Message>,
}

/// The reader was dropped: nobody is consuming the snapshot any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderGone;

impl SnapshotSender {
    /// Waits for room, then queues `chunk`.
    pub async fn send(&self, chunk: Bytes) -> Result<(), ReaderGone> {
        self.tx
            .send(Message::Chunk(chunk))
            .await
            .map_err(|_| ReaderGone)
    }

    /// Marks the snapshot complete: the reader returns end of file after the last chunk.
    pub async fn finish(self) -> Result<(), ReaderGone> {
        self.tx.send(Message::End).await.map_err(|_| ReaderGone)
    }

    /// Passes the transfer's failure to the reader, which returns it as an I/O error.
    pub async fn fail(self, error: &ReplError) {
        let _ = self.tx.send(Message::Failed(error.to_string())).await;
    }
}

enum ReaderState {
    Open,
    Ended,
    Failed,
}

/// The blocking end: `std::io::Read` (and `BufRead`) over the chunks.
///
/// Its reads block the thread: use it from `spawn_blocking` or a plain thread, never from
/// inside an async task (tokio refuses to block a runtime thread and panics).
pub struct ChannelReader {
    rx: mpsc::Receiver<Message>,
    current: Bytes,
    state: ReaderState,
}

impl ChannelReader {
    /// Makes `current` non-empty unless the stream has ended.
    fn refill(&mut self) -> io::Result<()> {
        while self.current.is_empty() {
            match self.state {
                ReaderState::Ended => return Ok(()),
                ReaderState::Failed => {
                    return Err(io::Error::other("the snapshot transfer failed"));
                }
                ReaderState::Open => {}
            }
            match self.rx.blocking_recv() {
                Some(Message::Chunk(chunk)) => self.current = chunk,
                Some(Message::End) => self.state = ReaderState::Ended,
                Some(Message::Failed(message)) => {
                    self.state = ReaderState::Failed;
                    return Err(io::Error::other(message));
                }
                None => {
                    self.state = ReaderState::Failed;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the snapshot transfer stopped before the end of the snapshot",
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.refill()?;
        let len = out.len().min(self.current.len());
        self.current.copy_to_slice(&mut out[..len]);
        Ok(len)
    }
}

impl BufRead for ChannelReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.refill()?;
        Ok(&self.current)
    }

    fn consume(&mut self, amount: usize) {
        self.current.advance(amount.min(self.current.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    }

    #[test]
    fn reads_all_chunks_then_end_of_file() {
        let (tx, mut reader) = snapshot_channel(2);
        let rt = runtime();
        let producer = std::thread::spawn(move || {
            rt.block_on(async {
                for piece in [&b"REDIS"[..], b"0011", b"", b"rest"] {
                    tx.send(Bytes::copy_from_slice(piece)).await.unwrap();
                }
                tx.finish().await.unwrap();
            })
        });
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        producer.join().unwrap();
        assert_eq!(all, b"REDIS0011rest");
        assert_eq!(reader.read(&mut [0; 4]).unwrap(), 0);
    }

    #[test]
    fn a_transfer_cut_short_is_an_error_not_end_of_file() {
        let (tx, mut reader) = snapshot_channel(2);
        runtime().block_on(async {
            tx.send(Bytes::from_static(b"REDIS")).await.unwrap();
        });
        drop(tx);
        let mut all = Vec::new();
        let error = reader.read_to_end(&mut all).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(all, b"REDIS");
    }

    #[test]
    fn a_failure_reaches_the_reader() {
        let (tx, mut reader) = snapshot_channel(2);
        runtime().block_on(tx.fail(&ReplError::Closed("receiving the snapshot")));
        let error = reader.read(&mut [0; 8]).unwrap_err();
        assert!(
            error.to_string().contains("closed the connection"),
            "{error}"
        );
        assert!(reader.read(&mut [0; 8]).is_err());
    }

    #[test]
    fn a_dropped_reader_is_reported_to_the_sender() {
        let (tx, reader) = snapshot_channel(1);
        drop(reader);
        let sent = runtime().block_on(tx.send(Bytes::from_static(b"x")));
        assert_eq!(sent, Err(ReaderGone));
    }
}
