//! Sets: plain (type 2), intset (11), listpack (20).

use std::io::Read;

use crate::error::DecodeError;
use crate::model::ValuePart;
use crate::{intset, listpack};

use super::blob::{entry_size, Blob};
use super::parts::{read_strings, Limits, Splitter};
use super::reader::{decimal, Reader};

pub(crate) fn read_members<R: Read>(
    reader: &mut Reader<R>,
    remaining: u64,
    limits: &Limits,
) -> Result<(ValuePart, u64), DecodeError> {
    let (strings, read) = read_strings(reader, remaining, limits, "a set member")?;
    Ok((ValuePart::SetMembers(strings), read))
}

pub(crate) fn intset(blob: &Blob, limits: Limits) -> Result<(Vec<ValuePart>, u64), DecodeError> {
    let mut parts = Splitter::new(limits, ValuePart::SetMembers);
    for value in intset::iter(&blob.data).map_err(|e| blob.error(e))? {
        parts.push(decimal(value), 8);
    }
    let count = parts.count();
    Ok((parts.finish(), count))
}

pub(crate) fn listpack(blob: &Blob, limits: Limits) -> Result<(Vec<ValuePart>, u64), DecodeError> {
    let mut parts = Splitter::new(limits, ValuePart::SetMembers);
    for entry in listpack::iter(&blob.data).map_err(|e| blob.error(e))? {
        let entry = entry.map_err(|e| blob.error(e))?;
        parts.push(blob.entry_bytes(entry), entry_size(&entry));
    }
    let count = parts.count();
    Ok((parts.finish(), count))
}
