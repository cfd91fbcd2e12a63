//! One key's value held until its encoding can be chosen. Element bytes are copied into
//! one reused arena, so buffering a key allocates nothing once the buffers have grown.

use std::cell::Cell;

use crate::model::{HashField, Kind, ScoredMember, StreamGroup, StreamId, StreamMeta, ValuePart};

/// A sorted-set member borrowed from a buffer or a part.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scored<'a> {
    pub member: &'a [u8],
    pub score: f64,
}

impl<'a> From<&'a ScoredMember> for Scored<'a> {
    fn from(m: &'a ScoredMember) -> Self {
        Scored {
            member: &m.member,
            score: m.score,
        }
    }
}

/// A hash field borrowed from a buffer or a part.
#[derive(Debug, Clone, Copy)]
pub(super) struct Field<'a> {
    pub field: &'a [u8],
    pub value: &'a [u8],
    pub expire_at_ms: Option<i64>,
}

impl<'a> From<&'a HashField> for Field<'a> {
    fn from(f: &'a HashField) -> Self {
        Field {
            field: &f.field,
            value: &f.value,
            expire_at_ms: f.expire_at_ms,
        }
    }
}

/// Rough cost of one buffered element beyond its bytes (end offset, score or expiry).
const ELEMENT_OVERHEAD: usize = 16;

#[derive(Default)]
pub(super) struct ValueBuffer {
    bytes: Vec<u8>,
    /// End offset in `bytes` of each element; hash fields take two (field, value), stream
    /// nodes one (the listpack).
    ends: Vec<usize>,
    scores: Vec<f64>,
    expiries: Vec<Option<i64>>,
    /// Element count at the end of each part: a list's source nodes.
    part_ends: Vec<usize>,
    node_ids: Vec<StreamId>,
    pub(super) stream_meta: Option<StreamMeta>,
    pub(super) stream_groups: Vec<StreamGroup>,
    /// Reused by [`ValueBuffer::first_duplicate`].
    sort_scratch: Cell<Vec<usize>>,
    /// Bytes of capacity kept between keys: reallocating for every large key costs more
    /// than holding about one buffer's worth.
    keep_capacity: usize,
}

impl ValueBuffer {
    pub(super) fn new(keep_capacity: usize) -> Self {
        Self {
            keep_capacity,
            ..Self::default()
        }
    }

    pub(super) fn clear(&mut self) {
        self.clear_elements();
        self.stream_meta = None;
        self.stream_groups.clear();
    }

    /// Forgets everything but a stream's metadata and groups.
    pub(super) fn clear_elements(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.scores.clear();
        self.expiries.clear();
        self.part_ends.clear();
        self.node_ids.clear();
        if self.bytes.capacity() > self.keep_capacity {
            self.bytes.shrink_to(self.keep_capacity);
        }
        let keep_elements = self.keep_capacity / ELEMENT_OVERHEAD;
        if self.ends.capacity() > keep_elements {
            self.ends.shrink_to(keep_elements);
        }
    }

    /// Approximate memory held for the value.
    pub(super) fn size(&self) -> usize {
        self.bytes.len() + self.ends.len() * ELEMENT_OVERHEAD
    }

    fn push_bytes(&mut self, element: &[u8]) {
        self.bytes.extend_from_slice(element);
        self.ends.push(self.bytes.len());
    }

    /// Adds a part the caller has checked fits the key's kind (see [`part_fits`]).
    pub(super) fn add(&mut self, part: &ValuePart) {
        match part {
            ValuePart::ListElements(elements) | ValuePart::SetMembers(elements) => {
                for e in elements {
                    self.push_bytes(e);
                }
            }
            ValuePart::SortedSetMembers(members) => {
                for m in members {
                    self.push_bytes(&m.member);
                    self.scores.push(m.score);
                }
            }
            ValuePart::HashFields(fields) => {
                for f in fields {
                    self.push_bytes(&f.field);
                    self.push_bytes(&f.value);
                    self.expiries.push(f.expire_at_ms);
                }
            }
            ValuePart::StreamNode {
                master_id,
                listpack,
            } => {
                self.node_ids.push(*master_id);
                self.push_bytes(listpack);
            }
            ValuePart::StreamMeta(meta) => self.stream_meta = Some(meta.clone()),
            ValuePart::StreamGroup(group) => self.stream_groups.push(group.clone()),
            // Strings and module values are written as they arrive, never buffered.
            ValuePart::String(_) | ValuePart::Module(_) => {}
        }
        self.part_ends.push(self.ends.len());
    }

    fn element(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// Elements of a list or set, stream node listpacks.
    pub(super) fn elements(&self) -> impl ExactSizeIterator<Item = &[u8]> + Clone + '_ {
        (0..self.ends.len()).map(move |i| self.element(i))
    }

    /// List elements grouped by the part (source node) they came in.
    pub(super) fn parts(&self) -> impl Iterator<Item = impl Iterator<Item = &[u8]> + '_> + '_ {
        let mut start = 0;
        self.part_ends.iter().map(move |&end| {
            let range = start..end;
            start = end;
            range.map(move |i| self.element(i))
        })
    }

    pub(super) fn scored(&self) -> impl ExactSizeIterator<Item = Scored<'_>> + Clone + '_ {
        self.scores
            .iter()
            .enumerate()
            .map(move |(i, &score)| Scored {
                member: self.element(i),
                score,
            })
    }

    pub(super) fn fields(&self) -> impl ExactSizeIterator<Item = Field<'_>> + Clone + '_ {
        self.expiries
            .iter()
            .enumerate()
            .map(move |(i, &expire_at_ms)| Field {
                field: self.element(2 * i),
                value: self.element(2 * i + 1),
                expire_at_ms,
            })
    }

    pub(super) fn stream_nodes(&self) -> impl ExactSizeIterator<Item = (&StreamId, &[u8])> + '_ {
        self.node_ids
            .iter()
            .enumerate()
            .map(move |(i, id)| (id, self.element(i)))
    }

    /// A member (sets, sorted sets) or field (hashes) that occurs twice, if any.
    pub(super) fn first_duplicate(&self, kind: Kind) -> Option<&[u8]> {
        // Hash fields are every other element (field, value, field, ...).
        let stride = if kind == Kind::Hash { 2 } else { 1 };
        let mut order = self.sort_scratch.take();
        order.clear();
        order.extend((0..self.ends.len()).step_by(stride));
        order.sort_unstable_by(|&a, &b| self.element(a).cmp(self.element(b)));
        let duplicate = order
            .windows(2)
            .find(|w| self.element(w[0]) == self.element(w[1]))
            .map(|w| self.element(w[0]));
        self.sort_scratch.set(order);
        duplicate
    }

    /// Elements (list, set), members (sorted set), fields (hash) or nodes (stream).
    pub(super) fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::SortedSet => self.scores.len(),
            Kind::Hash => self.expiries.len(),
            _ => self.ends.len(),
        }
    }
}

/// Whether `part` can belong to a value of `kind`.
pub(super) fn part_fits(kind: Kind, part: &ValuePart) -> bool {
    matches!(
        (kind, part),
        (Kind::String, ValuePart::String(_))
            | (Kind::List, ValuePart::ListElements(_))
            | (Kind::Set, ValuePart::SetMembers(_))
            | (Kind::SortedSet, ValuePart::SortedSetMembers(_))
            | (Kind::Hash, ValuePart::HashFields(_))
            | (
                Kind::Stream,
                ValuePart::StreamNode { .. } | ValuePart::StreamMeta(_) | ValuePart::StreamGroup(_)
            )
            | (Kind::Module(_), ValuePart::Module(_))
    )
}

pub(super) fn part_name(part: &ValuePart) -> &'static str {
    match part {
        ValuePart::String(_) => "string",
        ValuePart::ListElements(_) => "list elements",
        ValuePart::SetMembers(_) => "set members",
        ValuePart::SortedSetMembers(_) => "sorted set members",
        ValuePart::HashFields(_) => "hash fields",
        ValuePart::StreamNode { .. } => "stream node",
        ValuePart::StreamMeta(_) => "stream metadata",
        ValuePart::StreamGroup(_) => "stream consumer group",
        ValuePart::Module(_) => "module value",
    }
}
