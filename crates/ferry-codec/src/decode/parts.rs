//! Cutting collections into parts of bounded size.

use std::io::Read;

use bytes::Bytes;

use super::reader::Reader;
use super::DecodeOptions;
use crate::error::DecodeError;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub elements: usize,
    pub bytes: usize,
}

impl Limits {
    pub fn new(options: &DecodeOptions) -> Self {
        // Zero would mean parts that can never hold anything; one element is the floor.
        Self {
            elements: options.max_part_elements.max(1),
            bytes: options.max_part_bytes.max(1),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(&DecodeOptions::default())
    }
}

/// Collects elements until a part is full.
pub(crate) struct Batch<T> {
    items: Vec<T>,
    bytes: usize,
    capacity: usize,
    limits: Limits,
}

impl<T> Batch<T> {
    /// `expected` is a hint from the input; it is capped so a corrupt count costs nothing.
    pub fn new(limits: Limits, expected: u64) -> Self {
        let capacity = usize::try_from(expected)
            .unwrap_or(usize::MAX)
            .min(limits.elements)
            .min(1024);
        Self {
            items: Vec::with_capacity(capacity),
            bytes: 0,
            capacity,
            limits,
        }
    }

    #[inline]
    pub fn push(&mut self, item: T, size: usize) {
        self.items.push(item);
        self.bytes = self.bytes.saturating_add(size);
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.items.len() >= self.limits.elements || self.bytes >= self.limits.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn take(&mut self) -> Vec<T> {
        self.bytes = 0;
        std::mem::replace(&mut self.items, Vec::with_capacity(self.capacity))
    }
}

/// Splits a fully decoded sequence into parts, for values that come as one blob.
pub(crate) struct Splitter<T, P> {
    batch: Batch<T>,
    count: u64,
    parts: Vec<P>,
    wrap: fn(Vec<T>) -> P,
}

impl<T, P> Splitter<T, P> {
    pub fn new(limits: Limits, wrap: fn(Vec<T>) -> P) -> Self {
        Self {
            batch: Batch::new(limits, 0),
            count: 0,
            parts: Vec::new(),
            wrap,
        }
    }

    #[inline]
    pub fn push(&mut self, item: T, size: usize) {
        self.batch.push(item, size);
        self.count += 1;
        if self.batch.is_full() {
            let items = self.batch.take();
            self.parts.push((self.wrap)(items));
        }
    }

    /// Elements pushed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn finish(mut self) -> Vec<P> {
        if !self.batch.is_empty() {
            let items = self.batch.take();
            self.parts.push((self.wrap)(items));
        }
        self.parts
    }
}

/// Up to one part's worth of a plain collection's strings (list elements, set members),
/// and how many were read.
pub(crate) fn read_strings<R: Read>(
    reader: &mut Reader<R>,
    remaining: u64,
    limits: &Limits,
    what: &'static str,
) -> Result<(Vec<Bytes>, u64), DecodeError> {
    let mut batch = Batch::new(*limits, remaining);
    let mut read = 0;
    while read < remaining && !batch.is_full() {
        let string = reader.read_string(what)?;
        let size = string.len();
        batch.push(string, size);
        read += 1;
    }
    Ok((batch.take(), read))
}
