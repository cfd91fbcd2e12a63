//! Listpack or ziplist, whichever the target format packs small values in.

use crate::listpack::ListpackBuilder;
use crate::target::Format;
use crate::ziplist::ZiplistBuilder;

/// Packed entries in the form the target format has: listpack from RDB 10 (Redis 7.0),
/// ziplist before. Lists (quicklist nodes), hashes and sorted sets all pack through it.
pub(super) enum Packer {
    Listpack(ListpackBuilder),
    Ziplist(ZiplistBuilder),
}

impl Packer {
    pub(super) fn new(format: &Format) -> Self {
        if format.has_listpacks() {
            Packer::Listpack(ListpackBuilder::new())
        } else {
            Packer::Ziplist(ZiplistBuilder::new())
        }
    }

    pub(super) fn push(&mut self, element: &[u8]) {
        match self {
            Packer::Listpack(b) => b.push(element),
            Packer::Ziplist(b) => b.push(element),
        }
    }

    pub(super) fn push_int(&mut self, value: i64) {
        match self {
            Packer::Listpack(b) => b.push_int(value),
            Packer::Ziplist(b) => b.push_int(value),
        }
    }

    /// Stores `text` as a string even when it reads as an integer.
    pub(super) fn push_string(&mut self, text: &[u8]) {
        match self {
            Packer::Listpack(b) => b.push_string(text),
            Packer::Ziplist(b) => b.push_string(text),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Packer::Listpack(b) => b.len(),
            Packer::Ziplist(b) => b.len(),
        }
    }

    pub(super) fn byte_len(&self) -> usize {
        match self {
            Packer::Listpack(b) => b.byte_len(),
            Packer::Ziplist(b) => b.byte_len(),
        }
    }

    pub(super) fn finish(self) -> Vec<u8> {
        match self {
            Packer::Listpack(b) => b.finish(),
            Packer::Ziplist(b) => b.finish(),
        }
    }
}
