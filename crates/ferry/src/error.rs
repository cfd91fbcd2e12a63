//! The errors every command can end with. Messages are one line, lower case, and never
//! repeat their source: callers join the chain with ": " (see [`one_line`]).

use crate::transforms::commands::CommandError;
use crate::transforms::compat::PolicyError;
use crate::transforms::shards::share::ShareError;
use ferry_codec::{DecodeError, EncodeError};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something impossible (exit code 2).
    #[error("{0}")]
    Usage(String),
    #[error("cannot open {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error("cannot read {}", path.display())]
    Decode {
        path: PathBuf,
        #[source]
        source: DecodeError,
    },
    #[error("{} ends without an end marker", path.display())]
    NoEnd { path: PathBuf },
    #[error("cannot write {}", path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: EncodeError,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} already exists; pass --force to overwrite it", path.display())]
    OutputExists { path: PathBuf },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Share(#[from] ShareError),
    /// The source's snapshot could not be decoded.
    #[error("cannot read the source's snapshot")]
    Snapshot {
        #[source]
        source: DecodeError,
    },
    /// Something about the source server (connection, authentication, replication).
    #[error("source {url}")]
    Source {
        /// Without its password.
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Something about the target server.
    #[error("target {url}")]
    Target {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A migration stopped for a reason given in full.
    #[error("{0}")]
    Migration(String),
    /// A command's own typed error (`commands/*/error.rs`), which this module cannot name:
    /// the commands sit above every layer.
    #[error(transparent)]
    Run(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    TargetWrite(#[from] crate::sinks::writer::WriteError),
    /// A replicated command the target cannot apply under the chosen policies.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A replicated command the scope (`--match`, `--db`, ...) cannot split.
    #[error(transparent)]
    Scope(#[from] crate::transforms::filter::ScopeRefusal),
    /// A server could not be reached or refused the connection (`url` has no password).
    #[error("cannot connect to {url}")]
    Connect {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `ferry verify` could not compare, or found differences.
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    /// A failed run and what it left on the target that the operator must act on.
    #[error("{}; {note}", one_line(chain(&**.failure)))]
    LeftBehind { failure: Box<Error>, note: String },
    /// Writing the command's report failed (e.g. stdout closed by `| head`).
    #[error("cannot write to standard output")]
    Stdout(#[source] std::io::Error),
}

impl Error {
    /// The process exit code for this error: 2 for usage errors, 1 otherwise (verify: 2
    /// when it could not compare, 1 for differences).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Verify(err) => err.exit_code(),
            Error::LeftBehind { failure, .. } => failure.exit_code(),
            _ => 1,
        }
    }

    /// Whether the reader of our output went away; not worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Stdout(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// Joins an error and its sources with ": " on one line. A source whose text its parent
/// already ends with is left out, since some error types print their source themselves.
pub fn one_line<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> String {
    let mut line = String::new();
    for err in chain {
        let text = err.to_string();
        if text.is_empty() || line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.split(['\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The error and its sources, outermost first.
pub fn chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| e.source())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_is_joined_once_per_message() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = Error::Open {
            path: "a.rdb".into(),
            source: io,
        };
        assert_eq!(one_line(chain(&err)), "cannot open a.rdb: no such file");
    }

    #[test]
    fn a_source_the_parent_already_printed_is_not_repeated() {
        let io = std::io::Error::other("disk on fire");
        let inner = DecodeError::Io {
            offset: 7,
            source: io,
        };
        let err = Error::Decode {
            path: "x.rdb".into(),
            source: inner,
        };
        assert_eq!(
            one_line(chain(&err)),
            "cannot read x.rdb: read failed at byte 7: disk on fire"
        );
    }

    #[test]
    fn newlines_never_reach_the_line() {
        let err = Error::Usage("first\nsecond".into());
        assert_eq!(one_line(chain(&err)), "first second");
    }
}
