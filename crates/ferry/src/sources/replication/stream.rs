//! Applies the source's command stream to the target, in order.
//!
//! - SELECT is followed: forwarded, and remembered as the stream's database.
//! - MULTI … EXEC is forwarded as it comes on the one target connection, so the target
//!   queues the commands and runs them atomically at EXEC; if ferry stops in between, the
//!   target drops the open transaction. No offset inside a transaction is ever reported as
//!   applied: marks advance only outside transactions.
//! - PING and REPLCONF are not forwarded; their bytes still count in the offset.
//! - Everything else goes through the [`CommandTransform`] seam.

use super::translate::CommandTransform;
use crate::error::Error;
use crate::sinks::writer::pipe::{Batch, Mark, Pipe, PipeError};
use crate::transforms::commands::Translated;
use bytes::Bytes;
use ferry_repl::ReplCommand;
use std::collections::BTreeMap;

/// Bytes of commands gathered before a batch goes to the pipe.
const BATCH_BYTES: usize = 64 << 10;

pub struct StreamApplier {
    pipe: Pipe,
    translator: Box<dyn CommandTransform>,
    /// The database the stream has selected (as of the last command taken).
    db: u64,
    in_multi: bool,
    /// The last point outside a transaction: what may be reported once its batch is
    /// acknowledged.
    safe: Mark,
    /// The mark last handed to the pipe.
    sent: Mark,
    batch: Batch,
    /// Commands forwarded (after translation).
    pub forwarded: u64,
    skipped: BTreeMap<&'static str, u64>,
}

impl StreamApplier {
    /// Starts at `start` (the snapshot's offset or the resumed state). The target
    /// connection is switched to the stream's database first: after a partial resync the
    /// primary does not repeat its SELECT.
    pub fn new(pipe: Pipe, translator: Box<dyn CommandTransform>, start: Mark) -> Self {
        let mut batch = Batch::default();
        let db = start.db.to_string();
        batch.push(&["SELECT", db.as_str()]);
        Self {
            pipe,
            translator,
            db: start.db,
            in_multi: false,
            safe: start,
            sent: start,
            batch,
            forwarded: 0,
            skipped: BTreeMap::new(),
        }
    }

    /// Takes one command into the current batch.
    pub fn apply(&mut self, command: ReplCommand) -> Result<(), Error> {
        let offset = command.offset_after;
        if !command.is_protocol_only() {
            self.forward(command.args)?;
        }
        if !self.in_multi {
            self.safe = Mark {
                offset,
                db: self.db,
            };
        }
        Ok(())
    }

    fn forward(&mut self, args: Vec<Bytes>) -> Result<(), Error> {
        let name = args.first().cloned().unwrap_or_default();
        if name.eq_ignore_ascii_case(b"SELECT") {
            self.db = args
                .get(1)
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| {
                    Error::Migration("the source sent SELECT without a database number".into())
                })?;
            self.push(&args);
        } else if name.eq_ignore_ascii_case(b"MULTI") {
            self.in_multi = true;
            self.push(&args);
        } else if name.eq_ignore_ascii_case(b"EXEC") {
            self.in_multi = false;
            self.push(&args);
        } else {
            match self.translator.translate(self.db, args)? {
                Translated::Apply(commands) => {
                    for command in commands {
                        self.push(&command);
                    }
                }
                Translated::Skip { reason } => *self.skipped.entry(reason).or_default() += 1,
            }
        }
        Ok(())
    }

    fn push(&mut self, args: &[Bytes]) {
        self.batch.push(args);
        self.forwarded += 1;
    }

    pub fn batch_full(&self) -> bool {
        self.batch.bytes() >= BATCH_BYTES
    }

    /// Hands the batch to the pipe, with the last safe point as its mark.
    pub async fn flush(&mut self) -> Result<(), PipeError> {
        let mut batch = std::mem::take(&mut self.batch);
        if self.safe != self.sent {
            batch.mark = Some(self.safe);
            self.sent = self.safe;
        }
        self.pipe.send(batch).await
    }

    /// The offset of the last command taken (inside a transaction: before its MULTI).
    pub fn position(&self) -> Mark {
        self.safe
    }

    /// What the translator did, for the final report.
    pub fn report_lines(&self) -> Vec<String> {
        self.translator.report_lines()
    }

    /// Commands skipped, by reason.
    pub fn skipped(&self) -> &BTreeMap<&'static str, u64> {
        &self.skipped
    }
}
