//! Why one check of a live server could not be made. Never fatal to `assess`: a check the
//! server refuses (a renamed or ACL-denied command) becomes an "unchecked" entry of the
//! report, worded by [`ProbeError::line`].

use crate::error::{chain, one_line};
use ferry_codec::DecodeError;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The server refused the command, or the connection failed: its own words.
    #[error(transparent)]
    Command(#[from] redis::RedisError),
    #[error("unexpected SCAN reply")]
    ScanReply,
    #[error("DUMP reply too short")]
    DumpTooShort,
    #[error("unexpected DUMP reply {0:?}")]
    DumpReply(redis::Value),
    /// A DUMP payload without a valid frame (type byte, version, checksum).
    #[error(transparent)]
    Payload(DecodeError),
    #[error("cannot decode the DUMP of {key}")]
    Decode {
        /// As [`crate::display::plain_or_quoted`] shows it.
        key: String,
        #[source]
        source: DecodeError,
    },
}

impl ProbeError {
    /// The reason an "unchecked" entry gives: the error and its causes, one line.
    pub fn line(&self) -> String {
        one_line(chain(self))
    }

    /// Whether the server does not know the command at all (an older release).
    pub fn is_unknown_command(&self) -> bool {
        let lower = self.line().to_ascii_lowercase();
        lower.contains("unknown command") || lower.contains("unknown subcommand")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_reads_as_the_server_words_it() {
        let refused = redis::RedisError::from((
            redis::ErrorKind::Io,
            "connection lost",
            "peer reset".to_owned(),
        ));
        let expected = refused.to_string();
        assert_eq!(ProbeError::from(refused).line(), expected);
        let bad = DecodeError::Truncated {
            offset: 3,
            context: "a length",
        };
        let error = ProbeError::Decode {
            key: "h".into(),
            source: bad,
        };
        assert_eq!(
            error.line(),
            "cannot decode the DUMP of h: input ends early at byte 3 while reading a length"
        );
    }
}
