//! Steps between a source and a sink that rewrite the item stream.

pub mod commands;
pub mod compat;
pub mod filter;
pub mod shards;

use crate::error::Error;
use ferry_codec::{Item, KeyHeader};

/// One step of the pipeline: each item in becomes zero or more items out.
///
/// A transform may hold items back (e.g. a key's start until it knows the key survives) and
/// must then release or drop them by `finish` at the latest.
pub trait Transform {
    /// Takes one item and appends what it turns into to `out`.
    fn apply(&mut self, item: Item, out: &mut Vec<Item>) -> Result<(), Error>;
    /// A fast path for the common item that passes this transform unchanged: answers
    /// true, having updated the transform's state as [`Transform::apply`] would, and the
    /// caller hands the item on itself; false means "call `apply`" and must leave the
    /// transform as it was. Spares moving every
    /// item through `out` (an item is over 100 bytes and most items just pass).
    fn passes_unchanged(&mut self, item: &Item) -> Result<bool, Error> {
        let _ = item;
        Ok(false)
    }
    /// Like [`Transform::passes_unchanged`] for a key's `KeyStart`, for the whole key: true
    /// means the key's start, every part and its end pass unchanged, and the transform's
    /// state is as after its `KeyEnd` (the caller hands the key on without showing its
    /// parts to the transform); false must leave the transform as it was.
    fn passes_whole_key(&mut self, header: &KeyHeader) -> Result<bool, Error> {
        let _ = header;
        Ok(false)
    }
    /// Called once after the last item; appends anything still held back.
    fn finish(&mut self, out: &mut Vec<Item>) -> Result<(), Error> {
        let _ = out;
        Ok(())
    }
}
