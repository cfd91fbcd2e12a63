//! The primary's side of the replication protocol, as pure protocol pieces: what a
//! replica asks during the handshake ([`request`]), the replies and snapshot framing a
//! primary sends ([`reply`]), and the backlog a partial resync is served from
//! ([`backlog`]). No sockets here: the relay in the `ferry` crate wires them up.
//!
//! Offsets follow the primary's `master_repl_offset`: the count of stream bytes produced.
//! A replica holding `n` bytes asks `PSYNC <replid> <n + 1>` (the next byte it needs).

pub mod backlog;
pub mod reply;
pub mod request;

pub use backlog::Backlog;
pub use reply::{continue_line, full_resync_line, new_replid, EofMark};
pub use request::{ReplConf, Request};
