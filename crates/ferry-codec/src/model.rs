//! The logical content of an RDB stream, as the decoder yields it and the encoder takes it.
//!
//! A file is a sequence of [`Item`]s. A key is `KeyStart`, zero or more `Part`s, `KeyEnd`:
//! large values arrive in several parts so that no consumer has to hold a whole key.

use bytes::Bytes;

/// Who wrote the stream. It decides what the type bytes 22 and 23 mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// Magic `REDIS`, written by Redis and by Valkey up to 8.1.
    Redis,
    /// Magic `VALKEY`, written by Valkey 9.0 and later.
    Valkey,
}

/// The format version in the 9-byte header: `REDIS0011`, `VALKEY080`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RdbVersion {
    /// The magic: `REDIS` or `VALKEY`.
    pub flavor: Flavor,
    /// The digits after the magic.
    pub number: u16,
}

impl RdbVersion {
    /// `REDIS` and a version number: 1–12 are Redis's (and Valkey's up to 8.1).
    pub const fn redis(number: u16) -> Self {
        Self {
            flavor: Flavor::Redis,
            number,
        }
    }
    /// `VALKEY` and a version number: 80 and up, Valkey 9.0 and later.
    pub const fn valkey(number: u16) -> Self {
        Self {
            flavor: Flavor::Valkey,
            number,
        }
    }
    /// The nine header bytes.
    pub fn magic(&self) -> [u8; 9] {
        let text = match self.flavor {
            Flavor::Redis => format!("REDIS{:04}", self.number),
            Flavor::Valkey => format!("VALKEY{:03}", self.number),
        };
        let mut out = [0u8; 9];
        out.copy_from_slice(text.as_bytes());
        out
    }
}

impl std::fmt::Display for RdbVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.flavor {
            Flavor::Redis => write!(f, "RDB {}", self.number),
            Flavor::Valkey => write!(f, "Valkey RDB {}", self.number),
        }
    }
}

/// A module type: the 9-character name and its encoding version, packed into the 64-bit id
/// that precedes every module value and module AUX record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModuleId(pub u64);

impl ModuleId {
    const CHARSET: &'static [u8; 64] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// The module type name, e.g. `vectorset`.
    pub fn name(&self) -> String {
        let mut id = self.0 >> 10;
        let mut name = [0u8; 9];
        for slot in name.iter_mut().rev() {
            *slot = Self::CHARSET[(id & 63) as usize];
            id >>= 6;
        }
        String::from_utf8_lossy(&name).into_owned()
    }

    /// The module's own encoding version of this value.
    pub fn encver(&self) -> u16 {
        (self.0 & 1023) as u16
    }

    /// Builds an id from a 9-character name; `None` if the name is not 9 charset characters.
    pub fn from_name(name: &str, encver: u16) -> Option<Self> {
        if name.len() != 9 || encver > 1023 {
            return None;
        }
        let mut id: u64 = 0;
        for byte in name.bytes() {
            let pos = Self::CHARSET.iter().position(|&c| c == byte)? as u64;
            id = (id << 6) | pos;
        }
        Some(Self((id << 10) | encver as u64))
    }

    /// Whether this is a Redis 8 vector set, which [`crate::vectorset`] can read.
    pub fn is_vector_set(&self) -> bool {
        self.name() == "vectorset"
    }
}

/// One step of an RDB stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Always the first item: the format version from the magic.
    Header(RdbVersion),
    /// An `AUX` field: metadata such as `redis-ver` or `ctime`, as stored.
    Aux {
        /// The field name.
        key: Bytes,
        /// The field value.
        value: Bytes,
    },
    /// A module's global data. `body` is the module's serialized opcode stream including its
    /// end marker, exactly as on disk, so it can be passed through or skipped.
    ModuleAux {
        /// The module type the data belongs to.
        module: ModuleId,
        /// When the module loads it: before (1) or after (2) the keys.
        when: u64,
        /// The module's opcode stream.
        body: Bytes,
    },
    /// A function library (`FUNCTION2`): its source code.
    Function {
        /// The library's source, `#!lua name=...` line included.
        code: Bytes,
    },
    /// The keys that follow belong to this database.
    SelectDb(u64),
    /// A sizing hint for the current database.
    ResizeDb {
        /// Keys in the database.
        keys: u64,
        /// Keys with an expiry.
        expires: u64,
    },
    /// Cluster slot statistics (Redis 7.4+ `SLOT_INFO`, Valkey `slot-info`): a hint only.
    SlotInfo {
        /// The slot.
        slot: u64,
        /// Keys in the slot.
        keys: u64,
        /// Keys with an expiry in the slot.
        expires: u64,
    },
    /// A key begins; its `Part`s and then `KeyEnd` follow.
    KeyStart(KeyHeader),
    /// A piece of the current key's value.
    Part(ValuePart),
    /// The current key is complete.
    KeyEnd,
    /// End of stream. `checksum` is the stored CRC64 when the file carries one (non-zero,
    /// version 5 or later); the decoder has already checked it against the bytes read.
    End {
        /// The stored CRC64; the encoder ignores it and writes its own.
        checksum: Option<u64>,
    },
}

/// Everything about a key that comes before its value.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyHeader {
    /// The database the key is in.
    pub db: u64,
    /// The key's name.
    pub key: Bytes,
    /// Absolute expiry in Unix milliseconds.
    pub expire_at_ms: Option<i64>,
    /// LRU idle time in seconds (`IDLE` opcode).
    pub idle_secs: Option<u64>,
    /// LFU counter (`FREQ` opcode).
    pub freq: Option<u8>,
    /// The key's data type.
    pub kind: Kind,
    /// The type byte in the source stream (see [`crate::types`]).
    pub encoding: u8,
    /// The stream's own top-level count, when it gives one before the value: elements for
    /// plain lists, sets, sorted sets and hashes, fields for field-TTL hashes, nodes for
    /// quicklists and stream listpacks. An encoder that must stream a value it cannot buffer
    /// relies on it.
    pub len: Option<u64>,
}

/// The logical data type of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Its value comes as one `ValuePart::String`.
    String,
    /// Its value comes as `ValuePart::ListElements`.
    List,
    /// Its value comes as `ValuePart::SetMembers`.
    Set,
    /// Its value comes as `ValuePart::SortedSetMembers`.
    SortedSet,
    /// Its value comes as `ValuePart::HashFields`.
    Hash,
    /// Its value comes as `ValuePart::StreamNode`s, one `StreamMeta`, then `StreamGroup`s.
    Stream,
    /// A module type; its value comes as one `ValuePart::Module`.
    Module(ModuleId),
}

impl Kind {
    /// The name `TYPE` answers with (module types answer with their module name).
    pub fn type_name(&self) -> String {
        match self {
            Kind::String => "string".into(),
            Kind::List => "list".into(),
            Kind::Set => "set".into(),
            Kind::SortedSet => "zset".into(),
            Kind::Hash => "hash".into(),
            Kind::Stream => "stream".into(),
            Kind::Module(id) => id.name(),
        }
    }
}

/// A piece of a value. Which variants follow a `KeyStart` depends on its [`Kind`].
#[derive(Debug, Clone, PartialEq)]
pub enum ValuePart {
    /// The whole string value.
    String(Bytes),
    /// List elements in order. For quicklist sources one part is one source node.
    ListElements(Vec<Bytes>),
    /// Set members, in no particular order.
    SetMembers(Vec<Bytes>),
    /// Sorted set members with their scores, in no particular order.
    SortedSetMembers(Vec<ScoredMember>),
    /// Hash fields and values, in no particular order.
    HashFields(Vec<HashField>),
    /// A stream node: the 128-bit master entry ID and its listpack, unchanged. The node
    /// format is the same in every Redis and Valkey release that has streams.
    StreamNode {
        /// The ID the node's entries are stored relative to.
        master_id: StreamId,
        /// The node's entries, in the server's listpack layout.
        listpack: Bytes,
    },
    /// Comes once, after all nodes.
    StreamMeta(StreamMeta),
    /// One consumer group with its pending entries and consumers; after `StreamMeta`.
    StreamGroup(StreamGroup),
    /// A module value's serialized body after its id, including the end marker: the typed
    /// opcode pairs a module writes, exactly as on disk.
    Module(Bytes),
}

/// A sorted set member.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredMember {
    /// The member.
    pub member: Bytes,
    /// Its score.
    pub score: f64,
}

/// A hash field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashField {
    /// The field name.
    pub field: Bytes,
    /// Its value.
    pub value: Bytes,
    /// Absolute expiry of this field in Unix milliseconds (hash field TTL).
    pub expire_at_ms: Option<i64>,
}

/// A stream entry ID, `ms-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence number within the millisecond.
    pub seq: u64,
}

impl StreamId {
    /// Stream IDs are stored as 16 big-endian bytes in node keys and PELs.
    pub fn from_be_bytes(raw: [u8; 16]) -> Self {
        let mut ms = [0u8; 8];
        let mut seq = [0u8; 8];
        ms.copy_from_slice(&raw[..8]);
        seq.copy_from_slice(&raw[8..]);
        Self {
            ms: u64::from_be_bytes(ms),
            seq: u64::from_be_bytes(seq),
        }
    }
    /// The 16-byte big-endian form, as stored.
    pub fn to_be_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Stream-level metadata. Fields a source version lacks are derived the way the server
/// derives them when it loads an older file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamMeta {
    /// Entries in the stream (`XLEN`).
    pub length: u64,
    /// The ID of the last entry ever added.
    pub last_id: StreamId,
    /// The ID of the first entry still in the stream.
    pub first_id: StreamId,
    /// The largest ID ever deleted.
    pub max_deleted_id: StreamId,
    /// Entries ever added, deleted ones included.
    pub entries_added: u64,
}

/// A stream consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamGroup {
    /// The group's name.
    pub name: Bytes,
    /// The last ID delivered to the group.
    pub last_delivered: StreamId,
    /// `None` when the source (type 15) did not record it.
    pub entries_read: Option<u64>,
    /// Entries delivered and not yet acknowledged (the PEL).
    pub pending: Vec<PendingEntry>,
    /// The group's consumers.
    pub consumers: Vec<StreamConsumer>,
}

/// An entry delivered to a group and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// The entry's ID.
    pub id: StreamId,
    /// When it was last delivered, in Unix milliseconds.
    pub delivery_time_ms: u64,
    /// How often it was delivered.
    pub delivery_count: u64,
}

/// A consumer of a stream group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConsumer {
    /// The consumer's name.
    pub name: Bytes,
    /// When it was last seen, in Unix milliseconds.
    pub seen_time_ms: u64,
    /// `None` when the source (types 15 and 19) did not record it.
    pub active_time_ms: Option<u64>,
    /// IDs this consumer owns; each is also in the group's `pending`.
    pub pending: Vec<StreamId>,
}
