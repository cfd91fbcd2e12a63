//! Writes items into a live server: each key as one `RESTORE key ttl payload ABSTTL
//! REPLACE` with a payload encoded for the target's format, pipelined deeply through
//! [`pipe::Pipe`].
//!
//! A key whose value outgrows [`WriterLimits::restore_bytes`] while its parts arrive is
//! rewritten with plain commands instead (`DEL`, then RPUSH/SADD/ZADD/HSET per part, field
//! TTLs with HPEXPIREAT, PEXPIREAT last), so no key is ever held whole beyond the limit.
//! The same plain path serves targets that refuse RESTORE. Streams and module values have
//! no plain form: they always go through RESTORE and are held whole (a known limit).
//!
//! With [`TargetSink::grouping_strings`], strings without expiry or eviction hints go
//! several to an `MSET` instead ([`string_group`]), which costs the target and ferry far
//! less per key. Commands still reach the target in the keys' order: a group goes out
//! before any other command is added behind it.

pub mod cluster;
mod payload;
pub mod pipe;
pub mod plain;
pub mod redirect;
pub mod string_group;
pub mod walk;

use super::{Sink, SinkStats};
use crate::error::Error;
use bytes::Bytes;
use ferry_codec::{Format, Item, KeyHeader, ValuePart};
use pipe::{Batch, Pipe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use string_group::StringGroup;

pub use crate::policy::EXPIRY_GRACE_MS;
/// Longest wait for the target to acknowledge what is in flight when a run stops.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
pub struct WriterLimits {
    /// Value bytes held for one RESTORE payload; beyond it a key goes plain.
    pub restore_bytes: usize,
    /// Bytes of commands gathered before a batch is handed to the pipe.
    pub batch_bytes: usize,
}

impl Default for WriterLimits {
    fn default() -> Self {
        Self {
            restore_bytes: 16 << 20,
            batch_bytes: 256 << 10,
        }
    }
}

/// How keys are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Restore,
    /// The target refused RESTORE: plain commands only (streams cannot be written).
    PlainOnly,
}

/// Counters the progress lines read while the snapshot loads.
#[derive(Debug, Default)]
pub struct WriterCounters {
    pub keys: AtomicU64,
    pub restored: AtomicU64,
    /// Strings written by MSET, several to a command.
    pub grouped: AtomicU64,
    pub plain: AtomicU64,
    /// Keys whose expiry was past or near, written with [`EXPIRY_GRACE_MS`] more.
    pub near_expiry: AtomicU64,
    pub functions: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "key {key} is a {kind}, which needs RESTORE, and the target refused RESTORE ({reason})"
    )]
    NeedsRestore {
        key: String,
        kind: String,
        reason: String,
    },
    #[error("key {key}: cannot encode it for the target")]
    Encode {
        key: String,
        #[source]
        source: ferry_codec::EncodeError,
    },
    #[error(transparent)]
    Pipe(#[from] pipe::PipeError),
}

struct OpenKey {
    header: KeyHeader,
    parts: Vec<ValuePart>,
    held_bytes: usize,
    /// Already switched to plain commands: parts go out as they arrive.
    plain: bool,
    /// Goes into the string group at its end.
    grouped: bool,
}

pub struct TargetSink {
    pipe: Pipe,
    format: Format,
    mode: WriteMode,
    /// Why RESTORE is not used, for messages.
    restore_refusal: String,
    limits: WriterLimits,
    /// The database the target connection has selected, as far as this sink knows.
    db: Option<u64>,
    batch: Batch,
    /// Keys per MSET; 0: every key by RESTORE (or plain commands).
    group_keys: u32,
    group: StringGroup,
    key: Option<OpenKey>,
    counters: Arc<WriterCounters>,
    stats: SinkStats,
    now_ms: fn() -> i64,
}

impl TargetSink {
    pub fn new(
        pipe: Pipe,
        format: Format,
        mode: WriteMode,
        restore_refusal: String,
        limits: WriterLimits,
        counters: Arc<WriterCounters>,
    ) -> Self {
        Self {
            pipe,
            format,
            mode,
            restore_refusal,
            limits,
            db: None,
            batch: Batch::default(),
            group_keys: 0,
            group: StringGroup::default(),
            key: None,
            counters,
            stats: SinkStats::default(),
            now_ms: unix_ms,
        }
    }

    /// Writes strings that fit ([`string_group::fits`]) `keys` to an MSET. Only for a
    /// single target: a cluster refuses an MSET over several slots.
    pub fn grouping_strings(mut self, keys: u32) -> Self {
        self.group_keys = keys;
        self
    }

    /// The database the sink left the connection on.
    pub fn db(&self) -> Option<u64> {
        self.db
    }

    /// Deletes a key, in order with the keys written before it (scan mode: the key is no
    /// longer on the source).
    pub fn delete(&mut self, db: u64, key: &[u8]) -> Result<(), Error> {
        self.flush_group();
        self.select(db);
        self.batch.push(&[b"DEL".as_slice(), key]);
        self.send_if_full().map_err(Error::from)
    }

    /// Sends what is gathered with ferry's own commands appended (`framing`, e.g. a
    /// marker: after every key before it on the same connection). The connection's
    /// database is then unknown to the sink, which selects again before the next key.
    pub fn send_with(&mut self, framing: impl FnOnce(&mut Batch)) -> Result<(), Error> {
        self.flush_group();
        framing(&mut self.batch);
        self.db = None;
        self.send().map_err(Error::from)
    }

    fn select(&mut self, db: u64) {
        if self.db != Some(db) {
            self.flush_group();
            let number = db.to_string();
            self.batch.push(&["SELECT", number.as_str()]);
            self.db = Some(db);
        }
    }

    fn send_if_full(&mut self) -> Result<(), WriteError> {
        if self.batch.bytes() + self.group.bytes() >= self.limits.batch_bytes {
            self.send()?;
        }
        Ok(())
    }

    /// The group's MSET goes into the batch: before any other command is added, so that
    /// commands keep the keys' order.
    fn flush_group(&mut self) {
        self.group.flush_into(&mut self.batch);
    }

    fn send(&mut self) -> Result<(), WriteError> {
        self.flush_group();
        let batch = std::mem::take(&mut self.batch);
        self.pipe.send_blocking(batch)?;
        Ok(())
    }

    /// A key whose expiry is past or near is written to live [`EXPIRY_GRACE_MS`] longer:
    /// the target is a primary and expires keys by its own clock, while the commands the
    /// source ran on the key before its expiry are still on their way (the stream lags by
    /// the length of the full sync). The source deletes the key when it expires there and
    /// replicates the DEL, as it does for its own replicas; the target follows.
    fn start_key(&mut self, mut header: KeyHeader) {
        let keep_until = (self.now_ms)().saturating_add(EXPIRY_GRACE_MS);
        if let Some(at) = header.expire_at_ms.as_mut() {
            if *at < keep_until {
                *at = keep_until;
                self.counters.near_expiry.fetch_add(1, Ordering::Relaxed);
            }
        }
        let grouped =
            self.group_keys > 0 && self.mode == WriteMode::Restore && string_group::fits(&header);
        if !grouped {
            self.flush_group();
        }
        self.select(header.db);
        let plain = self.mode == WriteMode::PlainOnly && plain::supports(header.kind);
        if plain {
            plain::start(&header, &mut self.batch);
        }
        self.key = Some(OpenKey {
            header,
            parts: Vec::new(),
            held_bytes: 0,
            plain,
            grouped,
        });
    }

    fn part(&mut self, part: ValuePart) -> Result<(), WriteError> {
        let Some(key) = self.key.as_mut() else {
            return Ok(());
        };
        if key.plain {
            plain::part(&key.header, &part, &mut self.batch);
            return self.send_if_full();
        }
        key.held_bytes += part_bytes(&part);
        key.parts.push(part);
        if key.held_bytes > self.limits.restore_bytes && plain::supports(key.header.kind) {
            // Too big for one payload: what is held goes out now, the rest as it comes.
            self.group.flush_into(&mut self.batch);
            key.plain = true;
            plain::start(&key.header, &mut self.batch);
            for part in key.parts.drain(..) {
                plain::part(&key.header, &part, &mut self.batch);
                if self.batch.bytes() >= self.limits.batch_bytes {
                    let batch = std::mem::take(&mut self.batch);
                    self.pipe.send_blocking(batch)?;
                }
            }
            key.held_bytes = 0;
        }
        Ok(())
    }

    fn end_key(&mut self) -> Result<(), WriteError> {
        let Some(key) = self.key.take() else {
            return Ok(());
        };
        if key.plain {
            plain::finish(&key.header, &mut self.batch);
            self.counters.plain.fetch_add(1, Ordering::Relaxed);
        } else if let (true, [ValuePart::String(value)]) = (key.grouped, key.parts.as_slice()) {
            self.group.add(&key.header.key, value);
            self.counters.grouped.fetch_add(1, Ordering::Relaxed);
            if self.group.keys() >= self.group_keys {
                self.flush_group();
            }
        } else {
            self.write_whole(key)?;
        }
        self.counters.keys.fetch_add(1, Ordering::Relaxed);
        *self
            .stats
            .keys_per_db
            .entry(self.db.unwrap_or(0))
            .or_default() += 1;
        self.send_if_full()
    }

    /// A key held whole: one RESTORE, or plain commands when RESTORE is not available.
    fn write_whole(&mut self, key: OpenKey) -> Result<(), WriteError> {
        self.flush_group();
        let header = &key.header;
        if self.mode == WriteMode::Restore {
            let payload = payload::encode(self.format, header, &key.parts).map_err(|source| {
                WriteError::Encode {
                    key: pipe::show_key(&header.key),
                    source,
                }
            })?;
            self.restore(header, &payload);
            self.counters.restored.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if !plain::supports(header.kind) {
            return Err(WriteError::NeedsRestore {
                key: pipe::show_key(&header.key),
                kind: header.kind.type_name(),
                reason: self.restore_refusal.clone(),
            });
        }
        plain::start(header, &mut self.batch);
        for part in &key.parts {
            plain::part(header, part, &mut self.batch);
        }
        plain::finish(header, &mut self.batch);
        self.counters.plain.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn restore(&mut self, header: &KeyHeader, payload: &[u8]) {
        let ttl = header.expire_at_ms.unwrap_or(0).max(0).to_string();
        let mut args: Vec<&[u8]> = vec![b"RESTORE", &header.key, ttl.as_bytes(), payload];
        args.push(b"REPLACE");
        if header.expire_at_ms.is_some() {
            args.push(b"ABSTTL");
        }
        let idle;
        let freq;
        if let Some(secs) = header.idle_secs {
            idle = secs.to_string();
            args.extend([b"IDLETIME".as_slice(), idle.as_bytes()]);
        } else if let Some(count) = header.freq {
            freq = count.to_string();
            args.extend([b"FREQ".as_slice(), freq.as_bytes()]);
        }
        self.batch.push(&args);
    }

    fn function(&mut self, code: Bytes) {
        self.flush_group();
        self.batch
            .push(&[b"FUNCTION".as_slice(), b"LOAD", b"REPLACE", &code]);
        self.counters.functions.fetch_add(1, Ordering::Relaxed);
    }
}

impl Sink for TargetSink {
    fn push(&mut self, item: Item) -> Result<(), Error> {
        let result = match item {
            Item::KeyStart(header) => {
                self.start_key(header);
                Ok(())
            }
            Item::Part(part) => self.part(part),
            Item::KeyEnd => self.end_key(),
            Item::Function { code } => {
                self.function(code);
                Ok(())
            }
            // Databases are selected per key; the rest are hints or file framing.
            Item::Header(_)
            | Item::Aux { .. }
            | Item::ModuleAux { .. }
            | Item::SelectDb(_)
            | Item::ResizeDb { .. }
            | Item::SlotInfo { .. }
            | Item::End { .. } => Ok(()),
        };
        result.map_err(Error::from)
    }

    fn finish(&mut self) -> Result<SinkStats, Error> {
        self.send().map_err(Error::from)?;
        Ok(self.stats.clone())
    }
}

/// The bytes a part holds, roughly: what the buffered payload will weigh.
fn part_bytes(part: &ValuePart) -> usize {
    const PER_ITEM: usize = 16;
    match part {
        ValuePart::String(s) | ValuePart::Module(s) => s.len(),
        ValuePart::ListElements(items) | ValuePart::SetMembers(items) => {
            items.iter().map(|i| i.len() + PER_ITEM).sum()
        }
        ValuePart::SortedSetMembers(members) => {
            members.iter().map(|m| m.member.len() + 8 + PER_ITEM).sum()
        }
        ValuePart::HashFields(fields) => fields
            .iter()
            .map(|f| f.field.len() + f.value.len() + 8 + PER_ITEM)
            .sum(),
        ValuePart::StreamNode { listpack, .. } => listpack.len() + 16,
        ValuePart::StreamMeta(_) => 64,
        ValuePart::StreamGroup(group) => {
            group.name.len() + group.pending.len() * 32 + group.consumers.len() * 64
        }
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
