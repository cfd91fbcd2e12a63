//! What producers hand the pipe: a [`Batch`] of encoded commands, and the [`Mark`] that
//! says which point of the replication stream the batch completes. Kept apart from the
//! pipe's tasks because every producer (full sync, stream applier, scan mode, markers)
//! builds batches, while only the pipe reads them.

use bytes::BytesMut;
use ferry_repl::resp::{encode_array_header, encode_bulk, encode_command};

/// A point of the replication stream: everything up to `offset` is applied and the stream
/// had database `db` selected there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub offset: i64,
    pub db: u64,
}

/// Commands encoded back to back. Nothing else is kept per command: should one be
/// refused, the message finds its name and key by decoding the payload again, so the
/// memory in flight is the payload bytes the budget counts.
#[derive(Debug, Default)]
pub struct Batch {
    pub payload: BytesMut,
    /// Commands in the payload: replies to expect.
    pub replies: u32,
    /// Of those, the commands ferry adds around the data (MULTI, EXEC, its marker): not
    /// counted as commands applied.
    pub framing: u32,
    pub mark: Option<Mark>,
    /// The database the batch's next command runs in, when the batch selected it itself
    /// ([`Batch::select`]); `None`: whatever its connection had before.
    pub db: Option<u64>,
}

impl crate::state::MarkerCommands for Batch {
    fn push_framing(&mut self, args: &[&str]) {
        Batch::push_framing(self, args);
    }
}

impl Batch {
    pub fn push<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        encode_command(args, &mut self.payload);
        self.replies += 1;
    }

    /// A command already encoded (a whole RESP array of bulk strings), as it is.
    pub fn push_wire(&mut self, wire: &[u8]) {
        self.payload.extend_from_slice(wire);
        self.replies += 1;
    }

    /// A command of `leading` arguments followed by `more` arguments already encoded as
    /// bulk strings in `encoded` (gathered apart, e.g. an MSET's pairs).
    pub fn push_with_encoded(&mut self, leading: &[&[u8]], more: usize, encoded: &[u8]) {
        encode_array_header(leading.len() + more, &mut self.payload);
        for arg in leading {
            encode_bulk(arg, &mut self.payload);
        }
        self.payload.extend_from_slice(encoded);
        self.replies += 1;
    }

    /// Like [`Batch::push`], for a command of ferry's own (see [`Batch::framing`]).
    pub fn push_framing<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        self.push(args);
        self.framing += 1;
    }

    /// Makes the commands pushed next run in `db`: a SELECT, unless the batch already
    /// selected it.
    pub fn select(&mut self, db: u64) {
        if self.db != Some(db) {
            let number = db.to_string();
            self.push_framing(&["SELECT", number.as_str()]);
            self.db = Some(db);
        }
    }

    /// Forgets the database selected: after an EXEC, whose SELECTs ran only if the
    /// transaction did.
    pub fn forget_db(&mut self) {
        self.db = None;
    }

    /// Appends `other`'s commands (its mark is not taken).
    pub fn append(&mut self, other: &Batch) {
        self.payload.extend_from_slice(&other.payload);
        self.replies += other.replies;
        self.framing += other.framing;
        if other.db.is_some() {
            self.db = other.db;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.replies == 0 && self.mark.is_none()
    }

    pub fn bytes(&self) -> usize {
        self.payload.len()
    }
}
