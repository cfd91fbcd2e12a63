//! Error types of the codec. Every decode error names the byte offset where it happened.

use std::fmt;

/// A malformed embedded structure (ziplist, listpack, intset, zipmap, LZF block, module
/// body). `at` is relative to the start of that structure; the decoder adds the absolute
/// offset when it wraps this into a [`DecodeError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// What was being parsed: `"listpack"`, `"LZF block"`, ...
    pub structure: &'static str,
    /// Byte offset of the problem from the start of the structure.
    pub at: usize,
    /// What is wrong there, in words.
    pub problem: String,
}

impl FormatError {
    /// A problem `at` bytes into a `structure`.
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

/// Why an RDB stream or DUMP payload could not be decoded. `offset` fields count bytes
/// from the start of the input. After an error the decoder yields nothing more.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The reader failed.
    #[error("read failed at byte {offset}: {source}")]
    Io {
        /// Where decoding stood.
        offset: u64,
        /// The reader's error.
        source: std::io::Error,
    },
    /// The input ended inside a record: a cut-off file.
    #[error("input ends early at byte {offset} while reading {context}")]
    Truncated {
        /// Where the input ended.
        offset: u64,
        /// What was being read.
        context: &'static str,
    },
    /// The first nine bytes are not `REDIS` or `VALKEY` and a version number.
    #[error("not an RDB stream: bad magic {found:?}")]
    BadMagic {
        /// The nine bytes, escaped.
        found: String,
    },
    /// A value no server writes: a bad length, an unknown opcode, a count that disagrees.
    #[error("at byte {offset}: {problem}")]
    Invalid {
        /// Where the bad value is.
        offset: u64,
        /// What is wrong with it.
        problem: String,
    },
    /// Well-formed input this codec does not read: a newer version or an unknown type.
    #[error("at byte {offset}: {what} is not supported")]
    Unsupported {
        /// Where it starts.
        offset: u64,
        /// What it is.
        what: String,
    },
    /// A malformed embedded structure (ziplist, listpack, LZF block, ...).
    #[error("at byte {offset}: {source}")]
    Structure {
        /// Where in the input the problem is.
        offset: u64,
        /// What is wrong inside the structure.
        source: FormatError,
    },
    /// The stored CRC64 does not match the bytes: the input was damaged.
    #[error("checksum mismatch: the file says {stored:016x}, its bytes give {computed:016x}")]
    Checksum {
        /// The checksum the input carries.
        stored: u64,
        /// The checksum of the bytes read.
        computed: u64,
    },
}

impl DecodeError {
    /// The input offset the error names, if it names one.
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

/// Why items could not be encoded. The [`Encoder`](crate::Encoder) docs say which errors
/// leave it usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The writer failed.
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    /// The value cannot be represented in the target format (e.g. field TTLs on RDB 11).
    #[error("key {key:?}: {problem}")]
    Unrepresentable {
        /// The key's name (lossy UTF-8).
        key: String,
        /// Why, in words.
        problem: String,
    },
    /// The items select a database the loading server does not have.
    #[error(
        "the file selects db {db}, and a server with `databases {databases}` refuses it \
         (raise `databases` on the target)"
    )]
    Database {
        /// The database selected.
        db: u64,
        /// The server's `databases` setting.
        databases: u64,
    },
    /// The items came in an order the format cannot express.
    #[error("{0}")]
    Sequence(String),
}
