//! The replica connection: handshake, PSYNC, the snapshot, then the command stream with
//! offset accounting and acknowledgements.

use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;

use crate::ack::AckHandle;
use crate::channel_reader::SnapshotSender;
use crate::error::ReplError;
use crate::handshake::{self, PsyncOutcome};
use crate::link::Link;
use crate::options::{ConnectOptions, RetryPolicy};
use crate::resp::Frame;
use crate::snapshot::{BodyReader, SnapshotFraming};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Handshake done; PSYNC not sent yet.
    Ready,
    /// `+FULLRESYNC` received; the snapshot has not been read yet.
    SnapshotPending,
    /// A [`SnapshotStream`] was created and has not reached the end.
    InSnapshot,
    Streaming,
    /// An error happened; the stream position is unknown, so nothing more can be read.
    Failed,
}

/// A connection to a primary, acting as its replica.
///
/// Order of use: [`connect`](Self::connect), [`psync`](Self::psync); after
/// `FullResync`, [`snapshot`](Self::snapshot) read to its end; then
/// [`next_command`](Self::next_command) in a loop, reporting progress through
/// [`ack_handle`](Self::ack_handle). After any error, drop the connection and reconnect
/// with the saved replication ID and applied offset.
pub struct ReplicaConnection {
    link: Link,
    address: String,
    ack_interval: Duration,
    psync_retry: RetryPolicy,
    phase: Phase,
    replid: Option<String>,
    /// Replication offset of the last byte of the command stream processed.
    offset: i64,
    acks: AckHandle,
    ack_task: Option<JoinHandle<()>>,
}

/// One command of the replication stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplCommand {
    /// The command's name and arguments, as sent.
    pub args: Vec<Bytes>,
    /// The primary's replication offset just after this command. Report it with
    /// [`AckHandle::set_applied`] once the command is applied, and resume from it.
    pub offset_after: i64,
}

impl ReplCommand {
    /// The command name as sent (any case).
    pub fn name(&self) -> &[u8] {
        self.args.first().map(|a| &a[..]).unwrap_or_default()
    }

    /// Whether the command name equals `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name().eq_ignore_ascii_case(name.as_bytes())
    }

    /// `REPLCONF GETACK`: already answered by this crate.
    pub fn is_getack(&self) -> bool {
        self.is("REPLCONF")
            && self
                .args
                .get(1)
                .is_some_and(|a| a.eq_ignore_ascii_case(b"GETACK"))
    }

    /// PING or REPLCONF: part of the protocol, nothing to apply to the data. Its offset
    /// still counts: report it as applied like any other.
    pub fn is_protocol_only(&self) -> bool {
        self.is("PING") || self.is("REPLCONF")
    }
}

impl ReplicaConnection {
    /// Connects and performs the handshake (PING, AUTH if a password is set,
    /// REPLCONF listening-port, REPLCONF capa eof capa psync2). `address` is `host:port`.
    pub async fn connect(address: &str, options: ConnectOptions) -> Result<Self, ReplError> {
        // One deadline for the whole connect: a primary that accepts and then answers
        // slowly or not at all fails within the connect timeout, not the read timeout.
        let deadline = tokio::time::Instant::now() + options.connect_timeout;
        let mut link = handshake::open(address, &options, deadline).await?;
        tokio::time::timeout_at(deadline, handshake::handshake(&mut link, &options))
            .await
            .map_err(|_| ReplError::Timeout {
                during: "waiting for the handshake replies (PING, AUTH, REPLCONF)",
                after: options.connect_timeout,
            })??;
        Ok(ReplicaConnection {
            link,
            address: address.to_owned(),
            ack_interval: options.ack_interval,
            psync_retry: options.psync_retry,
            phase: Phase::Ready,
            replid: None,
            offset: 0,
            acks: AckHandle::default(),
            ack_task: None,
        })
    }

    /// Asks to resume after `offset` (the last applied offset) of history `replid`, or for
    /// a full copy when `replid` is `None` (`offset` is then ignored). Retries, with
    /// backoff, while the primary answers `-LOADING` or `-NOMASTERLINK`.
    ///
    /// On `Continue` the command stream starts at once and ACKs begin. On `FullResync`
    /// read the [`snapshot`](Self::snapshot) next; ACKs carry offset 0 until the caller
    /// reports the snapshot applied (with the `FullResync` offset).
    pub async fn psync(
        &mut self,
        replid: Option<&str>,
        offset: i64,
    ) -> Result<PsyncOutcome, ReplError> {
        self.expect_phase(
            Phase::Ready,
            "psync must be called once, right after connect",
        )?;
        let result = handshake::psync(&mut self.link, replid, offset, &self.psync_retry).await;
        let outcome = self.guard(result)?;
        match &outcome {
            PsyncOutcome::FullResync { replid, offset } => {
                self.replid = Some(replid.clone());
                self.offset = *offset;
                self.phase = Phase::SnapshotPending;
            }
            PsyncOutcome::Continue { replid: new_id } => {
                self.replid = Some(new_id.clone());
                self.offset = offset;
                self.acks.set_applied(offset);
                self.start_streaming(false)?;
            }
        }
        Ok(outcome)
    }

    /// Reads the snapshot header and returns the stream of its bytes. Read it to the end
    /// (`next_chunk` returning `None`) before asking for commands.
    pub async fn snapshot(&mut self) -> Result<SnapshotStream<'_>, ReplError> {
        self.expect_phase(Phase::SnapshotPending, "snapshot follows a FullResync only")?;
        let started = BodyReader::start(&mut self.link).await;
        let (body, framing) = self.guard(started)?;
        self.phase = Phase::InSnapshot;
        Ok(SnapshotStream {
            conn: self,
            body,
            framing,
            received: 0,
        })
    }

    /// The next command of the replication stream. Keep-alive newlines are skipped (they
    /// are not part of the primary's offset); PING, SELECT and REPLCONF GETACK are
    /// returned, since their bytes count in the offset. GETACK is answered before it is
    /// returned.
    ///
    /// Cancel-safe: dropping the future (in `select!`, `timeout`) loses nothing; partial
    /// frames stay buffered for the next call.
    pub async fn next_command(&mut self) -> Result<ReplCommand, ReplError> {
        self.expect_phase(
            Phase::Streaming,
            "commands come after PSYNC continues or the snapshot was read to its end",
        )?;
        if let Some(error) = self.acks.take_failure() {
            self.phase = Phase::Failed;
            return Err(error);
        }
        let result = self.read_command().await;
        self.guard(result)
    }

    async fn read_command(&mut self) -> Result<ReplCommand, ReplError> {
        loop {
            let at = self.link.position();
            // A primary sends commands as arrays and keep-alive newlines, nothing else.
            let (frame, len) = self
                .link
                .read_frame_starting("reading the command stream", |byte| {
                    matches!(byte, b'*' | b'\n' | b'\r')
                })
                .await?;
            if frame.is_keepalive() {
                continue;
            }
            let args = match &frame {
                Frame::Array(_) => frame.command_args(),
                _ => None,
            }
            .ok_or_else(|| {
                ReplError::protocol(
                    format!(
                        "the primary sent {} in the command stream",
                        frame.describe()
                    ),
                    at,
                )
            })?;
            self.offset += len as i64;
            let command = ReplCommand {
                args,
                offset_after: self.offset,
            };
            self.acks.mark_stream_flowing();
            if command.is_getack() {
                self.acks.request_ack();
            }
            return Ok(command);
        }
    }

    /// The handle through which the applied offset is reported.
    pub fn ack_handle(&self) -> AckHandle {
        self.acks.clone()
    }

    /// The offset after the last command returned (or the PSYNC offset before any).
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The primary's replication ID, once PSYNC answered.
    pub fn replid(&self) -> Option<&str> {
        self.replid.as_deref()
    }

    /// The primary's `host:port`, as connected to.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn expect_phase(&self, wanted: Phase, rule: &'static str) -> Result<(), ReplError> {
        match self.phase {
            phase if phase == wanted => Ok(()),
            Phase::Failed => Err(ReplError::InvalidState(
                "the connection failed earlier; reconnect",
            )),
            _ => Err(ReplError::InvalidState(rule)),
        }
    }

    /// Marks the connection failed on error: its stream position is lost.
    fn guard<T>(&mut self, result: Result<T, ReplError>) -> Result<T, ReplError> {
        if result.is_err() {
            self.phase = Phase::Failed;
        }
        result
    }

    /// Hands the writer to the ACK task. `after_snapshot`: warm up (see
    /// [`AckHandle`]'s sender) until the first command arrives.
    fn start_streaming(&mut self, after_snapshot: bool) -> Result<(), ReplError> {
        let writer = self.link.take_writer().ok_or(ReplError::InvalidState(
            "the command stream already started",
        ))?;
        self.ack_task = Some(self.acks.spawn_sender(
            writer,
            self.ack_interval,
            self.link.read_timeout(),
            after_snapshot,
        ));
        self.phase = Phase::Streaming;
        Ok(())
    }
}

impl Drop for ReplicaConnection {
    fn drop(&mut self) {
        if let Some(task) = self.ack_task.take() {
            task.abort();
        }
    }
}

/// The snapshot bytes, in chunks of at most 64 KiB, without framing or end mark.
pub struct SnapshotStream<'a> {
    conn: &'a mut ReplicaConnection,
    body: BodyReader,
    framing: SnapshotFraming,
    received: u64,
}

impl SnapshotStream<'_> {
    /// How the primary framed the snapshot (length prefix or end mark).
    pub fn framing(&self) -> SnapshotFraming {
        self.framing
    }

    /// Snapshot bytes handed out so far.
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    /// The next chunk, or `None` once the snapshot is complete. At the end the command
    /// stream starts and the first ACK is sent (a diskless primary waits for it).
    /// Cancel-safe, like [`ReplicaConnection::next_command`].
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ReplError> {
        if self.body.is_done() {
            return Ok(None);
        }
        let result = self.body.next_chunk(&mut self.conn.link).await;
        match self.conn.guard(result)? {
            Some(chunk) => {
                self.received += chunk.len() as u64;
                Ok(Some(chunk))
            }
            None => {
                self.conn.start_streaming(true)?;
                Ok(None)
            }
        }
    }

    /// Sends every chunk to `sender` (waiting whenever its channel is full) and marks the
    /// end; on failure the reader gets the error too. Returns the snapshot size.
    pub async fn forward(mut self, sender: SnapshotSender) -> Result<u64, ReplError> {
        loop {
            match self.next_chunk().await {
                Ok(Some(chunk)) => {
                    if sender.send(chunk).await.is_err() {
                        self.conn.phase = Phase::Failed;
                        return Err(ReplError::ReaderGone);
                    }
                }
                Ok(None) => {
                    // The reader may already have stopped after the RDB's EOF opcode and
                    // checksum; the snapshot was still complete.
                    let _ = sender.finish().await;
                    return Ok(self.received);
                }
                Err(error) => {
                    sender.fail(&error).await;
                    return Err(error);
                }
            }
        }
    }
}
