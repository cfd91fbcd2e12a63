//! The stream's commands for the applier: first the spooled ones, from the file; at its
//! end the feed goes live (under the lock the receiver writes with, so no command falls
//! between file and channel) and takes the rest from the receiver's channel.

use super::receiver::{ReceiveError, Shared};
use super::records::RecordReader;
use super::SpoolError;
use ferry_repl::{ReplCommand, ReplError};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

pub struct SpoolFeed {
    records: RecordReader,
    shared: Arc<Shared>,
    channel: mpsc::Receiver<ReplCommand>,
    /// Spooled commands at or before this offset are already applied: skipped.
    after: i64,
    /// Set when the feed went live: the offset of the last spooled command. Once the
    /// target applied it, the files are no longer needed.
    live_from: Option<i64>,
}

impl SpoolFeed {
    pub(super) fn open(
        path: &Path,
        shared: Arc<Shared>,
        channel: mpsc::Receiver<ReplCommand>,
        after: i64,
    ) -> Result<Self, SpoolError> {
        Ok(Self {
            records: RecordReader::open(path)?,
            shared,
            channel,
            after,
            live_from: None,
        })
    }

    /// The offset of the last spooled command, once the feed has gone live.
    pub fn live_from(&self) -> Option<i64> {
        self.live_from
    }

    /// The next command after the applied offset. An error: the source was lost (resume
    /// by partial resync from the spooled offset) or the spool failed.
    pub async fn next_command(&mut self) -> Result<ReplCommand, ReceiveError> {
        loop {
            if self.live_from.is_some() {
                return match self.channel.recv().await {
                    Some(command) => Ok(command),
                    None => Err(self.ended()),
                };
            }
            if let Some(command) = self.records.next_record()? {
                if command.offset_after > self.after {
                    return Ok(command);
                }
                continue;
            }
            let mut stream = self.shared.lock_stream();
            if self.records.consumed() < stream.written {
                // Records still in the writer's buffer: hand them to the file.
                let path = stream.path.clone();
                stream
                    .flush()
                    .map_err(|e| SpoolError::io("cannot write", &path, e))?;
                continue;
            }
            if self.shared.ended.load(Ordering::Acquire) {
                // Receiving stopped and every spooled command was read.
                drop(stream);
                return Err(self.ended());
            }
            let path = stream.path.clone();
            stream
                .go_live()
                .map_err(|e| SpoolError::io("cannot write", &path, e))?;
            self.live_from = Some(stream.end);
        }
    }

    fn ended(&self) -> ReceiveError {
        self.shared
            .take_failure()
            .unwrap_or(ReceiveError::Source(ReplError::Closed(
                "streaming (the spool's receiver stopped)",
            )))
    }
}
