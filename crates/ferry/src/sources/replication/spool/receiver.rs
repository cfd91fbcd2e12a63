//! The connection's bytes into the spool: the snapshot into its file as fast as it
//! arrives, then each command as a record, until the feed has read every record; from
//! then on commands go to the feed through a channel and the files only wait to be
//! deleted.
//!
//! Spooled commands are acknowledged to the source once they are on disk (fsync'd every
//! [`SYNC_EVERY`]): that is when they survive a crash of ferry. Live ones are acknowledged
//! once applied, as without a spool (the writer reports them to [`Receiving::applied`]).
//!
//! A lost source is resumed here, at once, by partial resync from the offset spooled
//! ([`Resume`]), while the load goes on from the files: waiting for the load to finish
//! first would give the source's backlog that much longer to drop the offset.

use super::{Spool, SpoolError, SpoolFeed, TailReader};
use bytes::BytesMut;
use ferry_repl::{AckHandle, ReplCommand, ReplError, ReplicaConnection, SnapshotFraming};
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How often spooled commands are made durable and acknowledged.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Commands between the connection and the feed once it went live: the same bound as
/// reading the connection directly would give, a few batches' worth.
const LIVE_QUEUE: usize = 4096;
/// How long a full spool waits before looking again whether the feed went live.
const FULL_WAIT: Duration = Duration::from_millis(20);
/// How long the receiver tries to resume a lost source before it gives up (and the
/// session, once the spooled commands are applied, takes over with its own retries).
const RESUME_FOR: Duration = Duration::from_secs(30);
/// The pause between two attempts.
const RESUME_PAUSE: Duration = Duration::from_secs(1);

/// A new connection to the source, continuing history `replid` after `offset` (PSYNC and
/// `+CONTINUE`), with the history's ID as the source now names it. An error that is no
/// use retrying (the source cannot continue: a full sync is needed) says so by
/// [`Resumed::Never`].
pub trait Resume: Send + Sync + 'static {
    fn resume(
        &self,
        replid: String,
        offset: i64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Resumed> + Send>>;
}

pub enum Resumed {
    Continued(Box<ReplicaConnection>, String),
    /// Worth another try (the source is restarting, unreachable).
    Failed(ReplError),
    Never(ReplError),
}

/// The most the spool's files may hold together (`--spool-max-mb`).
#[derive(Debug, Clone, Copy)]
pub struct SpoolLimit {
    pub max_bytes: u64,
}

/// Why receiving stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error(transparent)]
    Source(#[from] ReplError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) snapshot_written: AtomicU64,
    pub(super) snapshot_done: AtomicBool,
    /// The offset after the last command received, spooled or passed on live.
    pub(super) received: AtomicI64,
    pub(super) stream: Mutex<StreamFile>,
    /// Set once receiving stopped; the reason waits in `failure` for the feed to take.
    pub(super) ended: AtomicBool,
    failure: Mutex<Option<ReceiveError>>,
    /// The spool reached its limit and holds commands back until the feed went live.
    pub(super) full: AtomicBool,
}

#[derive(Debug)]
pub(super) struct StreamFile {
    pub(super) path: std::path::PathBuf,
    /// `None` once live.
    writer: Option<BufWriter<std::fs::File>>,
    /// Bytes of complete records handed to the writer.
    pub(super) written: u64,
    /// The offset after the last spooled record.
    pub(super) end: i64,
    pub(super) live: bool,
}

impl StreamFile {
    /// Makes every record handed to the writer readable from the file.
    pub(super) fn flush(&mut self) -> std::io::Result<()> {
        match self.writer.as_mut() {
            Some(writer) => writer.flush(),
            None => Ok(()),
        }
    }

    /// From now on commands go through the channel.
    pub(super) fn go_live(&mut self) -> std::io::Result<()> {
        self.flush()?;
        self.writer = None;
        self.live = true;
        Ok(())
    }
}

impl Shared {
    pub(super) fn lock_stream(&self) -> MutexGuard<'_, StreamFile> {
        self.stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Why receiving stopped, once (later callers get `None`).
    pub(super) fn take_failure(&self) -> Option<ReceiveError> {
        self.failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    fn end(&self, failure: Option<ReceiveError>) {
        if let Some(failure) = failure {
            *self
                .failure
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(failure);
        }
        self.ended.store(true, Ordering::Release);
    }
}

/// A spool being filled from one replica connection.
pub struct Receiving {
    spool: Spool,
    shared: Arc<Shared>,
    applied: AckHandle,
    task: JoinHandle<()>,
    live: Option<mpsc::Receiver<ReplCommand>>,
}

/// What the receiver needs to know about the snapshot before writing it.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotPlan {
    /// The source's own estimate of a snapshot sent without its length (diskless).
    pub estimate: Option<u64>,
}

impl Receiving {
    /// Starts receiving on `repl`: with `snapshot`, first the snapshot that its
    /// `+FULLRESYNC` announced, then the stream, appended after the spool's last complete
    /// record.
    pub fn start(
        repl: ReplicaConnection,
        mut spool: Spool,
        snapshot: Option<SnapshotPlan>,
        (limit, resume): (SpoolLimit, Arc<dyn Resume>),
    ) -> Result<Receiving, SpoolError> {
        let (end, written) = spool.stream_end()?;
        let complete = spool.meta().snapshot_bytes;
        let stream_path = spool.stream_path();
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&stream_path)
            .map_err(|e| SpoolError::io("cannot open", &stream_path, e))?;
        let shared = Arc::new(Shared {
            snapshot_written: AtomicU64::new(complete.unwrap_or(0)),
            snapshot_done: AtomicBool::new(complete.is_some()),
            received: AtomicI64::new(end),
            stream: Mutex::new(StreamFile {
                path: stream_path.clone(),
                writer: Some(BufWriter::with_capacity(256 << 10, file)),
                written,
                end,
                live: false,
            }),
            ended: AtomicBool::new(false),
            failure: Mutex::new(None),
            full: AtomicBool::new(false),
        });
        let (sender, live) = mpsc::channel(LIVE_QUEUE);
        let applied = AckHandle::default();
        let replid = repl
            .replid()
            .map_or_else(|| spool.meta().replid.clone(), str::to_owned);
        let task = tokio::spawn(receive(
            Connection {
                repl,
                replid,
                resume,
                applied: applied.clone(),
            },
            spool.clone(),
            shared.clone(),
            (snapshot, limit),
            sender,
        ));
        Ok(Receiving {
            spool,
            shared,
            applied,
            task,
            live: Some(live),
        })
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Where the target's applied offset goes, to be acknowledged to the source by
    /// whichever connection the receiver has then.
    pub fn applied(&self) -> AckHandle {
        self.applied.clone()
    }

    /// The snapshot's bytes, as a reader that waits for the ones still on their way.
    pub fn snapshot_reader(&self) -> Result<TailReader, SpoolError> {
        TailReader::open(&self.spool.snapshot_path(), self.shared.clone())
    }

    /// Snapshot bytes on disk so far.
    pub fn snapshot_received(&self) -> u64 {
        self.shared.snapshot_written.load(Ordering::Acquire)
    }

    /// Whether receiving stopped (the source was lost, or the spool failed).
    pub fn ended(&self) -> bool {
        self.shared.ended.load(Ordering::Acquire)
    }

    /// Why receiving stopped, once.
    pub fn take_failure(&self) -> Option<ReceiveError> {
        self.shared.take_failure()
    }

    /// The offset after the last command received.
    pub fn received(&self) -> i64 {
        self.shared.received.load(Ordering::Acquire)
    }

    /// Whether the spool is at its limit and holds the source's commands back.
    pub fn full(&self) -> bool {
        self.shared.full.load(Ordering::Acquire)
    }

    /// The commands after offset `after`, from the file and then live. Once only: the
    /// live channel goes with it.
    pub fn feed(&mut self, after: i64) -> Result<SpoolFeed, SpoolError> {
        let live = self.live.take().ok_or_else(|| SpoolError::Corrupt {
            path: self.spool.dir().display().to_string(),
            reason: "internal: the spool's commands were asked for twice".into(),
        })?;
        SpoolFeed::open(&self.spool.stream_path(), self.shared.clone(), live, after)
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The replica connection the receiver reads, and how to get another.
struct Connection {
    repl: ReplicaConnection,
    /// The history the stream continues (a failover renames it).
    replid: String,
    resume: Arc<dyn Resume>,
    /// What the target applied, acknowledged once the spool has caught up.
    applied: AckHandle,
}

async fn receive(
    mut connection: Connection,
    mut spool: Spool,
    shared: Arc<Shared>,
    (snapshot, limit): (Option<SnapshotPlan>, SpoolLimit),
    sender: mpsc::Sender<ReplCommand>,
) {
    let mut result = Ok(());
    if let Some(plan) = snapshot {
        result = receive_snapshot(&mut connection.repl, &mut spool, &shared, plan, limit).await;
    }
    while result.is_ok() {
        match receive_stream(&mut connection, &shared, limit, &sender).await {
            Err(ReceiveError::Source(lost)) => match resume(&mut connection, &shared, lost).await {
                Ok(()) => continue,
                Err(error) => result = Err(error),
            },
            other => {
                result = other;
                break;
            }
        }
    }
    shared.end(result.err());
}

/// A new connection continuing after the last command received, within [`RESUME_FOR`].
async fn resume(
    connection: &mut Connection,
    shared: &Shared,
    lost: ReplError,
) -> Result<(), ReceiveError> {
    let started = tokio::time::Instant::now();
    let mut last = lost;
    while started.elapsed() < RESUME_FOR {
        tokio::time::sleep(RESUME_PAUSE).await;
        let offset = shared.received.load(Ordering::Acquire);
        match connection
            .resume
            .resume(connection.replid.clone(), offset)
            .await
        {
            Resumed::Continued(repl, replid) => {
                connection.repl = *repl;
                connection.replid = replid;
                return Ok(());
            }
            Resumed::Failed(error) => last = error,
            Resumed::Never(error) => return Err(error.into()),
        }
    }
    Err(last.into())
}

async fn receive_snapshot(
    repl: &mut ReplicaConnection,
    spool: &mut Spool,
    shared: &Shared,
    plan: SnapshotPlan,
    limit: SpoolLimit,
) -> Result<(), ReceiveError> {
    let path = spool.snapshot_path();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| SpoolError::io("cannot open", &path, e))?;
    let mut stream = repl.snapshot().await?;
    let (needed, basis) = match (stream.framing(), plan.estimate) {
        (SnapshotFraming::Sized(len), _) => (len, "the size the source announced"),
        (SnapshotFraming::EndMark, Some(estimate)) => (
            estimate,
            "the source's used_memory_dataset, as the source sends it without a size",
        ),
        (SnapshotFraming::EndMark, None) => (0, ""),
    };
    check_room(spool.dir(), needed, basis, limit)?;
    let mut written = 0u64;
    while let Some(chunk) = stream.next_chunk().await? {
        file.write_all(&chunk)
            .map_err(|e| SpoolError::io("cannot write", &path, e))?;
        written += chunk.len() as u64;
        shared.snapshot_written.store(written, Ordering::Release);
        if written > limit.max_bytes {
            let free = super::free_bytes(spool.dir()).unwrap_or(0);
            let room = (free, limit);
            let basis = "more than --spool-max-mb allows";
            return Err(no_room(spool.dir(), written, basis, room).into());
        }
    }
    file.sync_data()
        .map_err(|e| SpoolError::io("cannot write", &path, e))?;
    spool.snapshot_received(written)?;
    shared.snapshot_done.store(true, Ordering::Release);
    Ok(())
}

/// Refuses `needed` bytes of snapshot that the spool's disk or limit cannot take.
pub fn check_room(
    dir: &std::path::Path,
    needed: u64,
    basis: &str,
    limit: SpoolLimit,
) -> Result<(), SpoolError> {
    if needed == 0 {
        return Ok(());
    }
    let free = super::free_bytes(dir).map_err(|e| SpoolError::io("cannot measure", dir, e))?;
    if needed > free.min(limit.max_bytes) {
        return Err(no_room(dir, needed, basis, (free, limit)));
    }
    Ok(())
}

fn no_room(
    dir: &std::path::Path,
    needed: u64,
    basis: &str,
    (free, limit): (u64, SpoolLimit),
) -> SpoolError {
    let (room, why) = if limit.max_bytes < free {
        (limit.max_bytes, "--spool-max-mb".to_owned())
    } else {
        (free, "the free space on its disk".to_owned())
    };
    SpoolError::NoRoom {
        dir: dir.display().to_string(),
        room: crate::display::size(room),
        why,
        needed: crate::display::size(needed),
        basis: basis.to_owned(),
    }
}

async fn receive_stream(
    connection: &mut Connection,
    shared: &Shared,
    limit: SpoolLimit,
    sender: &mpsc::Sender<ReplCommand>,
) -> Result<(), ReceiveError> {
    let repl = &mut connection.repl;
    let acks = repl.ack_handle();
    let snapshot_bytes = shared.snapshot_written.load(Ordering::Acquire);
    let mut record = BytesMut::new();
    let mut sync = tokio::time::interval(SYNC_EVERY);
    sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let command = tokio::select! {
            command = repl.next_command() => command?,
            _ = sync.tick() => {
                make_durable(shared, &acks, &connection.applied)?;
                continue;
            }
        };
        shared
            .received
            .store(command.offset_after, Ordering::Release);
        let mut command = Some(command);
        while let Some(pending) = command.take() {
            let spooled = {
                let mut stream = shared.lock_stream();
                if stream.live {
                    None
                } else if snapshot_bytes + stream.written > limit.max_bytes {
                    Some(false)
                } else {
                    record.clear();
                    super::records::encode(&pending, &mut record);
                    let wrote = match stream.writer.as_mut() {
                        Some(writer) => writer.write_all(&record),
                        None => Ok(()),
                    };
                    wrote.map_err(|e| SpoolError::io("cannot write", &stream.path, e))?;
                    stream.written += record.len() as u64;
                    stream.end = pending.offset_after;
                    Some(true)
                }
            };
            match spooled {
                Some(true) => {}
                // Full: the feed reads what is spooled, goes live, and takes this one.
                Some(false) => {
                    shared.full.store(true, Ordering::Release);
                    tokio::time::sleep(FULL_WAIT).await;
                    command = Some(pending);
                }
                None => {
                    if sender.send(pending).await.is_err() {
                        // The session ended and dropped its feed.
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Writes spooled records through to disk and acknowledges them to the source; once
/// live, acknowledges what the target applied.
fn make_durable(shared: &Shared, acks: &AckHandle, applied: &AckHandle) -> Result<(), SpoolError> {
    let mut stream = shared.lock_stream();
    if stream.live {
        acks.set_applied(applied.applied());
        return Ok(());
    }
    let end = stream.end;
    let synced = match stream.writer.as_mut() {
        Some(writer) => writer.flush().and_then(|()| writer.get_ref().sync_data()),
        None => Ok(()),
    };
    synced.map_err(|e| SpoolError::io("cannot write", &stream.path, e))?;
    drop(stream);
    acks.set_applied(end);
    Ok(())
}
