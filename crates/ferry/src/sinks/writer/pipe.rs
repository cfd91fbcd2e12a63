//! Deep pipelining to the target with bounded memory.
//!
//! ```text
//! producers ──(Batch, byte budget)──▶ writer task ──socket──▶ target
//!                                          │ (in flight, bounded)
//!                                          ▼
//!                                     reply task ◀──replies── target
//!                                          └─▶ applied mark, budget released
//! ```
//!
//! Producers send [`Batch`]es: encoded commands plus what each reply is about. A batch
//! takes its size from a byte budget before it is queued and gives it back once all its
//! replies are in, so the bytes sent but not yet acknowledged never exceed the budget. Any
//! error reply is fatal: the pipe stops and every later call returns that error. A batch's
//! [`Mark`] (a replication offset and the stream's database) counts as applied when the
//! replies of that batch and of everything before it have come back.

use super::cluster::ClusterPipe;
use super::redirect::{self, Redirect};
use crate::server::client::ClientWriter;
use crate::server::client::{one_line, ClientError, ReplyReader};
use bytes::{Bytes, BytesMut};
use ferry_repl::resp::{encode_command, Frame, FrameDecoder, Limits, Mode};
use ferry_repl::AckHandle;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// Batches queued between producers and the writer task.
const QUEUED_BATCHES: usize = 64;
/// Batches written and waiting for their replies.
const IN_FLIGHT_BATCHES: usize = 4096;

/// A point of the replication stream: everything up to `offset` is applied and the stream
/// had database `db` selected there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub offset: i64,
    pub db: u64,
}

/// Commands encoded back to back. Nothing else is kept per command: should one be
/// refused, the message finds its name and key by decoding the payload again, so the
/// memory in flight is the payload bytes the budget counts.
#[derive(Debug, Default)]
pub struct Batch {
    pub payload: BytesMut,
    /// Commands in the payload: replies to expect.
    pub replies: u32,
    /// Of those, the commands ferry adds around the data (MULTI, EXEC, its marker): not
    /// counted as commands applied.
    pub framing: u32,
    pub mark: Option<Mark>,
}

impl crate::state::MarkerCommands for Batch {
    fn push_framing(&mut self, args: &[&str]) {
        Batch::push_framing(self, args);
    }
}

impl Batch {
    pub fn push<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        encode_command(args, &mut self.payload);
        self.replies += 1;
    }

    /// A command already encoded (a whole RESP array of bulk strings), as it is.
    pub fn push_wire(&mut self, wire: &[u8]) {
        self.payload.extend_from_slice(wire);
        self.replies += 1;
    }

    /// Like [`Batch::push`], for a command of ferry's own (see [`Batch::framing`]).
    pub fn push_framing<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        self.push(args);
        self.framing += 1;
    }

    /// Appends `other`'s commands (its mark is not taken).
    pub fn append(&mut self, other: &Batch) {
        self.payload.extend_from_slice(&other.payload);
        self.replies += other.replies;
        self.framing += other.framing;
    }

    pub fn is_empty(&self) -> bool {
        self.replies == 0 && self.mark.is_none()
    }

    pub fn bytes(&self) -> usize {
        self.payload.len()
    }
}

/// Counters the progress lines read.
#[derive(Debug, Default)]
pub struct PipeCounters {
    /// Replies received (commands acknowledged by the target).
    pub replies: AtomicU64,
    /// Bytes of commands acknowledged.
    pub bytes: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    failure: Mutex<Option<String>>,
    applied: Mutex<Option<Mark>>,
    counters: Arc<PipeCounters>,
    /// The source connection's ACK handle; replaced on every reconnect.
    ack: Mutex<Option<AckHandle>>,
    /// Follows `MOVED`/`ASK` replies (a cluster node's pipe); without it they are fatal.
    redirect: Option<Arc<dyn Redirect>>,
    /// Wakes the writer task when the pipe fails, so that it stops waiting on a socket
    /// the target no longer reads (and drops the barriers queued behind it).
    failed: tokio::sync::Notify,
    /// How long the target may owe replies and send nothing, or take none of the bytes
    /// written to it, before it counts as gone (`--target-reply-timeout`).
    stall_timeout: Duration,
}

impl Shared {
    fn fail(&self, message: String) {
        if let Ok(mut slot) = self.failure.lock() {
            slot.get_or_insert(message);
        }
        // Kept as a permit when the writer is not waiting yet.
        self.failed.notify_one();
    }
}

enum Op {
    Batch {
        replies: u32,
        framing: u32,
        payload: Bytes,
        mark: Option<Mark>,
        permit: OwnedSemaphorePermit,
    },
    /// Resolves once everything queued before it is acknowledged.
    Barrier(oneshot::Sender<()>),
}

struct InFlight {
    replies: u32,
    framing: u32,
    /// Kept (and counted in the budget) until the replies are in, for messages.
    payload: Bytes,
    mark: Option<Mark>,
    _permit: Option<OwnedSemaphorePermit>,
    done: Option<oneshot::Sender<()>>,
}

/// The producers' handle on one connection. Clone it freely.
#[derive(Clone)]
pub struct NodePipe {
    tx: mpsc::Sender<Op>,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    shared: Arc<Shared>,
}

/// The pipe stopped: the target refused a command or the connection failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PipeError(pub String);

impl NodePipe {
    /// Takes over the connection. `budget_bytes` bounds the bytes sent and not yet
    /// acknowledged; acknowledged replies are counted into `counters`.
    pub fn start(
        reader: ReplyReader,
        writer: ClientWriter,
        budget_bytes: usize,
        counters: Arc<PipeCounters>,
        redirect: Option<Arc<dyn Redirect>>,
    ) -> NodePipe {
        let budget_bytes = budget_bytes.clamp(64 * 1024, Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            failure: Mutex::new(None),
            applied: Mutex::new(None),
            counters,
            ack: Mutex::new(None),
            redirect,
            failed: tokio::sync::Notify::new(),
            stall_timeout: reader.stall_timeout(),
        });
        let (tx, rx) = mpsc::channel(QUEUED_BATCHES);
        let (flight_tx, flight_rx) = mpsc::channel(IN_FLIGHT_BATCHES);
        tokio::spawn(write_task(rx, writer, flight_tx, shared.clone()));
        tokio::spawn(reply_task(reader, flight_rx, shared.clone()));
        NodePipe {
            tx,
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
            shared,
        }
    }

    /// From now on every applied mark is also reported to `ack` (the source connection's).
    pub fn report_to(&self, ack: AckHandle) {
        if let Ok(mut slot) = self.shared.ack.lock() {
            *slot = Some(ack);
        }
    }

    /// Queues a batch, waiting while the budget is used up.
    pub async fn send(&self, batch: Batch) -> Result<(), PipeError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.check()?;
        // A batch larger than the whole budget waits for the pipe to drain, then goes alone.
        let cost = batch.payload.len().min(self.budget_bytes) as u32;
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(cost)
            .await
            .map_err(|_| self.stopped())?;
        let op = Op::Batch {
            replies: batch.replies,
            framing: batch.framing,
            payload: batch.payload.freeze(),
            mark: batch.mark,
            permit,
        };
        self.tx.send(op).await.map_err(|_| self.stopped())
    }

    /// Waits until everything sent so far is acknowledged.
    pub async fn barrier(&self) -> Result<(), PipeError> {
        self.check()?;
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Op::Barrier(done))
            .await
            .map_err(|_| self.stopped())?;
        wait.await.map_err(|_| self.stopped())
    }

    /// The last mark whose batch and everything before it are acknowledged.
    pub fn applied(&self) -> Option<Mark> {
        self.shared.applied.lock().ok().and_then(|m| *m)
    }

    pub fn counters(&self) -> Arc<PipeCounters> {
        self.shared.counters.clone()
    }

    /// The error that stopped the pipe, if any.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure.lock().ok().and_then(|f| f.clone())
    }

    fn check(&self) -> Result<(), PipeError> {
        match self.failure() {
            Some(message) => Err(PipeError(message)),
            None => Ok(()),
        }
    }

    fn stopped(&self) -> PipeError {
        PipeError(
            self.failure()
                .unwrap_or_else(|| "the connection to the target stopped".into()),
        )
    }
}

async fn write_task(
    mut rx: mpsc::Receiver<Op>,
    writer: ClientWriter,
    flight: mpsc::Sender<InFlight>,
    shared: Arc<Shared>,
) {
    let mut out = BufWriter::with_capacity(256 * 1024, writer);
    while let Some(op) = rx.recv().await {
        let in_flight = match op {
            Op::Batch {
                replies,
                framing,
                payload,
                mark,
                permit,
            } => {
                if let Err(message) = write_or_fail(&mut out, &payload, &shared).await {
                    shared.fail(message);
                    return;
                }
                InFlight {
                    replies,
                    framing,
                    payload,
                    mark,
                    _permit: Some(permit),
                    done: None,
                }
            }
            Op::Barrier(done) => InFlight {
                replies: 0,
                framing: 0,
                payload: Bytes::new(),
                mark: None,
                _permit: None,
                done: Some(done),
            },
        };
        // Whatever waits for replies must be on the wire before we can wait for room.
        if rx.is_empty() || flight.capacity() == 0 || in_flight.done.is_some() {
            if let Err(message) = flush_or_fail(&mut out, &shared).await {
                shared.fail(message);
                return;
            }
        }
        if flight.send(in_flight).await.is_err() {
            return;
        }
    }
    let _ = out.flush().await;
}

/// Writes all of `bytes`; an error when the target takes none of them for the stall
/// timeout, or when the pipe fails meanwhile (the reply task gave up).
async fn write_or_fail(
    out: &mut BufWriter<ClientWriter>,
    mut bytes: &[u8],
    shared: &Shared,
) -> Result<(), String> {
    while !bytes.is_empty() {
        let written = tokio::select! {
            written = tokio::time::timeout(shared.stall_timeout, out.write(bytes)) => written,
            _ = shared.failed.notified() => return Err(stopped_writing(shared)),
        };
        match written {
            Ok(Ok(0)) => return Err("cannot write to the target: connection closed".into()),
            Ok(Ok(n)) => bytes = &bytes[n..],
            Ok(Err(e)) => return Err(format!("cannot write to the target: {e}")),
            Err(_) => return Err(took_nothing(shared)),
        }
    }
    Ok(())
}

/// [`write_or_fail`] for what the buffer holds (at most its capacity, 256 KiB).
async fn flush_or_fail(out: &mut BufWriter<ClientWriter>, shared: &Shared) -> Result<(), String> {
    tokio::select! {
        flushed = tokio::time::timeout(shared.stall_timeout, out.flush()) => match flushed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot write to the target: {e}")),
            Err(_) => Err(took_nothing(shared)),
        },
        _ = shared.failed.notified() => Err(stopped_writing(shared)),
    }
}

fn took_nothing(shared: &Shared) -> String {
    format!(
        "lost the connection to the target: it took no bytes for {:?} \
         (--target-reply-timeout)",
        shared.stall_timeout
    )
}

/// The failure already recorded (the first one is kept either way).
fn stopped_writing(shared: &Shared) -> String {
    shared
        .failure
        .lock()
        .ok()
        .and_then(|f| f.clone())
        .unwrap_or_else(|| "the connection to the target stopped".into())
}

async fn reply_task(
    mut reader: ReplyReader,
    mut flight: mpsc::Receiver<InFlight>,
    shared: Arc<Shared>,
) {
    while let Some(batch) = flight.recv().await {
        // Replies redirected (`MOVED`/`ASK`) and transactions aborted because of them.
        let mut redirected: Vec<(u32, redirect::Redirection)> = Vec::new();
        let mut aborted: Vec<u32> = Vec::new();
        for index in 0..batch.replies {
            let reply = match reader.read(reader.stall_timeout()).await {
                Ok(reply) => reply,
                Err(e) => {
                    shared.fail(connection_failure(e));
                    return;
                }
            };
            if shared.redirect.is_some() {
                if let Some(redirection) = redirect::redirection(&reply) {
                    redirected.push((index, redirection));
                    continue;
                }
                if !redirected.is_empty() && redirect::is_exec_abort(&reply) {
                    aborted.push(index);
                    continue;
                }
            }
            if let Some(message) = refusal(&reply, index, |n| nth_command(&batch.payload, n)) {
                shared.fail(message);
                return;
            }
        }
        // The batch counts as applied once what it had redirected is applied elsewhere.
        if let (Some(follower), false) = (&shared.redirect, redirected.is_empty()) {
            let followed = match redirect::collect(&batch.payload, &redirected, &aborted) {
                Ok(commands) => follower.follow(commands).await,
                Err(message) => Err(message),
            };
            if let Err(message) = followed {
                shared.fail(message);
                return;
            }
        }
        let counters = &shared.counters;
        counters.replies.fetch_add(
            batch.replies.saturating_sub(batch.framing) as u64,
            Ordering::Relaxed,
        );
        counters
            .bytes
            .fetch_add(batch.payload.len() as u64, Ordering::Relaxed);
        if let Some(mark) = batch.mark {
            if let Ok(mut applied) = shared.applied.lock() {
                *applied = Some(mark);
            }
            if let Some(ack) = shared.ack.lock().ok().as_ref().and_then(|a| a.as_ref()) {
                ack.set_applied(mark.offset);
            }
        }
        if let Some(done) = batch.done {
            let _ = done.send(());
        }
    }
}

/// Where the target's commands go: one connection, or one per primary of a cluster
/// target ([`ClusterPipe`]). Clone it freely.
#[derive(Clone)]
pub struct Pipe(Route);

#[derive(Clone)]
enum Route {
    Single(NodePipe),
    Cluster(Arc<ClusterPipe>),
}

impl Pipe {
    /// One connection, taken over. `budget_bytes` bounds the bytes sent and not yet
    /// acknowledged.
    pub fn start(reader: ReplyReader, writer: ClientWriter, budget_bytes: usize) -> Pipe {
        let counters = Arc::new(PipeCounters::default());
        Pipe(Route::Single(NodePipe::start(
            reader,
            writer,
            budget_bytes,
            counters,
            None,
        )))
    }

    /// A cluster target, routed by slot.
    pub fn cluster(pipe: Arc<ClusterPipe>) -> Pipe {
        Pipe(Route::Cluster(pipe))
    }

    /// From now on every applied mark is also reported to `ack` (the source connection's).
    pub fn report_to(&self, ack: AckHandle) {
        match &self.0 {
            Route::Single(pipe) => pipe.report_to(ack),
            Route::Cluster(pipe) => pipe.report_to(ack),
        }
    }

    /// Queues a batch, waiting while the budget is used up.
    pub async fn send(&self, batch: Batch) -> Result<(), PipeError> {
        match &self.0 {
            Route::Single(pipe) => pipe.send(batch).await,
            Route::Cluster(pipe) => pipe.send(batch).await,
        }
    }

    /// [`Pipe::send`] from a blocking thread (the snapshot decoder's).
    pub fn send_blocking(&self, batch: Batch) -> Result<(), PipeError> {
        tokio::runtime::Handle::current().block_on(self.send(batch))
    }

    /// Waits until everything sent so far is acknowledged.
    pub async fn barrier(&self) -> Result<(), PipeError> {
        match &self.0 {
            Route::Single(pipe) => pipe.barrier().await,
            Route::Cluster(pipe) => pipe.barrier().await,
        }
    }

    /// The last mark whose batch and everything before it are acknowledged.
    pub fn applied(&self) -> Option<Mark> {
        match &self.0 {
            Route::Single(pipe) => pipe.applied(),
            Route::Cluster(pipe) => pipe.applied(),
        }
    }

    pub fn counters(&self) -> Arc<PipeCounters> {
        match &self.0 {
            Route::Single(pipe) => pipe.counters(),
            Route::Cluster(pipe) => pipe.counters(),
        }
    }

    /// The error that stopped the pipe, if any.
    pub fn failure(&self) -> Option<String> {
        match &self.0 {
            Route::Single(pipe) => pipe.failure(),
            Route::Cluster(pipe) => pipe.failure(),
        }
    }

    /// Source transactions over several cluster slots, run as one transaction per slot
    /// (0 for a single target).
    pub fn split_transactions(&self) -> u64 {
        match &self.0 {
            Route::Single(_) => 0,
            Route::Cluster(pipe) => pipe.split_transactions(),
        }
    }

    /// Commands a cluster target redirected (`MOVED`/`ASK`) and ferry sent again.
    pub fn redirects(&self) -> u64 {
        match &self.0 {
            Route::Single(_) => 0,
            Route::Cluster(pipe) => pipe.redirects(),
        }
    }

    /// `host:port` of the primaries a cluster target gained while ferry wrote (named by
    /// a redirect, connected to then).
    pub fn joined_primaries(&self) -> Vec<String> {
        match &self.0 {
            Route::Single(_) => Vec::new(),
            Route::Cluster(pipe) => pipe.joined(),
        }
    }

    /// Whether commands are routed over a cluster's primaries.
    pub fn is_cluster(&self) -> bool {
        matches!(self.0, Route::Cluster(_))
    }

    /// The cluster writer, for what only a cluster target has (its per-slot markers).
    pub fn as_cluster(&self) -> Option<&Arc<ClusterPipe>> {
        match &self.0 {
            Route::Single(_) => None,
            Route::Cluster(pipe) => Some(pipe),
        }
    }
}

fn connection_failure(error: ClientError) -> String {
    match error {
        ClientError::Timeout(after) => format!(
            "the target owes replies and sent nothing for {after:?} (--target-reply-timeout): \
             it is stuck or gone"
        ),
        error => format!("lost the connection to the target: {error}"),
    }
}

/// The message for an error reply (or an EXEC whose transaction failed), `None` for
/// success. The reply answers command `index` of the batch; `command(n)` gives the
/// arguments of command `n`. An EXEC's array answers the commands queued just before it,
/// so its `i`th element of `len` names command `index - len + i`.
fn refusal(reply: &Frame, index: u32, command: impl Fn(u32) -> Vec<Bytes>) -> Option<String> {
    let describe = |at: u32, message: &[u8]| {
        let args = command(at);
        let name = args
            .first()
            .map(|n| String::from_utf8_lossy(n).to_uppercase())
            .unwrap_or_else(|| "a command".into());
        match args.get(1) {
            Some(key) => format!(
                "the target refused {name} on key {}: {}",
                show_key(key),
                one_line(message)
            ),
            None => format!("the target refused {name}: {}", one_line(message)),
        }
    };
    match reply {
        Frame::Error(message) | Frame::BulkError(message) => Some(describe(index, message)),
        // Only EXEC answers with an array that holds errors.
        Frame::Array(items) => items.iter().enumerate().find_map(|(i, item)| match item {
            Frame::Error(message) | Frame::BulkError(message) => {
                let queued = index
                    .checked_sub(items.len() as u32)
                    .map_or(index, |first| first + i as u32);
                Some(format!("{} (inside MULTI/EXEC)", describe(queued, message)))
            }
            _ => None,
        }),
        _ => None,
    }
}

/// The arguments of the `index`th command in an encoded payload (empty if not found).
fn nth_command(payload: &Bytes, index: u32) -> Vec<Bytes> {
    let mut decoder = FrameDecoder::new(Mode::Requests, Limits::default());
    let mut buf = BytesMut::from(&payload[..]);
    for _ in 0..index {
        if !matches!(decoder.decode(&mut buf), Ok(Some(_))) {
            return Vec::new();
        }
    }
    match decoder.decode(&mut buf) {
        Ok(Some((frame, _))) => frame.command_args().unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A key for a message: quoted, non-printable bytes escaped.
pub fn show_key(key: &[u8]) -> String {
    let mut out = String::from("\"");
    for &byte in key.iter().take(100) {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    if key.len() > 100 {
        out.push_str("...");
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(commands: &[&[&str]]) -> Bytes {
        let mut batch = Batch::default();
        for command in commands {
            batch.push(command);
        }
        batch.payload.freeze()
    }

    #[test]
    fn an_error_reply_names_the_command_and_key() {
        let sent = payload(&[&["SET", "a", "1"], &["lpush", "k\n1", "x"]]);
        assert_eq!(nth_command(&sent, 1)[0], "lpush");
        let reply = Frame::Error(Bytes::from_static(b"WRONGTYPE Operation against a key"));
        let message = refusal(&reply, 1, |n| nth_command(&sent, n)).unwrap();
        assert_eq!(
            message,
            "the target refused LPUSH on key \"k\\x0a1\": WRONGTYPE Operation against a key"
        );
        assert!(refusal(&Frame::Simple("OK".into()), 0, |n| nth_command(&sent, n)).is_none());
    }

    #[test]
    fn an_error_inside_exec_names_the_queued_command() {
        let sent = payload(&[
            &["MULTI"],
            &["SET", "a", "1"],
            &["LPUSH", "b", "x"],
            &["EXEC"],
        ]);
        let reply = Frame::Array(vec![
            Frame::Simple("OK".into()),
            Frame::Error(Bytes::from_static(b"WRONGTYPE boom")),
        ]);
        let message = refusal(&reply, 3, |n| nth_command(&sent, n)).unwrap();
        assert_eq!(
            message,
            "the target refused LPUSH on key \"b\": WRONGTYPE boom (inside MULTI/EXEC)"
        );
        assert!(refusal(&Frame::Array(vec![]), 3, |n| nth_command(&sent, n)).is_none());
    }
}
