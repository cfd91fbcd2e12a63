//! Hashes: listpack (RDB 10+) or ziplist (RDB 9) of field/value pairs, the plain form, and
//! the field-TTL forms of Valkey 9 (`HASH_2`) and Redis 7.4+ (`HASH_LISTPACK_EX`,
//! `HASH_METADATA`).

use crate::error::EncodeError;
use crate::length::{write_i64_le, write_len, write_string, write_u64_le};
use crate::listpack::ListpackBuilder;

use super::buffer::Field;
use super::packer::Packer;

/// The latest field expiry Redis accepts (`EB_EXPIRE_TIME_MAX`, 2^48 - 1 ms).
const REDIS_MAX_FIELD_EXPIRY: u64 = (1 << 48) - 1;

/// A hash small enough to pack: field, value, field, value...
pub(super) fn write_packed<'a>(
    mut packer: Packer,
    fields: impl Iterator<Item = Field<'a>>,
    out: &mut Vec<u8>,
    compress: bool,
) {
    for f in fields {
        packer.push(f.field);
        packer.push(f.value);
    }
    write_string(out, &packer.finish(), compress);
}

/// One field of a plain (`HASH`) hash.
pub(super) fn write_plain_field(f: Field<'_>, out: &mut Vec<u8>, compress: bool) {
    write_string(out, f.field, compress);
    write_string(out, f.value, compress);
}

/// One field of a Valkey `HASH_2`: field, value, expiry in ms (-1: none).
pub(super) fn write_valkey_field(f: Field<'_>, out: &mut Vec<u8>, compress: bool) {
    write_plain_field(f, out, compress);
    // -1 means "no expiry" to Valkey and anything below is rejected, so an expiry before
    // the epoch becomes the epoch: the field is just as expired.
    write_i64_le(out, f.expire_at_ms.map_or(-1, |ms| ms.max(0)));
}

/// A field's expiry as Redis stores it: 0 for none, else absolute ms in 1..=2^48-1.
pub(super) fn redis_expiry(f: Field<'_>, key: &str) -> Result<u64, EncodeError> {
    match f.expire_at_ms {
        None => Ok(0),
        // 0 means "none" to Redis; an expiry at or before the epoch is just as expired at 1.
        Some(ms) if ms < 1 => Ok(1),
        Some(ms) if ms as u64 > REDIS_MAX_FIELD_EXPIRY => Err(EncodeError::Unrepresentable {
            key: key.to_owned(),
            problem: format!(
                "field {:?} expires at {ms} ms, past the latest field expiry Redis accepts ({REDIS_MAX_FIELD_EXPIRY})",
                String::from_utf8_lossy(f.field)
            ),
        }),
        Some(ms) => Ok(ms as u64),
    }
}

/// Redis `HASH_LISTPACK_EX`: the earliest field expiry, then a listpack of field, value,
/// expiry triplets ordered by expiry with the fields that never expire last, as the server
/// keeps them. `fields` pairs each field with its [`redis_expiry`].
pub(super) fn write_listpack_ex(
    fields: &mut [(Field<'_>, u64)],
    out: &mut Vec<u8>,
    compress: bool,
) {
    // Stable, so equal expiries keep their order as the server's ordered insert does.
    fields.sort_by_key(|&(_, expiry)| if expiry == 0 { u64::MAX } else { expiry });
    let min_expire = fields.first().map_or(0, |&(_, expiry)| expiry);
    write_u64_le(out, min_expire);
    let mut packer = ListpackBuilder::new();
    for &(f, expiry) in fields.iter() {
        packer.push(f.field);
        packer.push(f.value);
        packer.push_int(expiry as i64);
    }
    write_string(out, &packer.finish(), compress);
}

/// Redis `HASH_METADATA` prefix: a lower bound of the field expiries (which the loader
/// only uses as the base of the relative TTLs that follow), then the field count.
pub(super) fn write_metadata_header(min_expire: u64, len: u64, out: &mut Vec<u8>) {
    write_u64_le(out, min_expire);
    write_len(out, len);
}

/// One `HASH_METADATA` field: TTL relative to `min_expire` (+1, so 0 stays "none"), field,
/// value. `expiry` comes from [`redis_expiry`] and is at least `min_expire` when set.
pub(super) fn write_metadata_field(
    f: Field<'_>,
    expiry: u64,
    min_expire: u64,
    out: &mut Vec<u8>,
    compress: bool,
) {
    let ttl = if expiry == 0 {
        0
    } else {
        expiry - min_expire + 1
    };
    write_len(out, ttl);
    write_plain_field(f, out, compress);
}
