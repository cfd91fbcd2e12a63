//! The source as a replica of a live server: its snapshot as an [`Item`] source, and its
//! command stream applied to the target ([`crate::sinks::applier`]).

pub mod continuation;

use super::Source;
use crate::codec::Decoder;
use crate::error::Error;
use ferry_codec::Item;
use ferry_repl::ChannelReader;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The snapshot of a full sync, decoded as it arrives through a [`ChannelReader`]. Runs on
/// a blocking thread.
pub struct SnapshotSource {
    decoder: Decoder<ChannelReader>,
    /// The transfer's size when the primary announced it (`$len` framing).
    total: Option<u64>,
    /// Bytes decoded, shared with the progress lines.
    decoded: Arc<AtomicU64>,
    ended: bool,
}

impl SnapshotSource {
    pub fn new(reader: ChannelReader, total: Option<u64>, decoded: Arc<AtomicU64>) -> Self {
        Self {
            decoder: Decoder::new(reader),
            total,
            decoded,
            ended: false,
        }
    }
}

impl Source for SnapshotSource {
    fn next_item(&mut self) -> Result<Option<Item>, Error> {
        if self.ended {
            return Ok(None);
        }
        let item = self
            .decoder
            .next_item()
            .map_err(|source| Error::Snapshot { source })?;
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
