//! The link to the primary (TCP, or TLS over it): a receive buffer with byte accounting, frame reads and
//! command writes, each bounded by a timeout.

use std::time::Duration;
use tokio::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::ReplError;
use crate::resp::{Frame, FrameDecoder, Limits, Mode};
use crate::stream::{BoxedStream, StreamReader, StreamWriter};

/// How much one socket read asks for; also the largest snapshot chunk handed out.
pub(crate) const READ_SIZE: usize = 64 * 1024;

pub(crate) struct Link {
    reader: StreamReader,
    /// Taken by the ACK task once the command stream starts.
    writer: Option<StreamWriter>,
    buf: BytesMut,
    decoder: FrameDecoder,
    /// Bytes taken off the front of `buf` since the connection opened: the stream position
    /// of `buf[0]`, used to say where a protocol error happened.
    consumed: u64,
    read_timeout: Duration,
    /// When the current wait for bytes began. A caller may race a read against a ticker
    /// (the command stream does, every 100 ms) and drop it: the wait goes on from here,
    /// so a silent primary still times out. Cleared when bytes come.
    waiting_since: Option<Instant>,
}

impl Link {
    pub(crate) fn new(stream: BoxedStream, read_timeout: Duration, limits: Limits) -> Self {
        let (reader, writer) = tokio::io::split(stream);
        Link {
            reader,
            writer: Some(writer),
            buf: BytesMut::with_capacity(READ_SIZE),
            decoder: FrameDecoder::new(Mode::Replies, limits),
            consumed: 0,
            read_timeout,
            waiting_since: None,
        }
    }

    pub(crate) fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// Stream position of the next unconsumed byte.
    pub(crate) fn position(&self) -> u64 {
        self.consumed
    }

    /// Bytes received but not consumed yet.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Takes `len` buffered bytes (at most what is buffered) off the front.
    pub(crate) fn take(&mut self, len: usize) -> Bytes {
        let len = len.min(self.buf.len());
        self.consumed += len as u64;
        self.buf.split_to(len).freeze()
    }

    /// Reads more bytes from the socket into the buffer.
    pub(crate) async fn fill(&mut self, during: &'static str) -> Result<(), ReplError> {
        self.buf.reserve(READ_SIZE);
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
        // Bytes that came meanwhile are taken even past the deadline: the read is polled
        // before the timer.
        let read = tokio::time::timeout_at(
            since + self.read_timeout,
            self.reader.read_buf(&mut self.buf),
        )
        .await
        .map_err(|_| ReplError::Timeout {
            during,
            after: self.read_timeout,
        })?;
        self.waiting_since = None;
        match read {
            Ok(0) => Err(ReplError::Closed(during)),
            Ok(_) => Ok(()),
            Err(cause) => Err(io_error(cause, during)),
        }
    }

    /// Reads the next complete frame and its length on the wire.
    pub(crate) async fn read_frame(
        &mut self,
        during: &'static str,
    ) -> Result<(Frame, usize), ReplError> {
        self.read_frame_starting(during, |_| true).await
    }

    /// [`Self::read_frame`] where only a frame whose first byte passes `may_start` can
    /// come: anything else is refused as soon as its first byte arrives, not when (or if)
    /// its line ends.
    pub(crate) async fn read_frame_starting(
        &mut self,
        during: &'static str,
        may_start: fn(u8) -> bool,
    ) -> Result<(Frame, usize), ReplError> {
        loop {
            if let Some(&first) = self.buf.first() {
                if !may_start(first) {
                    return Err(ReplError::protocol(
                        format!(
                            "unexpected byte 0x{first:02x} (inline text or garbage, not a \
                             frame) while {during}"
                        ),
                        self.consumed,
                    ));
                }
            }
            match self.decoder.decode(&mut self.buf) {
                Ok(Some((frame, len))) => {
                    self.consumed += len as u64;
                    return Ok((frame, len));
                }
                Ok(None) => self.fill(during).await?,
                Err(e) => {
                    return Err(ReplError::protocol(
                        format!("{} while {during}", e.what),
                        self.consumed + e.at as u64,
                    ))
                }
            }
        }
    }

    /// Reads frames until one that is not a keep-alive newline.
    pub(crate) async fn read_reply(&mut self, during: &'static str) -> Result<Frame, ReplError> {
        loop {
            let (frame, _) = self.read_frame(during).await?;
            if !frame.is_keepalive() {
                return Ok(frame);
            }
        }
    }

    /// Reads one line ending in `\n` (a trailing `\r` is dropped), at most `max_len` bytes.
    pub(crate) async fn read_line(
        &mut self,
        max_len: usize,
        during: &'static str,
    ) -> Result<Bytes, ReplError> {
        loop {
            if let Some(newline) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line = self.take(newline + 1);
                line.truncate(newline);
                if line.last() == Some(&b'\r') {
                    line.truncate(newline - 1);
                }
                return Ok(line);
            }
            if self.buf.len() > max_len {
                return Err(ReplError::protocol(
                    format!("line longer than {max_len} bytes while {during}"),
                    self.consumed,
                ));
            }
            self.fill(during).await?;
        }
    }

    pub(crate) async fn send(
        &mut self,
        bytes: &[u8],
        during: &'static str,
    ) -> Result<(), ReplError> {
        let writer = self.writer.as_mut().ok_or(ReplError::InvalidState(
            "the writer was handed to the ACK task",
        ))?;
        write_with_timeout(writer, bytes, self.read_timeout, during).await
    }

    pub(crate) fn take_writer(&mut self) -> Option<StreamWriter> {
        self.writer.take()
    }
}

pub(crate) async fn write_with_timeout(
    writer: &mut StreamWriter,
    bytes: &[u8],
    limit: Duration,
    during: &'static str,
) -> Result<(), ReplError> {
    tokio::time::timeout(limit, writer.write_all(bytes))
        .await
        .map_err(|_| ReplError::Timeout {
            during,
            after: limit,
        })?
        .map_err(|cause| io_error(cause, during))
}

fn io_error(cause: std::io::Error, during: &'static str) -> ReplError {
    use std::io::ErrorKind::*;
    match cause.kind() {
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
            ReplError::Closed(during)
        }
        _ => ReplError::Io { during, cause },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The command stream races each read against a ticker; the dropped reads add up to
    /// the timeout, which ends the wait for a primary that sends nothing.
    #[tokio::test]
    async fn reads_dropped_by_a_faster_ticker_still_time_out() {
        let (ours, _silent_primary) = tokio::io::duplex(1024);
        let read_timeout = Duration::from_millis(300);
        let mut link = Link::new(Box::new(ours), read_timeout, Limits::default());
        let started = std::time::Instant::now();
        let mut ticks = 0;
        let error = loop {
            tokio::select! {
                biased;
                read = link.fill("streaming") => break read.unwrap_err(),
                _ = tokio::time::sleep(Duration::from_millis(20)) => ticks += 1,
            }
            assert!(started.elapsed() < Duration::from_secs(5), "no timeout");
        };
        assert!(matches!(error, ReplError::Timeout { .. }), "{error}");
        assert!(started.elapsed() >= read_timeout);
        assert!(ticks >= 10, "{ticks}");
    }

    /// Bytes end a wait, and the next wait has the whole timeout again.
    #[tokio::test]
    async fn bytes_start_the_timeout_over() {
        let (ours, mut primary) = tokio::io::duplex(1024);
        let read_timeout = Duration::from_millis(300);
        let mut link = Link::new(Box::new(ours), read_timeout, Limits::default());
        let _ = tokio::time::timeout(Duration::from_millis(200), link.fill("streaming")).await;
        primary.write_all(b"\n").await.unwrap();
        link.fill("streaming").await.unwrap();
        let started = std::time::Instant::now();
        let error = link.fill("streaming").await.unwrap_err();
        assert!(matches!(error, ReplError::Timeout { .. }), "{error}");
        assert!(started.elapsed() >= Duration::from_millis(250));
    }
}
