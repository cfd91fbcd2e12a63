//! The one error type of the crate. Every message is a single line and never contains the
//! password: server messages are passed through `one_line` and, where a password was sent,
//! through `redact`.

use std::time::Duration;

/// Why a replica connection failed. After any of them the connection is done: reconnect.
#[derive(Debug, thiserror::Error)]
pub enum ReplError {
    /// The TCP connection could not be established (refused, unreachable, or timed out).
    #[error("cannot connect to {address}: {cause}")]
    Connect {
        /// `host:port` as given.
        address: String,
        /// The socket's (or the stream upgrade's) error.
        cause: std::io::Error,
    },
    /// The primary refused our credentials (or a command for lack of them); carries the
    /// server's message.
    #[error("authentication with the primary failed: {0}")]
    Auth(String),
    /// The primary sent bytes that are not the replication protocol. `at` counts bytes
    /// received on this connection.
    #[error("protocol error at byte {at} of the connection: {what}")]
    Protocol {
        /// What was wrong with the bytes.
        what: String,
        /// Where they were.
        at: u64,
    },
    /// Nothing arrived (or could be sent) for the configured time.
    #[error("timed out after {after:?} while {during}")]
    Timeout {
        /// The step that waited, e.g. `"waiting for the PSYNC reply"`.
        during: &'static str,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The primary closed the connection.
    #[error("the primary closed the connection while {0}")]
    Closed(&'static str),
    /// The primary answered with an error reply we cannot work around.
    #[error("the primary replied with an error: {0}")]
    ServerError(String),
    /// A read or write failed for another reason (reset, broken pipe, ...).
    #[error("network error while {during}: {cause}")]
    Io {
        /// The step that failed.
        during: &'static str,
        /// The socket's error.
        cause: std::io::Error,
    },
    /// The consumer of the snapshot (the [`crate::ChannelReader`]) was dropped early.
    #[error("the snapshot reader stopped before the end of the snapshot")]
    ReaderGone,
    /// The API was used out of order (for example `next_command` before the snapshot ended).
    #[error("invalid use of the replica connection: {0}")]
    InvalidState(&'static str),
}

impl ReplError {
    pub(crate) fn protocol(what: impl Into<String>, at: u64) -> Self {
        ReplError::Protocol {
            what: what.into(),
            at,
        }
    }
}

/// Makes a server-provided message printable on one line: control characters become
/// spaces and overly long messages are cut.
pub fn one_line(message: &[u8]) -> String {
    const MAX_CHARS: usize = 300;
    let text = String::from_utf8_lossy(message);
    let mut out: String = text
        .chars()
        .take(MAX_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX_CHARS {
        out.push_str("...");
    }
    out
}

/// Removes every occurrence of `secret` from `message`. Servers do not echo passwords, but
/// a proxy or a future server might; the cost of checking is nil.
pub(crate) fn redact(message: String, secret: &str) -> String {
    if secret.is_empty() || !message.contains(secret) {
        return message;
    }
    message.replace(secret, "<redacted>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_removes_line_breaks_and_cuts_long_text() {
        assert_eq!(one_line(b"ERR bad\r\nthing"), "ERR bad  thing");
        let long = vec![b'a'; 1000];
        let shown = one_line(&long);
        assert!(shown.len() < 310 && shown.ends_with("..."));
    }

    #[test]
    fn redact_hides_the_secret() {
        let shown = redact("WRONGPASS for hunter2 user".into(), "hunter2");
        assert!(!shown.contains("hunter2"));
        assert_eq!(redact("fine".into(), ""), "fine");
    }
}
