//! Real inputs to mutate: what a server saves after `dataset::populate`, as one file and as
//! one small file per type byte, and the DUMP payload of every key.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use ferry_testkit::{dataset, Server, ServerKind};

/// Keys whose DUMP is larger are left out (the 2 MB string, the 200,000-element list, the
/// 5,000-element quicklist): decoding thousands of mutations of them takes minutes in a
/// debug build, and their encodings are all present in smaller keys too.
pub const MAX_PAYLOAD: usize = 80 * 1024;

pub struct Samples {
    pub kind: ServerKind,
    /// The dataset without its largest keys, saved as one file.
    pub whole: Vec<u8>,
    /// The same keys restored and saved per DUMP type byte (see [`Split`]): small files in
    /// which most bytes belong to values of that one encoding.
    pub by_type: Vec<(u8, Vec<u8>)>,
    pub payloads: Vec<Dumped>,
    /// The keys left out, and their DUMP sizes.
    pub left_out: Vec<(Vec<u8>, usize)>,
}

/// A key's DUMP payload and what the server says about the key.
pub struct Dumped {
    pub db: u32,
    pub key: Vec<u8>,
    pub type_name: String,
    pub pttl: i64,
    pub payload: Vec<u8>,
}

impl Dumped {
    pub fn type_byte(&self) -> u8 {
        self.payload[0]
    }
}

/// What to save besides the whole file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// All keys of a type byte in one file.
    ByType,
    /// Only the smallest key of each type byte, alone in its file (fuzzing seeds).
    SmallestKey,
}

pub fn collect(kind: ServerKind, split: Split) -> Result<Samples> {
    let server = Server::start(kind)?;
    dataset::populate(&server)?;
    let mut con = server.try_client()?;
    let mut payloads = Vec::new();
    let mut left_out = Vec::new();
    for db in dataset::DATABASES {
        select(&mut con, db)?;
        let mut keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut con)?;
        keys.sort();
        for key in keys {
            let type_name: String = redis::cmd("TYPE").arg(&key).query(&mut con)?;
            let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut con)?;
            let payload: Vec<u8> = redis::cmd("DUMP").arg(&key).query(&mut con)?;
            if payload.len() > MAX_PAYLOAD {
                redis::cmd("DEL").arg(&key).query::<()>(&mut con)?;
                left_out.push((key, payload.len()));
                continue;
            }
            payloads.push(Dumped {
                db,
                key,
                type_name,
                pttl,
                payload,
            });
        }
    }
    let whole = read_save(&server)?;

    // Functions would sit in every per-type file; the whole file has them.
    if kind.is_redis7_or_later() {
        redis::cmd("FUNCTION").arg("FLUSH").query::<()>(&mut con)?;
    }
    let mut groups = BTreeMap::<u8, Vec<&Dumped>>::new();
    for dumped in &payloads {
        groups.entry(dumped.type_byte()).or_default().push(dumped);
    }
    if split == Split::SmallestKey {
        for keys in groups.values_mut() {
            keys.sort_by_key(|dumped| dumped.payload.len());
            keys.truncate(1);
        }
    }
    let mut by_type = Vec::new();
    for (type_byte, keys) in groups {
        redis::cmd("FLUSHALL").query::<()>(&mut con)?;
        for dumped in keys {
            select(&mut con, dumped.db)?;
            redis::cmd("RESTORE")
                .arg(&dumped.key)
                .arg(dumped.pttl.max(0))
                .arg(&dumped.payload)
                .query::<()>(&mut con)
                .with_context(|| format!("{kind}: RESTORE {:?}", dumped.key))?;
        }
        by_type.push((type_byte, read_save(&server)?));
    }
    Ok(Samples {
        kind,
        whole,
        by_type,
        payloads,
        left_out,
    })
}

fn select(con: &mut redis::Connection, db: u32) -> Result<()> {
    Ok(redis::cmd("SELECT").arg(db).query::<()>(con)?)
}

fn read_save(server: &Server) -> Result<Vec<u8>> {
    let path = server.save()?;
    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
}
