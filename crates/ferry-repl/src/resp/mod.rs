//! RESP framing: an incremental decoder over `BytesMut` that tells "need more bytes"
//! (`Ok(None)`) from "invalid" (`Err`), and an encoder. Covers RESP2, the RESP3 types (so a
//! server speaking RESP3 is at least tolerated), and the inline command form (bare `\n`
//! keep-alives from a primary; commands typed by hand).

mod decoder;
mod encode;
mod inline;
mod token;

use std::fmt;

use bytes::Bytes;

pub use decoder::FrameDecoder;
pub use encode::{command, encode_array_header, encode_bulk, encode_command, encode_frame};

/// One decoded RESP value. Byte strings share the receive buffer (no copy).
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+OK`
    Simple(Bytes),
    /// `-ERR ...` (the text after the `-`)
    Error(Bytes),
    /// `:42`
    Integer(i64),
    /// `$3\r\nabc`
    Bulk(Bytes),
    /// `$-1` (RESP2 null bulk)
    NullBulk,
    /// `*-1` (RESP2 null array)
    NullArray,
    /// `_` (RESP3 null)
    Null,
    /// `*2 ...`
    Array(Vec<Frame>),
    /// `#t` / `#f`
    Boolean(bool),
    /// `,3.14` kept as its text (validated to parse as a double, `inf`/`nan` included)
    Double(Bytes),
    /// `(1234...` kept as its digits
    BigNumber(Bytes),
    /// `!<len>` bulk error
    BulkError(Bytes),
    /// `=<len>\r\ntxt:...`: three-byte format and the text
    Verbatim {
        /// The format, e.g. `txt` or `mkd`.
        format: Bytes,
        /// The text after `format:`.
        text: Bytes,
    },
    /// `%n` key/value pairs
    Map(Vec<(Frame, Frame)>),
    /// `~n`
    Set(Vec<Frame>),
    /// `|n` attribute pairs (sent before a reply; delivered as a frame of its own)
    Attribute(Vec<(Frame, Frame)>),
    /// `>n` out-of-band push
    Push(Vec<Frame>),
    /// An inline line split into arguments; a bare `\n` or `\r\n` gives no arguments.
    Inline(Vec<Bytes>),
}

impl Frame {
    /// The arguments of a command: an array of bulk strings, or a non-empty inline line.
    pub fn command_args(&self) -> Option<Vec<Bytes>> {
        match self {
            Frame::Array(items) if !items.is_empty() => items
                .iter()
                .map(|item| match item {
                    Frame::Bulk(arg) => Some(arg.clone()),
                    _ => None,
                })
                .collect(),
            Frame::Inline(args) if !args.is_empty() => Some(args.clone()),
            _ => None,
        }
    }

    /// A bare newline: the keep-alive a primary sends while it prepares a snapshot.
    pub fn is_keepalive(&self) -> bool {
        matches!(self, Frame::Inline(args) if args.is_empty())
    }

    /// A short one-line description for error messages (never the whole payload).
    pub fn describe(&self) -> String {
        let text = |prefix: &str, bytes: &Bytes| {
            format!(
                "{prefix}{}",
                crate::error::one_line(&bytes[..bytes.len().min(80)])
            )
        };
        match self {
            Frame::Simple(s) => text("+", s),
            Frame::Error(s) => text("-", s),
            Frame::Integer(n) => format!(":{n}"),
            Frame::Bulk(b) => format!("bulk string of {} bytes", b.len()),
            Frame::NullBulk | Frame::NullArray | Frame::Null => "null".into(),
            Frame::Array(items) => format!("array of {} elements", items.len()),
            Frame::Boolean(b) => format!("boolean {b}"),
            Frame::Double(d) => text("double ", d),
            Frame::BigNumber(n) => text("big number ", n),
            Frame::BulkError(e) => text("error ", e),
            Frame::Verbatim { text: t, .. } => format!("verbatim string of {} bytes", t.len()),
            Frame::Map(pairs) => format!("map of {} pairs", pairs.len()),
            Frame::Set(items) => format!("set of {} elements", items.len()),
            Frame::Attribute(pairs) => format!("attribute of {} pairs", pairs.len()),
            Frame::Push(items) => format!("push of {} elements", items.len()),
            Frame::Inline(args) if args.is_empty() => "empty line".into(),
            Frame::Inline(args) => format!(
                "inline line starting {:?}",
                crate::error::one_line(&args[0][..args[0].len().min(40)])
            ),
        }
    }
}

/// Which side of the conversation is being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Replies and replication streams: every RESP2/RESP3 type byte is recognised; a line
    /// starting with anything else is an inline line.
    Replies,
    /// Requests, as a server reads them: `*` starts a command array, anything else is an
    /// inline command.
    Requests,
}

/// Caps that keep a garbage header from allocating or buffering without bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string accepted (Redis' `proto-max-bulk-len`, 512 MiB by default).
    pub max_bulk_len: u64,
    /// Longest line (simple string, length header, inline command); Redis uses 64 KiB.
    pub max_line_len: usize,
    /// Deepest nesting of aggregates.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_line_len: 64 * 1024,
            max_depth: 64,
        }
    }
}

/// Bytes that are not valid RESP. `at` is relative to the start of the buffer the decoder
/// was given at that call; the connection layer turns it into a stream position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError {
    /// What is wrong with the bytes.
    pub what: String,
    /// Where, from the start of the buffer.
    pub at: usize,
}

impl ProtoError {
    pub(crate) fn new(what: impl Into<String>, at: usize) -> Self {
        ProtoError {
            what: what.into(),
            at,
        }
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.what, self.at)
    }
}

impl std::error::Error for ProtoError {}
