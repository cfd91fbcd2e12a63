//! Streams: nodes pass through unchanged; metadata and consumer groups are written in the
//! layout of the target's stream type (15, 19 or 21).

use crate::length::{write_len, write_string, write_u64_le};
use crate::model::{StreamGroup, StreamId, StreamMeta};
use crate::types::{STREAM_LISTPACKS, STREAM_LISTPACKS_3};

/// What the server stores for a consumer group whose read counter it cannot work out
/// (`SCG_INVALID_ENTRIES_READ`, -1 saved as an unsigned length).
const ENTRIES_READ_UNKNOWN: u64 = u64::MAX;

pub(super) fn write_node(master_id: &StreamId, listpack: &[u8], out: &mut Vec<u8>, compress: bool) {
    write_string(out, &master_id.to_be_bytes(), compress);
    write_string(out, listpack, compress);
}

fn write_id(id: &StreamId, out: &mut Vec<u8>) {
    write_len(out, id.ms);
    write_len(out, id.seq);
}

/// Everything after the nodes: length, IDs and counters, then the consumer groups.
pub(super) fn write_tail(
    stream_type: u8,
    meta: &StreamMeta,
    groups: &[StreamGroup],
    out: &mut Vec<u8>,
    compress: bool,
) {
    write_len(out, meta.length);
    write_id(&meta.last_id, out);
    if stream_type > STREAM_LISTPACKS {
        write_id(&meta.first_id, out);
        write_id(&meta.max_deleted_id, out);
        write_len(out, meta.entries_added);
    }
    write_len(out, groups.len() as u64);
    for group in groups {
        write_string(out, &group.name, compress);
        write_id(&group.last_delivered, out);
        if stream_type > STREAM_LISTPACKS {
            let entries_read = group
                .entries_read
                .unwrap_or_else(|| estimate_entries_read(meta, &group.last_delivered));
            write_len(out, entries_read);
        }
        write_len(out, group.pending.len() as u64);
        for entry in &group.pending {
            out.extend_from_slice(&entry.id.to_be_bytes());
            write_u64_le(out, entry.delivery_time_ms);
            write_len(out, entry.delivery_count);
        }
        write_len(out, group.consumers.len() as u64);
        for consumer in &group.consumers {
            write_string(out, &consumer.name, compress);
            write_u64_le(out, consumer.seen_time_ms);
            if stream_type >= STREAM_LISTPACKS_3 {
                // A server loading an older file takes the seen time for the active time.
                write_u64_le(
                    out,
                    consumer.active_time_ms.unwrap_or(consumer.seen_time_ms),
                );
            }
            write_len(out, consumer.pending.len() as u64);
            for id in &consumer.pending {
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
    }
}

/// A group's read counter when the source (type 15) did not record it, worked out as the
/// server does when it loads such a file (`streamEstimateDistanceFromFirstEverEntry`).
fn estimate_entries_read(meta: &StreamMeta, last_delivered: &StreamId) -> u64 {
    if meta.entries_added == 0 {
        return 0;
    }
    if meta.length == 0 && last_delivered <= &meta.last_id {
        return meta.entries_added;
    }
    match last_delivered.cmp(&meta.last_id) {
        std::cmp::Ordering::Equal => return meta.entries_added,
        std::cmp::Ordering::Greater => return ENTRIES_READ_UNKNOWN,
        std::cmp::Ordering::Less => {}
    }
    let no_tombstone_ahead =
        meta.max_deleted_id == StreamId::default() || meta.max_deleted_id < meta.first_id;
    if no_tombstone_ahead {
        match last_delivered.cmp(&meta.first_id) {
            std::cmp::Ordering::Less => return meta.entries_added.wrapping_sub(meta.length),
            std::cmp::Ordering::Equal => {
                return meta.entries_added.wrapping_sub(meta.length).wrapping_add(1)
            }
            std::cmp::Ordering::Greater => {}
        }
    }
    ENTRIES_READ_UNKNOWN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    fn meta() -> StreamMeta {
        StreamMeta {
            length: 3,
            last_id: id(30, 0),
            first_id: id(10, 0),
            max_deleted_id: id(0, 0),
            entries_added: 5,
        }
    }

    #[test]
    fn read_counter_estimates_follow_the_servers_rules() {
        let m = meta();
        assert_eq!(
            estimate_entries_read(&m, &id(30, 0)),
            5,
            "at the last entry"
        );
        assert_eq!(
            estimate_entries_read(&m, &id(31, 0)),
            ENTRIES_READ_UNKNOWN,
            "past it"
        );
        assert_eq!(
            estimate_entries_read(&m, &id(5, 0)),
            2,
            "before the first entry"
        );
        assert_eq!(
            estimate_entries_read(&m, &id(10, 0)),
            3,
            "at the first entry"
        );
        assert_eq!(
            estimate_entries_read(&m, &id(20, 0)),
            ENTRIES_READ_UNKNOWN,
            "in the middle"
        );
        let fresh = StreamMeta {
            entries_added: 0,
            ..m
        };
        assert_eq!(
            estimate_entries_read(&fresh, &id(20, 0)),
            0,
            "never written to"
        );
    }
}
