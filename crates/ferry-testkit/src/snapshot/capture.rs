//! Reads a server's content with ordinary commands, in bounded chunks.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use redis::{Connection, Value as Reply};

use super::reply::{self, StreamId};
use super::{
    Entry, Group, HashField, Library, Module, PendingEntry, Snapshot, Stream, StreamEntry, Value,
    VectorElement, VectorSet,
};

const CHUNK: usize = 1000;

/// Which optional commands the server has.
struct Abilities {
    pexpiretime: bool,
    hpexpiretime: bool,
    vector_sets: bool,
    functions: bool,
}

impl Abilities {
    fn detect(con: &mut Connection) -> Result<Abilities> {
        Ok(Abilities {
            pexpiretime: has_command(con, "PEXPIRETIME")?,
            hpexpiretime: has_command(con, "HPEXPIRETIME")?,
            vector_sets: has_command(con, "VEMB")?,
            functions: has_command(con, "FUNCTION")?,
        })
    }
}

fn has_command(con: &mut Connection, name: &str) -> Result<bool> {
    let reply: Reply = redis::cmd("COMMAND")
        .arg("INFO")
        .arg(name)
        .query(con)
        .context("COMMAND INFO failed")?;
    Ok(reply::array(&reply)
        .and_then(|items| items.first())
        .is_some_and(|first| !matches!(first, Reply::Nil)))
}

pub(super) fn capture(con: &mut Connection) -> Result<Snapshot> {
    let abilities = Abilities::detect(con)?;
    let mut databases = BTreeMap::new();
    for db in databases_with_keys(con)? {
        redis::cmd("SELECT").arg(db).query::<()>(con)?;
        let keys = scan_keys(con)?;
        let mut entries = BTreeMap::new();
        for chunk in keys.chunks(CHUNK) {
            let headers = key_headers(con, chunk, &abilities)?;
            for (key, (type_name, expire_at_ms)) in chunk.iter().zip(headers) {
                if type_name == "none" {
                    continue; // expired or deleted while we read
                }
                let read = read_value(con, key, &type_name, &abilities);
                // A key that expired between TYPE and its read was gone before the
                // capture finished; its partial or failed read is not a value.
                if !exists(con, key)? {
                    continue;
                }
                let value =
                    read.with_context(|| format!("db {db} key {}: cannot read", show(key)))?;
                entries.insert(
                    key.clone(),
                    Entry {
                        expire_at_ms,
                        value,
                    },
                );
            }
        }
        if !entries.is_empty() {
            databases.insert(db, entries);
        }
    }
    redis::cmd("SELECT").arg(0).query::<()>(con)?;
    let functions = if abilities.functions {
        Some(functions(con)?)
    } else {
        None
    };
    Ok(Snapshot {
        databases,
        functions,
        ttl_precision_ms: if abilities.pexpiretime { 0 } else { 2 },
    })
}

fn exists(con: &mut Connection, key: &[u8]) -> Result<bool> {
    let count: u64 = redis::cmd("EXISTS").arg(key).query(con)?;
    Ok(count == 1)
}

pub(super) fn show(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) => format!("{:?}", text),
        Err(_) => format!("\"{}\"", key.escape_ascii()),
    }
}

/// Database numbers from INFO keyspace ("db0:keys=12,expires=3,…").
fn databases_with_keys(con: &mut Connection) -> Result<Vec<u32>> {
    let info: String = redis::cmd("INFO").arg("keyspace").query(con)?;
    Ok(info
        .lines()
        .filter_map(|line| line.strip_prefix("db")?.split(':').next()?.parse().ok())
        .collect())
}

fn scan_keys(con: &mut Connection) -> Result<Vec<Vec<u8>>> {
    let mut keys = BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(CHUNK)
            .query(con)?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys.into_iter().collect());
        }
        cursor = next;
    }
}

/// TYPE and absolute expiry of each key, pipelined.
fn key_headers(
    con: &mut Connection,
    keys: &[Vec<u8>],
    abilities: &Abilities,
) -> Result<Vec<(String, Option<i64>)>> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("TYPE").arg(key);
        if abilities.pexpiretime {
            pipe.cmd("PEXPIRETIME").arg(key);
        } else {
            // Remaining ms plus the server clock at the same moment.
            pipe.cmd("PTTL").arg(key);
            pipe.cmd("TIME");
        }
    }
    let replies: Vec<Reply> = pipe.query(con)?;
    let per_key = if abilities.pexpiretime { 2 } else { 3 };
    replies
        .chunks(per_key)
        .map(|group| {
            let type_name = group.first().and_then(reply::text).unwrap_or_default();
            let expiry = group.get(1).and_then(reply::int).unwrap_or(-1);
            let expire_at_ms = match (expiry, group.get(2)) {
                (e, _) if e < 0 => None,
                (at, None) => Some(at),
                (remaining, Some(time)) => {
                    let clock = reply::array(time).unwrap_or_default();
                    let secs = clock.first().and_then(reply::int).unwrap_or(0);
                    let micros = clock.get(1).and_then(reply::int).unwrap_or(0);
                    Some(secs * 1000 + micros / 1000 + remaining)
                }
            };
            Ok((type_name, expire_at_ms))
        })
        .collect()
}

fn read_value(
    con: &mut Connection,
    key: &[u8],
    type_name: &str,
    abilities: &Abilities,
) -> Result<Value> {
    Ok(match type_name {
        "string" => Value::String(redis::cmd("GET").arg(key).query(con)?),
        "list" => Value::List(list(con, key)?),
        "set" => Value::Set(set(con, key)?),
        "zset" => Value::SortedSet(sorted_set(con, key)?),
        "hash" => Value::Hash(hash(con, key, abilities)?),
        "stream" => Value::Stream(Box::new(stream(con, key)?)),
        module => Value::Module(Module {
            type_name: module.to_string(),
            vector_set: if module == "vectorset" && abilities.vector_sets {
                Some(vector_set(con, key)?)
            } else {
                None
            },
        }),
    })
}

fn list(con: &mut Connection, key: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut items = Vec::new();
    loop {
        let start = items.len();
        let part: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(key)
            .arg(start)
            .arg(start + CHUNK - 1)
            .query(con)?;
        if part.is_empty() {
            return Ok(items);
        }
        items.extend(part);
    }
}

fn set(con: &mut Connection, key: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut members = BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SSCAN")
            .arg(key)
            .arg(cursor)
            .arg("COUNT")
            .arg(CHUNK)
            .query(con)?;
        members.extend(batch);
        if next == 0 {
            return Ok(members.into_iter().collect());
        }
        cursor = next;
    }
}

fn sorted_set(con: &mut Connection, key: &[u8]) -> Result<Vec<(Vec<u8>, f64)>> {
    let mut members = Vec::new();
    loop {
        let start = members.len();
        let part: Vec<Reply> = redis::cmd("ZRANGE")
            .arg(key)
            .arg(start)
            .arg(start + CHUNK - 1)
            .arg("WITHSCORES")
            .query(con)?;
        if part.is_empty() {
            return Ok(members);
        }
        for pair in part.chunks(2) {
            match pair {
                [member, score] => members.push((
                    reply::bytes(member).context("bad ZRANGE member")?,
                    reply::float(score).context("bad ZRANGE score")?,
                )),
                _ => bail!("odd ZRANGE WITHSCORES reply"),
            }
        }
    }
}

fn hash(con: &mut Connection, key: &[u8], abilities: &Abilities) -> Result<Vec<HashField>> {
    let mut pairs: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("HSCAN")
            .arg(key)
            .arg(cursor)
            .arg("COUNT")
            .arg(CHUNK)
            .query(con)?;
        for pair in batch.chunks(2) {
            if let [field, value] = pair {
                pairs.insert(field.clone(), value.clone());
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut fields: Vec<HashField> = pairs
        .into_iter()
        .map(|(field, value)| HashField {
            field,
            value,
            expire_at_ms: None,
        })
        .collect();
    if abilities.hpexpiretime {
        for chunk in fields.chunks_mut(CHUNK) {
            let mut cmd = redis::cmd("HPEXPIRETIME");
            cmd.arg(key).arg("FIELDS").arg(chunk.len());
            for field in chunk.iter() {
                cmd.arg(&field.field);
            }
            let times: Vec<i64> = cmd.query(con)?;
            for (field, at) in chunk.iter_mut().zip(times) {
                field.expire_at_ms = (at >= 0).then_some(at);
            }
        }
    }
    Ok(fields)
}

fn stream(con: &mut Connection, key: &[u8]) -> Result<Stream> {
    let info: Reply = redis::cmd("XINFO").arg("STREAM").arg(key).query(con)?;
    let info = reply::fields(&info).context("bad XINFO STREAM reply")?;
    let get = |name: &str| reply::field(&info, name);
    let id_field = |name: &str| get(name).map(StreamId::from_value).transpose();
    let mut stream = Stream {
        entries: stream_entries(con, key)?,
        length: get("length").and_then(reply::int).unwrap_or(0) as u64,
        last_generated_id: id_field("last-generated-id")?.unwrap_or_default(),
        entries_added: get("entries-added").and_then(reply::int).map(|n| n as u64),
        max_deleted_id: id_field("max-deleted-entry-id")?,
        recorded_first_id: id_field("recorded-first-entry-id")?,
        groups: BTreeMap::new(),
    };

    let groups: Reply = redis::cmd("XINFO").arg("GROUPS").arg(key).query(con)?;
    for group in reply::array(&groups).unwrap_or_default() {
        let group = reply::fields(group).context("bad XINFO GROUPS reply")?;
        let name = reply::field(&group, "name")
            .and_then(reply::bytes)
            .context("group without name")?;
        let last_delivered_id = reply::field(&group, "last-delivered-id")
            .map(StreamId::from_value)
            .transpose()?
            .unwrap_or_default();
        let entries_read =
            reply::field(&group, "entries-read").map(|value| reply::int(value).map(|n| n as u64));
        let pending = pending_entries(con, key, &name)?;
        let consumers = consumers(con, key, &name)?;
        stream.groups.insert(
            name,
            Group {
                last_delivered_id,
                entries_read,
                pending,
                consumers,
            },
        );
    }
    Ok(stream)
}

fn stream_entries(con: &mut Connection, key: &[u8]) -> Result<Vec<StreamEntry>> {
    let mut entries: Vec<StreamEntry> = Vec::new();
    let mut start = "-".to_string();
    loop {
        let part: Vec<Reply> = redis::cmd("XRANGE")
            .arg(key)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(CHUNK)
            .query(con)?;
        let Some(last) = part.len().checked_sub(1) else {
            return Ok(entries);
        };
        for (i, item) in part.iter().enumerate() {
            let [id, fields] = reply::array(item).unwrap_or_default() else {
                bail!("bad XRANGE entry");
            };
            let id = StreamId::from_value(id)?;
            let values = reply::array(fields).unwrap_or_default();
            let fields = values
                .chunks(2)
                .map(|pair| match pair {
                    [f, v] => Ok((
                        reply::bytes(f).context("bad field")?,
                        reply::bytes(v).context("bad value")?,
                    )),
                    _ => bail!("odd stream entry fields"),
                })
                .collect::<Result<_>>()?;
            entries.push(StreamEntry { id, fields });
            if i == last {
                match id.successor() {
                    Some(next) => start = next.to_string(),
                    None => return Ok(entries),
                }
            }
        }
    }
}

fn pending_entries(con: &mut Connection, key: &[u8], group: &[u8]) -> Result<Vec<PendingEntry>> {
    let mut pending: Vec<PendingEntry> = Vec::new();
    let mut start = "-".to_string();
    loop {
        let part: Vec<Reply> = redis::cmd("XPENDING")
            .arg(key)
            .arg(group)
            .arg(&start)
            .arg("+")
            .arg(CHUNK)
            .query(con)?;
        if part.is_empty() {
            return Ok(pending);
        }
        for item in &part {
            // [id, consumer, idle ms, delivery count]; idle time is left out.
            let [id, consumer, _idle, count] = reply::array(item).unwrap_or_default() else {
                bail!("bad XPENDING entry");
            };
            pending.push(PendingEntry {
                id: StreamId::from_value(id)?,
                consumer: reply::bytes(consumer).context("bad consumer")?,
                delivery_count: reply::int(count).context("bad delivery count")? as u64,
            });
        }
        match pending.last().and_then(|entry| entry.id.successor()) {
            Some(next) => start = next.to_string(),
            None => return Ok(pending),
        }
    }
}

fn consumers(con: &mut Connection, key: &[u8], group: &[u8]) -> Result<BTreeMap<Vec<u8>, u64>> {
    let reply: Reply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(key)
        .arg(group)
        .query(con)?;
    let mut consumers = BTreeMap::new();
    for consumer in reply::array(&reply).unwrap_or_default() {
        let consumer = reply::fields(consumer).context("bad XINFO CONSUMERS reply")?;
        let name = reply::field(&consumer, "name")
            .and_then(reply::bytes)
            .context("consumer without name")?;
        let pending = reply::field(&consumer, "pending")
            .and_then(reply::int)
            .unwrap_or(0);
        consumers.insert(name, pending as u64);
    }
    Ok(consumers)
}

fn vector_set(con: &mut Connection, key: &[u8]) -> Result<VectorSet> {
    let card: u64 = redis::cmd("VCARD").arg(key).query(con)?;
    let dim: u64 = redis::cmd("VDIM").arg(key).query(con)?;
    let info: Reply = redis::cmd("VINFO").arg(key).query(con)?;
    let settings = reply::fields(&info)
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _)| {
            ["quant-type", "hnsw-m", "vector-dim", "projection-input-dim"].contains(&name.as_str())
        })
        .filter_map(|(name, value)| Some((name, reply::text(value)?)))
        .collect();
    // A count at least the cardinality returns every element once.
    let names: Vec<Vec<u8>> = redis::cmd("VRANDMEMBER").arg(key).arg(card).query(con)?;
    let names: BTreeSet<Vec<u8>> = names.into_iter().collect();
    if names.len() as u64 != card {
        bail!("VRANDMEMBER returned {} of {card} elements", names.len());
    }
    let mut elements = BTreeMap::new();
    let names: Vec<Vec<u8>> = names.into_iter().collect();
    for chunk in names.chunks(CHUNK) {
        let mut pipe = redis::pipe();
        for name in chunk {
            pipe.cmd("VEMB").arg(key).arg(name);
            pipe.cmd("VGETATTR").arg(key).arg(name);
        }
        let replies: Vec<Reply> = pipe.query(con)?;
        for (name, pair) in chunk.iter().zip(replies.chunks(2)) {
            let [embedding, attributes] = pair else {
                bail!("short VEMB/VGETATTR reply");
            };
            let embedding = reply::array(embedding)
                .unwrap_or_default()
                .iter()
                .map(|v| reply::float(v).context("bad VEMB component"))
                .collect::<Result<_>>()?;
            elements.insert(
                name.clone(),
                VectorElement {
                    embedding,
                    attributes: reply::bytes(attributes),
                },
            );
        }
    }
    Ok(VectorSet {
        card,
        dim,
        settings,
        elements,
    })
}

fn functions(con: &mut Connection) -> Result<BTreeMap<String, Library>> {
    let reply: Reply = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("WITHCODE")
        .query(con)?;
    let mut libraries = BTreeMap::new();
    for library in reply::array(&reply).unwrap_or_default() {
        let library = reply::fields(library).context("bad FUNCTION LIST reply")?;
        let text = |name: &str| reply::field(&library, name).and_then(reply::text);
        let name = text("library_name").context("library without name")?;
        libraries.insert(
            name,
            Library {
                engine: text("engine").unwrap_or_default(),
                code: reply::field(&library, "library_code")
                    .and_then(reply::bytes)
                    .unwrap_or_default(),
            },
        );
    }
    Ok(libraries)
}
