//! Picks the encoding a fully buffered value gets: the most compact one the target has,
//! under the limits of the servers' default configuration (Redis and Valkey `config.c`),
//! and checks what the loaders would not: listpacks, ziplists and intsets are only checked
//! for duplicates under deep sanitization (off by default), so the encoder checks them. The
//! plain set and sorted set loaders reject duplicates themselves.

use super::buffer::ValueBuffer;
use crate::error::EncodeError;
use crate::listpack::parse_canonical_int;
use crate::model::{KeyHeader, Kind};
use crate::target::{Format, HashTtlForm};
use crate::types;

/// `set-max-intset-entries`.
const SET_MAX_INTSET_ENTRIES: usize = 512;
/// `set-max-listpack-entries` / `-value` (sets have listpacks from RDB 11).
const SET_MAX_LISTPACK_ENTRIES: usize = 128;
const SET_MAX_LISTPACK_VALUE: usize = 64;
/// `zset-max-listpack-entries` / `-value` (`zset-max-ziplist-*` before Redis 7).
const ZSET_MAX_PACKED_ENTRIES: usize = 128;
const ZSET_MAX_PACKED_VALUE: usize = 64;
/// `hash-max-listpack-entries` / `-value` (`hash-max-ziplist-*` before Redis 7).
const HASH_MAX_PACKED_ENTRIES: usize = 512;
const HASH_MAX_PACKED_VALUE: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Encoding {
    /// Quicklist 2 of listpacks, or quicklist of ziplists before RDB 10.
    List,
    /// The members, parsed, sorted and free of duplicates.
    SetIntset(Vec<i64>),
    SetListpack,
    SetPlain,
    /// Listpack, or ziplist before RDB 10.
    ZsetPacked,
    ZsetPlain,
    /// Listpack, or ziplist before RDB 10.
    HashPacked,
    HashPlain,
    HashValkeyTtl,
    HashRedisListpackTtl,
    HashRedisMetadata,
    Stream,
}

impl Encoding {
    pub(super) fn type_byte(&self, format: &Format) -> u8 {
        let packed = format.has_listpacks();
        match self {
            Encoding::List if packed => types::LIST_QUICKLIST_2,
            Encoding::List => types::LIST_QUICKLIST,
            Encoding::SetIntset(_) => types::SET_INTSET,
            Encoding::SetListpack => types::SET_LISTPACK,
            Encoding::SetPlain => types::SET,
            Encoding::ZsetPacked if packed => types::ZSET_LISTPACK,
            Encoding::ZsetPacked => types::ZSET_ZIPLIST,
            Encoding::ZsetPlain => types::ZSET_2,
            Encoding::HashPacked if packed => types::HASH_LISTPACK,
            Encoding::HashPacked => types::HASH_ZIPLIST,
            Encoding::HashPlain => types::HASH,
            Encoding::HashValkeyTtl => types::VALKEY_HASH_2,
            Encoding::HashRedisListpackTtl => types::REDIS_HASH_LISTPACK_EX,
            Encoding::HashRedisMetadata => types::REDIS_HASH_METADATA,
            Encoding::Stream => format.stream_type(),
        }
    }
}

pub(super) fn key_name(header: &KeyHeader) -> String {
    String::from_utf8_lossy(&header.key).into_owned()
}

pub(super) fn unrepresentable(header: &KeyHeader, problem: impl Into<String>) -> EncodeError {
    EncodeError::Unrepresentable {
        key: key_name(header),
        problem: problem.into(),
    }
}

/// Chooses the encoding of a buffered list, set, sorted set, hash or stream.
pub(super) fn choose(
    format: &Format,
    header: &KeyHeader,
    value: &ValueBuffer,
) -> Result<Encoding, EncodeError> {
    let count = value.count(header.kind);
    if count == 0 && header.kind != Kind::Stream {
        // Every loader refuses empty collections ("empty keys"), and a server never has one.
        return Err(unrepresentable(
            header,
            format!(
                "the {} has no elements; servers never hold empty collections",
                header.kind.type_name()
            ),
        ));
    }
    match header.kind {
        Kind::List => Ok(Encoding::List),
        Kind::Set => choose_set(format, header, value, count),
        Kind::SortedSet => choose_zset(header, value, count),
        Kind::Hash => choose_hash(format, header, value, count),
        Kind::Stream => {
            if value.stream_meta.is_none() {
                return Err(EncodeError::Sequence(format!(
                    "key {:?}: the stream ended without its metadata part",
                    key_name(header)
                )));
            }
            Ok(Encoding::Stream)
        }
        Kind::String | Kind::Module(_) => Err(EncodeError::Sequence(format!(
            "key {:?}: {} values are not buffered",
            key_name(header),
            header.kind.type_name()
        ))),
    }
}

fn choose_set(
    format: &Format,
    header: &KeyHeader,
    value: &ValueBuffer,
    count: usize,
) -> Result<Encoding, EncodeError> {
    if count <= SET_MAX_INTSET_ENTRIES {
        let ints: Option<Vec<i64>> = value.elements().map(parse_canonical_int).collect();
        if let Some(mut ints) = ints {
            ints.sort_unstable();
            if let Some(w) = ints.windows(2).find(|w| w[0] == w[1]) {
                return Err(duplicate(header, "member", w[0].to_string().as_bytes()));
            }
            return Ok(Encoding::SetIntset(ints));
        }
    }
    if format.has_set_listpack()
        && count <= SET_MAX_LISTPACK_ENTRIES
        && value.elements().all(|m| m.len() <= SET_MAX_LISTPACK_VALUE)
    {
        if let Some(dup) = value.first_duplicate(Kind::Set) {
            return Err(duplicate(header, "member", dup));
        }
        return Ok(Encoding::SetListpack);
    }
    // The loader adds each member of the plain form to a dictionary and refuses a repeat.
    if let Some(dup) = value.first_duplicate(Kind::Set) {
        return Err(duplicate(header, "member", dup));
    }
    Ok(Encoding::SetPlain)
}

fn choose_zset(
    header: &KeyHeader,
    value: &ValueBuffer,
    count: usize,
) -> Result<Encoding, EncodeError> {
    if let Some(m) = value.scored().find(|m| m.score.is_nan()) {
        return Err(nan_score(header, m.member));
    }
    // Packed or plain, a loader refuses a member stored twice (the plain form through its
    // dictionary, the packed one when it converts the value).
    if let Some(dup) = value.first_duplicate(Kind::SortedSet) {
        return Err(duplicate(header, "member", dup));
    }
    if count <= ZSET_MAX_PACKED_ENTRIES
        && value
            .scored()
            .all(|m| m.member.len() <= ZSET_MAX_PACKED_VALUE)
    {
        return Ok(Encoding::ZsetPacked);
    }
    Ok(Encoding::ZsetPlain)
}

fn choose_hash(
    format: &Format,
    header: &KeyHeader,
    value: &ValueBuffer,
    count: usize,
) -> Result<Encoding, EncodeError> {
    let small = count <= HASH_MAX_PACKED_ENTRIES
        && value.fields().all(|f| {
            f.field.len() <= HASH_MAX_PACKED_VALUE && f.value.len() <= HASH_MAX_PACKED_VALUE
        });
    let has_ttl = value.fields().any(|f| f.expire_at_ms.is_some());
    let encoding = match (has_ttl, format.hash_ttl_form()) {
        (false, _) if small => Encoding::HashPacked,
        (false, _) => Encoding::HashPlain,
        (true, None) => return Err(field_ttl_unsupported(format, header)),
        // Valkey keeps hashes with field TTLs in hash tables whatever their size.
        (true, Some(HashTtlForm::ValkeyHash2)) => Encoding::HashValkeyTtl,
        (true, Some(HashTtlForm::RedisMetadata)) if small => Encoding::HashRedisListpackTtl,
        (true, Some(HashTtlForm::RedisMetadata)) => Encoding::HashRedisMetadata,
    };
    // Up to that many fields, loaders start with a listpack and only look for duplicate
    // fields under deep sanitization, whatever the type byte; a duplicate there makes the
    // server panic when it later converts the hash. Past it, the dictionary refuses one.
    if let Some(dup) = value.first_duplicate(Kind::Hash) {
        return Err(duplicate(header, "field", dup));
    }
    Ok(encoding)
}

pub(super) fn field_ttl_unsupported(format: &Format, header: &KeyHeader) -> EncodeError {
    unrepresentable(
        header,
        format!(
            "hash fields with TTLs cannot be stored in {} (needs RDB 12 or Valkey 9)",
            format.version
        ),
    )
}

pub(super) fn nan_score(header: &KeyHeader, member: &[u8]) -> EncodeError {
    unrepresentable(
        header,
        format!(
            "member {:?} has a NaN score, which no server loads",
            String::from_utf8_lossy(member)
        ),
    )
}

fn duplicate(header: &KeyHeader, what: &str, item: &[u8]) -> EncodeError {
    unrepresentable(
        header,
        format!(
            "{what} {:?} appears twice; servers refuse such values",
            String::from_utf8_lossy(item)
        ),
    )
}
