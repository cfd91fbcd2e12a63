//! ferry's own implementation of the Redis/Valkey replication protocol, replica side.
//!
//! ```text
//! connect ─► psync ─┬─ FullResync ─► snapshot() chunks … None ─► next_command() …
//!                   └─ Continue ───────────────────────────────► next_command() …
//! ```
//!
//! The snapshot bytes are handed on untouched (parsing them is the codec's job), through
//! [`SnapshotStream::next_chunk`] or, for a blocking decoder, [`SnapshotStream::forward`]
//! into a [`snapshot_channel`] whose [`ChannelReader`] implements `std::io::Read`.
//!
//! Offsets follow the primary's `master_repl_offset`: a command's
//! [`ReplCommand::offset_after`] is the PSYNC offset plus every byte of the command stream
//! up to and including it. Report applied offsets through [`AckHandle::set_applied`]; the
//! connection sends `REPLCONF ACK <applied>` every second and answers `REPLCONF GETACK`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ack;
pub mod channel_reader;
pub mod error;
mod handshake;
mod link;
pub mod options;
pub mod primary;
mod replica;
pub mod resp;
pub mod secret;
mod snapshot;
pub mod stream;

pub use ack::AckHandle;
pub use channel_reader::{
    snapshot_channel, ChannelReader, ReaderGone, SnapshotSender, DEFAULT_CHANNEL_CHUNKS,
};
pub use error::{one_line, ReplError};
pub use handshake::PsyncOutcome;
pub use options::{ConnectOptions, RetryPolicy};
pub use replica::{ReplCommand, ReplicaConnection, SnapshotStream};
pub use secret::Secret;
pub use snapshot::SnapshotFraming;
pub use stream::{AsyncStream, BoxedStream, StreamUpgrade, UpgradeFuture};
