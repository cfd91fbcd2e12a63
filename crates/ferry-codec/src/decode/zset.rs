//! Sorted sets: plain with text scores (type 3) or binary scores (5), ziplist (12),
//! listpack (17). Embedded structures hold member, score pairs.

use std::io::Read;

use crate::error::DecodeError;
use crate::listpack::Entry;
use crate::model::{ScoredMember, ValuePart};
use crate::{listpack, ziplist};

use super::blob::{entry_score, entry_size, parse_score_text, Blob};
use super::parts::{Batch, Limits, Splitter};
use super::reader::Reader;
use super::value::Shape;

/// Type-3 score length bytes that stand for special values.
const SCORE_NAN: u8 = 253;
const SCORE_POS_INF: u8 = 254;
const SCORE_NEG_INF: u8 = 255;

pub(crate) fn read_members<R: Read>(
    reader: &mut Reader<R>,
    shape: Shape,
    remaining: u64,
    limits: &Limits,
) -> Result<(ValuePart, u64), DecodeError> {
    let mut batch = Batch::new(*limits, remaining);
    let mut read = 0;
    while read < remaining && !batch.is_full() {
        let member = reader.read_string("a sorted set member")?;
        let score = match shape {
            Shape::SortedSetTextScores => read_text_score(reader)?,
            _ => reader.read_f64_le("a sorted set score")?,
        };
        let size = member.len() + 8;
        batch.push(ScoredMember { member, score }, size);
        read += 1;
    }
    Ok((ValuePart::SortedSetMembers(batch.take()), read))
}

fn read_text_score<R: Read>(reader: &mut Reader<R>) -> Result<f64, DecodeError> {
    match reader.read_u8("a sorted set score")? {
        SCORE_NAN => Ok(f64::NAN),
        SCORE_POS_INF => Ok(f64::INFINITY),
        SCORE_NEG_INF => Ok(f64::NEG_INFINITY),
        len => {
            let start = reader.offset();
            let text = reader.read_bytes(u64::from(len), "a sorted set score")?;
            parse_score_text(&text).ok_or_else(|| DecodeError::Invalid {
                offset: start,
                problem: format!(
                    "sorted set score {:?} is not a number",
                    text.escape_ascii().to_string()
                ),
            })
        }
    }
}

pub(crate) fn ziplist(blob: &Blob, limits: Limits) -> Result<(Vec<ValuePart>, u64), DecodeError> {
    let entries = ziplist::iter(&blob.data).map_err(|e| blob.error(e))?;
    pairs(blob, limits, entries, "ziplist")
}

pub(crate) fn listpack(blob: &Blob, limits: Limits) -> Result<(Vec<ValuePart>, u64), DecodeError> {
    let entries = listpack::iter(&blob.data).map_err(|e| blob.error(e))?;
    pairs(blob, limits, entries, "listpack")
}

fn pairs<'a>(
    blob: &Blob,
    limits: Limits,
    mut entries: impl Iterator<Item = Result<Entry<'a>, crate::error::FormatError>>,
    structure: &'static str,
) -> Result<(Vec<ValuePart>, u64), DecodeError> {
    let mut parts = Splitter::new(limits, ValuePart::SortedSetMembers);
    while let Some(member) = entries.next() {
        let member = member.map_err(|e| blob.error(e))?;
        let Some(score) = entries.next() else {
            return Err(blob.invalid(structure, "sorted set member without a score"));
        };
        let score = score.map_err(|e| blob.error(e))?;
        let score = entry_score(score).ok_or_else(|| {
            blob.invalid(
                structure,
                format!("sorted set score {score:?} is not a number"),
            )
        })?;
        let size = entry_size(&member) + 8;
        parts.push(
            ScoredMember {
                member: blob.entry_bytes(member),
                score,
            },
            size,
        );
    }
    let count = parts.count();
    Ok((parts.finish(), count))
}
