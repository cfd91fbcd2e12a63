//! One client of the relay: the handshake a replica sends (or INFO from a person), then
//! either `+CONTINUE` from a history's backlog or a full sync into a new history, then
//! the stream with the replica's ACKs read back.
//!
//! A peer that sends invalid RESP, leaves mid-RDB, or skips AUTH when a password is set
//! gets one log line and its connection closed; histories and other replicas go on.
//! Before it replicates, a connection holds one of the gate's places and must keep to its
//! limits ([`gate`]: time to authenticate, time between commands, request size); lines
//! about clients refused then are rate-limited per kind.

use super::gate::{self, Slot};
use super::history::{self, short, History};
use super::offsets::OffsetPair;
use super::saved::SavedHistory;
use super::stream::StreamTranslator;
use super::{info, rdb, Relay, ReplicaStatus};
use crate::display::size;
use crate::server::probe::ServerInfo;
use crate::sources::replication::continuation;
use crate::target::Target;
use crate::transforms::commands::CommandTranslator;
use bytes::{Bytes, BytesMut};
use ferry_repl::primary::{
    continue_line, full_resync_line, new_replid, EofMark, ReplConf, Request,
};
use ferry_repl::resp::{FrameDecoder, Limits, Mode};
use ferry_repl::BoxedStream;
use ferry_repl::{snapshot_channel, PsyncOutcome, SnapshotFraming};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;

/// Stream bytes written to a replica per backlog read.
const SEND_BYTES: usize = 256 << 10;
/// How long a restarted ferry waits for the rebuilt stream to reach a replica's offset.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a newline keeps a waiting replica's link alive.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(1);

type Reader = ReadHalf<BoxedStream>;
type Writer = WriteHalf<BoxedStream>;

/// Serves one connection (plain TCP, or TLS once the handshake is done) to its end;
/// failures are logged, never propagated.
pub async fn serve(relay: Arc<Relay>, stream: BoxedStream, peer: SocketAddr, slot: Slot) {
    let (reader, writer) = tokio::io::split(stream);
    let id = relay.next_id();
    let mut session = Session {
        relay: relay.clone(),
        id,
        peer,
        reader,
        writer,
        buffer: BytesMut::with_capacity(4096),
        decoder: FrameDecoder::new(Mode::Requests, request_limits()),
        authenticated: relay.config.password.is_none(),
        listening_port: None,
        version: None,
        capa_eof: false,
        slot: Some(slot),
        auth_deadline: tokio::time::Instant::now() + gate::HANDSHAKE_TIMEOUT,
        refusal: None,
    };
    if let Err(reason) = session.run().await {
        let line = format!("{}: {reason}; connection closed", session.name());
        match session.refusal {
            Some(kind) => relay.log_refusal(kind, line),
            None => relay.log(line),
        }
    }
    relay.remove_replica(id);
}

/// A replica's requests are short; anything bigger is garbage.
fn request_limits() -> Limits {
    Limits {
        max_bulk_len: 1 << 20,
        max_line_len: 64 << 10,
        max_depth: 2,
    }
}

struct Session {
    relay: Arc<Relay>,
    id: u64,
    peer: SocketAddr,
    reader: Reader,
    writer: Writer,
    buffer: BytesMut,
    decoder: FrameDecoder,
    authenticated: bool,
    listening_port: Option<u16>,
    version: Option<String>,
    capa_eof: bool,
    /// The gate's place, held until PSYNC.
    slot: Option<Slot>,
    /// When a client that has not authenticated (a password is set) is closed.
    auth_deadline: tokio::time::Instant,
    /// Set when the session ends as a refused client: its line is rate-limited by kind.
    refusal: Option<&'static str>,
}

impl Session {
    /// Who this is in log lines: the address, and for a replica the port it listens on
    /// and the version it announced (which decides the format it is sent).
    fn name(&self) -> String {
        let version = match &self.version {
            Some(version) => format!(", version {version}"),
            None => String::new(),
        };
        match self.listening_port {
            Some(port) => format!("replica {} (listening on {port}{version})", self.peer),
            None => format!("client {}", self.peer),
        }
    }

    /// Ends the session as a refused client of `kind`.
    fn refuse(&mut self, kind: &'static str, reason: String) -> Result<(), String> {
        self.refusal = Some(kind);
        Err(reason)
    }

    async fn run(&mut self) -> Result<(), String> {
        loop {
            let Some(args) = self.next_command().await? else {
                return Ok(());
            };
            let request = match Request::parse(&args) {
                Ok(request) => request,
                Err(bad) => {
                    self.reply(format!("-ERR {bad}\r\n")).await?;
                    return self.refuse("malformed requests", format!("sent a malformed {bad}"));
                }
            };
            // Replication and INFO need AUTH: refused, logged and closed. Anything else
            // before AUTH gets the error alone, as from a server.
            let needs_auth = matches!(
                request,
                Request::ReplConf(_) | Request::Psync { .. } | Request::Sync | Request::Info { .. }
            );
            if !self.authenticated && needs_auth {
                self.reply("-NOAUTH Authentication required.\r\n").await?;
                return self.refuse(
                    "unauthenticated requests",
                    format!(
                        "sent {} without AUTH while a password is required",
                        command_name(&args)
                    ),
                );
            }
            match request {
                // A replica pings before it authenticates and accepts this answer; client
                // libraries send CLIENT SETINFO and the like before AUTH.
                Request::Ping | Request::Other { .. } if !self.authenticated => {
                    self.reply("-NOAUTH Authentication required.\r\n").await?
                }
                Request::Ping => self.reply("+PONG\r\n").await?,
                Request::Auth { password, .. } => self.auth(&password).await?,
                Request::ReplConf(options) => self.replconf(options).await?,
                Request::Psync { replid, offset } => {
                    // Replicating now: the place goes to the next connection.
                    self.slot = None;
                    return self.psync(&replid, offset).await;
                }
                Request::Sync => {
                    self.reply("-ERR ferry relay serves PSYNC replicas only\r\n")
                        .await?;
                    return Err("asked for SYNC (a replica older than PSYNC)".into());
                }
                Request::Info { sections } => {
                    let text = info::render(&self.relay, &sections);
                    self.reply(format!("${}\r\n{text}\r\n", text.len())).await?
                }
                Request::Quit => {
                    self.reply("+OK\r\n").await?;
                    return Ok(());
                }
                Request::Other { name } => {
                    self.reply(format!(
                        "-ERR unknown command '{name}': ferry relay answers the replication \
                         handshake, INFO and PING\r\n"
                    ))
                    .await?
                }
            }
        }
    }

    /// The next command; `None` when the peer closed between commands. Within the
    /// handshake limits: each command complete within [`gate::HANDSHAKE_TIMEOUT`] (a
    /// client dripping bytes never completes one), AUTH within it of connecting, and no
    /// request over [`gate::MAX_REQUEST_BYTES`].
    async fn next_command(&mut self) -> Result<Option<Vec<Bytes>>, String> {
        let idle_until = tokio::time::Instant::now() + gate::HANDSHAKE_TIMEOUT;
        let auth_due = !self.authenticated && self.auth_deadline < idle_until;
        let deadline = if auth_due {
            self.auth_deadline
        } else {
            idle_until
        };
        loop {
            match self.decoder.decode(&mut self.buffer) {
                Ok(Some((frame, _))) => {
                    if frame.is_keepalive() {
                        continue;
                    }
                    return match frame.command_args() {
                        Some(args) => Ok(Some(args)),
                        None => {
                            self.refusal = Some("clients sending invalid RESP");
                            Err(format!("sent {} instead of a command", frame.describe()))
                        }
                    };
                }
                Ok(None) => {}
                Err(error) => {
                    let _ = self.reply("-ERR Protocol error: invalid request\r\n").await;
                    self.refusal = Some("clients sending invalid RESP");
                    return Err(format!("sent invalid RESP ({error})"));
                }
            }
            if self.buffer.len() > gate::MAX_REQUEST_BYTES {
                let _ = self.reply("-ERR Protocol error: request too big\r\n").await;
                self.refusal = Some("oversized requests");
                return Err(format!(
                    "sent {} without completing a request (the limit is {})",
                    size(self.buffer.len() as u64),
                    size(gate::MAX_REQUEST_BYTES as u64)
                ));
            }
            let read =
                match tokio::time::timeout_at(deadline, self.reader.read_buf(&mut self.buffer))
                    .await
                {
                    Ok(read) => read,
                    Err(_) if auth_due => {
                        self.refusal = Some("idle or slow clients");
                        return Err(format!(
                            "did not authenticate within {:?} of connecting",
                            gate::HANDSHAKE_TIMEOUT
                        ));
                    }
                    Err(_) => {
                        self.refusal = Some("idle or slow clients");
                        return Err(format!(
                            "completed no command in {:?} before replicating",
                            gate::HANDSHAKE_TIMEOUT
                        ));
                    }
                };
            let read = closed_is_end(read).map_err(|e| format!("read failed ({e})"))?;
            if read == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err("closed the connection in the middle of a command".into())
                };
            }
        }
    }

    /// Writes and flushes: over TLS, bytes may otherwise wait in the session's buffer.
    async fn reply(&mut self, text: impl AsRef<[u8]>) -> Result<(), String> {
        write_flushed(&mut self.writer, text.as_ref())
            .await
            .map_err(|e| format!("write failed ({e})"))
    }

    async fn auth(&mut self, password: &[u8]) -> Result<(), String> {
        match &self.relay.config.password {
            None => {
                self.reply("-ERR AUTH called without any password configured (ferry relay has no --requirepass-file)\r\n")
                    .await
            }
            Some(expected) if expected.as_bytes() == password => {
                self.authenticated = true;
                self.reply("+OK\r\n").await
            }
            Some(_) => {
                self.reply("-WRONGPASS invalid username-password pair or user is disabled.\r\n")
                    .await?;
                self.refuse("wrong passwords", "sent a wrong password".into())
            }
        }
    }

    async fn replconf(&mut self, options: Vec<ReplConf>) -> Result<(), String> {
        let mut answer = true;
        for option in options {
            match option {
                ReplConf::ListeningPort(port) => self.listening_port = Some(port),
                ReplConf::Capa(capa) if capa == "eof" => self.capa_eof = true,
                ReplConf::Version(version) => self.version = Some(version),
                // Not answered, as by a primary.
                ReplConf::Ack(_) | ReplConf::GetAck => answer = false,
                _ => {}
            }
        }
        if answer {
            self.reply("+OK\r\n").await?;
        }
        Ok(())
    }

    /// The format this replica loads: from its `REPLCONF version` (Valkey 9 and later
    /// read RDB 80, earlier ones and replicas that do not say RDB 11), unless overridden.
    fn replica_target(&self) -> Target {
        if let Some(target) = &self.relay.config.replica_format {
            return target.clone();
        }
        let info = ServerInfo {
            product: "valkey".into(),
            version: self.version.clone().unwrap_or_else(|| "8.0.0".into()),
            is_replica: true,
            keys_per_db: Default::default(),
        };
        let format = info.expected_format();
        let name = match &self.version {
            Some(version) => format!("valkey {version} replica"),
            None => "a replica".into(),
        };
        Target { format, name }
    }

    async fn psync(&mut self, replid: &str, offset: i64) -> Result<(), String> {
        if !self.capa_eof {
            self.reply(
                "-ERR ferry relay sends diskless snapshots; the replica must announce capa eof\r\n",
            )
            .await?;
            return Err("did not announce capa eof".into());
        }
        if let Some(history) = self.relay.history(replid) {
            if history.can_serve(offset) {
                self.relay.counters.partial_ok.fetch_add(1, ORDER);
                let backlog = history.offset() - (offset - 1);
                self.reply(continue_line(&history.replid)).await?;
                self.relay.log(format!(
                    "{}: partial resync accepted (+CONTINUE {} at offset {}), {} from the backlog",
                    self.name(),
                    short(&history.replid),
                    offset - 1,
                    size(backlog.max(0) as u64),
                ));
                return self.stream(history, offset - 1, false).await;
            }
        }
        if let Some(saved) = self.relay.take_dormant(replid) {
            if let Some(history) = self.revive(&saved, offset).await? {
                self.relay.counters.partial_ok.fetch_add(1, ORDER);
                self.reply(continue_line(&history.replid)).await?;
                self.relay.log(format!(
                    "{}: partial resync accepted (+CONTINUE {} at offset {}) after ferry's restart",
                    self.name(),
                    short(&history.replid),
                    offset - 1,
                ));
                return self.stream(history, offset - 1, false).await;
            }
        }
        if replid != "?" {
            self.relay.counters.partial_err.fetch_add(1, ORDER);
        }
        // A replica new to this relay asks with `?` or with its own ID (a server turned
        // replica offers its own history): a first attach, not a failed continue.
        if self.relay.issued(replid) {
            self.relay.log(format!(
                "{}: cannot continue {} at offset {} (its history ended or the offset is out \
                 of the backlog); full sync",
                self.name(),
                short(replid),
                offset - 1
            ));
        } else {
            self.relay.log(format!(
                "{}: first attach to this relay; full sync",
                self.name()
            ));
        }
        self.relay.counters.full.fetch_add(1, ORDER);
        let (history, start) = self.full_sync().await?;
        // After an `$EOF:` snapshot the replica finds the end mark only as the last bytes
        // of a read: the stream waits for its first ACK (sent once it loaded), as a
        // primary does.
        self.stream(history, start, true).await
    }

    /// Picks up a history saved by an earlier run: the source continues from the saved
    /// source offset and the relay's stream is rebuilt from the saved relay offset, the
    /// same bytes as before, until it reaches what the replica holds. `None` when that
    /// cannot be (the source refused, or the replica is not at a point of the rebuilt
    /// stream): the replica gets a full sync.
    async fn revive(
        &mut self,
        saved: &SavedHistory,
        offset: i64,
    ) -> Result<Option<Arc<History>>, String> {
        let relay = self.relay.clone();
        let have = offset - 1;
        let Ok(target) = Target::from_rdb_version(saved.rdb_version) else {
            return Ok(None);
        };
        if have < saved.relay_offset {
            relay.log(format!(
                "{}: holds offset {have} of {}, before the saved point {}; full sync",
                self.name(),
                short(&saved.replid),
                saved.relay_offset
            ));
            return Ok(None);
        }
        relay.log(format!(
            "{}: picking up history {} saved at offset {} (source offset {})",
            self.name(),
            short(&saved.replid),
            saved.relay_offset,
            saved.source_offset
        ));
        let source_error = |e: ferry_repl::ReplError| {
            format!(
                "the source failed: {}",
                crate::error::one_line(crate::error::chain(&e))
            )
        };
        let connected = self
            .keepalive(history::connect_source(&relay.config))
            .await?;
        let mut repl = match connected {
            Ok(repl) => repl,
            Err(error) => {
                // Keep the saved point for the replica's next attempt.
                relay.put_back_dormant(saved.clone());
                return Err(source_error(error));
            }
        };
        let outcome = self
            .keepalive(repl.psync(Some(&saved.source_replid), saved.source_offset))
            .await?
            .map_err(source_error)?;
        let PsyncOutcome::Continue {
            replid: source_replid,
        } = outcome
        else {
            relay.log(format!(
                "history {}: the source refused to continue from offset {}; full sync",
                short(&saved.replid),
                saved.source_offset
            ));
            return Ok(None);
        };
        let checked = continuation::verify_at(
            &relay.config.source_url,
            relay.config.connect_timeout,
            &saved.source_replid,
            saved.source_offset,
            &source_replid,
        )
        .await;
        if let Err(error) = checked {
            // Unchecked (INFO unreadable) is not taken on trust either.
            relay.log(format!(
                "history {}: not continued: {error}; full sync",
                short(&saved.replid)
            ));
            return Ok(None);
        }
        let history = History::new(
            saved.replid.clone(),
            target.clone(),
            source_replid,
            OffsetPair {
                relay: saved.relay_offset,
                source: saved.source_offset,
            },
            relay.config.backlog_bytes,
            repl.ack_handle(),
        );
        repl.ack_handle().set_applied(saved.source_offset);
        relay.add_history(history.clone());
        let translator = CommandTranslator::new(&relay.config.policies, &target);
        tokio::spawn(history::follow(
            relay.clone(),
            history.clone(),
            repl,
            StreamTranslator::new(translator),
        ));
        let mut changes = history.subscribe();
        let caught_up = async {
            while history.offset() < have && !history.is_ended() {
                if changes.changed().await.is_err() {
                    break;
                }
            }
        };
        let waited = self
            .keepalive(tokio::time::timeout(REBUILD_TIMEOUT, caught_up))
            .await?;
        // A point inside a command would hand the replica half of it: the replica's
        // offset must fall between two commands of the rebuilt stream.
        let at_command = history.is_command_boundary(saved.relay_offset, have);
        if waited.is_ok() && at_command {
            return Ok(Some(history));
        }
        relay.log(format!(
            "{}: offset {have} is not a point of the rebuilt stream of {} (it reached {}); full sync",
            self.name(),
            short(&saved.replid),
            history.offset()
        ));
        history.end("not resumable");
        Ok(None)
    }

    /// Runs `future`, writing a keep-alive newline every second while it is pending (a
    /// replica accepts them before the PSYNC reply and before the snapshot header).
    async fn keepalive<F: Future>(&mut self, future: F) -> Result<F::Output, String> {
        tokio::pin!(future);
        let start = tokio::time::Instant::now() + KEEPALIVE_EVERY;
        let mut ticker = tokio::time::interval_at(start, KEEPALIVE_EVERY);
        loop {
            tokio::select! {
                output = &mut future => return Ok(output),
                _ = ticker.tick() => self.reply("\n").await?,
            }
        }
    }

    /// A new history: the source's snapshot, translated for this replica, then its stream.
    /// Returns the history and the offset the replica holds after the snapshot.
    async fn full_sync(&mut self) -> Result<(Arc<History>, i64), String> {
        let relay = self.relay.clone();
        let config = &relay.config;
        let target = self.replica_target();
        relay.log(format!(
            "{}: full sync for {} ({}); asking the source {} for a snapshot",
            self.name(),
            target.name,
            target.format.version,
            config.source_url
        ));
        let source_error = |e: ferry_repl::ReplError| {
            format!(
                "the source failed: {}",
                crate::error::one_line(crate::error::chain(&e))
            )
        };
        let mut repl = self
            .keepalive(history::connect_source(config))
            .await?
            .map_err(source_error)?;
        let outcome = self
            .keepalive(repl.psync(None, 0))
            .await?
            .map_err(source_error)?;
        let PsyncOutcome::FullResync {
            replid: source_replid,
            offset: start,
        } = outcome
        else {
            return Err("the source answered +CONTINUE to a request for a full copy".into());
        };
        let history = History::new(
            new_replid(),
            target.clone(),
            source_replid,
            OffsetPair {
                relay: start,
                source: start,
            },
            config.backlog_bytes,
            repl.ack_handle(),
        );
        self.reply(full_resync_line(&history.replid, start)).await?;

        let started = Instant::now();
        let stream = {
            let snapshot = repl.snapshot();
            // The borrow of `repl` ends with the stream; keep-alives need only the writer.
            tokio::pin!(snapshot);
            let start_at = tokio::time::Instant::now() + KEEPALIVE_EVERY;
            let mut ticker = tokio::time::interval_at(start_at, KEEPALIVE_EVERY);
            loop {
                tokio::select! {
                    stream = &mut snapshot => break stream.map_err(source_error)?,
                    _ = ticker.tick() => write_flushed(&mut self.writer, b"\n").await.map_err(|e| format!("write failed ({e})"))?,
                }
            }
        };
        let total = match stream.framing() {
            SnapshotFraming::Sized(len) => Some(len),
            SnapshotFraming::EndMark => None,
        };
        let (sender, reader) = snapshot_channel(config.chunks);
        let (chunk_sender, chunk_receiver) = mpsc::channel::<Bytes>(config.chunks);
        let translator = CommandTranslator::new(&config.policies, &target);
        let producer =
            rdb::spawn_producer(reader, total, target, config.policies.clone(), chunk_sender);
        let forward = stream.forward(sender);
        let mark = EofMark::new();
        let write = send_rdb(
            &mut self.writer,
            (&mut self.reader, &mut self.buffer),
            chunk_receiver,
            &mark,
        );
        let (forwarded, written) = tokio::join!(forward, write);
        let produced = producer
            .await
            .map_err(|e| format!("the RDB producer stopped: {e}"))?;
        if let Err(error) = written {
            return Err(format!("left during the full sync ({error})"));
        }
        let produced = produced.map_err(|e| {
            format!(
                "the snapshot could not be relayed: {}",
                crate::error::one_line(crate::error::chain(&e))
            )
        })?;
        forwarded.map_err(source_error)?;
        // Only now, with the whole RDB produced, does the replica see its end.
        self.reply(mark.trailer()).await?;
        let seconds = started.elapsed().as_secs_f64();
        relay.log(format!(
            "{}: full sync sent: {} keys, {} RDB in {seconds:.1} s ({:.0} keys/s); streaming as {} from offset {start}",
            self.name(),
            produced.keys,
            size(produced.bytes),
            produced.keys as f64 / seconds.max(1e-3),
            short(&history.replid),
        ));
        // Replicas of different versions are treated differently: each line says which.
        for line in produced.policy_lines {
            relay.log(format!("{}: {line}", self.name()));
        }
        relay.add_history(history.clone());
        tokio::spawn(history::follow(
            relay.clone(),
            history.clone(),
            repl,
            StreamTranslator::new(translator),
        ));
        Ok((history, start))
    }

    /// Sends the history's stream from `have` (bytes the replica holds) and reads its
    /// ACKs, until either side ends.
    async fn stream(
        &mut self,
        history: Arc<History>,
        have: i64,
        after_snapshot: bool,
    ) -> Result<(), String> {
        history.attach();
        self.relay.set_replica(
            self.id,
            ReplicaStatus {
                address: self.peer.ip().to_string(),
                listening_port: self.listening_port,
                state: "online",
                ack_offset: have,
                source_offset: None,
                last_ack: Instant::now(),
                replid: history.replid.clone(),
            },
        );
        let result = self.stream_loop(&history, have, after_snapshot).await;
        history.detach();
        result
    }

    async fn stream_loop(
        &mut self,
        history: &History,
        have: i64,
        after_snapshot: bool,
    ) -> Result<(), String> {
        let mut changes = history.subscribe();
        let mut sent = have;
        let mut acked = !after_snapshot;
        loop {
            if acked {
                sent = self.send_from_backlog(history, sent).await?;
            }
            if let Some(reason) = history.end_reason() {
                return Err(format!("its history ended ({reason})"));
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Err("its history ended".into());
                    }
                }
                read = self.reader.read_buf(&mut self.buffer) => {
                    match closed_is_end(read) {
                        Ok(0) => return Err("disconnected".into()),
                        Ok(_) => acked |= self.take_acks(history)?,
                        Err(e) => return Err(format!("read failed ({e})")),
                    }
                    // What is left is an incomplete request: bounded as in the handshake.
                    if self.buffer.len() > gate::MAX_REQUEST_BYTES {
                        return Err(format!(
                            "sent {} that is not a complete command",
                            size(self.buffer.len() as u64)
                        ));
                    }
                }
            }
        }
    }

    /// Writes what the backlog holds after `sent`; returns the new `sent`.
    async fn send_from_backlog(&mut self, history: &History, mut sent: i64) -> Result<i64, String> {
        loop {
            match history.read_from(sent + 1, SEND_BYTES) {
                Some(bytes) if bytes.is_empty() => return Ok(sent),
                Some(bytes) => {
                    self.reply(&bytes).await?;
                    sent += bytes.len() as i64;
                }
                None => {
                    return Err(format!(
                        "fell more than the backlog ({}) behind; it will resync in full",
                        size(self.relay.config.backlog_bytes as u64)
                    ))
                }
            }
        }
    }

    /// Reads what the replica sent while streaming: ACKs (anything else is ignored, as a
    /// primary ignores a replica's other commands). Whether an ACK came.
    fn take_acks(&mut self, history: &History) -> Result<bool, String> {
        let mut acked = false;
        loop {
            let frame = match self.decoder.decode(&mut self.buffer) {
                Ok(Some((frame, _))) => frame,
                Ok(None) => return Ok(acked),
                Err(error) => return Err(format!("sent invalid RESP ({error})")),
            };
            let Some(args) = frame.command_args() else {
                continue;
            };
            if let Ok(Request::ReplConf(options)) = Request::parse(&args) {
                for option in options {
                    if let ReplConf::Ack(offset) = option {
                        acked = true;
                        let source = history.record_ack(offset);
                        self.relay.update_replica(self.id, |status| {
                            status.ack_offset = offset;
                            status.source_offset = source.or(status.source_offset);
                            status.last_ack = Instant::now();
                        });
                    }
                }
            }
        }
    }
}

const ORDER: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

/// Writes the RDB's header and bytes as chunks come; newlines until the first one. The
/// end mark is the caller's to send, once the producer succeeded. Owns the receiver, so
/// that on a failure the producer sees the replica gone at once. Also watches the
/// replica's side: one that closes is noticed even while its socket still takes bytes.
async fn send_rdb(
    writer: &mut Writer,
    (reader, received): (&mut Reader, &mut BytesMut),
    mut chunks: mpsc::Receiver<Bytes>,
    mark: &EofMark,
) -> Result<(), std::io::Error> {
    let mut started = false;
    let start_at = tokio::time::Instant::now() + KEEPALIVE_EVERY;
    let mut ticker = tokio::time::interval_at(start_at, KEEPALIVE_EVERY);
    loop {
        tokio::select! {
            chunk = chunks.recv() => match chunk {
                Some(chunk) => {
                    if !started {
                        writer.write_all(&mark.header()).await?;
                        started = true;
                    }
                    write_flushed(writer, &chunk).await?;
                }
                None => break,
            },
            _ = ticker.tick(), if !started => write_flushed(writer, b"\n").await?,
            read = reader.read_buf(received) => {
                if closed_is_end(read)? == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "the replica closed the connection",
                    ));
                }
                // A replica sends nothing while it receives; kept for after, bounded.
                if received.len() > 1 << 20 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the replica sent over 1 MiB during its full sync",
                    ));
                }
            }
        }
    }
    if !started {
        // An empty snapshot still needs its header before the end mark.
        write_flushed(writer, &mark.header()).await?;
    }
    Ok(())
}

/// A peer that hangs up without TLS's close_notify (most clients: it carries no data
/// over RESP) has closed, as over plain TCP, not failed.
fn closed_is_end(read: std::io::Result<usize>) -> std::io::Result<usize> {
    match read {
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        other => other,
    }
}

/// A write that reaches the socket: a TLS stream keeps what the socket did not take in
/// its buffer until flushed (plain TCP has nothing to flush).
async fn write_flushed(writer: &mut Writer, bytes: &[u8]) -> Result<(), std::io::Error> {
    writer.write_all(bytes).await?;
    writer.flush().await
}

fn command_name(args: &[Bytes]) -> String {
    args.first()
        .map(|name| String::from_utf8_lossy(&name[..name.len().min(32)]).to_ascii_uppercase())
        .unwrap_or_default()
}
