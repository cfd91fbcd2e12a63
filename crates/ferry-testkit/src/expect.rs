//! What a target should hold after ferry applied its compatibility policies to a source:
//! the source snapshot with exactly the policies' changes. Tests compare the target with
//! this, so a policy that changes more (or less) than it says shows up as a difference.

use std::collections::BTreeMap;

use crate::snapshot::{Snapshot, Value, VectorSet};

/// `--hash-field-ttl` as the target sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldTtl {
    /// The target has field TTLs: kept exactly.
    Keep,
    /// Fields kept without their TTL.
    Persist,
    /// Volatile fields dropped; a hash left empty is gone.
    DropField,
}

/// `--vector-set` as the target sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorSets {
    /// The target has vector sets: kept.
    Keep,
    /// Skipped or exported: not on the target.
    Remove,
}

/// The source's vector sets by (db, key), for checking an export.
pub type RemovedVectorSets = BTreeMap<(u32, Vec<u8>), VectorSet>;

#[derive(Debug, Clone)]
pub struct Expected {
    pub snapshot: Snapshot,
    pub removed_vector_sets: RemovedVectorSets,
    /// Hash fields whose TTL was removed (persist) or which were dropped (drop-field).
    pub changed_fields: u64,
    /// Hashes that held such fields.
    pub changed_hashes: u64,
    /// Hashes dropped whole because every field was volatile (drop-field).
    pub dropped_hashes: u64,
}

pub fn after_policies(source: &Snapshot, field_ttl: FieldTtl, vectors: VectorSets) -> Expected {
    let mut expected = Expected {
        snapshot: source.clone(),
        removed_vector_sets: RemovedVectorSets::new(),
        changed_fields: 0,
        changed_hashes: 0,
        dropped_hashes: 0,
    };
    for (db, keys) in expected.snapshot.databases.iter_mut() {
        if vectors == VectorSets::Remove {
            keys.retain(|key, entry| match &entry.value {
                Value::Module(module) if module.type_name == "vectorset" => {
                    if let Some(set) = &module.vector_set {
                        expected.removed_vector_sets.insert((*db, key.clone()), set.clone());
                    }
                    false
                }
                _ => true,
            });
        }
        if field_ttl == FieldTtl::Keep {
            continue;
        }
        keys.retain(|_, entry| {
            let Value::Hash(fields) = &mut entry.value else {
                return true;
            };
            let volatile = fields.iter().filter(|f| f.expire_at_ms.is_some()).count() as u64;
            if volatile == 0 {
                return true;
            }
            expected.changed_fields += volatile;
            expected.changed_hashes += 1;
            match field_ttl {
                FieldTtl::Persist => fields.iter_mut().for_each(|f| f.expire_at_ms = None),
                FieldTtl::DropField => fields.retain(|f| f.expire_at_ms.is_none()),
                FieldTtl::Keep => {}
            }
            let keep = !fields.is_empty();
            expected.dropped_hashes += u64::from(!keep);
            keep
        });
    }
    expected.snapshot.databases.retain(|_, keys| !keys.is_empty());
    expected
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Entry, HashField, Module};

    fn field(name: &str, ttl: Option<i64>) -> HashField {
        HashField { field: name.into(), value: b"v".to_vec(), expire_at_ms: ttl }
    }

    fn source() -> Snapshot {
        let mut db0 = BTreeMap::new();
        let hash = |fields| Entry { expire_at_ms: Some(99), value: Value::Hash(fields) };
        db0.insert(b"mixed".to_vec(), hash(vec![field("a", Some(5)), field("b", None)]));
        db0.insert(b"volatile".to_vec(), hash(vec![field("a", Some(5))]));
        db0.insert(b"plain".to_vec(), hash(vec![field("a", None)]));
        let module = Module { type_name: "vectorset".into(), vector_set: None };
        db0.insert(b"vs".to_vec(), Entry { expire_at_ms: None, value: Value::Module(module) });
        Snapshot {
            databases: BTreeMap::from([(0, db0)]),
            functions: None,
            ttl_precision_ms: 0,
        }
    }

    #[test]
    fn persist_strips_field_ttls_but_keeps_key_ttls() {
        let e = after_policies(&source(), FieldTtl::Persist, VectorSets::Keep);
        let Value::Hash(fields) = &e.snapshot.get(0, b"mixed").unwrap().value else { panic!() };
        assert!(fields.iter().all(|f| f.expire_at_ms.is_none()));
        assert_eq!(e.snapshot.get(0, b"mixed").unwrap().expire_at_ms, Some(99));
        assert_eq!((e.changed_fields, e.changed_hashes, e.dropped_hashes), (2, 2, 0));
        assert!(e.snapshot.get(0, b"vs").is_some());
    }

    #[test]
    fn drop_field_removes_volatile_fields_and_emptied_hashes() {
        let e = after_policies(&source(), FieldTtl::DropField, VectorSets::Remove);
        let Value::Hash(fields) = &e.snapshot.get(0, b"mixed").unwrap().value else { panic!() };
        assert_eq!(fields, &vec![field("b", None)]);
        assert!(e.snapshot.get(0, b"volatile").is_none());
        assert!(e.snapshot.get(0, b"vs").is_none());
        assert_eq!(e.dropped_hashes, 1);
    }
}
