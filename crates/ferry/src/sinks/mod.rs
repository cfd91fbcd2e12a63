//! Where items go. Today an RDB file; later a writer to a live server or a relay, which
//! take the same [`Item`]s.

pub mod applier;
pub mod load_checkpoints;
pub mod rdb_file;
mod write_behind;
pub mod writer;

use crate::error::Error;
use ferry_codec::{Item, KeyHeader, RawString, ValuePart};
use std::collections::BTreeMap;

pub trait Sink {
    /// Takes the next item. Items arrive in stream order: a key is `KeyStart`, its parts,
    /// `KeyEnd`.
    fn push(&mut self, item: Item) -> Result<(), Error>;
    /// Like [`Sink::push`], for an item the caller keeps: a sink that only reads items
    /// spares the caller moving each one out of where it was decoded. Callers use it only
    /// when [`Sink::takes_refs`] says so; by default it costs a clone.
    fn push_ref(&mut self, item: &Item) -> Result<(), Error> {
        self.push(item.clone())
    }
    /// True when [`Sink::push_ref`] is as cheap as `push`.
    fn takes_refs(&self) -> bool {
        false
    }
    /// A whole string key, its value as the source stored it (see
    /// [`crate::sources::Source::take_raw_string`]): the same as pushing its `KeyStart`, the
    /// value's `Part` and `KeyEnd`, which is what it does by default. Callers use it only
    /// when [`Sink::takes_raw_strings`] says so.
    fn push_raw_string(&mut self, header: &KeyHeader, value: &RawString) -> Result<(), Error> {
        let expanded = value.value().map_err(|source| {
            Error::Migration(format!(
                "internal: a stored string that does not expand: {source}"
            ))
        })?;
        self.push(Item::KeyStart(header.clone()))?;
        self.push(Item::Part(ValuePart::String(expanded)))?;
        self.push(Item::KeyEnd)
    }
    /// True when [`Sink::push_raw_string`] is cheaper than pushing the key's items.
    fn takes_raw_strings(&self) -> bool {
        false
    }
    /// Completes the output (flush, checksum, rename, ...) and says what was written. A sink
    /// dropped without `finish` must leave nothing half-written behind.
    fn finish(&mut self) -> Result<SinkStats, Error>;
}

/// What a sink wrote, for the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SinkStats {
    /// Keys written, per database number.
    pub keys_per_db: BTreeMap<u64, u64>,
    pub bytes_written: u64,
}

impl SinkStats {
    pub fn total_keys(&self) -> u64 {
        self.keys_per_db.values().sum()
    }
}
