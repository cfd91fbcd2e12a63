//! Turning the entries of an embedded structure (ziplist, listpack, ...) into model values.
//!
//! Byte entries are handed out as slices of the blob they came from: no copy, and the blob
//! lives exactly as long as some element of it does.

use bytes::Bytes;

use crate::error::{DecodeError, FormatError};
use crate::listpack::Entry;

use super::reader::{decimal, Reader};

/// A blob (an RDB string holding an embedded structure) and where it started.
pub(crate) struct Blob {
    pub data: Bytes,
    pub offset: u64,
}

impl Blob {
    pub fn read<R: std::io::Read>(
        reader: &mut Reader<R>,
        context: &'static str,
    ) -> Result<Self, DecodeError> {
        let offset = reader.offset();
        let data = reader.read_string(context)?;
        Ok(Self { data, offset })
    }

    /// A slice of the blob as shared bytes (copied if it is somehow not inside the blob).
    #[inline]
    pub fn share(&self, part: &[u8]) -> Bytes {
        let start = part.as_ptr() as usize;
        let base = self.data.as_ptr() as usize;
        if !part.is_empty() && start >= base && start + part.len() <= base + self.data.len() {
            self.data.slice(start - base..start - base + part.len())
        } else {
            Bytes::copy_from_slice(part)
        }
    }

    /// The element's client-visible bytes: integers as decimal text.
    #[inline]
    pub fn entry_bytes(&self, entry: Entry<'_>) -> Bytes {
        match entry {
            Entry::Bytes(b) => self.share(b),
            Entry::Int(v) => decimal(v),
        }
    }

    /// An error about the blob's content, at the blob's offset.
    pub fn error(&self, source: FormatError) -> DecodeError {
        DecodeError::Structure {
            offset: self.offset,
            source,
        }
    }

    pub fn invalid(&self, structure: &'static str, problem: impl Into<String>) -> DecodeError {
        self.error(FormatError::new(structure, 0, problem))
    }
}

/// A sorted-set score stored as an element: an integer or its text form.
pub(crate) fn entry_score(entry: Entry<'_>) -> Option<f64> {
    match entry {
        Entry::Int(v) => Some(v as f64),
        Entry::Bytes(b) => parse_score_text(b),
    }
}

/// Score text as Redis writes it (`%.17g`-like, `inf`, `-inf`); `strtod` accepts more, but
/// nothing else is written.
pub(crate) fn parse_score_text(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?;
    let value: f64 = text.trim().parse().ok()?;
    Some(value)
}

/// An integer element (field TTLs, stream IDs and counters).
pub(crate) fn entry_int(entry: Entry<'_>) -> Option<i64> {
    match entry {
        Entry::Int(v) => Some(v),
        Entry::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
    }
}

/// The size an element counts for against `max_part_bytes`.
#[inline]
pub(crate) fn entry_size(entry: &Entry<'_>) -> usize {
    match entry {
        Entry::Bytes(b) => b.len(),
        Entry::Int(_) => 8,
    }
}
