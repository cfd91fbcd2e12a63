//! How `--max-memory-mb` is shared out: bytes in flight to the target, the snapshot's
//! read-ahead, the writer's batches; split among a cluster source's shard readers.

use super::*;

/// The settings derived from `--max-memory-mb`.
#[derive(Debug, Clone, Copy)]
pub(super) struct MemoryPlan {
    /// Bytes of commands sent to the target and not yet acknowledged.
    pub(super) in_flight_bytes: usize,
    /// Snapshot chunks (64 KiB each) between the network and the decoder.
    pub(super) snapshot_chunks: usize,
    pub(super) writer: WriterLimits,
}

impl MemoryPlan {
    pub(super) fn new(max_memory_mb: u64) -> Self {
        let total = (max_memory_mb as usize).saturating_mul(1 << 20);
        Self {
            in_flight_bytes: total / 4,
            snapshot_chunks: 16,
            writer: WriterLimits {
                // A held value, its payload and the command carrying it: three copies.
                restore_bytes: total / 8,
                batch_bytes: 256 << 10,
            },
        }
    }

    /// This plan split among `readers` running at once (the shards of a cluster source).
    pub(super) fn shared_by(self, readers: usize) -> Self {
        let readers = readers.max(1);
        Self {
            in_flight_bytes: (self.in_flight_bytes / readers).max(1 << 20),
            snapshot_chunks: self.snapshot_chunks,
            writer: WriterLimits {
                restore_bytes: (self.writer.restore_bytes / readers).max(1 << 20),
                batch_bytes: self.writer.batch_bytes,
            },
        }
    }
}
