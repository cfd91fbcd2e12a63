//! Decodes what each real server saves and checks it against the server's own answers:
//! per database, the keys and their types (`DBSIZE`, `TYPE`); for vector sets, every
//! element's vector (`VEMB`) and attributes (`VGETATTR`).

use std::collections::BTreeMap;

use ferry_codec::{DecodeOptions, Decoder, Item, Kind, ValuePart};
use ferry_testkit::{dataset, Server, ServerKind};

type KeyTypes = BTreeMap<u64, BTreeMap<Vec<u8>, String>>;

/// What the checks below need from a decoded file.
#[derive(Default)]
struct Decoded {
    types: KeyTypes,
    /// Vector sets: key, db, module body.
    vector_sets: Vec<(Vec<u8>, u64, bytes::Bytes)>,
    /// Hash fields with a TTL: (db, key, field) → expiry.
    field_ttls: BTreeMap<(u64, Vec<u8>, Vec<u8>), i64>,
    /// Streams: (db, key) → (length, last ID).
    streams: BTreeMap<(u64, Vec<u8>), (u64, String)>,
}

fn decode_file(path: &std::path::Path) -> anyhow::Result<Decoded> {
    // Small parts, so splitting runs on real data too.
    let options = DecodeOptions {
        max_part_elements: 7,
        max_part_bytes: 4096,
        ..DecodeOptions::default()
    };
    let mut out = Decoded::default();
    let mut current = None;
    for item in Decoder::with_options(std::fs::File::open(path)?, options) {
        match item? {
            Item::KeyStart(header) => {
                let previous = out
                    .types
                    .entry(header.db)
                    .or_default()
                    .insert(header.key.to_vec(), header.kind.type_name());
                assert!(
                    previous.is_none(),
                    "key {:?} twice in db {}",
                    header.key,
                    header.db
                );
                current = Some((header.key.to_vec(), header.db, header.kind));
            }
            Item::Part(ValuePart::Module(body)) => {
                let (key, db, kind) = current.clone().expect("module part outside a key");
                if matches!(kind, Kind::Module(id) if id.is_vector_set()) {
                    out.vector_sets.push((key, db, body));
                }
            }
            Item::Part(ValuePart::HashFields(fields)) => {
                let (key, db, _) = current.clone().expect("hash part outside a key");
                for field in fields {
                    if let Some(at) = field.expire_at_ms {
                        out.field_ttls
                            .insert((db, key.clone(), field.field.to_vec()), at);
                    }
                }
            }
            Item::Part(ValuePart::StreamMeta(meta)) => {
                let (key, db, _) = current.clone().expect("stream part outside a key");
                out.streams
                    .insert((db, key), (meta.length, meta.last_id.to_string()));
            }
            Item::KeyEnd => current = None,
            _ => {}
        }
    }
    Ok(out)
}

fn server_types(server: &Server, dbs: impl Iterator<Item = u64>) -> anyhow::Result<KeyTypes> {
    let mut con = server.client();
    let mut out = KeyTypes::new();
    for db in dbs {
        redis::cmd("SELECT").arg(db).query::<()>(&mut con)?;
        let size: u64 = redis::cmd("DBSIZE").query(&mut con)?;
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut con)?;
        assert_eq!(
            keys.len() as u64,
            size,
            "{}: KEYS and DBSIZE disagree in db {db}",
            server.kind()
        );
        let entry = out.entry(db).or_default();
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut con)?;
            entry.insert(key, kind);
        }
    }
    Ok(out)
}

#[test]
fn every_server_dataset_decodes_to_the_servers_keys_and_types() -> anyhow::Result<()> {
    for kind in ServerKind::all() {
        let server = Server::start(kind)?;
        dataset::populate(&server)?;
        let path = server.save()?;
        let Decoded {
            types: decoded,
            vector_sets,
            field_ttls,
            streams,
        } = decode_file(&path)?;
        let dbs = dataset::DATABASES
            .iter()
            .map(|db| u64::from(*db))
            .chain(decoded.keys().copied());
        let expected = server_types(&server, dbs)?;
        let expected: KeyTypes = expected
            .into_iter()
            .filter(|(_, keys)| !keys.is_empty())
            .collect();
        assert_eq!(
            decoded, expected,
            "{kind}: decoded keys and types differ from the server's"
        );
        let mut per_type = BTreeMap::<&str, usize>::new();
        for keys in decoded.values() {
            for type_name in keys.values() {
                *per_type.entry(type_name.as_str()).or_default() += 1;
            }
        }
        eprintln!(
            "{kind}: {per_type:?}, {} vector sets checked",
            vector_sets.len()
        );
        // The dataset fills three databases with every type; an empty decode means no test.
        assert_eq!(decoded.len(), dataset::DATABASES.len(), "{kind}: databases");
        for type_name in ["string", "list", "set", "zset", "hash", "stream"] {
            assert!(
                per_type.get(type_name).is_some_and(|n| *n > 0),
                "{kind}: no {type_name} keys"
            );
        }
        assert_eq!(
            !vector_sets.is_empty(),
            kind.has_vector_sets(),
            "{kind}: vector sets"
        );
        check_vector_sets(&server, &vector_sets)?;
        assert_eq!(
            !field_ttls.is_empty(),
            kind.has_hash_field_ttl(),
            "{kind}: hash field TTLs"
        );
        check_field_ttls(&server, &field_ttls)?;
        assert!(!streams.is_empty(), "{kind}: no streams decoded");
        check_streams(&server, &streams)?;
    }
    Ok(())
}

fn check_field_ttls(
    server: &Server,
    ttls: &BTreeMap<(u64, Vec<u8>, Vec<u8>), i64>,
) -> anyhow::Result<()> {
    let mut con = server.client();
    for ((db, key, field), at) in ttls {
        redis::cmd("SELECT").arg(*db).query::<()>(&mut con)?;
        let expected: Vec<i64> = redis::cmd("HPEXPIRETIME")
            .arg(key)
            .arg("FIELDS")
            .arg(1)
            .arg(field)
            .query(&mut con)?;
        assert_eq!(
            expected,
            vec![*at],
            "{}: {key:?} field {field:?}",
            server.kind()
        );
    }
    Ok(())
}

fn check_streams(
    server: &Server,
    streams: &BTreeMap<(u64, Vec<u8>), (u64, String)>,
) -> anyhow::Result<()> {
    let mut con = server.client();
    for ((db, key), (length, last_id)) in streams {
        redis::cmd("SELECT").arg(*db).query::<()>(&mut con)?;
        let info: redis::Value = redis::cmd("XINFO").arg("STREAM").arg(key).query(&mut con)?;
        let info: BTreeMap<String, redis::Value> = redis::FromRedisValue::from_redis_value(info)?;
        let server_length: u64 = redis::FromRedisValue::from_redis_value(info["length"].clone())?;
        let server_last: String =
            redis::FromRedisValue::from_redis_value(info["last-generated-id"].clone())?;
        assert_eq!(
            (server_length, &server_last),
            (*length, last_id),
            "{}: stream {key:?}",
            server.kind()
        );
    }
    Ok(())
}

fn check_vector_sets(server: &Server, sets: &[(Vec<u8>, u64, bytes::Bytes)]) -> anyhow::Result<()> {
    let mut con = server.client();
    for (key, db, body) in sets {
        redis::cmd("SELECT").arg(*db).query::<()>(&mut con)?;
        let set = ferry_codec::vectorset::parse(body)?;
        let card: u64 = redis::cmd("VCARD").arg(key).query(&mut con)?;
        let dim: u32 = redis::cmd("VDIM").arg(key).query(&mut con)?;
        assert_eq!((set.elements.len() as u64, set.dim), (card, dim), "{key:?}");
        for element in &set.elements {
            let vector: Vec<f64> = redis::cmd("VEMB")
                .arg(key)
                .arg(&element.name[..])
                .query(&mut con)?;
            let vector: Vec<f32> = vector.into_iter().map(|v| v as f32).collect();
            assert_eq!(vector, element.vector, "{key:?} {:?}", element.name);
            let attributes: Option<Vec<u8>> = redis::cmd("VGETATTR")
                .arg(key)
                .arg(&element.name[..])
                .query(&mut con)?;
            assert_eq!(
                attributes.as_deref(),
                element.attributes.as_deref(),
                "{key:?} {:?}",
                element.name
            );
        }
    }
    Ok(())
}
