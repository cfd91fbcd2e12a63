//! The benchmark's RDB files, made by a real Redis 8.0 and cached under build/bench/.
//!
//! A cached file is reused only when its metadata says it came from the same recipe and the
//! same generator version, and its size still matches; otherwise it is made again.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ferry_testkit::{dataset, Server, ServerKind};
use redis::Connection;
use serde::{Deserialize, Serialize};

/// Bump when a recipe's meaning changes (not its parameters: those are compared too).
const GENERATOR_VERSION: u32 = 1;
/// Elements per RPUSH/HSET/ZADD/SADD command, and commands per pipeline.
const BATCH: u64 = 10_000;
const COMMANDS_PER_PIPELINE: u64 = 20;

/// How to make one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recipe {
    /// `DEBUG POPULATE keys key value_size` plus the testkit's mixed dataset (every type
    /// and encoding, field TTLs, vector sets, streams, functions).
    Mixed { keys: u64, value_size: u64 },
    /// `DEBUG POPULATE keys key value_size` only: plain strings.
    Plain { keys: u64, value_size: u64 },
    /// Uncompressed strings (`rdbcompression no`) plus a few very large collections.
    Big {
        keys: u64,
        value_size: u64,
        list_len: u64,
        hash_fields: u64,
        zset_members: u64,
        set_members: u64,
    },
}

impl Recipe {
    pub fn describe(&self) -> String {
        match *self {
            Recipe::Mixed { keys, value_size } => format!(
                "DEBUG POPULATE {} × {value_size} B + the mixed dataset (every type, field TTLs, vector sets, streams)",
                thousands(keys)
            ),
            Recipe::Plain { keys, value_size } => {
                format!("DEBUG POPULATE {} × {value_size} B only", thousands(keys))
            }
            Recipe::Big {
                keys,
                value_size,
                list_len,
                hash_fields,
                zset_members,
                set_members,
            } => format!(
                "rdbcompression no; DEBUG POPULATE {} × {value_size} B; list of {}, hash of {}, zset of {}, set of {}",
                thousands(keys),
                thousands(list_len),
                thousands(hash_fields),
                thousands(zset_members),
                thousands(set_members)
            ),
        }
    }
}

/// A file ready to measure.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub path: PathBuf,
    pub recipe: Recipe,
    pub bytes: u64,
    pub keys: u64,
    /// Vector set keys in the file (left out by `--vector-set skip`).
    pub vector_sets: u64,
    /// `None` when the cached file was reused.
    pub generated_in: Option<Duration>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    generator_version: u32,
    recipe: Recipe,
    server: String,
    bytes: u64,
    keys: u64,
    vector_sets: u64,
    seconds: f64,
}

/// The cached `dir/name.rdb` if it is current, else a freshly generated one.
pub fn ensure(dir: &Path, name: &str, recipe: Recipe) -> Result<Dataset> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{name}.rdb"));
    let meta_path = dir.join(format!("{name}.meta.json"));
    if let Some(meta) = cached(&path, &meta_path, recipe) {
        return Ok(Dataset {
            name: name.to_string(),
            path,
            recipe,
            bytes: meta.bytes,
            keys: meta.keys,
            vector_sets: meta.vector_sets,
            generated_in: None,
        });
    }
    println!("generating {name}.rdb: {}", recipe.describe());
    let started = Instant::now();
    let server = Server::start(ServerKind::Redis80)?;
    let mut con = server.try_client()?;
    fill(&server, &mut con, recipe).with_context(|| format!("generating {name}"))?;
    let keys = count_keys(&mut con)?;
    let vector_sets = count_vector_sets(&mut con)?;
    let saved = server.save()?;
    // Written under a temporary name first: an interrupted copy is never taken as cached.
    let partial = dir.join(format!("{name}.rdb.partial"));
    fs::copy(&saved, &partial)
        .with_context(|| format!("cannot copy {} to {}", saved.display(), partial.display()))?;
    fs::rename(&partial, &path)?;
    let bytes = fs::metadata(&path)?.len();
    let seconds = started.elapsed().as_secs_f64();
    let meta = Meta {
        generator_version: GENERATOR_VERSION,
        recipe,
        server: server.entry().version_output.clone(),
        bytes,
        keys,
        vector_sets,
        seconds,
    };
    fs::write(&meta_path, serde_json::to_string_pretty(&meta)? + "\n")?;
    Ok(Dataset {
        name: name.to_string(),
        path,
        recipe,
        bytes,
        keys,
        vector_sets,
        generated_in: Some(started.elapsed()),
    })
}

fn cached(path: &Path, meta_path: &Path, recipe: Recipe) -> Option<Meta> {
    let meta: Meta = serde_json::from_slice(&fs::read(meta_path).ok()?).ok()?;
    let size = fs::metadata(path).ok()?.len();
    (meta.generator_version == GENERATOR_VERSION && meta.recipe == recipe && meta.bytes == size)
        .then_some(meta)
}

pub fn fill(server: &Server, con: &mut Connection, recipe: Recipe) -> Result<()> {
    match recipe {
        Recipe::Mixed { keys, value_size } => {
            dataset::populate(server)?;
            debug_populate(con, keys, "key", value_size)
        }
        Recipe::Plain { keys, value_size } => debug_populate(con, keys, "key", value_size),
        Recipe::Big {
            keys,
            value_size,
            list_len,
            hash_fields,
            zset_members,
            set_members,
        } => {
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("rdbcompression")
                .arg("no")
                .query::<()>(con)
                .context("CONFIG SET rdbcompression no")?;
            debug_populate(con, keys, "big", value_size)?;
            big_collection(con, "RPUSH", "big:list", list_len, |cmd, i| {
                // A third integers (listpack int encodings), the rest short strings.
                if i % 3 == 0 {
                    cmd.arg(i * 7919);
                } else {
                    cmd.arg(format!("element-{i}-{}", "x".repeat((i % 24) as usize)));
                }
            })?;
            big_collection(con, "HSET", "big:hash", hash_fields, |cmd, i| {
                cmd.arg(format!("field:{i}"))
                    .arg(format!("value-{i}-{}", "v".repeat((i % 40) as usize)));
            })?;
            big_collection(con, "ZADD", "big:zset", zset_members, |cmd, i| {
                cmd.arg((i as f64) * 0.5 - 1000.0)
                    .arg(format!("member:{i}"));
            })?;
            big_collection(con, "SADD", "big:set", set_members, |cmd, i| {
                cmd.arg(format!("set-member:{i}"));
            })
        }
    }
}

fn debug_populate(con: &mut Connection, keys: u64, prefix: &str, value_size: u64) -> Result<()> {
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(keys)
        .arg(prefix)
        .arg(value_size)
        .query::<()>(con)
        .with_context(|| format!("DEBUG POPULATE {keys} {prefix} {value_size}"))
}

/// Fills one large key with `count` elements, `BATCH` per command, pipelined.
fn big_collection(
    con: &mut Connection,
    verb: &str,
    key: &str,
    count: u64,
    add: impl Fn(&mut redis::Cmd, u64),
) -> Result<()> {
    let mut next = 0u64;
    while next < count {
        let mut pipe = redis::pipe();
        for _ in 0..COMMANDS_PER_PIPELINE {
            if next >= count {
                break;
            }
            let end = (next + BATCH).min(count);
            let mut cmd = redis::cmd(verb);
            cmd.arg(key);
            for i in next..end {
                add(&mut cmd, i);
            }
            pipe.add_command(cmd).ignore();
            next = end;
        }
        pipe.query::<()>(con)
            .with_context(|| format!("{verb} {key} failed"))?;
    }
    Ok(())
}

/// Keys over all databases, from INFO keyspace ("db0:keys=12,expires=3,...").
pub fn count_keys(con: &mut Connection) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg("keyspace").query(con)?;
    let mut total = 0;
    for line in info.lines().filter(|line| line.starts_with("db")) {
        let keys = line
            .split([':', ','])
            .find_map(|part| part.strip_prefix("keys="))
            .and_then(|n| n.parse::<u64>().ok());
        match keys {
            Some(n) => total += n,
            None => bail!("unexpected INFO keyspace line {line:?}"),
        }
    }
    Ok(total)
}

/// Vector set keys over all databases, by SCAN … TYPE vectorset.
fn count_vector_sets(con: &mut Connection) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg("keyspace").query(con)?;
    let databases: Vec<u32> = info
        .lines()
        .filter_map(|line| line.strip_prefix("db")?.split(':').next()?.parse().ok())
        .collect();
    let mut total = 0;
    for db in databases {
        redis::cmd("SELECT").arg(db).query::<()>(con)?;
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(10_000)
                .arg("TYPE")
                .arg("vectorset")
                .query(con)?;
            total += keys.len() as u64;
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    redis::cmd("SELECT").arg(0).query::<()>(con)?;
    Ok(total)
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(2_000_000), "2,000,000");
    }
}
