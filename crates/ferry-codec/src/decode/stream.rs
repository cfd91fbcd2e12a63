//! Streams (types 15, 19, 21): nodes, then metadata, then consumer groups.

use std::io::Read;

use crate::error::{DecodeError, FormatError};
use crate::listpack::{self, Entry};
use crate::model::{PendingEntry, StreamConsumer, StreamGroup, StreamId, StreamMeta, ValuePart};
use crate::types;

use super::blob::{entry_int, Blob};
use super::reader::Reader;

/// Stream entry flag: the entry was deleted and only its slot remains.
const ITEM_DELETED: i64 = 1;
/// Stream entry flag: the entry has the master entry's fields, so only values are stored.
const ITEM_SAME_FIELDS: i64 = 2;
/// Cap on preallocation for counts read from the input.
const PREALLOC: u64 = 1024;

#[derive(Debug)]
pub(crate) struct StreamState {
    type_byte: u8,
    phase: Phase,
    /// Type 15 lacks the first entry ID: found in the nodes as they pass, like the server.
    first_live_entry: Option<StreamId>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Nodes { remaining: u64 },
    Groups { remaining: u64 },
}

impl StreamState {
    pub fn new(type_byte: u8, nodes: u64) -> Self {
        Self {
            type_byte,
            phase: Phase::Nodes { remaining: nodes },
            first_live_entry: None,
        }
    }

    fn derives_first_id(&self) -> bool {
        self.type_byte == types::STREAM_LISTPACKS
    }
}

pub(crate) fn continue_stream<R: Read>(
    reader: &mut Reader<R>,
    mut state: StreamState,
) -> Result<(ValuePart, Option<StreamState>), DecodeError> {
    match state.phase {
        Phase::Nodes { remaining } if remaining > 0 => {
            let part = read_node(reader, &mut state)?;
            state.phase = Phase::Nodes {
                remaining: remaining - 1,
            };
            Ok((part, Some(state)))
        }
        Phase::Nodes { .. } => {
            let meta = read_meta(reader, &state)?;
            let groups = reader.read_count("a consumer group count")?;
            state.phase = Phase::Groups { remaining: groups };
            Ok((ValuePart::StreamMeta(meta), (groups > 0).then_some(state)))
        }
        Phase::Groups { remaining } => {
            let group = read_group(reader, state.type_byte)?;
            let remaining = remaining.saturating_sub(1);
            state.phase = Phase::Groups { remaining };
            Ok((
                ValuePart::StreamGroup(group),
                (remaining > 0).then_some(state),
            ))
        }
    }
}

fn read_node<R: Read>(
    reader: &mut Reader<R>,
    state: &mut StreamState,
) -> Result<ValuePart, DecodeError> {
    let id_offset = reader.offset();
    let raw_id = reader.read_string("a stream node ID")?;
    let raw_id: [u8; 16] = raw_id[..].try_into().map_err(|_| DecodeError::Invalid {
        offset: id_offset,
        problem: format!("stream node ID is {} bytes, not 16", raw_id.len()),
    })?;
    let master_id = StreamId::from_be_bytes(raw_id);
    let node = Blob::read(reader, "a stream node")?;
    if state.derives_first_id() && state.first_live_entry.is_none() {
        state.first_live_entry = first_live_entry(&node, master_id)?;
    }
    Ok(ValuePart::StreamNode {
        master_id,
        listpack: node.data,
    })
}

/// The ID of the node's first entry not marked deleted.
///
/// Node layout: count, deleted, master field count, master fields, 0; then per entry:
/// flags, ms delta, seq delta, [field count, fields and values | values], entry length.
fn first_live_entry(node: &Blob, master_id: StreamId) -> Result<Option<StreamId>, DecodeError> {
    let entries = listpack::iter(&node.data).map_err(|e| node.error(e))?;
    let mut cursor = NodeCursor { entries, node };
    let live = cursor.count("entry count")?;
    let deleted = cursor.count("deleted count")?;
    let master_fields = cursor.count("master field count")?;
    if live == 0 {
        return Ok(None);
    }
    cursor.skip(master_fields, "master field")?;
    cursor.int("master entry terminator")?;
    for _ in 0..live.saturating_add(deleted) {
        let flags = cursor.int("entry flags")?;
        let ms_delta = cursor.int("entry ID")?;
        let seq_delta = cursor.int("entry ID")?;
        if flags & ITEM_DELETED == 0 {
            return Ok(Some(StreamId {
                ms: master_id.ms.wrapping_add(ms_delta as u64),
                seq: master_id.seq.wrapping_add(seq_delta as u64),
            }));
        }
        let values = if flags & ITEM_SAME_FIELDS != 0 {
            master_fields
        } else {
            cursor.count("entry field count")?.saturating_mul(2)
        };
        cursor.skip(values, "entry field")?;
        cursor.int("entry length")?;
    }
    Ok(None)
}

struct NodeCursor<'a, I> {
    entries: I,
    node: &'a Blob,
}

impl<'a, 'b, I: Iterator<Item = Result<Entry<'b>, FormatError>>> NodeCursor<'a, I> {
    fn next(&mut self, what: &str) -> Result<Entry<'b>, DecodeError> {
        match self.entries.next() {
            Some(entry) => entry.map_err(|e| self.node.error(e)),
            None => Err(self
                .node
                .invalid("stream node", format!("ends before its {what}"))),
        }
    }

    fn int(&mut self, what: &str) -> Result<i64, DecodeError> {
        let entry = self.next(what)?;
        entry_int(entry).ok_or_else(|| {
            self.node
                .invalid("stream node", format!("{what} {entry:?} is not an integer"))
        })
    }

    fn count(&mut self, what: &str) -> Result<u64, DecodeError> {
        let value = self.int(what)?;
        u64::try_from(value).map_err(|_| {
            self.node
                .invalid("stream node", format!("{what} {value} is negative"))
        })
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), DecodeError> {
        for _ in 0..n {
            self.next(what)?;
        }
        Ok(())
    }
}

fn read_id<R: Read>(
    reader: &mut Reader<R>,
    context: &'static str,
) -> Result<StreamId, DecodeError> {
    let ms = reader.read_len(context)?;
    let seq = reader.read_len(context)?;
    Ok(StreamId { ms, seq })
}

fn read_meta<R: Read>(
    reader: &mut Reader<R>,
    state: &StreamState,
) -> Result<StreamMeta, DecodeError> {
    let length = reader.read_len("a stream length")?;
    let last_id = read_id(reader, "a stream's last ID")?;
    if state.type_byte >= types::STREAM_LISTPACKS_2 {
        let first_id = read_id(reader, "a stream's first ID")?;
        let max_deleted_id = read_id(reader, "a stream's maximum deleted ID")?;
        let entries_added = reader.read_len("a stream's added entry count")?;
        return Ok(StreamMeta {
            length,
            last_id,
            first_id,
            max_deleted_id,
            entries_added,
        });
    }
    // What the server sets when it loads type 15: entries added = length, no deletions
    // known, first ID from the nodes (the largest ID when there is no live entry).
    let first_id = state.first_live_entry.unwrap_or(StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    });
    Ok(StreamMeta {
        length,
        last_id,
        first_id,
        max_deleted_id: StreamId::default(),
        entries_added: length,
    })
}

fn read_raw_id<R: Read>(
    reader: &mut Reader<R>,
    context: &'static str,
) -> Result<StreamId, DecodeError> {
    Ok(StreamId::from_be_bytes(reader.read_array(context)?))
}

fn read_group<R: Read>(reader: &mut Reader<R>, type_byte: u8) -> Result<StreamGroup, DecodeError> {
    let name = reader.read_string("a consumer group name")?;
    let last_delivered = read_id(reader, "a consumer group's last delivered ID")?;
    let entries_read = if type_byte >= types::STREAM_LISTPACKS_2 {
        Some(reader.read_len("a consumer group's read counter")?)
    } else {
        None
    };
    let pel_size = reader.read_count("a pending entry count")?;
    let mut pending = Vec::with_capacity(pel_size.min(PREALLOC) as usize);
    for _ in 0..pel_size {
        let id = read_raw_id(reader, "a pending entry ID")?;
        let delivery_time_ms = reader.read_u64_le("a delivery time")?;
        let delivery_count = reader.read_len("a delivery count")?;
        pending.push(PendingEntry {
            id,
            delivery_time_ms,
            delivery_count,
        });
    }
    let consumer_count = reader.read_count("a consumer count")?;
    let mut consumers = Vec::with_capacity(consumer_count.min(PREALLOC) as usize);
    for _ in 0..consumer_count {
        let name = reader.read_string("a consumer name")?;
        let seen_time_ms = reader.read_u64_le("a consumer's seen time")?;
        let active_time_ms = if type_byte >= types::STREAM_LISTPACKS_3 {
            Some(reader.read_u64_le("a consumer's active time")?)
        } else {
            None
        };
        let owned = reader.read_count("a consumer's pending count")?;
        let mut ids = Vec::with_capacity(owned.min(PREALLOC) as usize);
        for _ in 0..owned {
            ids.push(read_raw_id(reader, "a consumer's pending ID")?);
        }
        consumers.push(StreamConsumer {
            name,
            seen_time_ms,
            active_time_ms,
            pending: ids,
        });
    }
    Ok(StreamGroup {
        name,
        last_delivered,
        entries_read,
        pending,
        consumers,
    })
}
