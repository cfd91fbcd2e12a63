//! Hashes: plain (type 4), zipmap (9), ziplist (13), listpack (16), and the field-TTL
//! forms: Redis 22/24 (plain with TTLs), 23/25 (listpack of triplets), Valkey 22 (`HASH_2`).

use std::io::Read;

use crate::error::{DecodeError, FormatError};
use crate::listpack::Entry;
use crate::model::{HashField, ValuePart};
use crate::{listpack, ziplist, zipmap};

use super::blob::{entry_int, entry_size, Blob};
use super::parts::{Batch, Limits, Splitter};
use super::reader::Reader;
use super::value::Shape;

/// Valkey `HASH_2`: the expiry of a field without one.
const VALKEY_NO_EXPIRY: i64 = -1;

pub(crate) fn read_fields<R: Read>(
    reader: &mut Reader<R>,
    shape: Shape,
    remaining: u64,
    limits: &Limits,
) -> Result<(ValuePart, u64), DecodeError> {
    let mut batch = Batch::new(*limits, remaining);
    let mut read = 0;
    while read < remaining && !batch.is_full() {
        let field = match shape {
            Shape::RedisFieldTtlHash { min_expire } => {
                let ttl_offset = reader.offset();
                let ttl = reader.read_len("a hash field TTL")?;
                let field = reader.read_string("a hash field")?;
                let value = reader.read_string("a hash value")?;
                let expire_at_ms =
                    redis_field_expiry(ttl, min_expire).ok_or_else(|| DecodeError::Invalid {
                        offset: ttl_offset,
                        problem: format!(
                            "hash field TTL {ttl} (minimum expiry {min_expire:?}) is out of range"
                        ),
                    })?;
                HashField {
                    field,
                    value,
                    expire_at_ms,
                }
            }
            Shape::ValkeyFieldTtlHash => {
                let field = reader.read_string("a hash field")?;
                let value = reader.read_string("a hash value")?;
                let expiry_offset = reader.offset();
                let expiry = reader.read_i64_le("a hash field expiry")?;
                let expire_at_ms = match expiry {
                    VALKEY_NO_EXPIRY => None,
                    ms if ms >= 0 => Some(ms),
                    ms => {
                        return Err(DecodeError::Invalid {
                            offset: expiry_offset,
                            problem: format!("hash field expiry {ms} is negative"),
                        })
                    }
                };
                HashField {
                    field,
                    value,
                    expire_at_ms,
                }
            }
            _ => {
                let field = reader.read_string("a hash field")?;
                let value = reader.read_string("a hash value")?;
                HashField {
                    field,
                    value,
                    expire_at_ms: None,
                }
            }
        };
        let size = field.field.len() + field.value.len();
        batch.push(field, size);
        read += 1;
    }
    Ok((ValuePart::HashFields(batch.take()), read))
}

/// Redis 24 stores `expire_at - min_expire + 1` (0 = no TTL); 22 stores `expire_at` itself.
/// `None` when the result is not a valid time; `Some(None)` when the field has no TTL.
fn redis_field_expiry(ttl: u64, min_expire: Option<u64>) -> Option<Option<i64>> {
    if ttl == 0 {
        return Some(None);
    }
    let absolute = match min_expire {
        Some(min) => ttl.checked_add(min)?.checked_sub(1)?,
        None => ttl,
    };
    Some(Some(i64::try_from(absolute).ok()?))
}

pub(crate) fn zipmap(blob: &Blob, limits: Limits) -> Result<(Vec<ValuePart>, u64), DecodeError> {
    let mut parts = Splitter::new(limits, ValuePart::HashFields);
    for pair in zipmap::iter(&blob.data).map_err(|e| blob.error(e))? {
        let (field, value) = pair.map_err(|e| blob.error(e))?;
        let size = field.len() + value.len();
        parts.push(
            HashField {
                field: blob.share(field),
                value: blob.share(value),
                expire_at_ms: None,
            },
            size,
        );
    }
    let count = parts.count();
    Ok((parts.finish(), count))
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
    mut entries: impl Iterator<Item = Result<Entry<'a>, FormatError>>,
    structure: &'static str,
) -> Result<(Vec<ValuePart>, u64), DecodeError> {
    let mut parts = Splitter::new(limits, ValuePart::HashFields);
    while let Some(field) = entries.next() {
        let field = field.map_err(|e| blob.error(e))?;
        let Some(value) = entries.next() else {
            return Err(blob.invalid(structure, "hash field without a value"));
        };
        let value = value.map_err(|e| blob.error(e))?;
        let size = entry_size(&field) + entry_size(&value);
        parts.push(
            HashField {
                field: blob.entry_bytes(field),
                value: blob.entry_bytes(value),
                expire_at_ms: None,
            },
            size,
        );
    }
    let count = parts.count();
    Ok((parts.finish(), count))
}

/// Redis 23/25: a listpack of field, value, TTL triplets; TTL is absolute ms, 0 for none.
pub(crate) fn listpack_with_ttls(
    blob: &Blob,
    limits: Limits,
) -> Result<(Vec<ValuePart>, u64), DecodeError> {
    let mut entries = listpack::iter(&blob.data).map_err(|e| blob.error(e))?;
    let mut parts = Splitter::new(limits, ValuePart::HashFields);
    while let Some(field) = entries.next() {
        let field = field.map_err(|e| blob.error(e))?;
        let value = next_entry(&mut entries, blob, "value")?;
        let ttl = next_entry(&mut entries, blob, "TTL")?;
        let ttl = entry_int(ttl).filter(|ttl| *ttl >= 0).ok_or_else(|| {
            blob.invalid("listpack", format!("hash field TTL {ttl:?} is not a time"))
        })?;
        let size = entry_size(&field) + entry_size(&value);
        parts.push(
            HashField {
                field: blob.entry_bytes(field),
                value: blob.entry_bytes(value),
                expire_at_ms: (ttl != 0).then_some(ttl),
            },
            size,
        );
    }
    let count = parts.count();
    Ok((parts.finish(), count))
}

fn next_entry<'a>(
    entries: &mut impl Iterator<Item = Result<Entry<'a>, FormatError>>,
    blob: &Blob,
    what: &str,
) -> Result<Entry<'a>, DecodeError> {
    match entries.next() {
        Some(entry) => entry.map_err(|e| blob.error(e)),
        None => Err(blob.invalid("listpack", format!("hash field without its {what}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::redis_field_expiry;

    #[test]
    fn redis_ttls_are_relative_to_the_minimum_plus_one() {
        assert_eq!(redis_field_expiry(0, Some(1000)), Some(None));
        assert_eq!(redis_field_expiry(1, Some(1000)), Some(Some(1000)));
        assert_eq!(redis_field_expiry(5, Some(1000)), Some(Some(1004)));
        assert_eq!(redis_field_expiry(1234, None), Some(Some(1234)));
        assert_eq!(redis_field_expiry(u64::MAX, Some(2)), None);
    }
}
