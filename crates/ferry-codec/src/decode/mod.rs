//! Streaming RDB decoder: bytes in, [`Item`]s out, with bounded memory (see [`Decoder`]).

mod blob;
pub mod dump;
mod hash;
mod header;
mod list;
pub(crate) mod module;
mod parts;
pub(crate) mod reader;
mod set;
mod stream;
mod value;
mod zset;

use std::io::Read;

use bytes::Bytes;

use crate::error::DecodeError;
use crate::model::{Item, KeyHeader, ModuleId, RdbVersion, ValuePart};
use crate::raw_string::RawString;
use crate::types;

use parts::Limits;
use reader::Reader;
use value::{Shape, ValueState};

/// Tuning of a [`Decoder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Most elements in one `Part` of a plain list, set, sorted set or hash.
    pub max_part_elements: usize,
    /// Most element bytes in one such `Part` (a part always holds at least one element).
    pub max_part_bytes: usize,
    /// Compare the stored CRC64 with the bytes read (skipping it saves the checksum work).
    pub verify_checksum: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_part_elements: 1024,
            max_part_bytes: 1 << 20,
            verify_checksum: true,
        }
    }
}

/// Opcodes seen before a key's type byte.
#[derive(Debug, Default)]
struct KeyAttributes {
    expire_at_ms: Option<i64>,
    idle_secs: Option<u64>,
    freq: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Done,
    Failed,
}

/// Reads an RDB stream and yields its [`Item`]s in order.
///
/// The decoder reads ahead from `R` in blocks; after [`Item::End`] the bytes it read past
/// the end of the RDB (a replication stream goes on with commands) are available from
/// [`Decoder::into_parts`]. As an [`Iterator`] it yields `Result`s and stops after `End` or
/// after the first error.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let file = std::fs::File::open("dump.rdb")?; // read in blocks: no BufReader needed
/// for item in ferry_codec::Decoder::new(file) {
///     println!("{:?}", item?);
/// }
/// # Ok(()) }
/// ```
pub struct Decoder<R: Read> {
    reader: Reader<R>,
    limits: Limits,
    verify_checksum: bool,
    version: Option<RdbVersion>,
    db: u64,
    attributes: KeyAttributes,
    /// Parts already decoded but not yet handed out (values stored as one blob).
    ready: std::vec::IntoIter<ValuePart>,
    /// The value being read from the stream part by part.
    value: Option<ValueState>,
    /// A key was started and its `KeyEnd` is still owed.
    key_open: bool,
    phase: Phase,
}

impl<R: Read> Decoder<R> {
    /// A decoder with the default [`DecodeOptions`].
    pub fn new(reader: R) -> Self {
        Self::with_options(reader, DecodeOptions::default())
    }

    /// A decoder with other part sizes, or without the checksum check.
    pub fn with_options(reader: R, options: DecodeOptions) -> Self {
        Self {
            reader: Reader::new(reader),
            limits: Limits::new(&options),
            verify_checksum: options.verify_checksum,
            version: None,
            db: 0,
            attributes: KeyAttributes::default(),
            ready: Vec::new().into_iter(),
            value: None,
            key_open: false,
            phase: Phase::Running,
        }
    }

    /// Bytes consumed so far (the offset of the next byte to decode).
    pub fn bytes_read(&self) -> u64 {
        self.reader.offset()
    }

    /// The header's version, once the header has been read.
    pub fn version(&self) -> Option<RdbVersion> {
        self.version
    }

    /// The source and the bytes already read from it beyond what was decoded: after
    /// [`Item::End`], whatever followed the RDB's checksum.
    pub fn into_parts(self) -> (R, Bytes) {
        self.reader.into_parts()
    }

    /// Skips what is left of the current key's value: after a `KeyStart`, the next item is
    /// the key's `KeyEnd`. The skipped bytes are still read, checked (a string's LZF data
    /// is still decompressed, into a reused buffer) and checksummed; the value is just not
    /// materialized. Does nothing outside a key.
    pub fn skip_value(&mut self) -> Result<(), DecodeError> {
        if self.phase != Phase::Running {
            return Ok(());
        }
        if self.ready.len() > 0 {
            self.ready = Vec::new().into_iter();
        }
        // The common case, a string, without moving the state around.
        if matches!(self.value, Some(ValueState::PendingString)) {
            self.value = None;
            let skipped = self.reader.skip_string("a string value");
            if skipped.is_err() {
                self.phase = Phase::Failed;
            }
            return skipped;
        }
        while let Some(state) = self.value.take() {
            let skipped = match state {
                ValueState::PendingString => self.reader.skip_string("a string value"),
                // Checked as when read, without building the elements.
                ValueState::Elements {
                    shape: shape @ (Shape::List | Shape::Set),
                    remaining,
                } => {
                    let what = if shape == Shape::List {
                        "a list element"
                    } else {
                        "a set member"
                    };
                    (0..remaining).try_for_each(|_| self.reader.skip_string(what))
                }
                ValueState::Quicklist {
                    remaining,
                    with_containers,
                } => list::skip_quicklist_node(&mut self.reader, with_containers).map(|()| {
                    self.value = (remaining > 1).then_some(ValueState::Quicklist {
                        remaining: remaining - 1,
                        with_containers,
                    })
                }),
                state => value::continue_value(&mut self.reader, state, &self.limits)
                    .map(|(_, next)| self.value = next),
            };
            if let Err(err) = skipped {
                self.phase = Phase::Failed;
                return Err(err);
            }
        }
        Ok(())
    }

    /// After the `KeyStart` of a string key, reads its value as stored, not expanded, and
    /// ends the key: the next item is the next record, not a `Part` nor the `KeyEnd`. The
    /// value is checked and checksummed as [`Decoder::next_item`] would; a conversion copies
    /// it when the target stores it the same way (see [`RawString`]). An error when the
    /// decoder is not at a string value.
    pub fn take_raw_string(&mut self) -> Result<RawString<'_>, DecodeError> {
        if self.phase != Phase::Running
            || self.ready.len() > 0
            || !matches!(self.value, Some(ValueState::PendingString))
        {
            return Err(DecodeError::Invalid {
                offset: self.reader.offset(),
                problem: "asked for a string value where none comes next".into(),
            });
        }
        self.value = None;
        match self.reader.read_raw_string("a string value") {
            Ok(raw) => {
                self.key_open = false;
                Ok(raw)
            }
            Err(err) => {
                self.phase = Phase::Failed;
                Err(err)
            }
        }
    }

    /// The next item; `Ok(None)` after [`Item::End`] or after an error.
    #[inline]
    pub fn next_item(&mut self) -> Result<Option<Item>, DecodeError> {
        if self.phase != Phase::Running {
            return Ok(None);
        }
        // The step's result is returned as it is, not rebuilt: an item is over 100 bytes
        // and each copy of it shows at millions of keys.
        let result = self.step();
        match &result {
            Ok(Some(Item::End { .. }) | None) => self.phase = Phase::Done,
            Ok(Some(_)) => {}
            Err(_) => self.phase = Phase::Failed,
        }
        result
    }

    #[inline]
    fn step(&mut self) -> Result<Option<Item>, DecodeError> {
        if let Some(part) = self.ready.next() {
            return Ok(Some(Item::Part(part)));
        }
        // The most common part, read without moving the value state around.
        if matches!(self.value, Some(ValueState::PendingString)) {
            self.value = None;
            let value = self.reader.read_string("a string value")?;
            return Ok(Some(Item::Part(ValuePart::String(value))));
        }
        if let Some(state) = self.value.take() {
            let (part, next) = value::continue_value(&mut self.reader, state, &self.limits)?;
            self.value = next;
            return Ok(Some(Item::Part(part)));
        }
        if self.key_open {
            self.key_open = false;
            return Ok(Some(Item::KeyEnd));
        }
        let Some(version) = self.version else {
            return self.read_header().map(Some);
        };
        self.read_record(version).map(Some)
    }

    fn read_header(&mut self) -> Result<Item, DecodeError> {
        let raw = self.reader.read_array::<9>("the header")?;
        let version = header::parse_header(raw)?;
        // Files before version 5 carry no checksum.
        if !self.verify_checksum || version.number < 5 {
            self.reader.disable_checksum();
        }
        self.version = Some(version);
        Ok(Item::Header(version))
    }

    /// Reads opcodes up to the next item: a top-level record, a key's start or the end.
    fn read_record(&mut self, version: RdbVersion) -> Result<Item, DecodeError> {
        loop {
            let opcode = self.reader.read_u8("an opcode or type byte")?;
            match opcode {
                types::OP_EXPIRETIME_MS => {
                    // Before RDB 9 this was host byte order; every producer was little-endian.
                    self.attributes.expire_at_ms = Some(self.reader.read_i64_le("an expiry time")?);
                }
                types::OP_EXPIRETIME => {
                    let secs = i32::from_le_bytes(self.reader.read_array("an expiry time")?);
                    self.attributes.expire_at_ms = Some(i64::from(secs) * 1000);
                }
                types::OP_IDLE => {
                    self.attributes.idle_secs = Some(self.reader.read_len("an idle time")?)
                }
                types::OP_FREQ => {
                    self.attributes.freq = Some(self.reader.read_u8("an LFU counter")?)
                }
                types::OP_AUX => {
                    let key = self.reader.read_string("an AUX field name")?;
                    let value = self.reader.read_string("an AUX field value")?;
                    return Ok(Item::Aux { key, value });
                }
                types::OP_MODULE_AUX => return self.read_module_aux(),
                types::OP_FUNCTION2 => {
                    let code = self.reader.read_string("a function library")?;
                    return Ok(Item::Function { code });
                }
                types::OP_FUNCTION_PRE_GA => {
                    return Err(self.unsupported_here(
                        "a function library in the Redis 7.0 release-candidate format (opcode 246)",
                    ))
                }
                types::OP_SELECTDB => {
                    self.db = self.reader.read_len("a database number")?;
                    return Ok(Item::SelectDb(self.db));
                }
                types::OP_RESIZEDB => {
                    let keys = self.reader.read_len("a RESIZEDB key count")?;
                    let expires = self.reader.read_len("a RESIZEDB expires count")?;
                    return Ok(Item::ResizeDb { keys, expires });
                }
                types::OP_SLOT_INFO => {
                    let slot = self.reader.read_len("a slot number")?;
                    let keys = self.reader.read_len("a slot key count")?;
                    let expires = self.reader.read_len("a slot expires count")?;
                    return Ok(Item::SlotInfo {
                        slot,
                        keys,
                        expires,
                    });
                }
                types::OP_SLOT_IMPORT if version.flavor == crate::model::Flavor::Valkey => {
                    // Valkey's in-flight slot migration state: meaningless anywhere else.
                    self.skip_slot_import()?;
                }
                types::OP_EOF => return self.read_end(version),
                type_byte => return self.read_key_start(type_byte, version),
            }
        }
    }

    fn read_module_aux(&mut self) -> Result<Item, DecodeError> {
        let module = ModuleId(self.reader.read_len("a module id")?);
        let when_opcode = self.reader.read_len("a module AUX marker")?;
        if when_opcode != types::MODULE_OP_UINT {
            return Err(self.reader.invalid(format!(
                "module AUX for {:?} has marker {when_opcode}, expected {}",
                module.name(),
                types::MODULE_OP_UINT
            )));
        }
        let when = self.reader.read_len("a module AUX phase")?;
        let body = module::capture_body(&mut self.reader)?;
        Ok(Item::ModuleAux { module, when, body })
    }

    fn skip_slot_import(&mut self) -> Result<(), DecodeError> {
        self.reader.read_string("a slot import job name")?;
        let ranges = self.reader.read_len("a slot range count")?;
        for _ in 0..ranges {
            self.reader.read_len("a slot range start")?;
            self.reader.read_len("a slot range end")?;
        }
        Ok(())
    }

    fn read_end(&mut self, version: RdbVersion) -> Result<Item, DecodeError> {
        if version.number < 5 {
            return Ok(Item::End { checksum: None });
        }
        let computed = self.reader.finish_checksum();
        let stored = self.reader.read_u64_le("the checksum")?;
        if stored == 0 {
            return Ok(Item::End { checksum: None });
        }
        if let Some(computed) = computed {
            if computed != stored {
                return Err(DecodeError::Checksum { stored, computed });
            }
        }
        Ok(Item::End {
            checksum: Some(stored),
        })
    }

    fn read_key_start(&mut self, type_byte: u8, version: RdbVersion) -> Result<Item, DecodeError> {
        let type_offset = self.reader.offset() - 1;
        value::check_type(type_byte, version.flavor, type_offset)?;
        let key = self.reader.read_string("a key")?;
        let start = value::start_value(&mut self.reader, type_byte, version.flavor, &self.limits)?;
        let attributes = std::mem::take(&mut self.attributes);
        let header = KeyHeader {
            db: self.db,
            key,
            expire_at_ms: attributes.expire_at_ms,
            idle_secs: attributes.idle_secs,
            freq: attributes.freq,
            kind: start.kind,
            encoding: type_byte,
            len: start.len,
        };
        if !start.parts.is_empty() || self.ready.len() > 0 {
            self.ready = start.parts.into_iter();
        }
        self.value = start.state;
        self.key_open = true;
        Ok(Item::KeyStart(header))
    }

    fn unsupported_here(&self, what: &str) -> DecodeError {
        DecodeError::Unsupported {
            offset: self.reader.offset().saturating_sub(1),
            what: what.into(),
        }
    }
}

impl<R: Read> Iterator for Decoder<R> {
    type Item = Result<Item, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

impl<R: Read> std::iter::FusedIterator for Decoder<R> {}

#[cfg(test)]
mod tests;
