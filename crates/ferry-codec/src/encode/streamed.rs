//! Values over the buffer limit: written in their plain form as their parts arrive, after
//! an element count taken from the source.

use super::buffer::{Field, Scored, ValueBuffer};
use super::choose::{field_ttl_unsupported, key_name, nan_score, unrepresentable};
use super::{hash, list, stream, zset};
use crate::error::EncodeError;
use crate::length::{write_len, write_string};
use crate::members::DuplicateFinder;
use crate::model::{KeyHeader, Kind, ValuePart};
use crate::target::{Format, HashTtlForm};
use crate::types;

pub(super) struct Streamed {
    pub(super) form: StreamedForm,
    /// Elements (or nodes) the written count announced, and how many were written so far.
    pub(super) expected: u64,
    pub(super) written: u64,
    /// Fingerprints of a set's members or a hash's fields: too many to hold, and a repeat
    /// makes the server refuse the file.
    pub(super) members: DuplicateFinder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StreamedForm {
    /// `LIST`, one element after another.
    ListElements,
    /// Quicklist (2) with one node per source node (part).
    ListNodes,
    Set,
    Zset,
    Hash,
    HashValkeyTtl,
    HashRedisMetadata,
    /// Nodes streamed; metadata and groups held until `KeyEnd`, as they follow the nodes.
    Stream,
}

impl StreamedForm {
    pub(super) fn type_byte(self, format: &Format) -> u8 {
        match self {
            StreamedForm::ListElements => types::LIST,
            StreamedForm::ListNodes if format.has_listpacks() => types::LIST_QUICKLIST_2,
            StreamedForm::ListNodes => types::LIST_QUICKLIST,
            StreamedForm::Set => types::SET,
            StreamedForm::Zset => types::ZSET_2,
            StreamedForm::Hash => types::HASH,
            StreamedForm::HashValkeyTtl => types::VALKEY_HASH_2,
            StreamedForm::HashRedisMetadata => types::REDIS_HASH_METADATA,
            StreamedForm::Stream => format.stream_type(),
        }
    }
}

/// The lower bound of field expiries written ahead of a streamed `HASH_METADATA` (the real
/// minimum is not known yet); field TTLs are stored relative to it.
const STREAMED_MIN_EXPIRE: u64 = 0;

/// The plain form a value over the buffer limit is written in, and its announced count.
/// Fails when the source gave no count.
pub(super) fn plan(
    format: &Format,
    header: &KeyHeader,
    buffer_limit: usize,
) -> Result<(StreamedForm, u64), EncodeError> {
    let Some(len) = header.len else {
        return Err(unrepresentable(
            header,
            format!(
                "the {} is over the buffer limit of {} bytes, and its source encoding (type {}) \
                 gives no element count to write it as it streams; raise the buffer limit",
                header.kind.type_name(),
                buffer_limit,
                header.encoding
            ),
        ));
    };
    let form = match header.kind {
        Kind::List
            if matches!(
                header.encoding,
                types::LIST_QUICKLIST | types::LIST_QUICKLIST_2
            ) =>
        {
            StreamedForm::ListNodes
        }
        Kind::List => StreamedForm::ListElements,
        Kind::Set => StreamedForm::Set,
        Kind::SortedSet => StreamedForm::Zset,
        // Only sources whose hashes may carry field TTLs get a TTL-capable form.
        Kind::Hash
            if matches!(
                header.encoding,
                types::REDIS_HASH_METADATA | types::VALKEY_HASH_2
            ) =>
        {
            match format.hash_ttl_form() {
                Some(HashTtlForm::ValkeyHash2) => StreamedForm::HashValkeyTtl,
                Some(HashTtlForm::RedisMetadata) => StreamedForm::HashRedisMetadata,
                None => StreamedForm::Hash,
            }
        }
        Kind::Hash => StreamedForm::Hash,
        Kind::Stream => StreamedForm::Stream,
        Kind::String | Kind::Module(_) => {
            unreachable!("strings and module values are never buffered")
        }
    };
    Ok((form, len))
}

/// Writes what comes between the key and the elements: the count (after the lower bound
/// of the field expiries for `HASH_METADATA`).
pub(super) fn write_count(form: StreamedForm, expected: u64, out: &mut Vec<u8>) {
    match form {
        StreamedForm::HashRedisMetadata => {
            hash::write_metadata_header(STREAMED_MIN_EXPIRE, expected, out)
        }
        _ => write_len(out, expected),
    }
}

impl Streamed {
    /// At `KeyEnd`: the value must have had exactly the announced count, and no member
    /// (or field) twice.
    pub(super) fn check_complete(&mut self, header: &KeyHeader) -> Result<(), EncodeError> {
        if self.members.finish() {
            let what = match self.form {
                StreamedForm::Set | StreamedForm::Zset => "a member",
                _ => "a field",
            };
            return Err(unrepresentable(
                header,
                format!("{what} appears twice; servers refuse such values"),
            ));
        }
        if self.written == self.expected {
            return Ok(());
        }
        let unit = match self.form {
            StreamedForm::ListNodes | StreamedForm::Stream => "nodes",
            _ => "elements",
        };
        Err(EncodeError::Sequence(format!(
            "key {:?}: its source announced {} {unit} but delivered {}; the output is incomplete",
            key_name(header),
            self.expected,
            self.written
        )))
    }
}

/// Writes the elements of one part of a streamed value and counts them.
pub(super) fn write_part(
    format: &Format,
    header: &KeyHeader,
    streamed: &mut Streamed,
    part: &ValuePart,
    out: &mut Vec<u8>,
    compress: bool,
) -> Result<(), EncodeError> {
    let added = match (streamed.form, part) {
        (StreamedForm::ListNodes, ValuePart::ListElements(elements)) => {
            list::write_quicklist_node(format, elements.iter().map(|e| e.as_ref()), out, compress);
            1
        }
        (StreamedForm::ListElements, ValuePart::ListElements(members)) => {
            for m in members {
                write_string(out, m, compress);
            }
            members.len() as u64
        }
        (StreamedForm::Set, ValuePart::SetMembers(members)) => {
            for m in members {
                streamed.members.add(m);
                write_string(out, m, compress);
            }
            members.len() as u64
        }
        (StreamedForm::Zset, ValuePart::SortedSetMembers(members)) => {
            for m in members {
                streamed.members.add(&m.member);
                write_zset_member(header, Scored::from(m), out, compress)?;
            }
            members.len() as u64
        }
        (form, ValuePart::HashFields(fields)) => {
            for f in fields {
                streamed.members.add(&f.field);
                write_hash_field(format, header, form, Field::from(f), out, compress)?;
            }
            fields.len() as u64
        }
        (
            StreamedForm::Stream,
            ValuePart::StreamNode {
                master_id,
                listpack,
            },
        ) => {
            stream::write_node(master_id, listpack, out, compress);
            1
        }
        _ => unreachable!("part_fits and streamed_form agree on the part kinds"),
    };
    count_streamed(header, streamed, added)
}

fn count_streamed(
    header: &KeyHeader,
    streamed: &mut Streamed,
    added: u64,
) -> Result<(), EncodeError> {
    streamed.written += added;
    if streamed.written > streamed.expected {
        return Err(EncodeError::Sequence(format!(
            "key {:?}: its source announced {} elements but delivered more; the output is incomplete",
            key_name(header),
            streamed.expected
        )));
    }
    Ok(())
}

fn write_zset_member(
    header: &KeyHeader,
    m: Scored<'_>,
    out: &mut Vec<u8>,
    compress: bool,
) -> Result<(), EncodeError> {
    if m.score.is_nan() {
        return Err(nan_score(header, m.member));
    }
    zset::write_plain_member(m, out, compress);
    Ok(())
}

fn write_hash_field(
    format: &Format,
    header: &KeyHeader,
    form: StreamedForm,
    f: Field<'_>,
    out: &mut Vec<u8>,
    compress: bool,
) -> Result<(), EncodeError> {
    match form {
        StreamedForm::Hash if f.expire_at_ms.is_some() => {
            return Err(field_ttl_unsupported(format, header))
        }
        StreamedForm::Hash => hash::write_plain_field(f, out, compress),
        StreamedForm::HashValkeyTtl => hash::write_valkey_field(f, out, compress),
        StreamedForm::HashRedisMetadata => {
            let expiry = hash::redis_expiry(f, &key_name(header))?;
            hash::write_metadata_field(f, expiry, STREAMED_MIN_EXPIRE, out, compress);
        }
        _ => unreachable!("hash fields only stream in hash forms"),
    }
    Ok(())
}

/// Writes what was buffered before a value outgrew the limit, as if it had streamed.
pub(super) fn replay(
    format: &Format,
    header: &KeyHeader,
    value: &ValueBuffer,
    streamed: &mut Streamed,
    out: &mut Vec<u8>,
    compress: bool,
) -> Result<(), EncodeError> {
    match streamed.form {
        StreamedForm::ListNodes => {
            for node in value.parts() {
                list::write_quicklist_node(format, node, out, compress);
                count_streamed(header, streamed, 1)?;
            }
        }
        StreamedForm::ListElements | StreamedForm::Set => {
            let set = streamed.form == StreamedForm::Set;
            for element in value.elements() {
                if set {
                    streamed.members.add(element);
                }
                write_string(out, element, compress);
            }
            count_streamed(header, streamed, value.elements().len() as u64)?;
        }
        StreamedForm::Zset => {
            for m in value.scored() {
                streamed.members.add(m.member);
                write_zset_member(header, m, out, compress)?;
            }
            count_streamed(header, streamed, value.scored().len() as u64)?;
        }
        StreamedForm::Hash | StreamedForm::HashValkeyTtl | StreamedForm::HashRedisMetadata => {
            for f in value.fields() {
                streamed.members.add(f.field);
                write_hash_field(format, header, streamed.form, f, out, compress)?;
            }
            count_streamed(header, streamed, value.fields().len() as u64)?;
        }
        StreamedForm::Stream => {
            for (id, listpack) in value.stream_nodes() {
                stream::write_node(id, listpack, out, compress);
            }
            count_streamed(header, streamed, value.stream_nodes().len() as u64)?;
        }
    }
    Ok(())
}
