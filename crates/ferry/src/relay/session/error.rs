//! Why a session ended. Each text is what the relay logs after the client's name (`replica
//! 1.2.3.4:5 (listening on 6380): TEXT; connection closed`).
//!
//! A cause that a text names in parentheses (`read failed (…)`) is part of its sentence,
//! not a [`source`](std::error::Error::source): a chain joined with ": " would repeat it.
//! Causes that follow after ": " (`the source failed: …`) are sources.

use crate::display::size;
use ferry_repl::primary::request::BadRequest;
use ferry_repl::resp::ProtoError;
use ferry_repl::ReplError;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Turned away before replicating: logged at a limited rate, per [`Refusal::kind`].
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("asked for SYNC (a replica older than PSYNC)")]
    Sync,
    #[error("did not announce capa eof")]
    NoCapaEof,
    #[error("read failed ({0})")]
    Read(std::io::Error),
    #[error("write failed ({0})")]
    Write(std::io::Error),
    #[error("closed the connection in the middle of a command")]
    ClosedMidCommand,

    // A full sync or a revived history.
    #[error("the source failed")]
    Source(#[source] ReplError),
    #[error("the source answered +CONTINUE to a request for a full copy")]
    UnaskedContinue,
    #[error("the RDB producer stopped")]
    ProducerStopped(#[source] tokio::task::JoinError),
    #[error("left during the full sync ({0})")]
    LeftDuringFullSync(std::io::Error),
    #[error("the snapshot could not be relayed")]
    NotRelayed(#[source] Box<crate::error::Error>),

    // Streaming.
    #[error("its history ended ({0})")]
    HistoryEnded(String),
    #[error("its history ended")]
    HistoryGone,
    #[error("disconnected")]
    Disconnected,
    #[error("sent invalid RESP ({0})")]
    InvalidAck(ProtoError),
    #[error("sent {} that is not a complete command", size(*.0 as u64))]
    IncompleteAck(usize),
    #[error(
        "fell more than the backlog ({}) behind; it will resync in full",
        size(*.0 as u64)
    )]
    BehindBacklog(usize),
}

/// A client refused during the handshake, for breaking the relay's rules ([`super::gate`])
/// or the protocol.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("sent a malformed {0}")]
    Malformed(BadRequest),
    #[error("sent {command} without AUTH while a password is required")]
    Unauthenticated { command: String },
    #[error("sent a wrong password")]
    WrongPassword,
    /// `what` is the frame, as [`ferry_repl::resp::Frame::describe`] puts it.
    #[error("sent {what} instead of a command")]
    NotACommand { what: String },
    #[error("sent invalid RESP ({0})")]
    InvalidResp(ProtoError),
    #[error(
        "sent {} without completing a request (the limit is {})",
        size(*.sent as u64),
        size(*.limit as u64)
    )]
    Oversized { sent: usize, limit: usize },
    #[error("did not authenticate within {0:?} of connecting")]
    NoAuth(Duration),
    #[error("completed no command in {0:?} before replicating")]
    Idle(Duration),
}

impl Refusal {
    /// The kind its log line is rate-limited under.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed requests",
            Refusal::Unauthenticated { .. } => "unauthenticated requests",
            Refusal::WrongPassword => "wrong passwords",
            Refusal::NotACommand { .. } | Refusal::InvalidResp(_) => "clients sending invalid RESP",
            Refusal::Oversized { .. } => "oversized requests",
            Refusal::NoAuth(_) | Refusal::Idle(_) => "idle or slow clients",
        }
    }
}

impl SessionError {
    /// The refusal kind when the client was turned away before replicating.
    pub fn refusal(&self) -> Option<&'static str> {
        match self {
            SessionError::Refused(refusal) => Some(refusal.kind()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{chain, one_line};

    #[test]
    fn a_cause_in_parentheses_is_not_repeated() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let error = SessionError::Read(reset);
        assert_eq!(one_line(chain(&error)), "read failed (reset)");
        let refusal = SessionError::from(Refusal::Oversized {
            sent: 2_000_000,
            limit: 1_000_000,
        });
        assert_eq!(refusal.refusal(), Some("oversized requests"));
        assert_eq!(
            one_line(chain(&refusal)),
            "sent 2.0 MB without completing a request (the limit is 1.0 MB)"
        );
        let refused = SessionError::Source(ferry_repl::ReplError::Auth("WRONGPASS".into()));
        assert_eq!(
            one_line(chain(&refused)),
            "the source failed: authentication with the primary failed: WRONGPASS"
        );
        assert_eq!(refused.refusal(), None);
        let idle = SessionError::from(Refusal::Idle(Duration::from_secs(10)));
        assert_eq!(
            one_line(chain(&idle)),
            "completed no command in 10s before replicating"
        );
    }
}
