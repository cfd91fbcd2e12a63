//! Why a pipe stopped. The first failure stops it and every later call returns that same
//! failure, so the error is kept and cloned: its sources that are not `Clone` are shared
//! (`Arc`).

use crate::server::client::ClientError;
use crate::sinks::writer::cluster::split::SplitError;
use crate::sinks::writer::redirect::RedirectError;
use std::io;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum PipeError {
    /// An error reply: fatal, since the refused command would otherwise be lost.
    #[error(
        "the target refused {command}{}: {message}{}",
        on_key(.key),
        inside_transaction(.in_transaction)
    )]
    Refused {
        /// In capitals; "a command" when the payload no longer shows which.
        command: String,
        /// The command's first argument, shown ([`super::show_key`]).
        key: Option<String>,
        /// The target's error, on one line.
        message: String,
        /// An element of EXEC's reply, about a command queued in the transaction.
        in_transaction: bool,
    },
    #[error("cannot write to the target: connection closed")]
    WriteClosed,
    #[error("cannot write to the target: {0}")]
    WriteFailed(#[source] Arc<io::Error>),
    /// The target took none of the bytes written to it for the stall timeout.
    #[error(
        "lost the connection to the target: it took no bytes for {0:?} \
         (--target-reply-timeout)"
    )]
    WriteStalled(Duration),
    /// The target owed replies and sent nothing for the stall timeout.
    #[error(
        "the target owes replies and sent nothing for {0:?} (--target-reply-timeout): \
         it is stuck or gone"
    )]
    ReplyStalled(Duration),
    #[error("lost the connection to the target: {0}")]
    ConnectionLost(#[source] Arc<ClientError>),
    /// The pipe's tasks are gone without a failure of their own to tell.
    #[error("the connection to the target stopped")]
    Stopped,
    /// A cluster node's `MOVED`/`ASK` that could not be followed.
    #[error(transparent)]
    Redirect(#[from] RedirectError),
    /// A command a cluster target cannot apply.
    #[error(transparent)]
    Unroutable(#[from] SplitError),
    /// The pipe to one primary of a cluster target failed.
    #[error("primary {address}: {source}")]
    Primary {
        address: String,
        #[source]
        source: Box<PipeError>,
    },
}

impl PipeError {
    /// The connection failed (closed, reset, stalled), as when the target restarts: not
    /// a refusal of what was written.
    pub fn is_connection_loss(&self) -> bool {
        match self {
            PipeError::WriteClosed
            | PipeError::WriteFailed(_)
            | PipeError::WriteStalled(_)
            | PipeError::ReplyStalled(_)
            | PipeError::ConnectionLost(_)
            | PipeError::Stopped => true,
            PipeError::Primary { source, .. } => source.is_connection_loss(),
            PipeError::Refused { .. } | PipeError::Redirect(_) | PipeError::Unroutable(_) => false,
        }
    }

    /// A resharding of a cluster target left a transaction's keys on two nodes: nothing
    /// of it was applied, and a run resumed from the markers once the slot has moved
    /// applies it where it belongs.
    pub fn is_half_moved(&self) -> bool {
        match self {
            PipeError::Redirect(RedirectError::HalfMoved { .. }) => true,
            PipeError::Primary { source, .. } => source.is_half_moved(),
            _ => false,
        }
    }

    /// The failure for a reply that could not be read: the target stalled, or the
    /// connection is gone.
    pub(super) fn reading(error: ClientError) -> Self {
        match error {
            ClientError::Timeout(after) => PipeError::ReplyStalled(after),
            error => PipeError::ConnectionLost(Arc::new(error)),
        }
    }
}

fn on_key(key: &Option<String>) -> String {
    key.as_ref()
        .map(|key| format!(" on key {key}"))
        .unwrap_or_default()
}

fn inside_transaction(in_transaction: &bool) -> &'static str {
    match in_transaction {
        true => " (inside MULTI/EXEC)",
        false => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{chain, one_line};

    #[test]
    fn stalls_and_lost_primaries_say_what_happened() {
        let after = Duration::from_secs(3);
        assert_eq!(
            PipeError::WriteStalled(after).to_string(),
            "lost the connection to the target: it took no bytes for 3s (--target-reply-timeout)"
        );
        assert_eq!(
            PipeError::reading(ClientError::Timeout(after)).to_string(),
            "the target owes replies and sent nothing for 3s (--target-reply-timeout): it is \
             stuck or gone"
        );
        let lost = PipeError::Primary {
            address: "h:1".into(),
            source: Box::new(PipeError::reading(ClientError::Closed)),
        };
        let message = "primary h:1: lost the connection to the target: the server closed the \
                       connection";
        assert_eq!(lost.to_string(), message);
        // Each source is the end of its parent's message: the joined chain repeats none.
        assert_eq!(one_line(chain(&lost)), message);
    }
}
