//! The source as a replica of a live server: its snapshot as an [`Item`] source, and its
//! command stream applied to the target ([`crate::sinks::applier`]); with `--spool-dir`,
//! both kept on disk first ([`spool`]).

pub mod continuation;
pub mod spool;

use super::Source;
use crate::codec::Decoder;
use crate::error::Error;
use ferry_codec::Item;
use ferry_repl::ChannelReader;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The snapshot of a full sync, decoded as it arrives through a [`ChannelReader`] (or from
/// the spool, [`spool::TailReader`]). Runs on a blocking thread.
pub struct SnapshotSource<R: Read = ChannelReader> {
    decoder: Decoder<R>,
    /// The transfer's size when the primary announced it (`$len` framing).
    total: Option<u64>,
    /// Bytes decoded, shared with the progress lines.
    decoded: Arc<AtomicU64>,
    ended: bool,
    /// Keys that start before this byte are already on the target (a load resumed from
    /// the spool): read and checked, not handed out.
    skip_before: u64,
    /// Keys expiring before this (Unix ms) are written again even before `skip_before`:
    /// a target that restarted may have expired them by its own clock already, while
    /// the stream still holds commands for them.
    rewrite_expiring_before: i64,
    skipped: u64,
}

impl<R: Read> SnapshotSource<R> {
    pub fn new(reader: R, total: Option<u64>, decoded: Arc<AtomicU64>) -> Self {
        Self {
            decoder: Decoder::new(reader),
            total,
            decoded,
            ended: false,
            skip_before: 0,
            rewrite_expiring_before: i64::MIN,
            skipped: 0,
        }
    }

    /// Leaves out the keys that start before byte `at` (but those expiring before
    /// `rewrite_expiring_before`): the load resumes there. Every other item (databases,
    /// functions, aux fields) still comes out, since what follows depends on them and
    /// writing them again changes nothing.
    pub fn resuming_at(mut self, at: u64, rewrite_expiring_before: i64) -> Self {
        self.skip_before = at;
        self.rewrite_expiring_before = rewrite_expiring_before;
        self
    }

    /// Keys left out by [`SnapshotSource::resuming_at`].
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    fn decode(&mut self) -> Result<Option<Item>, Error> {
        loop {
            let starts_at = self.decoder.bytes_read();
            let item = self
                .decoder
                .next_item()
                .map_err(|source| Error::Snapshot { source })?;
            let written = match &item {
                Some(Item::KeyStart(header)) => {
                    starts_at < self.skip_before
                        && header
                            .expire_at_ms
                            .is_none_or(|at| at >= self.rewrite_expiring_before)
                }
                _ => false,
            };
            if written {
                self.decoder
                    .skip_value()
                    .map_err(|source| Error::Snapshot { source })?;
                // The key's end.
                self.decoder
                    .next_item()
                    .map_err(|source| Error::Snapshot { source })?;
                self.skipped += 1;
                continue;
            }
            return Ok(item);
        }
    }
}

impl<R: Read> Source for SnapshotSource<R> {
    fn next_item(&mut self) -> Result<Option<Item>, Error> {
        if self.ended {
            return Ok(None);
        }
        let item = self.decode()?;
        self.decoded
            .store(self.decoder.bytes_read(), Ordering::Relaxed);
        match &item {
            Some(Item::End { .. }) => self.ended = true,
            None => {
                return Err(Error::Migration(
                    "the source's snapshot ended without its end marker".into(),
                ))
            }
            Some(_) => {}
        }
        Ok(item)
    }

    fn bytes_read(&self) -> u64 {
        self.decoder.bytes_read()
    }

    fn total_bytes(&self) -> Option<u64> {
        self.total
    }
}
