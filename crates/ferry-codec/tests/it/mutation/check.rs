//! What every decode must satisfy, whatever bytes it is given: the items form a well-formed
//! sequence, a key's declared length matches what follows it, an error names a byte inside
//! the input, and a vector set's module body parses or fails the same way. Shared by the mutation test and the fuzz targets (which include this
//! file by path), so it depends on nothing but the codec.

use std::io::Read;

use bytes::Bytes;
use ferry_codec::{types, DecodeError, DecodeOptions, Decoder, Item, KeyHeader, Kind, ValuePart};

/// Small parts, so that splitting runs on small inputs too.
pub fn options() -> DecodeOptions {
    DecodeOptions {
        max_part_elements: 7,
        max_part_bytes: 4096,
        ..DecodeOptions::default()
    }
}

/// How a decode that kept every rule ended.
#[derive(Debug)]
pub struct Outcome {
    pub items: usize,
    pub keys: usize,
    pub error: Option<DecodeError>,
    /// Every item, when asked for: to compare two decodes of the same bytes.
    pub kept: Vec<Item>,
}

impl Outcome {
    /// The same items and the same error. Items are compared by their debug form when they
    /// differ as values, since a NaN score is not equal to itself.
    pub fn same_as(&self, other: &Outcome) -> bool {
        let same_error = match (&self.error, &other.error) {
            (None, None) => true,
            (Some(a), Some(b)) => a.to_string() == b.to_string(),
            _ => false,
        };
        same_error
            && self.kept.len() == other.kept.len()
            && self
                .kept
                .iter()
                .zip(&other.kept)
                .all(|(a, b)| a == b || format!("{a:?}") == format!("{b:?}"))
    }
}

/// Decodes `reader` (holding `input_len` bytes) to its end. `Err` names a broken rule.
pub fn decode_file(reader: impl Read, input_len: u64, keep_items: bool) -> Result<Outcome, String> {
    let mut decoder = Decoder::with_options(reader, options());
    let mut grammar = FileGrammar::default();
    let mut kept = Vec::new();
    let mut items = 0;
    let error = loop {
        match decoder.next_item() {
            Ok(Some(item)) => {
                grammar
                    .accept(&item)
                    .map_err(|e| format!("item {items} ({}): {e}", brief(&item)))?;
                items += 1;
                if keep_items {
                    kept.push(item);
                }
            }
            Ok(None) => {
                grammar.finish()?;
                break None;
            }
            Err(err) => {
                check_error(&err, input_len)?;
                break Some(err);
            }
        }
    };
    // Once finished or failed, the decoder stays finished.
    match decoder.next_item() {
        Ok(None) => {}
        other => return Err(format!("decoder went on after its end: {other:?}")),
    }
    Ok(Outcome {
        items,
        keys: grammar.keys,
        error,
        kept,
    })
}

/// Decodes a DUMP payload. `Err` names a broken rule.
pub fn decode_payload(payload: &[u8]) -> Result<Result<KeyHeader, DecodeError>, String> {
    match ferry_codec::dump::decode(Bytes::from_static(b"key"), payload) {
        Ok((header, parts)) => {
            let mut key = KeyGrammar::new(&header);
            for (n, part) in parts.iter().enumerate() {
                key.accept(part).map_err(|e| format!("part {n}: {e}"))?;
            }
            key.finish()?;
            Ok(Ok(header))
        }
        Err(err) => {
            check_error(&err, payload.len() as u64)?;
            Ok(Err(err))
        }
    }
}

/// A user reading an error must learn where in the input the problem is.
pub fn check_error(err: &DecodeError, input_len: u64) -> Result<(), String> {
    match err.offset() {
        Some(offset) => {
            if offset > input_len {
                return Err(format!(
                    "error names byte {offset} of a {input_len}-byte input: {err}"
                ));
            }
            if !err.to_string().contains(&format!("byte {offset}")) {
                return Err(format!("error message does not name byte {offset}: {err}"));
            }
            Ok(())
        }
        None => match err {
            DecodeError::Checksum { .. } | DecodeError::BadMagic { .. } => Ok(()),
            other => Err(format!("error without a byte offset: {other}")),
        },
    }
}

/// The order of a file's items: header first, keys as KeyStart, parts, KeyEnd, and
/// nothing after End.
#[derive(Default)]
struct FileGrammar {
    started: bool,
    ended: bool,
    db: u64,
    key: Option<KeyGrammar>,
    keys: usize,
}

impl FileGrammar {
    fn accept(&mut self, item: &Item) -> Result<(), String> {
        if self.ended {
            return Err("item after End".into());
        }
        if !self.started {
            self.started = true;
            return match item {
                Item::Header(_) => Ok(()),
                _ => Err("the first item is not the header".into()),
            };
        }
        if let Some(key) = self.key.as_mut() {
            return match item {
                Item::Part(part) => key.accept(part),
                Item::KeyEnd => {
                    key.finish()?;
                    self.key = None;
                    Ok(())
                }
                _ => Err("a key is not closed by KeyEnd before the next record".into()),
            };
        }
        match item {
            Item::Header(_) => Err("a second header".into()),
            Item::Part(_) => Err("a part outside a key".into()),
            Item::KeyEnd => Err("KeyEnd without KeyStart".into()),
            Item::KeyStart(header) => {
                if header.db != self.db {
                    return Err(format!(
                        "key in db {} after SELECTDB {}",
                        header.db, self.db
                    ));
                }
                self.keys += 1;
                self.key = Some(KeyGrammar::new(header));
                Ok(())
            }
            Item::SelectDb(db) => {
                self.db = *db;
                Ok(())
            }
            Item::End { .. } => {
                self.ended = true;
                Ok(())
            }
            Item::Aux { .. }
            | Item::ModuleAux { .. }
            | Item::Function { .. }
            | Item::ResizeDb { .. }
            | Item::SlotInfo { .. } => Ok(()),
        }
    }

    /// The decoder said it is done: that must be after End.
    fn finish(&self) -> Result<(), String> {
        if self.ended {
            Ok(())
        } else {
            Err("decoding stopped without an error before End".into())
        }
    }
}

/// The parts of one key: of its kind, in order, adding up to its declared length.
struct KeyGrammar {
    kind: Kind,
    encoding: u8,
    len: Option<u64>,
    parts: u64,
    elements: u64,
    stream_meta_seen: bool,
}

impl KeyGrammar {
    fn new(header: &KeyHeader) -> Self {
        Self {
            kind: header.kind,
            encoding: header.encoding,
            len: header.len,
            parts: 0,
            elements: 0,
            stream_meta_seen: false,
        }
    }

    fn accept(&mut self, part: &ValuePart) -> Result<(), String> {
        if let (Kind::Module(id), ValuePart::Module(body)) = (self.kind, part) {
            if id.is_vector_set() {
                check_vector_set(body)?;
            }
        }
        let elements = match (self.kind, part) {
            (Kind::String, ValuePart::String(_)) | (Kind::Module(_), ValuePart::Module(_)) => {
                if self.parts > 0 {
                    return Err(format!("a second part for a {:?} key", self.kind));
                }
                1
            }
            (Kind::List, ValuePart::ListElements(v)) => v.len(),
            (Kind::Set, ValuePart::SetMembers(v)) => v.len(),
            (Kind::SortedSet, ValuePart::SortedSetMembers(v)) => v.len(),
            (Kind::Hash, ValuePart::HashFields(v)) => v.len(),
            (Kind::Stream, ValuePart::StreamNode { .. }) if !self.stream_meta_seen => 1,
            (Kind::Stream, ValuePart::StreamMeta(_)) if !self.stream_meta_seen => {
                self.stream_meta_seen = true;
                0
            }
            (Kind::Stream, ValuePart::StreamGroup(_)) if self.stream_meta_seen => 0,
            (kind, part) => return Err(format!("{} in a {kind:?} key", part_name(part))),
        };
        self.parts += 1;
        self.elements += elements as u64;
        Ok(())
    }

    fn finish(&self) -> Result<(), String> {
        let counted = match self.kind {
            Kind::String | Kind::Module(_) => {
                return match (self.parts, self.len) {
                    (1, None) => Ok(()),
                    (parts, len) => Err(format!(
                        "a {:?} key with {parts} parts and length {len:?}",
                        self.kind
                    )),
                };
            }
            Kind::Stream if !self.stream_meta_seen => {
                return Err("a stream without its metadata".into())
            }
            // Stream nodes were counted as one element each.
            Kind::Stream => self.elements,
            Kind::List
                if matches!(
                    self.encoding,
                    types::LIST_QUICKLIST | types::LIST_QUICKLIST_2
                ) =>
            {
                self.parts
            }
            Kind::List | Kind::Set | Kind::SortedSet | Kind::Hash => self.elements,
            kind => return Err(format!("a {kind:?} key, a kind this check does not know")),
        };
        if self.len != Some(counted) {
            return Err(format!(
                "a {:?} key (type {}) declares length {:?} but {counted} followed",
                self.kind, self.encoding, self.len
            ));
        }
        Ok(())
    }
}

/// A vector set body parses, or its error points inside the body.
fn check_vector_set(body: &[u8]) -> Result<(), String> {
    match ferry_codec::vectorset::parse(body) {
        Err(err) if err.at > body.len() => Err(format!(
            "vector set error at byte {} of a {}-byte body: {err}",
            err.at,
            body.len()
        )),
        _ => Ok(()),
    }
}

fn part_name(part: &ValuePart) -> &'static str {
    match part {
        ValuePart::String(_) => "a string part",
        ValuePart::ListElements(_) => "list elements",
        ValuePart::SetMembers(_) => "set members",
        ValuePart::SortedSetMembers(_) => "sorted set members",
        ValuePart::HashFields(_) => "hash fields",
        ValuePart::StreamNode { .. } => "a stream node",
        ValuePart::StreamMeta(_) => "stream metadata",
        ValuePart::StreamGroup(_) => "a stream group",
        ValuePart::Module(_) => "a module body",
    }
}

/// An item's kind without its (possibly large) content.
fn brief(item: &Item) -> String {
    match item {
        Item::KeyStart(h) => format!("KeyStart {:?} {:?}", h.key, h.kind),
        Item::Part(part) => part_name(part).into(),
        other => {
            let text = format!("{other:?}");
            text.chars().take(80).collect()
        }
    }
}

/// A source that hands out at most `chunk` bytes per read, so that the decoder's buffer
/// refills land at every position.
pub struct Chunked<'a> {
    pub data: &'a [u8],
    pub chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunk.max(1).min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}
