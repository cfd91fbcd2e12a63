//! Writes a fully buffered value's body in the encoding [`super::choose`] picked.

use super::buffer::{Field, ValueBuffer};
use super::choose::{key_name, Encoding};
use super::packer::Packer;
use super::{hash, list, set, stream, zset};
use crate::error::EncodeError;
use crate::length::{write_len, write_string};
use crate::model::KeyHeader;
use crate::target::Format;

pub(super) fn write_value(
    format: &Format,
    header: &KeyHeader,
    encoding: &Encoding,
    value: &ValueBuffer,
    out: &mut Vec<u8>,
    compress: bool,
) -> Result<(), EncodeError> {
    match encoding {
        Encoding::List => list::write_quicklist(format, value.elements(), out, compress),
        Encoding::SetIntset(members) => set::write_intset(members, out, compress),
        Encoding::SetListpack => set::write_listpack(value.elements(), out, compress),
        Encoding::SetPlain => {
            write_len(out, value.elements().len() as u64);
            for member in value.elements() {
                write_string(out, member, compress);
            }
        }
        Encoding::ZsetPacked => {
            let mut sorted: Vec<_> = value.scored().collect();
            zset::sort_for_packing(&mut sorted);
            zset::write_packed(Packer::new(format), &sorted, out, compress);
        }
        Encoding::ZsetPlain => {
            write_len(out, value.scored().len() as u64);
            for member in value.scored() {
                zset::write_plain_member(member, out, compress);
            }
        }
        Encoding::HashPacked => {
            hash::write_packed(Packer::new(format), value.fields(), out, compress)
        }
        Encoding::HashPlain => {
            write_len(out, value.fields().len() as u64);
            for f in value.fields() {
                hash::write_plain_field(f, out, compress);
            }
        }
        Encoding::HashValkeyTtl => {
            write_len(out, value.fields().len() as u64);
            for f in value.fields() {
                hash::write_valkey_field(f, out, compress);
            }
        }
        Encoding::HashRedisListpackTtl => {
            let mut fields = with_redis_expiries(header, value)?;
            hash::write_listpack_ex(&mut fields, out, compress);
        }
        Encoding::HashRedisMetadata => {
            let fields = with_redis_expiries(header, value)?;
            let min_expire = fields
                .iter()
                .map(|&(_, e)| e)
                .filter(|&e| e != 0)
                .min()
                .unwrap_or(0);
            hash::write_metadata_header(min_expire, fields.len() as u64, out);
            for (f, expiry) in fields {
                hash::write_metadata_field(f, expiry, min_expire, out, compress);
            }
        }
        Encoding::Stream => {
            write_len(out, value.stream_nodes().len() as u64);
            for (id, listpack) in value.stream_nodes() {
                stream::write_node(id, listpack, out, compress);
            }
            if let Some(meta) = &value.stream_meta {
                stream::write_tail(
                    format.stream_type(),
                    meta,
                    &value.stream_groups,
                    out,
                    compress,
                );
            }
        }
    }
    Ok(())
}

fn with_redis_expiries<'a>(
    header: &KeyHeader,
    value: &'a ValueBuffer,
) -> Result<Vec<(Field<'a>, u64)>, EncodeError> {
    let key = key_name(header);
    value
        .fields()
        .map(|f| Ok((f, hash::redis_expiry(f, &key)?)))
        .collect()
}
