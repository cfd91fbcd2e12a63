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
    pub flavor: Flavor,
    pub number: u16,
}

impl RdbVersion {
    pub const fn redis(number: u16) -> Self {
        Self {
            flavor: Flavor::Redis,
            number,
        }
    }
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

    pub fn is_vector_set(&self) -> bool {
        self.name() == "vectorset"
    }
}

/// One step of an RDB stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Header(RdbVersion),
    Aux {
        key: Bytes,
        value: Bytes,
    },
    /// A module's global data. `body` is the module's serialized opcode stream including its
    /// end marker, exactly as on disk, so it can be passed through or skipped.
    ModuleAux {
        module: ModuleId,
        when: u64,
        body: Bytes,
    },
    /// A function library (`FUNCTION2`): its source code.
    Function {
        code: Bytes,
    },
    SelectDb(u64),
    ResizeDb {
        keys: u64,
        expires: u64,
    },
    /// Cluster slot statistics (Redis 7.4+ `SLOT_INFO`, Valkey `slot-info`): a hint only.
    SlotInfo {
        slot: u64,
        keys: u64,
        expires: u64,
    },
    KeyStart(KeyHeader),
    Part(ValuePart),
    KeyEnd,
    /// End of stream. `checksum` is the stored CRC64 when the file carries one (non-zero,
    /// version 5 or later); the decoder has already checked it against the bytes read.
    End {
        checksum: Option<u64>,
    },
}

/// Everything about a key that comes before its value.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyHeader {
    pub db: u64,
    pub key: Bytes,
    /// Absolute expiry in Unix milliseconds.
    pub expire_at_ms: Option<i64>,
    /// LRU idle time in seconds (`IDLE` opcode).
    pub idle_secs: Option<u64>,
    /// LFU counter (`FREQ` opcode).
    pub freq: Option<u8>,
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
pub enum Kind {
    String,
    List,
    Set,
    SortedSet,
    Hash,
    Stream,
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
    SetMembers(Vec<Bytes>),
    SortedSetMembers(Vec<ScoredMember>),
    HashFields(Vec<HashField>),
    /// A stream node: the 128-bit master entry ID and its listpack, unchanged. The node
    /// format is the same in every Redis and Valkey release that has streams.
    StreamNode {
        master_id: StreamId,
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

#[derive(Debug, Clone, PartialEq)]
pub struct ScoredMember {
    pub member: Bytes,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashField {
    pub field: Bytes,
    pub value: Bytes,
    /// Absolute expiry of this field in Unix milliseconds (hash field TTL).
    pub expire_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
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
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamGroup {
    pub name: Bytes,
    pub last_delivered: StreamId,
    /// `None` when the source (type 15) did not record it.
    pub entries_read: Option<u64>,
    pub pending: Vec<PendingEntry>,
    pub consumers: Vec<StreamConsumer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    pub id: StreamId,
    pub delivery_time_ms: u64,
    pub delivery_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConsumer {
    pub name: Bytes,
    pub seen_time_ms: u64,
    /// `None` when the source (types 15 and 19) did not record it.
    pub active_time_ms: Option<u64>,
    /// IDs this consumer owns; each is also in the group's `pending`.
    pub pending: Vec<StreamId>,
}
