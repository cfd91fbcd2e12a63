//! Writes what the fetcher read, in order, on a blocking thread (the writer's pipe is fed
//! from one): a DUMP payload is decoded into items, goes through the compatibility
//! transform and into the [`TargetSink`] (RESTORE re-encoded for the target, or plain
//! commands); a key gone from the source is deleted.

use super::dirty::DbKey;
use super::fetch::Fetched;
use crate::error::Error;
use crate::filter::Scope;
use crate::sinks::writer::pipe::show_key;
use crate::sinks::writer::TargetSink;
use crate::sinks::Sink;
use crate::transforms::compat::CompatTransform;
use crate::transforms::Transform;
use ferry_codec::{Flavor, Item, Kind, RdbVersion, ValuePart};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

/// Keys remembered for periodic re-reading, at most.
const MAX_QUIET_KEYS: usize = 10_000;
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

/// Keys that change without notifications, seen on the source: streams with consumer
/// groups (XREADGROUP, XACK and XCLAIM notify nothing) and, when the target stores them,
/// module values (Redis 8's VADD, VREM and VSETATTR notify nothing). They are read again
/// now and then.
#[derive(Debug, Default)]
pub struct QuietKeys {
    keys: Mutex<HashSet<DbKey>>,
    /// Module values are written to the target, so their changes matter.
    pub modules: bool,
}

impl QuietKeys {
    pub fn new(modules: bool) -> Self {
        Self {
            keys: Mutex::default(),
            modules,
        }
    }

    pub fn all(&self) -> Vec<DbKey> {
        self.keys
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn note(&self, entry: DbKey, quiet: bool) {
        if let Ok(mut set) = self.keys.lock() {
            if !quiet {
                set.remove(&entry);
            } else if set.len() < MAX_QUIET_KEYS {
                set.insert(entry);
            }
        }
    }
}

/// Runs until the channel closes or an error; returns the policy report's lines.
/// Keys arrive with their source database; `scope` says where each lands on the target.
pub fn run(
    mut records: mpsc::Receiver<Record>,
    (mut compat, scope): (CompatTransform, Scope),
    mut sink: TargetSink,
    quiet: Arc<QuietKeys>,
) -> Result<Vec<String>, Error> {
    let mut flavor = None;
    let mut out = Vec::new();
    while let Some(record) = records.blocking_recv() {
        match record {
            Record::Key(Fetched::Gone { db, key }, _) => {
                quiet.note((db, key.clone()), false);
                sink.delete(scope.target_db(db), &key)?;
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
                let is_quiet = match header.kind {
                    Kind::Stream => parts.iter().any(|p| matches!(p, ValuePart::StreamGroup(_))),
                    Kind::Module(_) => quiet.modules,
                    _ => false,
                };
                quiet.note((db, key.clone()), is_quiet);
                let db = scope.target_db(db);
                header.db = db;
                header.expire_at_ms = expire_at_ms;
                let mut written = pass(&mut compat, &mut sink, Item::KeyStart(header), &mut out)?;
                for part in parts {
                    written |= pass(&mut compat, &mut sink, Item::Part(part), &mut out)?;
                }
                written |= pass(&mut compat, &mut sink, Item::KeyEnd, &mut out)?;
                if !written {
                    // The policies left the key out (a vector set skipped, a hash whose
                    // fields all had TTLs dropped): an earlier copy must not linger.
                    sink.delete(db, &key)?;
                }
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

/// One item through the transform into the sink; says whether a key start reached the
/// sink.
fn pass(
    compat: &mut CompatTransform,
    sink: &mut TargetSink,
    item: Item,
    out: &mut Vec<Item>,
) -> Result<bool, Error> {
    compat.apply(item, out)?;
    let mut key_started = false;
    for item in out.drain(..) {
        key_started |= matches!(item, Item::KeyStart(_));
        sink.push(item)?;
    }
    Ok(key_started)
}
