//! What a target server can load: its RDB version and the features that come with it.

use crate::model::{Flavor, RdbVersion};

/// The RDB dialect an encoder writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// The version written in the header; it decides everything else.
    pub version: RdbVersion,
}

/// The form a format gives hashes with field TTLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashTtlForm {
    /// Valkey 9 `HASH_2` (22): every field followed by its expiry, -1 for none.
    ValkeyHash2,
    /// Redis 7.4+ `HASH_LISTPACK_EX` (25) when small, else `HASH_METADATA` (24).
    RedisMetadata,
}

/// The byte budget of one packed quicklist node under the default
/// `list-max-listpack-size -2` (`list-max-ziplist-size -2` before Redis 7).
pub const LIST_NODE_MAX_BYTES: usize = 8192;

/// Server releases by name (`ferry convert --to`) and the RDB version each one writes.
pub const PROFILES: &[(&str, RdbVersion)] = &[
    ("redis-6.0", RdbVersion::redis(9)),
    ("redis-7.0", RdbVersion::redis(10)),
    ("redis-7.2", RdbVersion::redis(11)),
    ("redis-8.0", RdbVersion::redis(12)),
    ("valkey-8.0", RdbVersion::redis(11)),
    ("valkey-8.1", RdbVersion::redis(11)),
    ("valkey-9.0", RdbVersion::valkey(80)),
    ("valkey-9.1", RdbVersion::valkey(80)),
];

impl Format {
    /// The format of `version`. The encoder is built and tested for RDB 9–12 and Valkey
    /// 80, the versions [`Format::from_rdb_version`] accepts.
    pub const fn new(version: RdbVersion) -> Self {
        Self { version }
    }

    /// The format a named release loads (see [`PROFILES`]): `"valkey-8.0"`, `"redis-7.2"`, ...
    pub fn from_profile(name: &str) -> Option<Self> {
        PROFILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| Self::new(*v))
    }

    /// `--rdb-version N`: 9–12 are Redis dialects, 80 and up Valkey's.
    pub fn from_rdb_version(number: u16) -> Option<Self> {
        match number {
            9..=12 => Some(Self::new(RdbVersion::redis(number))),
            80 => Some(Self::new(RdbVersion::valkey(number))),
            _ => None,
        }
    }

    /// The version a DUMP payload footer carries.
    pub fn dump_version(&self) -> u16 {
        self.version.number
    }

    fn is_valkey(&self) -> bool {
        self.version.flavor == Flavor::Valkey
    }

    fn redis_at_least(&self, n: u16) -> bool {
        self.is_valkey() || self.version.number >= n
    }

    /// Listpack-encoded hashes, sorted sets and quicklist 2 lists (Redis 7.0, RDB 10).
    pub fn has_listpacks(&self) -> bool {
        self.redis_at_least(10)
    }

    /// Listpack-encoded sets (Redis 7.2, RDB 11).
    pub fn has_set_listpack(&self) -> bool {
        self.redis_at_least(11)
    }

    /// `FUNCTION2` records (Redis 7.0, RDB 10).
    pub fn has_functions(&self) -> bool {
        self.redis_at_least(10)
    }

    /// The stream type byte this format writes (15, 19 or 21).
    pub fn stream_type(&self) -> u8 {
        if self.redis_at_least(11) {
            crate::types::STREAM_LISTPACKS_3
        } else if self.version.number >= 10 {
            crate::types::STREAM_LISTPACKS_2
        } else {
            crate::types::STREAM_LISTPACKS
        }
    }

    /// Hash field TTLs: Redis 7.4+ (RDB 12, types 24/25) and Valkey 9.0+ (HASH_2).
    pub fn has_hash_field_ttl(&self) -> bool {
        self.is_valkey() || self.version.number >= 12
    }

    /// Whether a module type is known to be loadable without the module: only Redis 8's
    /// built-in vector sets.
    pub fn has_builtin_module(&self, name: &str) -> bool {
        name == "vectorset" && !self.is_valkey() && self.version.number >= 12
    }

    /// How this format stores hashes whose fields carry TTLs, if it can.
    pub fn hash_ttl_form(&self) -> Option<HashTtlForm> {
        if self.is_valkey() {
            Some(HashTtlForm::ValkeyHash2)
        } else if self.version.number >= 12 {
            Some(HashTtlForm::RedisMetadata)
        } else {
            None
        }
    }

    /// The element size from which the server keeps a list element in a quicklist node of
    /// its own with the PLAIN container (quicklist 2 only). Redis 7.0–7.2 did so from 1 GiB;
    /// Redis 7.4+ and Valkey 8+ from anything over the 8 KiB node limit.
    pub fn list_plain_node_from(&self) -> Option<usize> {
        if !self.has_listpacks() {
            None
        } else if self.is_valkey() || self.version.number >= 12 {
            Some(LIST_NODE_MAX_BYTES + 1)
        } else {
            Some(1 << 30)
        }
    }

    /// `SLOT_INFO` opcodes (Redis 7.4+, RDB 12); a hint that other targets do without.
    pub fn has_slot_info(&self) -> bool {
        !self.is_valkey() && self.version.number >= 12
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_map_to_the_versions_the_servers_write() {
        assert_eq!(
            Format::from_profile("valkey-8.1").unwrap().version,
            RdbVersion::redis(11)
        );
        assert_eq!(
            Format::from_profile("valkey-9.1").unwrap().version,
            RdbVersion::valkey(80)
        );
        assert!(Format::from_profile("valkey-7.9").is_none());
        assert!(!Format::from_profile("valkey-8.1")
            .unwrap()
            .has_hash_field_ttl());
        assert!(Format::from_profile("valkey-9.0")
            .unwrap()
            .has_hash_field_ttl());
        assert_eq!(Format::from_profile("redis-6.0").unwrap().stream_type(), 15);
    }
}
