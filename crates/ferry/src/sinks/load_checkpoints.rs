//! A load from the spool that records how far it got: every [`CHECKPOINT_EVERY`], after a
//! key's last write, ferry's loading marker ([`crate::state::loading_marker`]) goes to the
//! target on the same connection, naming the spooled snapshot's byte where the next key
//! starts. A resumed load starts there instead of at the first key.

use super::writer::TargetSink;
use super::{Sink, SinkStats};
use crate::error::Error;
use crate::state::loading_marker::{self, Loading};
use ferry_codec::Item;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Often enough that a resume repeats little, rarely enough that the marker is a
/// negligible share of the writes.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

pub struct CheckpointedSink {
    inner: TargetSink,
    position: Loading,
    /// The decoder's position: after a key's end, where the next key starts.
    decoded: Arc<AtomicU64>,
    last: Instant,
}

impl CheckpointedSink {
    /// `from`: where the load starts (a resumed one counts on from its keys).
    pub fn new(inner: TargetSink, from: Loading, decoded: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            position: from,
            decoded,
            last: Instant::now(),
        }
    }

    fn checkpoint(&mut self) -> Result<(), Error> {
        self.position.at = self.decoded.load(Ordering::Acquire);
        let position = &self.position;
        self.inner
            .send_with(|batch| loading_marker::push_write(batch, position))?;
        self.last = Instant::now();
        Ok(())
    }
}

impl Sink for CheckpointedSink {
    fn push(&mut self, item: Item) -> Result<(), Error> {
        let key_ended = matches!(item, Item::KeyEnd);
        self.inner.push(item)?;
        if key_ended {
            self.position.keys += 1;
            if self.last.elapsed() >= CHECKPOINT_EVERY {
                self.checkpoint()?;
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<SinkStats, Error> {
        self.inner.finish()
    }
}
