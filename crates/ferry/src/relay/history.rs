//! One relay history: the stream a full sync started, with its own replication ID, its
//! backlog and offsets map, fed by one replica connection to the source.

use super::offsets::{OffsetMap, OffsetPair};
use super::saved::SavedHistory;
use super::stream::StreamTranslator;
use super::{lock, Relay};
use crate::server::reconnect::{Reconnect, RECONNECT_FOR};
use crate::sources::replication::continuation::{self, CheckError};
use crate::target::Target;
use bytes::{Bytes, BytesMut};
use ferry_repl::primary::Backlog;
use ferry_repl::{
    AckHandle, ConnectOptions, PsyncOutcome, ReplCommand, ReplError, ReplicaConnection, Secret,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Bytes of translated commands gathered before they go to the backlog at once.
const BATCH_BYTES: usize = 64 << 10;

pub struct History {
    /// The relay's replication ID for this stream.
    pub replid: String,
    /// What the stream and the snapshot are translated for.
    pub target: Target,
    inner: Mutex<Inner>,
    end_offset: watch::Sender<i64>,
    ended: AtomicBool,
    attached: AtomicUsize,
    /// Reports to the source how far the replicas got (mapped to source offsets).
    upstream_ack: AckHandle,
    /// What the policies did to the snapshot this history starts from.
    policies: Mutex<Vec<String>>,
}

struct Inner {
    backlog: Backlog,
    offsets: OffsetMap,
    source_replid: String,
    /// The source offset after the last command taken into the stream.
    source_offset: i64,
    end_reason: Option<String>,
    detached_since: Option<Instant>,
    /// The last offset a replica ACKed.
    last_ack: Option<i64>,
}

/// A snapshot of a history's numbers, for INFO and the status.
#[derive(Debug, Clone)]
pub struct HistoryView {
    pub replid: String,
    pub offset: i64,
    pub first_offset: i64,
    pub backlog_len: usize,
    pub source_replid: String,
    pub source_offset: i64,
}

impl History {
    /// Records what the policies did to the snapshot (shown per replica in the status).
    pub fn set_policies(&self, lines: Vec<String>) {
        if let Ok(mut policies) = self.policies.lock() {
            *policies = lines;
        }
    }

    pub fn policies(&self) -> Vec<String> {
        self.policies.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// A history whose stream starts at `start`. A new one starts at the source's
    /// `FULLRESYNC` offset for both: the offsets agree until a command is rewritten.
    pub fn new(
        replid: String,
        target: Target,
        source_replid: String,
        start: OffsetPair,
        backlog_bytes: usize,
        upstream_ack: AckHandle,
    ) -> Arc<Self> {
        let (end_offset, _) = watch::channel(start.relay);
        Arc::new(Self {
            replid,
            target,
            inner: Mutex::new(Inner {
                backlog: Backlog::new(backlog_bytes, start.relay),
                offsets: OffsetMap::new(start),
                source_replid,
                source_offset: start.source,
                end_reason: None,
                detached_since: None,
                last_ack: None,
            }),
            end_offset,
            policies: Mutex::default(),
            ended: AtomicBool::new(false),
            attached: AtomicUsize::new(0),
            upstream_ack,
        })
    }

    pub fn view(&self) -> HistoryView {
        let inner = lock(&self.inner);
        HistoryView {
            replid: self.replid.clone(),
            offset: inner.backlog.offset(),
            first_offset: inner.backlog.first_offset(),
            backlog_len: inner.backlog.len(),
            source_replid: inner.source_replid.clone(),
            source_offset: inner.source_offset,
        }
    }

    pub fn offset(&self) -> i64 {
        lock(&self.inner).backlog.offset()
    }

    /// Whether a replica asking for `psync_offset` can continue from the backlog.
    pub fn can_serve(&self, psync_offset: i64) -> bool {
        lock(&self.inner).backlog.can_serve(psync_offset)
    }

    pub fn read_from(&self, from: i64, max: usize) -> Option<Bytes> {
        lock(&self.inner).backlog.read_from(from, max)
    }

    /// Whether `offset` falls between two commands of the stream, counting from `from`,
    /// a known command start (the history's first byte when it was rebuilt). Decodes the
    /// held bytes in between: exact, where looking at one byte would only be likely.
    pub fn is_command_boundary(&self, from: i64, offset: i64) -> bool {
        if offset == from {
            return true;
        }
        let Ok(len) = usize::try_from(offset - from) else {
            return false;
        };
        let Some(bytes) = self.read_from(from + 1, len) else {
            return false;
        };
        if bytes.len() != len {
            return false;
        }
        let mut buffer = bytes::BytesMut::from(&bytes[..]);
        let limits = ferry_repl::resp::Limits {
            max_bulk_len: u64::MAX,
            ..ferry_repl::resp::Limits::default()
        };
        let mut decoder =
            ferry_repl::resp::FrameDecoder::new(ferry_repl::resp::Mode::Replies, limits);
        loop {
            if buffer.is_empty() {
                return true;
            }
            match decoder.decode(&mut buffer) {
                Ok(Some(_)) => {}
                _ => return false,
            }
        }
    }

    /// Changes whenever the stream grows or the history ends.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.end_offset.subscribe()
    }

    fn append(&self, bytes: &[u8], boundary: Option<OffsetPair>, source_offset: i64) {
        let end = {
            let mut inner = lock(&self.inner);
            inner.backlog.append(bytes);
            if let Some(pair) = boundary {
                inner.offsets.record(pair);
            }
            inner.source_offset = source_offset;
            inner.backlog.offset()
        };
        self.end_offset.send_replace(end);
    }

    /// A replica holds `relay_offset` bytes: the source offset that covers, also reported
    /// to the source as ferry's ACK.
    pub fn record_ack(&self, relay_offset: i64) -> Option<i64> {
        let source = {
            let mut inner = lock(&self.inner);
            inner.last_ack = Some(relay_offset);
            inner.offsets.source_for(relay_offset)
        };
        if let Some(source) = source {
            self.upstream_ack.set_applied(source);
        }
        source
    }

    /// Where a restarted ferry can pick this history up: the boundary at or before the
    /// last ACK (or the start, before any).
    pub fn saved(&self) -> Option<SavedHistory> {
        let inner = lock(&self.inner);
        let pair = match inner.last_ack {
            Some(ack) => inner.offsets.pair_at_or_before(ack),
            None => inner.offsets.first(),
        }?;
        Some(SavedHistory {
            replid: self.replid.clone(),
            rdb_version: self.target.format.version.number,
            source_replid: inner.source_replid.clone(),
            relay_offset: pair.relay,
            source_offset: pair.source,
        })
    }

    pub fn end(&self, reason: impl Into<String>) {
        let mut inner = lock(&self.inner);
        if inner.end_reason.is_none() {
            inner.end_reason = Some(reason.into());
        }
        self.ended.store(true, Ordering::Relaxed);
        drop(inner);
        self.end_offset.send_modify(|_| {});
    }

    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    pub fn end_reason(&self) -> Option<String> {
        lock(&self.inner).end_reason.clone()
    }

    pub fn attach(&self) {
        self.attached.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner).detached_since = None;
    }

    pub fn detach(&self) {
        if self.attached.fetch_sub(1, Ordering::Relaxed) == 1 {
            lock(&self.inner).detached_since = Some(Instant::now());
        }
    }

    fn idle_for(&self) -> Option<Duration> {
        lock(&self.inner)
            .detached_since
            .map(|since| since.elapsed())
    }

    fn source_position(&self) -> (String, i64) {
        let inner = lock(&self.inner);
        (inner.source_replid.clone(), inner.source_offset)
    }

    fn set_source_replid(&self, replid: String) {
        lock(&self.inner).source_replid = replid;
    }
}

/// A replica connection to the source, handshake done.
/// A replica connection to the source's primary: for a Sentinel source, the one its
/// sentinels name now (a failover moved it), over TLS made for that host.
pub async fn connect_source(relay: &Relay) -> Result<ReplicaConnection, ReplError> {
    let config = &relay.config;
    let (primary, upgrade) = match &config.source_url.sentinel {
        None => (config.source_url.clone(), config.source_upgrade.clone()),
        Some(sentinels) => {
            let unreachable =
                |cause: Box<dyn std::error::Error + Send + Sync>| ReplError::Connect {
                    address: sentinels.addresses(),
                    cause: std::io::Error::other(cause),
                };
            let primary =
                crate::server::sentinel::locate(&config.source_url, config.connect_timeout)
                    .await
                    .map_err(|e| unreachable(Box::new(e)))?;
            let upgrade = crate::tls::TlsConnector::for_url(&primary, config.connect_timeout)
                .map_err(|e| unreachable(Box::new(e)))?
                .map(|tls| Arc::new(tls) as Arc<dyn ferry_repl::StreamUpgrade>);
            if primary.address() != relay.source_now().address() {
                relay.log(format!(
                    "source {}: the sentinels of {:?} name {} as the primary now",
                    config.source_url,
                    sentinels.master_name,
                    primary.address()
                ));
            }
            relay.set_source_now(primary.clone());
            (primary, upgrade)
        }
    };
    let source = &config.source_info;
    let announce_version =
        (source.product == "valkey" && source.series().0 >= 9).then(|| source.version.clone());
    let options = ConnectOptions {
        username: config.source_url.username.clone(),
        password: config
            .source_url
            .password
            .as_ref()
            .map(|p| Secret::new(p.expose())),
        announce_version,
        connect_timeout: config.connect_timeout,
        upgrade,
        ..ConnectOptions::default()
    };
    ReplicaConnection::connect(&primary.address(), options).await
}

/// Follows the source's command stream into the history until it ends: the source
/// refuses to continue after a loss, stays unreachable, sends what the policies refuse,
/// or no replica has been attached for the backlog TTL.
pub async fn follow(
    relay: Arc<Relay>,
    history: Arc<History>,
    mut repl: ReplicaConnection,
    mut translator: StreamTranslator,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut out = BytesMut::with_capacity(BATCH_BYTES * 2);
    loop {
        if history.is_ended() {
            return;
        }
        tokio::select! {
            command = repl.next_command() => {
                let result = match command {
                    Ok(command) => take_batch(&history, &mut repl, &mut translator, &mut out, command),
                    Err(error) => Err(Stop::Lost(error)),
                };
                match result {
                    Ok(()) => {}
                    Err(Stop::Refused(line)) => {
                        // Which replicas: a policy acts by the format they were sent.
                        relay.log(format!(
                            "history {} (for {}): {line}; replicas of it are disconnected",
                            short(&history.replid),
                            history.target.name
                        ));
                        history.end(line);
                        return;
                    }
                    Err(Stop::Lost(error)) => match reconnect(&relay, &history, error).await {
                        Some(new) => repl = new,
                        None => return,
                    },
                }
            }
            _ = ticker.tick() => {
                if history.idle_for().is_some_and(|idle| idle >= relay.config.backlog_ttl) {
                    relay.log(format!(
                        "history {}: no replica for {} s; stopped following the source for it",
                        short(&history.replid),
                        relay.config.backlog_ttl.as_secs()
                    ));
                    history.end("no replica attached");
                    return;
                }
            }
        }
    }
}

enum Stop {
    Lost(ReplError),
    /// The stream cannot go on (a policy refused a command): the line says why.
    Refused(String),
}

/// Takes `first` and whatever else already arrived into one backlog append.
fn take_batch(
    history: &History,
    repl: &mut ReplicaConnection,
    translator: &mut StreamTranslator,
    out: &mut BytesMut,
    first: ReplCommand,
) -> Result<(), Stop> {
    let base = history.offset();
    let mut boundary = None;
    let mut source_offset = first.offset_after;
    let mut command = Some(first);
    while let Some(next) = command.take() {
        source_offset = next.offset_after;
        let at_boundary = translator
            .add(next, out)
            .map_err(|error| Stop::Refused(crate::error::one_line(crate::error::chain(&error))))?;
        if at_boundary {
            boundary = Some(OffsetPair {
                relay: base + out.len() as i64,
                source: source_offset,
            });
        }
        if out.len() >= BATCH_BYTES {
            break;
        }
        // Only what is already buffered: never wait here.
        command = match futures_now(repl.next_command()) {
            Some(Ok(next)) => Some(next),
            Some(Err(error)) => {
                history.append(out, boundary, source_offset);
                out.clear();
                return Err(Stop::Lost(error));
            }
            None => None,
        };
    }
    history.append(out, boundary, source_offset);
    out.clear();
    Ok(())
}

/// Polls a future once: its output if it is ready now. `next_command` is cancel-safe, so
/// dropping it unfinished loses nothing.
fn futures_now<F: std::future::Future>(future: F) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut context = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// Connects again and asks the source to continue where the history is. `None` when
/// the history ended (the source refused or stayed away too long).
async fn reconnect(
    relay: &Relay,
    history: &History,
    error: ReplError,
) -> Option<ReplicaConnection> {
    relay.log(format!(
        "history {}: lost the source ({}); reconnecting",
        short(&history.replid),
        crate::error::one_line(crate::error::chain(&error))
    ));
    let mut window = Reconnect::default();
    loop {
        if history.is_ended() {
            return None;
        }
        if !window.lost() {
            history.end("the source stayed unreachable");
            relay.log(format!(
                "history {}: the source stayed unreachable for {} s; replicas of it are disconnected",
                short(&history.replid),
                RECONNECT_FOR.as_secs()
            ));
            return None;
        }
        Reconnect::pause(std::future::pending()).await;
        let (replid, offset) = history.source_position();
        let mut repl = match connect_source(relay).await {
            Ok(repl) => repl,
            Err(_) => continue,
        };
        match repl.psync(Some(&replid), offset).await {
            Ok(PsyncOutcome::Continue { replid: new_id }) => {
                let config = &relay.config;
                let checked = continuation::verify_at(
                    &relay.source_now(),
                    config.connect_timeout,
                    &replid,
                    offset,
                    &new_id,
                )
                .await;
                match checked {
                    Ok(()) => {}
                    // Unchecked is not accepted: tried again like a failed connect.
                    Err(CheckError::Info(_)) => continue,
                    Err(CheckError::Refused(refused)) => {
                        relay.log(format!(
                            "history {}: {refused}; replicas of it are disconnected and \
                             resync in full",
                            short(&history.replid)
                        ));
                        history.end("the source's +CONTINUE did not hold");
                        return None;
                    }
                }
                relay.log(format!(
                    "history {}: the source continued (+CONTINUE) at offset {offset}",
                    short(&history.replid)
                ));
                history.set_source_replid(new_id);
                return Some(repl);
            }
            Ok(PsyncOutcome::FullResync { .. }) => {
                relay.log(format!(
                    "history {}: the source refused a partial resync; replicas of it are disconnected and resync in full",
                    short(&history.replid)
                ));
                history.end("the source refused a partial resync");
                return None;
            }
            Err(_) => continue,
        }
    }
}

/// The first characters of a replication ID, for log lines.
pub fn short(replid: &str) -> &str {
    replid.get(..8).unwrap_or(replid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_boundaries_are_found_by_decoding_from_a_known_start() {
        let target = Target::from_profile("valkey-8.1").unwrap();
        let start = OffsetPair {
            relay: 100,
            source: 100,
        };
        let history = History::new(
            "a".repeat(40),
            target,
            "b".repeat(40),
            start,
            1 << 20,
            AckHandle::default(),
        );
        let ping = b"*1\r\n$4\r\nPING\r\n"; // 14 bytes
        let set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n*x\r\n"; // a value starting with '*'
        history.append(ping, None, 114);
        history.append(set, None, 150);
        assert!(history.is_command_boundary(100, 100));
        assert!(history.is_command_boundary(100, 114));
        assert!(history.is_command_boundary(100, 114 + set.len() as i64));
        // Inside the SET, right where a '*' byte starts its value: not a boundary.
        let star = set.iter().rposition(|&b| b == b'*').unwrap() as i64;
        assert!(!history.is_command_boundary(100, 114 + star));
        assert!(!history.is_command_boundary(100, 120));
        assert!(!history.is_command_boundary(100, 1_000), "past the end");
    }
}
