//! Writes [`Item`]s as an RDB file in the dialect of a target [`Format`]: the [`Encoder`]
//! (whose docs say how it buffers and what its errors leave behind) and its parts.

mod buffer;
mod choose;
pub mod dump;
mod hash;
mod header;
mod list;
mod module;
mod packer;
mod set;
mod stream;
mod streamed;
mod string;
mod value;
mod writer;
mod zset;

use std::io::Write;

use crate::members::DuplicateFinder;
use buffer::{part_fits, part_name, ValueBuffer};
use choose::{choose, key_name};
use streamed::{Streamed, StreamedForm};
use writer::Output;

use crate::error::EncodeError;
use crate::length::{write_len, write_u64_le};
use crate::model::{Item, KeyHeader, Kind, ValuePart};
use crate::raw_string::RawString;
use crate::target::Format;
use crate::types;

/// Tuning of an [`Encoder`].
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// LZF-compress strings over 20 bytes when that saves space, as servers do by default.
    pub compress: bool,
    /// Bytes of one key's value held to choose its encoding; larger values are streamed in
    /// their plain form.
    pub buffer_limit: usize,
    /// The loading server's `databases` setting, when known: a file that selects a
    /// database at or past it is refused whole by the server, so the encoder refuses it.
    pub databases: Option<u64>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            compress: true,
            buffer_limit: 8 << 20,
            databases: None,
        }
    }
}

/// Writes [`Item`]s as an RDB file in the dialect of a target [`Format`].
///
/// Items come in the order a [`Decoder`](crate::Decoder) yields them: `Header` first, `End`
/// last, each key as `KeyStart`, its `Part`s and `KeyEnd`. The encoder writes the magic of
/// its format whatever version the `Header` names, and computes the checksum itself.
///
/// Each key's value is buffered until its `KeyEnd` so that it can get the most compact
/// encoding the target has, the way a server with default settings would hold it. A value
/// that outgrows [`EncodeOptions::buffer_limit`] is instead written in its plain form as
/// its parts arrive; that needs the element count up front ([`KeyHeader::len`]), which the
/// source gives for every encoding except single-blob ones (ziplists, listpacks, intsets,
/// zipmaps). Such a value over the limit is refused with [`EncodeError::Unrepresentable`]:
/// raise the limit.
///
/// Errors and the encoder's state: an error raised before any byte of a key was written
/// (a rejected item, or a buffered key refused at its `KeyEnd`) leaves the encoder usable,
/// and the refused key is simply not in the output. An error once bytes of a key are out
/// (a streamed value found wrong midway, or any I/O error) stops the encoder: later calls
/// fail, because the output cannot be completed into a valid file.
pub struct Encoder<W: Write> {
    out: Output<W>,
    format: Format,
    options: EncodeOptions,
    state: State,
    /// The database the loader will put keys into: 0 until a `SELECTDB`.
    db: u64,
    /// Reused for every key, so buffering allocates only while it grows.
    value: ValueBuffer,
}

enum State {
    AwaitHeader,
    TopLevel,
    Key(KeyState),
    Ended,
    Failed,
}

struct KeyState {
    header: KeyHeader,
    mode: KeyMode,
}

enum KeyMode {
    /// Parts are collected in `Encoder::value` until `KeyEnd` or until they outgrow the limit.
    Buffering,
    /// Strings and module values have a single part and nothing to choose: written as soon
    /// as it arrives.
    Direct { written: bool },
    /// Over the limit: everything up to the element count is written, parts go straight out.
    Streaming(Streamed),
    /// Refused before any of it was written: its remaining parts and `KeyEnd` are ignored.
    Refused,
}

impl<W: Write> Encoder<W> {
    /// An encoder that writes `format` into `writer`, which it buffers itself.
    pub fn new(writer: W, format: Format, options: EncodeOptions) -> Self {
        // A buffered value can pass the limit by one part before it is streamed.
        let keep_capacity = options.buffer_limit.saturating_mul(2);
        Self {
            out: Output::new(writer, keep_capacity),
            format,
            options,
            state: State::AwaitHeader,
            db: 0,
            value: ValueBuffer::new(keep_capacity),
        }
    }

    /// Bytes of output so far, including those still buffered.
    pub fn bytes_written(&self) -> u64 {
        self.out.bytes_written()
    }

    /// Flushes everything and returns the writer; fails unless `End` was written.
    pub fn finish(self) -> Result<W, EncodeError> {
        match self.state {
            State::Ended => Ok(self.out.finish()?),
            State::Failed => Err(EncodeError::Sequence(
                "the encoder stopped at an earlier error".into(),
            )),
            _ => Err(EncodeError::Sequence(
                "finish called before the End item".into(),
            )),
        }
    }

    /// Takes the next item, in the order the type's docs give.
    pub fn write_item(&mut self, item: &Item) -> Result<(), EncodeError> {
        let result = self.apply(item);
        if matches!(result, Err(EncodeError::Io(_))) {
            self.state = State::Failed;
        }
        result
    }

    /// Like [`Encoder::write_item`], taking the item: a key's header is kept as it is
    /// rather than copied (a copy of its name costs an allocation per key).
    pub fn write_owned(&mut self, item: Item) -> Result<(), EncodeError> {
        match (&self.state, item) {
            (State::TopLevel, Item::KeyStart(header)) => {
                self.key_start(header);
                Ok(())
            }
            (_, item) => self.write_item(&item),
        }
    }

    /// A whole string key: its header and its value as the input stored it (from
    /// [`Decoder::take_raw_string`](crate::Decoder::take_raw_string)), in place of `KeyStart`, the value's
    /// `Part` and `KeyEnd`. The output is the same as theirs; the stored bytes are copied
    /// when they are what the encoder would write for the value anyway, which spares
    /// expanding and encoding it again. (An LZF string over 1 MiB is copied too, where the
    /// items would have it compressed anew.)
    pub fn write_raw_string_key(
        &mut self,
        header: &KeyHeader,
        value: &RawString,
    ) -> Result<(), EncodeError> {
        let result = self.raw_string_key(header, value);
        if matches!(result, Err(EncodeError::Io(_))) {
            self.state = State::Failed;
        }
        result
    }

    fn raw_string_key(&mut self, header: &KeyHeader, value: &RawString) -> Result<(), EncodeError> {
        match self.state {
            State::TopLevel if header.kind == Kind::String => {}
            State::TopLevel => {
                return Err(EncodeError::Sequence(format!(
                    "key {:?}: a string value for a {} key",
                    key_name(header),
                    header.kind.type_name()
                )))
            }
            // The same answers as for its KeyStart item.
            _ => return self.apply(&Item::KeyStart(header.clone())),
        }
        let compress = self.options.compress;
        if value.is_what_encoder_writes(compress) {
            self.write_prelude(header, types::STRING);
            let stored = value.stored();
            if stored.len() < writer::DIRECT_WRITE_FROM {
                self.out.pending().extend_from_slice(stored);
            } else {
                self.out.write_direct(stored)?;
            }
        } else if let (true, Some((data, original_len))) = (compress, value.lzf()) {
            // LZF data with wider length fields than needed: the data is kept, as the
            // encoder keeps that of a string it saw expanded, under the usual lengths.
            self.write_prelude(header, types::STRING);
            let out = self.out.pending();
            out.push(string::LZF_STRING);
            write_len(out, data.len() as u64);
            write_len(out, original_len as u64);
            if data.len() < writer::DIRECT_WRITE_FROM {
                self.out.pending().extend_from_slice(data);
            } else {
                self.out.write_direct(data)?;
            }
        } else {
            // Checked by the decoder, so expanding cannot fail on good input; a caller's
            // value that does is refused before any byte of the key is out.
            let expanded = value.value().map_err(|err| EncodeError::Unrepresentable {
                key: key_name(header),
                problem: format!("its stored string does not expand: {err}"),
            })?;
            self.write_prelude(header, types::STRING);
            string::write_long_string(&mut self.out, &expanded, compress)?;
        }
        Ok(self.out.flush_if_full()?)
    }

    fn apply(&mut self, item: &Item) -> Result<(), EncodeError> {
        match (&self.state, item) {
            (State::Failed, _) => Err(EncodeError::Sequence(
                "the encoder stopped at an earlier error; its output is incomplete".into(),
            )),
            (State::Ended, _) => Err(EncodeError::Sequence("item after the End item".into())),
            (State::AwaitHeader, Item::Header(_)) => {
                self.out
                    .pending()
                    .extend_from_slice(&self.format.version.magic());
                self.state = State::TopLevel;
                Ok(())
            }
            (State::AwaitHeader, _) => Err(EncodeError::Sequence(
                "the first item must be the Header".into(),
            )),
            (_, Item::Header(_)) => Err(EncodeError::Sequence("a second Header item".into())),
            (State::Key(_), Item::Part(part)) => self.key_part(part),
            (State::Key(_), Item::KeyEnd) => self.key_end(),
            (State::Key(key), _) => Err(EncodeError::Sequence(format!(
                "key {:?} is not finished: only Part and KeyEnd items can come before its KeyEnd",
                key_name(&key.header)
            ))),
            (State::TopLevel, Item::Part(_) | Item::KeyEnd) => Err(EncodeError::Sequence(
                "a Part or KeyEnd item outside of a key".into(),
            )),
            (State::TopLevel, Item::KeyStart(header)) => {
                self.key_start(header.clone());
                Ok(())
            }
            (State::TopLevel, Item::End { .. }) => self.end(),
            (State::TopLevel, record) => self.top_level_record(record),
        }
    }

    fn top_level_record(&mut self, item: &Item) -> Result<(), EncodeError> {
        let compress = self.options.compress;
        let out = self.out.pending();
        match item {
            Item::Aux { key, value } => header::write_aux(out, key, value, compress),
            Item::ModuleAux { module, when, body } => {
                header::write_module_aux(out, *module, *when, body)
            }
            Item::Function { code } => {
                if !self.format.has_functions() {
                    return Err(EncodeError::Unrepresentable {
                        key: "(function library)".into(),
                        problem: format!(
                            "{} has no functions (they need RDB 10)",
                            self.format.version
                        ),
                    });
                }
                header::write_function(out, code, compress);
            }
            Item::SelectDb(db) => {
                if let Some(databases) = self.options.databases.filter(|n| db >= n) {
                    return Err(EncodeError::Database { db: *db, databases });
                }
                header::write_select_db(out, *db);
                self.db = *db;
            }
            Item::ResizeDb { keys, expires } => header::write_resize_db(out, *keys, *expires),
            Item::SlotInfo {
                slot,
                keys,
                expires,
            } => {
                // Only a sizing hint; formats without the opcode lose nothing.
                if self.format.has_slot_info() {
                    header::write_slot_info(out, *slot, *keys, *expires);
                }
            }
            Item::Header(_)
            | Item::KeyStart(_)
            | Item::Part(_)
            | Item::KeyEnd
            | Item::End { .. } => {
                unreachable!("dispatched in apply")
            }
        }
        Ok(self.out.flush_if_full()?)
    }

    fn end(&mut self) -> Result<(), EncodeError> {
        self.out.pending().push(types::OP_EOF);
        let checksum = self.out.checksum()?;
        write_u64_le(self.out.pending(), checksum);
        self.state = State::Ended;
        Ok(())
    }

    fn key_start(&mut self, header: KeyHeader) {
        self.value.clear();
        let mode = match header.kind {
            Kind::String | Kind::Module(_) => KeyMode::Direct { written: false },
            _ => KeyMode::Buffering,
        };
        self.state = State::Key(KeyState { header, mode });
    }

    /// Writes `SELECTDB` when the key lives in another database than the previous one, then
    /// the key's prelude.
    fn write_prelude(&mut self, header: &KeyHeader, type_byte: u8) {
        let out = self.out.pending();
        if header.db != self.db {
            header::write_select_db(out, header.db);
            self.db = header.db;
        }
        header::write_key_prelude(out, header, type_byte, self.options.compress);
    }

    fn key_part(&mut self, part: &ValuePart) -> Result<(), EncodeError> {
        if let Some(written) = self.string_part_fast(part) {
            return written;
        }
        let State::Key(mut key) = std::mem::replace(&mut self.state, State::TopLevel) else {
            unreachable!("key_part is only called inside a key")
        };
        let result = self.key_part_in(&mut key, part);
        self.state = match &result {
            Ok(()) => State::Key(key),
            // Nothing of the key is out yet: the key is dropped, the file goes on.
            Err(_)
                if matches!(
                    key.mode,
                    KeyMode::Buffering | KeyMode::Direct { written: false }
                ) =>
            {
                self.value.clear();
                State::Key(KeyState {
                    mode: KeyMode::Refused,
                    ..key
                })
            }
            Err(_) => State::Failed,
        };
        result
    }

    fn key_part_in(&mut self, key: &mut KeyState, part: &ValuePart) -> Result<(), EncodeError> {
        if !part_fits(key.header.kind, part) {
            return Err(EncodeError::Sequence(format!(
                "key {:?}: a {} part in a {} value",
                key_name(&key.header),
                part_name(part),
                key.header.kind.type_name()
            )));
        }
        match &mut key.mode {
            KeyMode::Refused => Ok(()),
            KeyMode::Direct { written } => {
                if *written {
                    return Err(EncodeError::Sequence(format!(
                        "key {:?}: a {} value comes in one part",
                        key_name(&key.header),
                        key.header.kind.type_name()
                    )));
                }
                *written = true;
                self.write_direct(&key.header, part)
            }
            KeyMode::Buffering => {
                check_stream_order(&key.header, &self.value, part)?;
                self.value.add(part);
                if self.value.size() > self.options.buffer_limit {
                    let streamed = self.start_streaming(&key.header)?;
                    key.mode = KeyMode::Streaming(streamed);
                }
                Ok(())
            }
            KeyMode::Streaming(streamed) => {
                if streamed.form == StreamedForm::Stream {
                    check_stream_order(&key.header, &self.value, part)?;
                }
                self.stream_part(&key.header, streamed, part)?;
                Ok(self.out.flush_if_full()?)
            }
        }
    }

    /// The common case of [`Self::key_part`], a string key's value, written without moving
    /// the key's state out and back (it is over 100 bytes). `None` for any other case.
    fn string_part_fast(&mut self, part: &ValuePart) -> Option<Result<(), EncodeError>> {
        let State::Key(KeyState {
            header,
            mode: KeyMode::Direct { written },
        }) = &mut self.state
        else {
            return None;
        };
        let ValuePart::String(value) = part else {
            return None;
        };
        if *written || header.kind != Kind::String {
            return None;
        }
        *written = true;
        let out = self.out.pending();
        if header.db != self.db {
            header::write_select_db(out, header.db);
            self.db = header.db;
        }
        header::write_key_prelude(out, header, types::STRING, self.options.compress);
        let result = string::write_long_string(&mut self.out, value, self.options.compress)
            .and_then(|()| self.out.flush_if_full());
        Some(result.map_err(EncodeError::from))
    }

    fn write_direct(&mut self, header: &KeyHeader, part: &ValuePart) -> Result<(), EncodeError> {
        match (header.kind, part) {
            (Kind::String, ValuePart::String(value)) => {
                self.write_prelude(header, types::STRING);
                string::write_long_string(&mut self.out, value, self.options.compress)?;
            }
            (Kind::Module(id), ValuePart::Module(body)) => {
                self.write_prelude(header, types::MODULE_2);
                module::write_module_id(self.out.pending(), id);
                if body.len() < writer::DIRECT_WRITE_FROM {
                    self.out.pending().extend_from_slice(body);
                } else {
                    self.out.write_direct(body)?;
                }
            }
            _ => unreachable!("part_fits checked the part"),
        }
        Ok(self.out.flush_if_full()?)
    }

    /// Switches a key that outgrew the buffer to its plain form: writes its prelude and
    /// count, then what was buffered. Fails, writing nothing, when the count is unknown.
    fn start_streaming(&mut self, header: &KeyHeader) -> Result<Streamed, EncodeError> {
        let (form, expected) = streamed::plan(&self.format, header, self.options.buffer_limit)?;
        let mark = self.out.mark();
        let db = self.db;
        let mut streamed = Streamed {
            form,
            expected,
            written: 0,
            members: DuplicateFinder::new(),
        };
        self.write_prelude(header, form.type_byte(&self.format));
        let compress = self.options.compress;
        let out = self.out.pending();
        streamed::write_count(form, expected, out);
        let replayed = streamed::replay(
            &self.format,
            header,
            &self.value,
            &mut streamed,
            self.out.pending(),
            compress,
        );
        if let Err(err) = replayed {
            self.out.rollback(mark);
            self.db = db;
            return Err(err);
        }
        self.value.clear_elements();
        self.out.flush_if_full()?;
        Ok(streamed)
    }

    fn stream_part(
        &mut self,
        header: &KeyHeader,
        streamed: &mut Streamed,
        part: &ValuePart,
    ) -> Result<(), EncodeError> {
        let compress = self.options.compress;
        let out = self.out.pending();
        match part {
            ValuePart::StreamMeta(_) | ValuePart::StreamGroup(_) => {
                self.value.add(part);
                Ok(())
            }
            _ => streamed::write_part(&self.format, header, streamed, part, out, compress),
        }
    }

    fn key_end(&mut self) -> Result<(), EncodeError> {
        // A string or module key whose value is out: nothing was buffered, nothing to do.
        if let State::Key(KeyState {
            mode: KeyMode::Direct { written: true },
            ..
        }) = self.state
        {
            self.state = State::TopLevel;
            return Ok(self.out.flush_if_full()?);
        }
        let State::Key(key) = std::mem::replace(&mut self.state, State::TopLevel) else {
            unreachable!("key_end is only called inside a key")
        };
        let result = match key.mode {
            KeyMode::Direct { written: true } | KeyMode::Refused => Ok(()),
            KeyMode::Direct { written: false } => Err(EncodeError::Sequence(format!(
                "key {:?}: KeyEnd before its value",
                key_name(&key.header)
            ))),
            KeyMode::Buffering => self.write_buffered(&key.header),
            KeyMode::Streaming(mut streamed) => {
                let finished = self.finish_streamed(&key.header, &mut streamed);
                if finished.is_err() {
                    self.state = State::Failed;
                }
                finished
            }
        };
        self.value.clear();
        result?;
        Ok(self.out.flush_if_full()?)
    }

    fn write_buffered(&mut self, header: &KeyHeader) -> Result<(), EncodeError> {
        let encoding = choose(&self.format, header, &self.value)?;
        let mark = self.out.mark();
        let db = self.db;
        self.write_prelude(header, encoding.type_byte(&self.format));
        let written = value::write_value(
            &self.format,
            header,
            &encoding,
            &self.value,
            self.out.pending(),
            self.options.compress,
        );
        if written.is_err() {
            self.out.rollback(mark);
            self.db = db;
        }
        written
    }

    fn finish_streamed(
        &mut self,
        header: &KeyHeader,
        streamed: &mut Streamed,
    ) -> Result<(), EncodeError> {
        streamed.check_complete(header)?;
        if streamed.form == StreamedForm::Stream {
            let Some(meta) = &self.value.stream_meta else {
                return Err(EncodeError::Sequence(format!(
                    "key {:?}: the stream ended without its metadata part",
                    key_name(header)
                )));
            };
            stream::write_tail(
                self.format.stream_type(),
                meta,
                &self.value.stream_groups,
                self.out.pending(),
                self.options.compress,
            );
        }
        Ok(())
    }
}

/// Nodes first, then one metadata part, then the groups.
fn check_stream_order(
    header: &KeyHeader,
    value: &ValueBuffer,
    part: &ValuePart,
) -> Result<(), EncodeError> {
    let problem = match part {
        ValuePart::StreamNode { .. } if value.stream_meta.is_some() => {
            "a stream node after the metadata"
        }
        ValuePart::StreamMeta(_) if value.stream_meta.is_some() => "a second stream metadata part",
        ValuePart::StreamGroup(_) if value.stream_meta.is_none() => {
            "a consumer group before the metadata"
        }
        _ => return Ok(()),
    };
    Err(EncodeError::Sequence(format!(
        "key {:?}: {problem}",
        key_name(header)
    )))
}

#[cfg(test)]
mod raw_string_tests;
#[cfg(test)]
mod tests;
