//! Streaming: the history's stream from the replica's offset on, as the backlog grows,
//! with the replica's ACKs read back (they move its offset in `INFO` and `/status`, and
//! tell cutover what the replica holds).

use super::{closed_is_end, Session, SessionError};
use crate::relay::history::History;
use crate::relay::{gate, ReplicaStatus};
use ferry_repl::primary::{ReplConf, Request};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncReadExt;

/// Stream bytes written to a replica per backlog read.
const SEND_BYTES: usize = 256 << 10;

impl Session {
    /// Sends the history's stream from `have` (bytes the replica holds) and reads its
    /// ACKs, until either side ends.
    pub(super) async fn stream(
        &mut self,
        history: Arc<History>,
        have: i64,
        after_snapshot: bool,
    ) -> Result<(), SessionError> {
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
                version: self.version.clone(),
                rdb: history.target.format.version.to_string(),
                policies: history.policies(),
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
    ) -> Result<(), SessionError> {
        let mut changes = history.subscribe();
        let mut sent = have;
        let mut acked = !after_snapshot;
        loop {
            if acked {
                sent = self.send_from_backlog(history, sent).await?;
            }
            if let Some(reason) = history.end_reason() {
                return Err(SessionError::HistoryEnded(reason));
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Err(SessionError::HistoryGone);
                    }
                }
                read = self.reader.read_buf(&mut self.buffer) => {
                    match closed_is_end(read) {
                        Ok(0) => return Err(SessionError::Disconnected),
                        Ok(_) => acked |= self.take_acks(history)?,
                        Err(e) => return Err(SessionError::Read(e)),
                    }
                    // What is left is an incomplete request: bounded as in the handshake.
                    if self.buffer.len() > gate::MAX_REQUEST_BYTES {
                        return Err(SessionError::IncompleteAck(self.buffer.len()));
                    }
                }
            }
        }
    }

    /// Writes what the backlog holds after `sent`; returns the new `sent`.
    async fn send_from_backlog(
        &mut self,
        history: &History,
        mut sent: i64,
    ) -> Result<i64, SessionError> {
        loop {
            match history.read_from(sent + 1, SEND_BYTES) {
                Some(bytes) if bytes.is_empty() => return Ok(sent),
                Some(bytes) => {
                    self.reply(&bytes).await?;
                    sent += bytes.len() as i64;
                }
                None => return Err(SessionError::BehindBacklog(self.relay.config.backlog_bytes)),
            }
        }
    }

    /// Reads what the replica sent while streaming: ACKs (anything else is ignored, as a
    /// primary ignores a replica's other commands). Whether an ACK came.
    fn take_acks(&mut self, history: &History) -> Result<bool, SessionError> {
        let mut acked = false;
        loop {
            let frame = match self.decoder.decode(&mut self.buffer) {
                Ok(Some((frame, _))) => frame,
                Ok(None) => return Ok(acked),
                Err(error) => return Err(SessionError::InvalidAck(error)),
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
