//! Where items come from: an RDB file, an AOF (its RDB part; its commands go to the
//! stream applier), a replication stream's snapshot, a SCAN walk's
//! DUMP payloads. All yield the same [`Item`]s, so every transform and sink works with
//! all of them.

pub mod aof;
pub mod file;
mod read_ahead;
pub mod replication;

use crate::error::Error;
use ferry_codec::{Item, RawString};

pub trait Source {
    /// The next item, or `None` once the source is exhausted (after [`Item::End`]).
    fn next_item(&mut self) -> Result<Option<Item>, Error>;
    /// Input consumed so far, in the source's own bytes; drives progress and rates.
    fn bytes_read(&self) -> u64;
    /// The whole input's size when it is known in advance (a file, a snapshot with a
    /// length prefix); `None` for open-ended streams.
    fn total_bytes(&self) -> Option<u64>;
    /// True when [`Source::take_raw_string`] can answer after a string key's `KeyStart`.
    fn gives_raw_strings(&self) -> bool {
        false
    }
    /// Right after the `KeyStart` of a string key (type byte 0): its value as stored,
    /// which also ends the key (no `Part` or `KeyEnd` follows). Only called when
    /// [`Source::gives_raw_strings`] says so. The value is borrowed from the source: it is
    /// used before the next item is asked for.
    fn take_raw_string(&mut self) -> Result<RawString<'_>, Error> {
        Err(Error::Migration(
            "internal: this source does not give stored strings".into(),
        ))
    }
}
