//! The logical content of a server (every key of every database, with TTLs, stream
//! metadata, consumer groups, functions, vector sets), captured through commands only, and
//! a readable comparison of two such captures.

mod capture;
mod diff;
mod reply;

use std::collections::BTreeMap;

pub use diff::{is_ferry_marker, DiffOptions, Difference, FERRY_MARKER_KEY};
pub use reply::StreamId;

use crate::Server;

/// Everything a server holds, as seen through its commands.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// db number → key → entry (only databases that hold keys).
    pub databases: BTreeMap<u32, BTreeMap<Vec<u8>, Entry>>,
    /// Function libraries by name; `None` when the server has no functions (Redis 6).
    pub functions: Option<BTreeMap<String, Library>>,
    /// How far an expiry time may be off: 0 when read with PEXPIRETIME, a few ms when
    /// derived from PTTL and the server clock (servers before 7.0).
    pub ttl_precision_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Absolute expiry time in Unix ms.
    pub expire_at_ms: Option<i64>,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(Vec<u8>),
    List(Vec<Vec<u8>>),
    /// Members in byte order.
    Set(Vec<Vec<u8>>),
    /// Members in rank order, with scores.
    SortedSet(Vec<(Vec<u8>, f64)>),
    /// Fields in byte order.
    Hash(Vec<HashField>),
    Stream(Box<Stream>),
    Module(Module),
}

impl Value {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &str {
        match self {
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::SortedSet(_) => "zset",
            Value::Hash(_) => "hash",
            Value::Stream(_) => "stream",
            Value::Module(module) => &module.type_name,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HashField {
    pub field: Vec<u8>,
    pub value: Vec<u8>,
    /// Per-field expiry in Unix ms, where the server has field TTLs.
    pub expire_at_ms: Option<i64>,
}

/// A stream. Fields that only some servers report are `None` where unreported.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub entries: Vec<StreamEntry>,
    pub length: u64,
    pub last_generated_id: StreamId,
    pub entries_added: Option<u64>,
    pub max_deleted_id: Option<StreamId>,
    pub recorded_first_id: Option<StreamId>,
    /// Groups by name.
    pub groups: BTreeMap<Vec<u8>, Group>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub id: StreamId,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub last_delivered_id: StreamId,
    /// Outer `None`: not reported by this server; inner `None`: reported as unknown (nil).
    pub entries_read: Option<Option<u64>>,
    /// Pending entries in ID order (delivery times left out: they are clock readings).
    pub pending: Vec<PendingEntry>,
    /// Consumers by name → their pending count (seen/active times left out).
    pub consumers: BTreeMap<Vec<u8>, u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingEntry {
    pub id: StreamId,
    pub consumer: Vec<u8>,
    pub delivery_count: u64,
}

/// A module type value. Its content is known for vector sets on servers with V* commands.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    pub type_name: String,
    pub vector_set: Option<VectorSet>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VectorSet {
    pub card: u64,
    pub dim: u64,
    /// Stable settings from VINFO (quant-type, hnsw-m, projection-input-dim, vector-dim).
    pub settings: BTreeMap<String, String>,
    pub elements: BTreeMap<Vec<u8>, VectorElement>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VectorElement {
    /// VEMB: the (dequantized) embedding.
    pub embedding: Vec<f64>,
    /// VGETATTR: the JSON attributes, if any.
    pub attributes: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Library {
    pub engine: String,
    pub code: Vec<u8>,
}

impl Snapshot {
    /// Reads everything `server` holds.
    pub fn capture(server: &Server) -> anyhow::Result<Snapshot> {
        let mut connection = server.try_client()?;
        Self::capture_from(&mut connection)
    }

    /// Reads everything the server behind `connection` holds. Leaves it on db 0.
    pub fn capture_from(connection: &mut redis::Connection) -> anyhow::Result<Snapshot> {
        capture::capture(connection)
    }

    /// The differences between `self` (expected) and `other` (actual), readable one per line.
    pub fn diff(&self, other: &Snapshot, options: &DiffOptions) -> Vec<Difference> {
        diff::diff(self, other, options)
    }

    /// Number of keys over all databases.
    pub fn key_count(&self) -> usize {
        self.databases.values().map(BTreeMap::len).sum()
    }

    pub fn get(&self, db: u32, key: &[u8]) -> Option<&Entry> {
        self.databases.get(&db)?.get(key)
    }
}
