//! Lists: linked (type 1), ziplist (10), quicklist of ziplists (14) or listpacks (18).

use std::io::Read;

use bytes::Bytes;

use crate::error::DecodeError;
use crate::model::ValuePart;
use crate::{listpack, ziplist};

use super::blob::{entry_size, Blob};
use super::parts::{read_strings, Limits, Splitter};
use super::reader::Reader;

/// Quicklist 2 node containers.
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;

pub(crate) fn read_elements<R: Read>(
    reader: &mut Reader<R>,
    remaining: u64,
    limits: &Limits,
) -> Result<(ValuePart, u64), DecodeError> {
    let (strings, read) = read_strings(reader, remaining, limits, "a list element")?;
    Ok((ValuePart::ListElements(strings), read))
}

pub(crate) fn ziplist(blob: &Blob, limits: Limits) -> Result<(Vec<ValuePart>, u64), DecodeError> {
    let mut parts = Splitter::new(limits, ValuePart::ListElements);
    for entry in ziplist::iter(&blob.data).map_err(|e| blob.error(e))? {
        let entry = entry.map_err(|e| blob.error(e))?;
        parts.push(blob.entry_bytes(entry), entry_size(&entry));
    }
    let count = parts.count();
    Ok((parts.finish(), count))
}

/// One quicklist node, as one part.
pub(crate) fn read_quicklist_node<R: Read>(
    reader: &mut Reader<R>,
    with_containers: bool,
) -> Result<ValuePart, DecodeError> {
    quicklist_node(reader, with_containers, true).map(ValuePart::ListElements)
}

/// Reads and checks one quicklist node as [`read_quicklist_node`] does, without building
/// its elements.
pub(crate) fn skip_quicklist_node<R: Read>(
    reader: &mut Reader<R>,
    with_containers: bool,
) -> Result<(), DecodeError> {
    quicklist_node(reader, with_containers, false).map(drop)
}

/// A quicklist node's elements, or none but with every entry checked when `!keep`.
fn quicklist_node<R: Read>(
    reader: &mut Reader<R>,
    with_containers: bool,
    keep: bool,
) -> Result<Vec<Bytes>, DecodeError> {
    let container = if with_containers {
        reader.read_len("a quicklist node container")?
    } else {
        CONTAINER_PACKED
    };
    if container != CONTAINER_PLAIN && container != CONTAINER_PACKED {
        return Err(reader.invalid(format!(
            "quicklist node container {container} is neither 1 (plain) nor 2 (packed)"
        )));
    }
    let blob = Blob::read(reader, "a quicklist node")?;
    if blob.data.is_empty() {
        return Err(DecodeError::Invalid {
            offset: blob.offset,
            problem: "empty quicklist node".into(),
        });
    }
    if container == CONTAINER_PLAIN {
        // A plain node is one large element stored as it is.
        return Ok(if keep { vec![blob.data] } else { Vec::new() });
    }
    let mut elements: Vec<Bytes> = Vec::new();
    if with_containers {
        for entry in listpack::iter(&blob.data).map_err(|e| blob.error(e))? {
            let entry = entry.map_err(|e| blob.error(e))?;
            if keep {
                elements.push(blob.entry_bytes(entry));
            }
        }
    } else {
        for entry in ziplist::iter(&blob.data).map_err(|e| blob.error(e))? {
            let entry = entry.map_err(|e| blob.error(e))?;
            if keep {
                elements.push(blob.entry_bytes(entry));
            }
        }
    }
    Ok(elements)
}
