//! What Valkey 8.1 should hold after `ferry convert --hash-field-ttl persist
//! --vector-set export=…`: the Redis snapshot with exactly the policies' changes applied.

use std::collections::BTreeMap;

use ferry_testkit::snapshot::{Snapshot, Value, VectorSet};

/// The Redis side's vector sets, left out of the converted file and exported instead.
pub type VectorSets = BTreeMap<(u32, Vec<u8>), VectorSet>;

pub struct Expected {
    pub snapshot: Snapshot,
    pub vector_sets: VectorSets,
    /// Hash fields that had their own TTL, and the hashes holding them.
    pub persisted_fields: u64,
    pub persisted_hashes: u64,
}

pub fn after_policies(source: &Snapshot) -> Expected {
    let mut snapshot = source.clone();
    let mut vector_sets = VectorSets::new();
    let mut persisted_fields = 0;
    let mut persisted_hashes = 0;
    for (db, keys) in snapshot.databases.iter_mut() {
        keys.retain(|key, entry| match &entry.value {
            Value::Module(module) if module.type_name == "vectorset" => {
                if let Some(set) = &module.vector_set {
                    vector_sets.insert((*db, key.clone()), set.clone());
                }
                false
            }
            _ => true,
        });
        for entry in keys.values_mut() {
            if let Value::Hash(fields) = &mut entry.value {
                let mut had_ttl = false;
                for field in fields.iter_mut() {
                    if field.expire_at_ms.take().is_some() {
                        persisted_fields += 1;
                        had_ttl = true;
                    }
                }
                persisted_hashes += u64::from(had_ttl);
            }
        }
    }
    snapshot.databases.retain(|_, keys| !keys.is_empty());
    Expected {
        snapshot,
        vector_sets,
        persisted_fields,
        persisted_hashes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_testkit::snapshot::{Entry, HashField, Module};

    fn snapshot(entries: Vec<(u32, &str, Value)>) -> Snapshot {
        let mut databases: BTreeMap<u32, BTreeMap<Vec<u8>, Entry>> = BTreeMap::new();
        for (db, key, value) in entries {
            databases.entry(db).or_default().insert(
                key.as_bytes().to_vec(),
                Entry {
                    expire_at_ms: Some(5),
                    value,
                },
            );
        }
        Snapshot {
            databases,
            functions: None,
            ttl_precision_ms: 0,
        }
    }

    fn field(name: &str, ttl: Option<i64>) -> HashField {
        HashField {
            field: name.as_bytes().to_vec(),
            value: b"v".to_vec(),
            expire_at_ms: ttl,
        }
    }

    #[test]
    fn vector_sets_leave_and_field_ttls_go_but_key_ttls_stay() {
        let vset = VectorSet {
            card: 1,
            dim: 2,
            settings: BTreeMap::new(),
            elements: BTreeMap::new(),
        };
        let source = snapshot(vec![
            (
                0,
                "h",
                Value::Hash(vec![field("a", Some(9)), field("b", None)]),
            ),
            (0, "plain", Value::Hash(vec![field("c", None)])),
            (
                3,
                "v",
                Value::Module(Module {
                    type_name: "vectorset".into(),
                    vector_set: Some(vset.clone()),
                }),
            ),
        ]);
        let expected = after_policies(&source);
        assert_eq!(expected.persisted_fields, 1);
        assert_eq!(expected.persisted_hashes, 1);
        assert_eq!(expected.vector_sets.get(&(3, b"v".to_vec())), Some(&vset));
        assert_eq!(expected.snapshot.key_count(), 2);
        assert!(!expected.snapshot.databases.contains_key(&3));
        let hash = expected.snapshot.get(0, b"h").unwrap();
        assert_eq!(hash.expire_at_ms, Some(5));
        assert_eq!(
            hash.value,
            Value::Hash(vec![field("a", None), field("b", None)])
        );
    }
}
