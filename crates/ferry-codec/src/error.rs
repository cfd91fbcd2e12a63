//! Error types of the codec. Every decode error names the byte offset where it happened.

use std::fmt;

/// A malformed embedded structure (ziplist, listpack, intset, zipmap, LZF block, module
/// body). `at` is relative to the start of that structure; the decoder adds the absolute
/// offset when it wraps this into a [`DecodeError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    pub structure: &'static str,
    pub at: usize,
    pub problem: String,
}

impl FormatError {
    pub fn new(structure: &'static str, at: usize, problem: impl Into<String>) -> Self {
        Self {
            structure,
            at,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "corrupt {} (at its byte {}): {}",
            self.structure, self.at, self.problem
        )
    }
}

impl std::error::Error for FormatError {}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("read failed at byte {offset}: {source}")]
    Io { offset: u64, source: std::io::Error },
    #[error("input ends early at byte {offset} while reading {context}")]
    Truncated { offset: u64, context: &'static str },
    #[error("not an RDB stream: bad magic {found:?}")]
    BadMagic { found: String },
    #[error("at byte {offset}: {problem}")]
    Invalid { offset: u64, problem: String },
    #[error("at byte {offset}: {what} is not supported")]
    Unsupported { offset: u64, what: String },
    #[error("at byte {offset}: {source}")]
    Structure { offset: u64, source: FormatError },
    #[error("checksum mismatch: the file says {stored:016x}, its bytes give {computed:016x}")]
    Checksum { stored: u64, computed: u64 },
}

impl DecodeError {
    pub fn offset(&self) -> Option<u64> {
        match self {
            DecodeError::Io { offset, .. }
            | DecodeError::Truncated { offset, .. }
            | DecodeError::Invalid { offset, .. }
            | DecodeError::Unsupported { offset, .. }
            | DecodeError::Structure { offset, .. } => Some(*offset),
            DecodeError::BadMagic { .. } | DecodeError::Checksum { .. } => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    /// The value cannot be represented in the target format (e.g. field TTLs on RDB 11).
    #[error("key {key:?}: {problem}")]
    Unrepresentable { key: String, problem: String },
    /// The items select a database the loading server does not have.
    #[error(
        "the file selects db {db}, and a server with `databases {databases}` refuses it \
         (raise `databases` on the target)"
    )]
    Database { db: u64, databases: u64 },
    /// The items came in an order the format cannot express.
    #[error("{0}")]
    Sequence(String),
}
