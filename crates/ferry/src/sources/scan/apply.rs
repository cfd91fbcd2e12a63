//! Writes what the fetcher read, in order, on a blocking thread (the writer's pipe is fed
//! from one): a DUMP payload is decoded into items, goes through the compatibility
//! transform and into the [`TargetSink`] (RESTORE re-encoded for the target, or plain
//! commands); a key gone from the source is deleted.

use super::dirty::DbKey;
use super::fetch::Fetched;
use crate::error::Error;
use crate::sinks::writer::pipe::show_key;
use crate::sinks::writer::TargetSink;
use crate::sinks::Sink;
use crate::transforms::compat::CompatTransform;
use crate::transforms::Transform;
use ferry_codec::{Flavor, Item, Kind, RdbVersion, ValuePart};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

/// Stream keys with consumer groups remembered for periodic re-reading, at most.
const MAX_GROUP_STREAMS: usize = 10_000;
/// The first DUMP version Valkey writes with its own type bytes.
const FIRST_VALKEY_VERSION: u16 = 80;

pub enum Record {
    /// A key, with its share of the byte budget (released once written).
    Key(Fetched, Option<OwnedSemaphorePermit>),
    /// A function library's code (`FUNCTION LOAD REPLACE` on the target).
    Function(bytes::Bytes),
    /// Hand everything written so far to the pipe, then answer.
    Flush(oneshot::Sender<()>),
}

/// Streams with consumer groups seen on the source. Reading a group (XREADGROUP), XACK
/// and XCLAIM change a stream without any notification, so these keys are read again now
/// and then.
#[derive(Debug, Default)]
pub struct GroupStreams(Mutex<HashSet<DbKey>>);

impl GroupStreams {
    pub fn all(&self) -> Vec<DbKey> {
        self.0
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn note(&self, entry: DbKey, has_groups: bool) {
        if let Ok(mut set) = self.0.lock() {
            if !has_groups {
                set.remove(&entry);
            } else if set.len() < MAX_GROUP_STREAMS {
                set.insert(entry);
            }
        }
    }
}

/// Runs until the channel closes or an error; returns the policy report's lines.
pub fn run(
    mut records: mpsc::Receiver<Record>,
    mut compat: CompatTransform,
    mut sink: TargetSink,
    groups: Arc<GroupStreams>,
) -> Result<Vec<String>, Error> {
    let mut flavor = None;
    let mut out = Vec::new();
    while let Some(record) = records.blocking_recv() {
        match record {
            Record::Key(Fetched::Gone { db, key }, _) => {
                groups.note((db, key.clone()), false);
                sink.delete(db, &key)?;
            }
            Record::Key(
                Fetched::Value {
                    db,
                    key,
                    payload,
                    expire_at_ms,
                },
                _budget,
            ) => {
                let decoded = ferry_codec::dump::decode(key.clone(), &payload);
                let (mut header, parts) = decoded.map_err(|source| {
                    Error::Migration(format!(
                        "key {} in db {db}: cannot read its DUMP payload: {source}",
                        show_key(&key)
                    ))
                })?;
                let version = ferry_codec::dump::split_payload(&payload)
                    .map(|p| p.version)
                    .unwrap_or(0);
                let key_flavor = if version >= FIRST_VALKEY_VERSION {
                    Flavor::Valkey
                } else {
                    Flavor::Redis
                };
                if flavor != Some(key_flavor) {
                    // Tells the transform how to read the ambiguous hash type bytes.
                    let header_version = RdbVersion {
                        flavor: key_flavor,
                        number: version,
                    };
                    pass(
                        &mut compat,
                        &mut sink,
                        Item::Header(header_version),
                        &mut out,
                    )?;
                    flavor = Some(key_flavor);
                }
                if header.kind == Kind::Stream {
                    let has_groups = parts.iter().any(|p| matches!(p, ValuePart::StreamGroup(_)));
                    groups.note((db, key.clone()), has_groups);
                }
                header.db = db;
                header.expire_at_ms = expire_at_ms;
                pass(&mut compat, &mut sink, Item::KeyStart(header), &mut out)?;
                for part in parts {
                    pass(&mut compat, &mut sink, Item::Part(part), &mut out)?;
                }
                pass(&mut compat, &mut sink, Item::KeyEnd, &mut out)?;
            }
            Record::Function(code) => {
                pass(&mut compat, &mut sink, Item::Function { code }, &mut out)?;
            }
            Record::Flush(done) => {
                sink.finish()?;
                let _ = done.send(());
                continue;
            }
        }
        if records.is_empty() {
            // Nothing more is coming right now: what is gathered goes out.
            sink.finish()?;
        }
    }
    compat.finish(&mut out)?;
    for item in out.drain(..) {
        sink.push(item)?;
    }
    sink.finish()?;
    Ok(compat.complete()?.lines())
}

fn pass(
    compat: &mut CompatTransform,
    sink: &mut TargetSink,
    item: Item,
    out: &mut Vec<Item>,
) -> Result<(), Error> {
    compat.apply(item, out)?;
    for item in out.drain(..) {
        sink.push(item)?;
    }
    Ok(())
}
