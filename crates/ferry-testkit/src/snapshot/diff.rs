//! Comparing two snapshots: each difference names its database, key and what differs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use super::capture::show;
use super::{Entry, Group, HashField, Library, Snapshot, Stream, Value, VectorSet};

/// At most this many differences are listed per key; the rest are counted.
const PER_KEY_LIMIT: usize = 8;

type KeyFilter = Arc<dyn Fn(u32, &[u8]) -> bool + Send + Sync>;

/// The key `ferry migrate` keeps on its target in database 0 to record what it applied
/// there, written with the data. A copy of the source never has it: a comparison leaves it
/// out when only the second snapshot (the target) holds it in database 0 (anywhere else
/// it is a stray copy, and a difference).
pub const FERRY_MARKER_KEY: &[u8] = b"ferry:migrate:applied";

/// ferry's marker keys: [`FERRY_MARKER_KEY`], and `ferry:migrate:applied:…` (a cluster
/// source's shard streams on a standalone target, a cluster target's per-slot markers).
pub fn is_ferry_marker(key: &[u8]) -> bool {
    key == FERRY_MARKER_KEY || key.starts_with(b"ferry:migrate:applied:")
}

/// What to leave out of a comparison and how exact TTLs must be.
#[derive(Clone, Default)]
pub struct DiffOptions {
    exclude: Option<KeyFilter>,
    ttl_tolerance_ms: u64,
}

impl DiffOptions {
    pub fn new() -> DiffOptions {
        DiffOptions::default()
    }

    /// Leaves out keys for which `predicate(db, key)` is true.
    pub fn exclude_keys(
        mut self,
        predicate: impl Fn(u32, &[u8]) -> bool + Send + Sync + 'static,
    ) -> DiffOptions {
        self.exclude = Some(Arc::new(predicate));
        self
    }

    /// Expiry times (of keys and hash fields) may differ by this many ms. The snapshots'
    /// own measurement error (`Snapshot::ttl_precision_ms`) is always allowed on top.
    pub fn ttl_tolerance_ms(mut self, ms: u64) -> DiffOptions {
        self.ttl_tolerance_ms = ms;
        self
    }

    fn excluded(&self, db: u32, key: &[u8]) -> bool {
        self.exclude.as_ref().is_some_and(|skip| skip(db, key))
    }
}

impl fmt::Debug for DiffOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiffOptions")
            .field("exclude", &self.exclude.is_some())
            .field("ttl_tolerance_ms", &self.ttl_tolerance_ms)
            .finish()
    }
}

/// One difference. `db` and `key` are `None` for server-wide content (functions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub db: Option<u32>,
    pub key: Option<Vec<u8>>,
    pub detail: String,
}

impl Difference {
    /// Whether this difference is about `key` in `db`.
    pub fn is_about(&self, db: u32, key: &[u8]) -> bool {
        self.db == Some(db) && self.key.as_deref() == Some(key)
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.db, &self.key) {
            (Some(db), Some(key)) => write!(f, "db {db} key {}: {}", show(key), self.detail),
            (Some(db), None) => write!(f, "db {db}: {}", self.detail),
            _ => f.write_str(&self.detail),
        }
    }
}

pub(super) fn diff(left: &Snapshot, right: &Snapshot, options: &DiffOptions) -> Vec<Difference> {
    let tolerance = options.ttl_tolerance_ms + left.ttl_precision_ms + right.ttl_precision_ms;
    let empty = BTreeMap::new();
    let mut out = Vec::new();
    let dbs: BTreeSet<u32> = left
        .databases
        .keys()
        .chain(right.databases.keys())
        .copied()
        .collect();
    for db in dbs {
        let a = left.databases.get(&db).unwrap_or(&empty);
        let b = right.databases.get(&db).unwrap_or(&empty);
        let keys: BTreeSet<&Vec<u8>> = a.keys().chain(b.keys()).collect();
        for key in keys {
            if options.excluded(db, key)
                || (db == 0 && is_ferry_marker(key) && !a.contains_key(key))
            {
                continue;
            }
            let details = match (a.get(key), b.get(key)) {
                (Some(_), None) => vec!["missing in the other snapshot".to_string()],
                (None, Some(_)) => vec!["only in the other snapshot".to_string()],
                (Some(x), Some(y)) => entry(x, y, tolerance),
                (None, None) => Vec::new(),
            };
            let total = details.len();
            for detail in details.into_iter().take(PER_KEY_LIMIT) {
                out.push(Difference {
                    db: Some(db),
                    key: Some(key.clone()),
                    detail,
                });
            }
            if total > PER_KEY_LIMIT {
                out.push(Difference {
                    db: Some(db),
                    key: Some(key.clone()),
                    detail: format!("and {} more differences", total - PER_KEY_LIMIT),
                });
            }
        }
    }
    if let (Some(a), Some(b)) = (&left.functions, &right.functions) {
        out.extend(functions(a, b).into_iter().map(|detail| Difference {
            db: None,
            key: None,
            detail,
        }));
    }
    out
}

fn entry(a: &Entry, b: &Entry, tolerance: u64) -> Vec<String> {
    let mut out = Vec::new();
    if a.value.type_name() != b.value.type_name() {
        out.push(format!(
            "type {} vs {}",
            a.value.type_name(),
            b.value.type_name()
        ));
        return out;
    }
    if let Some(detail) = expiry("TTL", a.expire_at_ms, b.expire_at_ms, tolerance) {
        out.push(detail);
    }
    match (&a.value, &b.value) {
        (Value::String(x), Value::String(y)) => out.extend(bytes_detail("string value", x, y)),
        (Value::List(x), Value::List(y)) => out.extend(list(x, y)),
        (Value::Set(x), Value::Set(y)) => out.extend(set(x, y)),
        (Value::SortedSet(x), Value::SortedSet(y)) => out.extend(sorted_set(x, y)),
        (Value::Hash(x), Value::Hash(y)) => out.extend(hash(x, y, tolerance)),
        (Value::Stream(x), Value::Stream(y)) => out.extend(stream(x, y)),
        (Value::Module(x), Value::Module(y)) => {
            if let (Some(x), Some(y)) = (&x.vector_set, &y.vector_set) {
                out.extend(vector_set(x, y));
            }
        }
        _ => {}
    }
    out
}

fn expiry(what: &str, a: Option<i64>, b: Option<i64>, tolerance: u64) -> Option<String> {
    let show = |t: Option<i64>| t.map_or("none".to_string(), |ms| format!("{ms} ms"));
    let differs = match (a, b) {
        (Some(x), Some(y)) => x.abs_diff(y) > tolerance,
        (x, y) => x != y,
    };
    differs.then(|| format!("{what} {} vs {}", show(a), show(b)))
}

fn bytes_detail(what: &str, a: &[u8], b: &[u8]) -> Option<String> {
    if a == b {
        return None;
    }
    let first = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    Some(format!(
        "{what} differs ({} vs {} bytes, first difference at byte {first})",
        a.len(),
        b.len()
    ))
}

fn list(a: &[Vec<u8>], b: &[Vec<u8>]) -> Vec<String> {
    let mut out = Vec::new();
    if a.len() != b.len() {
        out.push(format!("list length {} vs {}", a.len(), b.len()));
    }
    if let Some(index) = a.iter().zip(b).position(|(x, y)| x != y) {
        out.push(format!("list element {index} differs"));
    }
    out
}

fn set(a: &[Vec<u8>], b: &[Vec<u8>]) -> Vec<String> {
    let a: BTreeSet<&Vec<u8>> = a.iter().collect();
    let b: BTreeSet<&Vec<u8>> = b.iter().collect();
    let mut out: Vec<String> = a
        .difference(&b)
        .map(|m| format!("set member {} missing in the other", show(m)))
        .collect();
    out.extend(
        b.difference(&a)
            .map(|m| format!("set member {} only in the other", show(m))),
    );
    out
}

fn sorted_set(a: &[(Vec<u8>, f64)], b: &[(Vec<u8>, f64)]) -> Vec<String> {
    let a: BTreeMap<&Vec<u8>, f64> = a.iter().map(|(m, s)| (m, *s)).collect();
    let b: BTreeMap<&Vec<u8>, f64> = b.iter().map(|(m, s)| (m, *s)).collect();
    let mut out = Vec::new();
    for (member, score) in &a {
        match b.get(member) {
            None => out.push(format!("zset member {} missing in the other", show(member))),
            // Exact: a moved score must round-trip bit for bit (inf included).
            Some(other) if other != score => out.push(format!(
                "zset member {} score {score} vs {other}",
                show(member)
            )),
            Some(_) => {}
        }
    }
    for member in b.keys().filter(|m| !a.contains_key(*m)) {
        out.push(format!("zset member {} only in the other", show(member)));
    }
    out
}

fn hash(a: &[HashField], b: &[HashField], tolerance: u64) -> Vec<String> {
    let a: BTreeMap<&Vec<u8>, &HashField> = a.iter().map(|f| (&f.field, f)).collect();
    let b: BTreeMap<&Vec<u8>, &HashField> = b.iter().map(|f| (&f.field, f)).collect();
    let mut out = Vec::new();
    for (name, field) in &a {
        let Some(other) = b.get(name) else {
            out.push(format!("hash field {} missing in the other", show(name)));
            continue;
        };
        if field.value != other.value {
            out.push(format!("hash field {} value differs", show(name)));
        }
        let what = format!("hash field {} TTL", show(name));
        out.extend(expiry(
            &what,
            field.expire_at_ms,
            other.expire_at_ms,
            tolerance,
        ));
    }
    for name in b.keys().filter(|n| !a.contains_key(*n)) {
        out.push(format!("hash field {} only in the other", show(name)));
    }
    out
}

fn stream(a: &Stream, b: &Stream) -> Vec<String> {
    let mut out = Vec::new();
    if a.length != b.length {
        out.push(format!("stream length {} vs {}", a.length, b.length));
    }
    if a.last_generated_id != b.last_generated_id {
        out.push(format!(
            "stream last-generated-id {} vs {}",
            a.last_generated_id, b.last_generated_id
        ));
    }
    // Reported by Redis 7.0+/Valkey only: compared where both servers report them.
    if let (Some(x), Some(y)) = (a.entries_added, b.entries_added) {
        if x != y {
            out.push(format!("stream entries-added {x} vs {y}"));
        }
    }
    if let (Some(x), Some(y)) = (a.max_deleted_id, b.max_deleted_id) {
        if x != y {
            out.push(format!("stream max-deleted-entry-id {x} vs {y}"));
        }
    }
    if let (Some(x), Some(y)) = (a.recorded_first_id, b.recorded_first_id) {
        if x != y {
            out.push(format!("stream recorded-first-entry-id {x} vs {y}"));
        }
    }
    if a.entries.len() != b.entries.len() {
        out.push(format!(
            "stream has {} vs {} entries",
            a.entries.len(),
            b.entries.len()
        ));
    }
    if let Some(index) = a.entries.iter().zip(&b.entries).position(|(x, y)| x != y) {
        out.push(format!(
            "stream entry {index} (id {}) differs",
            a.entries[index].id
        ));
    }
    for (name, group) in &a.groups {
        match b.groups.get(name) {
            None => out.push(format!(
                "consumer group {} missing in the other",
                show(name)
            )),
            Some(other) => out.extend(consumer_group(name, group, other)),
        }
    }
    for name in b.groups.keys().filter(|n| !a.groups.contains_key(*n)) {
        out.push(format!("consumer group {} only in the other", show(name)));
    }
    out
}

fn consumer_group(name: &[u8], a: &Group, b: &Group) -> Vec<String> {
    let group = format!("group {}", show(name));
    let mut out = Vec::new();
    if a.last_delivered_id != b.last_delivered_id {
        out.push(format!(
            "{group} last-delivered-id {} vs {}",
            a.last_delivered_id, b.last_delivered_id
        ));
    }
    if let (Some(x), Some(y)) = (a.entries_read, b.entries_read) {
        if x != y {
            let show = |n: Option<u64>| n.map_or("nil".to_string(), |n| n.to_string());
            out.push(format!("{group} entries-read {} vs {}", show(x), show(y)));
        }
    }
    let pa: BTreeMap<_, _> = a.pending.iter().map(|p| (p.id, p)).collect();
    let pb: BTreeMap<_, _> = b.pending.iter().map(|p| (p.id, p)).collect();
    for (id, entry) in &pa {
        match pb.get(id) {
            None => out.push(format!("{group} pending entry {id} missing in the other")),
            Some(other) if other.consumer != entry.consumer => out.push(format!(
                "{group} pending entry {id} owned by {} vs {}",
                show(&entry.consumer),
                show(&other.consumer)
            )),
            Some(other) if other.delivery_count != entry.delivery_count => out.push(format!(
                "{group} pending entry {id} delivery count {} vs {}",
                entry.delivery_count, other.delivery_count
            )),
            Some(_) => {}
        }
    }
    for id in pb.keys().filter(|id| !pa.contains_key(*id)) {
        out.push(format!("{group} pending entry {id} only in the other"));
    }
    for (consumer, pending) in &a.consumers {
        match b.consumers.get(consumer) {
            None => out.push(format!(
                "{group} consumer {} missing in the other",
                show(consumer)
            )),
            Some(other) if other != pending => out.push(format!(
                "{group} consumer {} pending count {pending} vs {other}",
                show(consumer)
            )),
            Some(_) => {}
        }
    }
    for consumer in b.consumers.keys().filter(|c| !a.consumers.contains_key(*c)) {
        out.push(format!(
            "{group} consumer {} only in the other",
            show(consumer)
        ));
    }
    out
}

fn vector_set(a: &VectorSet, b: &VectorSet) -> Vec<String> {
    let mut out = Vec::new();
    if a.card != b.card {
        out.push(format!("vector set VCARD {} vs {}", a.card, b.card));
    }
    if a.dim != b.dim {
        out.push(format!("vector set VDIM {} vs {}", a.dim, b.dim));
    }
    for (name, value) in &a.settings {
        if let Some(other) = b.settings.get(name) {
            if other != value {
                out.push(format!("vector set {name} {value} vs {other}"));
            }
        }
    }
    for (name, element) in &a.elements {
        match b.elements.get(name) {
            None => out.push(format!(
                "vector element {} missing in the other",
                show(name)
            )),
            Some(other) => {
                if other.embedding != element.embedding {
                    out.push(format!("vector element {} embedding differs", show(name)));
                }
                if other.attributes != element.attributes {
                    out.push(format!("vector element {} attributes differ", show(name)));
                }
            }
        }
    }
    for name in b.elements.keys().filter(|n| !a.elements.contains_key(*n)) {
        out.push(format!("vector element {} only in the other", show(name)));
    }
    out
}

fn functions(a: &BTreeMap<String, Library>, b: &BTreeMap<String, Library>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, library) in a {
        match b.get(name) {
            None => out.push(format!("function library {name:?} missing in the other")),
            Some(other) if other.code != library.code => {
                out.push(format!("function library {name:?} code differs"))
            }
            Some(other) if other.engine != library.engine => out.push(format!(
                "function library {name:?} engine {} vs {}",
                library.engine, other.engine
            )),
            Some(_) => {}
        }
    }
    for name in b.keys().filter(|n| !a.contains_key(*n)) {
        out.push(format!("function library {name:?} only in the other"));
    }
    out
}
