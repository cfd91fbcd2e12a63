//! One client of the relay: the handshake a replica sends (or INFO from a person), then
//! either `+CONTINUE` from a history's backlog or a full sync into a new history, then
//! the stream with the replica's ACKs read back.
//!
//! A peer that sends invalid RESP, leaves mid-RDB, or skips AUTH when a password is set
//! gets one log line and its connection closed; histories and other replicas go on.
//! Before it replicates, a connection holds one of the gate's places and must keep to its
//! limits ([`gate`]: time to authenticate, time between commands, request size); lines
//! about clients refused then are rate-limited per kind.
//!
//! A session goes through the files in order: `handshake.rs` (requests, AUTH, REPLCONF,
//! INFO) until PSYNC; `psync.rs` (`+CONTINUE` from a live or a saved history, else
//! `full_sync.rs`); then `streaming.rs` until either side ends. Each step ends the session
//! with a [`SessionError`], which [`serve`] logs.

mod error;
mod full_sync;
mod handshake;
mod psync;
mod streaming;

pub use error::{Refusal, SessionError};

use super::gate::{self, Slot};
use super::Relay;
use crate::error::{chain, one_line};
use bytes::BytesMut;
use ferry_repl::resp::{FrameDecoder, Mode};
use ferry_repl::BoxedStream;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};

/// How often a newline keeps a waiting replica's link alive.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(1);

const ORDER: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

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
        decoder: FrameDecoder::new(Mode::Requests, handshake::request_limits()),
        authenticated: relay.config.password.is_none(),
        listening_port: None,
        version: None,
        capa_eof: false,
        sentinel: false,
        slot: Some(slot),
        auth_deadline: tokio::time::Instant::now() + gate::HANDSHAKE_TIMEOUT,
    };
    if let Err(error) = session.run().await {
        let line = format!(
            "{}: {}; connection closed",
            session.name(),
            one_line(chain(&error))
        );
        match error.refusal() {
            Some(kind) => relay.log_refusal(kind, line),
            None => relay.log(line),
        }
    }
    relay.remove_replica(id);
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
    /// The peer named itself as a sentinel: INFO shows the relay as a replica that is
    /// never promoted.
    sentinel: bool,
    /// The gate's place, held until PSYNC.
    slot: Option<Slot>,
    /// When a client that has not authenticated (a password is set) is closed.
    auth_deadline: tokio::time::Instant,
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

    /// Writes and flushes: over TLS, bytes may otherwise wait in the session's buffer.
    async fn reply(&mut self, text: impl AsRef<[u8]>) -> Result<(), SessionError> {
        write_flushed(&mut self.writer, text.as_ref())
            .await
            .map_err(SessionError::Write)
    }

    /// Runs `future`, writing a keep-alive newline every second while it is pending (a
    /// replica accepts them before the PSYNC reply and before the snapshot header).
    async fn keepalive<F: Future>(&mut self, future: F) -> Result<F::Output, SessionError> {
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
