//! Values: which type byte means what, and the state of a value being yielded in parts.

use std::io::Read;

use crate::error::DecodeError;
use crate::model::{Flavor, Kind, ModuleId, ValuePart};
use crate::types;

use super::blob::Blob;
use super::parts::Limits;
use super::reader::Reader;
use super::{hash, list, module, set, stream, zset};

/// How the elements of a plain (one RDB string per element) collection are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    List,
    Set,
    /// Type 3: scores as length-prefixed text.
    SortedSetTextScores,
    /// Type 5: scores as 8-byte doubles.
    SortedSetBinaryScores,
    Hash,
    /// Redis 24 (`min_expire` given; TTLs relative to it) and 22 (pre-GA; absolute TTLs).
    RedisFieldTtlHash {
        min_expire: Option<u64>,
    },
    /// Valkey 22 (`HASH_2`): an 8-byte expiry after each value.
    ValkeyFieldTtlHash,
}

/// A value that still has parts to yield. Every state has at least one part left.
#[derive(Debug)]
pub(crate) enum ValueState {
    Elements {
        shape: Shape,
        remaining: u64,
    },
    Quicklist {
        remaining: u64,
        with_containers: bool,
    },
    Stream(stream::StreamState),
    /// A value read whole at its start (a module value), not yet handed out.
    /// Kept here rather than in a one-element `Vec` to spare an allocation per key.
    Decoded(ValuePart),
    /// A string value, not read yet: read when its part is asked for, so that a consumer
    /// that skips the value never materializes it.
    PendingString,
}

/// What reading a value's beginning produced.
pub(crate) struct ValueStart {
    pub kind: Kind,
    pub len: Option<u64>,
    /// Parts already decoded (values that come as one blob).
    pub parts: Vec<ValuePart>,
    /// Parts still to read from the stream.
    pub state: Option<ValueState>,
}

impl ValueStart {
    fn done(kind: Kind, len: Option<u64>, parts: Vec<ValuePart>) -> Self {
        Self {
            kind,
            len,
            parts,
            state: None,
        }
    }

    /// A value that is exactly one part, already read.
    fn single(kind: Kind, part: ValuePart) -> Self {
        Self {
            kind,
            len: None,
            parts: Vec::new(),
            state: Some(ValueState::Decoded(part)),
        }
    }

    fn streaming(kind: Kind, len: u64, state: ValueState) -> Self {
        Self {
            kind,
            len: Some(len),
            parts: Vec::new(),
            state: (len > 0).then_some(state),
        }
    }
}

/// Rejects type bytes this decoder cannot read, before anything else of the key is read.
pub(crate) fn check_type(type_byte: u8, flavor: Flavor, offset: u64) -> Result<(), DecodeError> {
    let unsupported = |what: String| Err(DecodeError::Unsupported { offset, what });
    match (type_byte, flavor) {
        (types::MODULE_PRE_GA, _) => {
            unsupported("a module value in the Redis 4.0 release-candidate format (type 6)".into())
        }
        (0..=5 | 7 | 9..=21, _) => Ok(()),
        (22..=25, Flavor::Redis) | (22, Flavor::Valkey) => Ok(()),
        (23, Flavor::Valkey) => unsupported(
            "the Valkey 9.2 path hash (type 23 under VALKEY magic); its layout is not implemented"
                .into(),
        ),
        (other, _) => unsupported(format!("type byte {other}")),
    }
}

pub(crate) fn start_value<R: Read>(
    reader: &mut Reader<R>,
    type_byte: u8,
    flavor: Flavor,
    limits: &Limits,
) -> Result<ValueStart, DecodeError> {
    let limits = *limits;
    let elements =
        |reader: &mut Reader<R>, kind: Kind, shape: Shape| -> Result<ValueStart, DecodeError> {
            let len = reader.read_count("a collection length")?;
            Ok(ValueStart::streaming(
                kind,
                len,
                ValueState::Elements {
                    shape,
                    remaining: len,
                },
            ))
        };
    match type_byte {
        types::STRING => Ok(ValueStart {
            kind: Kind::String,
            len: None,
            parts: Vec::new(),
            state: Some(ValueState::PendingString),
        }),
        types::LIST => elements(reader, Kind::List, Shape::List),
        types::SET => elements(reader, Kind::Set, Shape::Set),
        types::ZSET => elements(reader, Kind::SortedSet, Shape::SortedSetTextScores),
        types::ZSET_2 => elements(reader, Kind::SortedSet, Shape::SortedSetBinaryScores),
        types::HASH => elements(reader, Kind::Hash, Shape::Hash),
        types::MODULE_2 => {
            let id = ModuleId(reader.read_len("a module id")?);
            let body = module::capture_body(reader)?;
            Ok(ValueStart::single(
                Kind::Module(id),
                ValuePart::Module(body),
            ))
        }
        types::HASH_ZIPMAP => blob(reader, Kind::Hash, |b| hash::zipmap(b, limits)),
        types::LIST_ZIPLIST => blob(reader, Kind::List, |b| list::ziplist(b, limits)),
        types::SET_INTSET => blob(reader, Kind::Set, |b| set::intset(b, limits)),
        types::SET_LISTPACK => blob(reader, Kind::Set, |b| set::listpack(b, limits)),
        types::ZSET_ZIPLIST => blob(reader, Kind::SortedSet, |b| zset::ziplist(b, limits)),
        types::ZSET_LISTPACK => blob(reader, Kind::SortedSet, |b| zset::listpack(b, limits)),
        types::HASH_ZIPLIST => blob(reader, Kind::Hash, |b| hash::ziplist(b, limits)),
        types::HASH_LISTPACK => blob(reader, Kind::Hash, |b| hash::listpack(b, limits)),
        types::LIST_QUICKLIST | types::LIST_QUICKLIST_2 => {
            let nodes = reader.read_count("a quicklist node count")?;
            let state = ValueState::Quicklist {
                remaining: nodes,
                with_containers: type_byte == types::LIST_QUICKLIST_2,
            };
            Ok(ValueStart::streaming(Kind::List, nodes, state))
        }
        types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 | types::STREAM_LISTPACKS_3 => {
            let nodes = reader.read_count("a stream node count")?;
            let state = stream::StreamState::new(type_byte, nodes);
            Ok(ValueStart {
                kind: Kind::Stream,
                len: Some(nodes),
                parts: Vec::new(),
                state: Some(ValueState::Stream(state)),
            })
        }
        types::VALKEY_HASH_2 if flavor == Flavor::Valkey => {
            elements(reader, Kind::Hash, Shape::ValkeyFieldTtlHash)
        }
        types::REDIS_HASH_METADATA_PRE_GA => elements(
            reader,
            Kind::Hash,
            Shape::RedisFieldTtlHash { min_expire: None },
        ),
        types::REDIS_HASH_METADATA => {
            let min_expire = reader.read_u64_le("a hash's minimum field expiry")?;
            elements(
                reader,
                Kind::Hash,
                Shape::RedisFieldTtlHash {
                    min_expire: Some(min_expire),
                },
            )
        }
        types::REDIS_HASH_LISTPACK_EX_PRE_GA => {
            blob(reader, Kind::Hash, |b| hash::listpack_with_ttls(b, limits))
        }
        types::REDIS_HASH_LISTPACK_EX => {
            // The minimum expiry is a cache of what the listpack holds; nothing to keep.
            reader.read_u64_le("a hash's minimum field expiry")?;
            blob(reader, Kind::Hash, |b| hash::listpack_with_ttls(b, limits))
        }
        other => Err(reader.invalid_at(1, format!("type byte {other} has no decoder"))),
    }
}

/// Reads a value stored as one blob and splits its elements into parts.
fn blob<R: Read>(
    reader: &mut Reader<R>,
    kind: Kind,
    decode: impl FnOnce(&Blob) -> Result<(Vec<ValuePart>, u64), DecodeError>,
) -> Result<ValueStart, DecodeError> {
    let blob = Blob::read(reader, "an encoded value")?;
    let (parts, count) = decode(&blob)?;
    Ok(ValueStart::done(kind, Some(count), parts))
}

/// Reads the next part of a value, and what remains after it.
pub(crate) fn continue_value<R: Read>(
    reader: &mut Reader<R>,
    state: ValueState,
    limits: &Limits,
) -> Result<(ValuePart, Option<ValueState>), DecodeError> {
    match state {
        ValueState::Elements { shape, remaining } => {
            let (part, read) = match shape {
                Shape::List => list::read_elements(reader, remaining, limits)?,
                Shape::Set => set::read_members(reader, remaining, limits)?,
                Shape::SortedSetTextScores | Shape::SortedSetBinaryScores => {
                    zset::read_members(reader, shape, remaining, limits)?
                }
                Shape::Hash | Shape::RedisFieldTtlHash { .. } | Shape::ValkeyFieldTtlHash => {
                    hash::read_fields(reader, shape, remaining, limits)?
                }
            };
            let remaining = remaining - read;
            Ok((
                part,
                (remaining > 0).then_some(ValueState::Elements { shape, remaining }),
            ))
        }
        ValueState::Quicklist {
            remaining,
            with_containers,
        } => {
            let part = list::read_quicklist_node(reader, with_containers)?;
            let remaining = remaining - 1;
            Ok((
                part,
                (remaining > 0).then_some(ValueState::Quicklist {
                    remaining,
                    with_containers,
                }),
            ))
        }
        ValueState::Stream(state) => {
            let (part, next) = stream::continue_stream(reader, state)?;
            Ok((part, next.map(ValueState::Stream)))
        }
        ValueState::Decoded(part) => Ok((part, None)),
        ValueState::PendingString => {
            let value = reader.read_string("a string value")?;
            Ok((ValuePart::String(value), None))
        }
    }
}
