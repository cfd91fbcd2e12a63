//! Counts what an item stream holds, one item at a time (bounded memory: counters, and the
//! fingerprints of one set, sorted set or hash at a time, for duplicate members).

use crate::encoding::encoding_name;
use bytes::Bytes;
use ferry_codec::{DuplicateFinder, Flavor, Item, Kind, RdbVersion, ValuePart};
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DbCounts {
    pub keys: u64,
    pub keys_with_expiry: u64,
    /// The `RESIZEDB` hint the file gives: (keys, keys with expiry).
    pub resize_hint: Option<(u64, u64)>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TypeCounts {
    pub keys: u64,
    /// Bytes of the file these keys take, headers (expiry, type, name) included.
    pub bytes: u64,
}

/// A key's type as `inspect` groups them: logical type plus source encoding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TypeKey {
    pub type_name: String,
    pub encoding: &'static str,
    pub type_byte: u8,
}

#[derive(Debug, Default)]
pub struct Census {
    pub version: Option<RdbVersion>,
    pub aux: Vec<(Bytes, Bytes)>,
    /// Module AUX records per module type name.
    pub module_aux: BTreeMap<String, u64>,
    pub functions: u64,
    pub databases: BTreeMap<u64, DbCounts>,
    /// Counts per (kind, type byte), in order of first appearance; see [`Census::types`].
    /// A short list searched linearly: files hold a handful of types, and this runs per key.
    tallies: Vec<TypeTally>,
    /// Hashes with at least one field TTL, and the fields with one.
    pub field_ttl_keys: u64,
    pub field_ttl_fields: u64,
    pub vector_sets: u64,
    /// Keys of other module types, per module type name.
    pub module_keys: BTreeMap<String, u64>,
    pub slot_info_records: u64,
    /// `Some` once the end marker was read; inside, the stored checksum if any.
    pub end: Option<Option<u64>>,
    /// The highest database number the file selects (a server has 16 unless configured).
    pub highest_db: u64,
    /// Sets, sorted sets and hashes that store a member (field) twice.
    pub duplicate_members: Damaged,
    /// Sorted sets with a NaN score.
    pub nan_scores: Damaged,
    current_db: u64,
    current_key: Option<CurrentKey>,
    members: DuplicateFinder,
}

/// Keys whose value no server loads, which only a file without a checksum can carry.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Damaged {
    pub keys: u64,
    /// The first such key's name.
    pub example: Option<Bytes>,
}

impl Damaged {
    fn add(&mut self, key: &Bytes) {
        self.keys += 1;
        self.example.get_or_insert_with(|| key.clone());
    }
}

#[derive(Debug)]
struct TypeTally {
    kind: Kind,
    type_byte: u8,
    counts: TypeCounts,
}

#[derive(Debug)]
struct CurrentKey {
    /// Index into `tallies`.
    tally: usize,
    started_at: u64,
    ttl_fields: u64,
    name: Bytes,
    nan_score: bool,
}

impl Census {
    /// Takes one item; `before` and `after` are the source's byte positions around it.
    /// Answers whether it wants to see the parts of the key a `KeyStart` begins: a hash's
    /// fields (for field TTLs), and the members of sets, sorted sets and hashes (a member
    /// stored twice, a NaN score); other values may be skipped.
    pub fn observe(&mut self, item: &Item, before: u64, after: u64) -> bool {
        match item {
            Item::Header(version) => self.version = Some(*version),
            Item::Aux { key, value } => self.aux.push((key.clone(), value.clone())),
            Item::ModuleAux { module, .. } => {
                *self.module_aux.entry(module.name()).or_default() += 1
            }
            Item::Function { .. } => self.functions += 1,
            Item::SelectDb(db) => {
                self.current_db = *db;
                self.highest_db = self.highest_db.max(*db);
            }
            Item::ResizeDb { keys, expires } => {
                self.databases
                    .entry(self.current_db)
                    .or_default()
                    .resize_hint = Some((*keys, *expires))
            }
            Item::SlotInfo { .. } => self.slot_info_records += 1,
            Item::KeyStart(header) => {
                let db = self.databases.entry(header.db).or_default();
                db.keys += 1;
                if header.expire_at_ms.is_some() {
                    db.keys_with_expiry += 1;
                }
                match header.kind {
                    Kind::Module(id) if id.is_vector_set() => self.vector_sets += 1,
                    Kind::Module(id) => *self.module_keys.entry(id.name()).or_default() += 1,
                    _ => {}
                }
                let tally = self.tally_index(header.kind, header.encoding);
                self.current_key = Some(CurrentKey {
                    tally,
                    started_at: before,
                    ttl_fields: 0,
                    name: header.key.clone(),
                    nan_score: false,
                });
                return matches!(header.kind, Kind::Hash | Kind::Set | Kind::SortedSet);
            }
            Item::Part(ValuePart::HashFields(fields)) => {
                if let Some(key) = &mut self.current_key {
                    key.ttl_fields +=
                        fields.iter().filter(|f| f.expire_at_ms.is_some()).count() as u64;
                }
                fields.iter().for_each(|f| self.members.add(&f.field));
            }
            Item::Part(ValuePart::SetMembers(members)) => {
                members.iter().for_each(|m| self.members.add(m));
            }
            Item::Part(ValuePart::SortedSetMembers(members)) => {
                for m in members {
                    self.members.add(&m.member);
                }
                if let Some(key) = &mut self.current_key {
                    key.nan_score |= members.iter().any(|m| m.score.is_nan());
                }
            }
            Item::Part(_) => {}
            Item::KeyEnd => {
                if let Some(key) = self.current_key.take() {
                    let counts = &mut self.tallies[key.tally].counts;
                    counts.keys += 1;
                    counts.bytes += after.saturating_sub(key.started_at);
                    if key.ttl_fields > 0 {
                        self.field_ttl_keys += 1;
                        self.field_ttl_fields += key.ttl_fields;
                    }
                    if self.members.finish() {
                        self.duplicate_members.add(&key.name);
                    }
                    if key.nan_score {
                        self.nan_scores.add(&key.name);
                    }
                }
            }
            Item::End { checksum } => self.end = Some(*checksum),
        }
        true
    }

    fn tally_index(&mut self, kind: Kind, type_byte: u8) -> usize {
        let found = self
            .tallies
            .iter()
            .position(|t| t.type_byte == type_byte && t.kind == kind);
        found.unwrap_or_else(|| {
            self.tallies.push(TypeTally {
                kind,
                type_byte,
                counts: TypeCounts::default(),
            });
            self.tallies.len() - 1
        })
    }

    /// Keys and bytes per type and source encoding, in that order. Module types with the
    /// same name (different encoding versions) count together.
    pub fn types(&self) -> BTreeMap<TypeKey, TypeCounts> {
        let flavor = self.version.map_or(Flavor::Redis, |v| v.flavor);
        let mut types = BTreeMap::<TypeKey, TypeCounts>::new();
        for tally in &self.tallies {
            let key = TypeKey {
                type_name: tally.kind.type_name(),
                encoding: encoding_name(flavor, tally.type_byte),
                type_byte: tally.type_byte,
            };
            let counts = types.entry(key).or_default();
            counts.keys += tally.counts.keys;
            counts.bytes += tally.counts.bytes;
        }
        types
    }

    pub fn total_keys(&self) -> u64 {
        self.databases.values().map(|db| db.keys).sum()
    }

    pub fn keys_with_expiry(&self) -> u64 {
        self.databases.values().map(|db| db.keys_with_expiry).sum()
    }

    /// The `redis-ver` or `valkey-ver` AUX field: `redis 8.0.2`.
    pub fn producer(&self) -> Option<String> {
        // Valkey writes both; its own field says more.
        let find = |name: &[u8]| {
            self.aux
                .iter()
                .find(|(k, _)| &k[..] == name)
                .map(|(_, v)| v)
        };
        let (server, version) = match find(b"valkey-ver") {
            Some(version) => ("valkey", version),
            None => ("redis", find(b"redis-ver")?),
        };
        Some(format!("{server} {}", String::from_utf8_lossy(version)))
    }
}
