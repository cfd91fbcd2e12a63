//! An RDB file in a target's format, written whole or not at all.

use super::write_behind::WriteBehind;
use super::{Sink, SinkStats};
use crate::codec::{EncodeOptions, Encoder};
use crate::error::Error;
use crate::output_file::{OutputFile, WritebackFile};
use ferry_codec::{Format, Item, KeyHeader, RawString};
use std::path::{Path, PathBuf};

pub struct RdbFileSink {
    output: Option<OutputFile>,
    path: PathBuf,
    encoder: Option<Encoder<WriteBehind<WritebackFile>>>,
    stats: SinkStats,
}

impl RdbFileSink {
    /// Refuses an existing `path` unless `force`; nothing appears at `path` before `finish`.
    pub fn create(
        path: &Path,
        format: Format,
        options: EncodeOptions,
        force: bool,
    ) -> Result<Self, Error> {
        let (output, file) = OutputFile::create(path, force)?;
        let writer = WriteBehind::new(WritebackFile::new(file)).map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            output: Some(output),
            path: path.to_owned(),
            encoder: Some(Encoder::new(writer, format, options)),
            stats: SinkStats::default(),
        })
    }

    fn encode_error(&self, source: ferry_codec::EncodeError) -> Error {
        Error::Encode {
            path: self.path.clone(),
            source,
        }
    }
}

impl RdbFileSink {
    fn write(&mut self, item: ItemRef<'_>) -> Result<(), Error> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Err(self.encode_error(ferry_codec::EncodeError::Sequence(
                "item after the output was finished".into(),
            )));
        };
        let key_db = match &item {
            ItemRef::Owned(Item::KeyStart(header)) => Some(header.db),
            ItemRef::Borrowed(Item::KeyStart(header)) => Some(header.db),
            ItemRef::RawString(header, _) => Some(header.db),
            _ => None,
        };
        let written = match item {
            ItemRef::Owned(item) => encoder.write_owned(item),
            ItemRef::Borrowed(item) => encoder.write_item(item),
            ItemRef::RawString(header, value) => encoder.write_raw_string_key(header, value),
        };
        if let Err(source) = written {
            return Err(self.encode_error(source));
        }
        if let Some(db) = key_db {
            *self.stats.keys_per_db.entry(db).or_default() += 1;
        }
        Ok(())
    }
}

enum ItemRef<'a> {
    Owned(Item),
    Borrowed(&'a Item),
    /// A whole string key with its value as stored.
    RawString(&'a KeyHeader, &'a RawString<'a>),
}

impl Sink for RdbFileSink {
    fn push(&mut self, item: Item) -> Result<(), Error> {
        self.write(ItemRef::Owned(item))
    }

    fn push_ref(&mut self, item: &Item) -> Result<(), Error> {
        self.write(ItemRef::Borrowed(item))
    }

    fn push_raw_string(&mut self, header: &KeyHeader, value: &RawString) -> Result<(), Error> {
        self.write(ItemRef::RawString(header, value))
    }

    fn takes_raw_strings(&self) -> bool {
        // The encoder copies a stored string it would write the same way.
        true
    }

    fn takes_refs(&self) -> bool {
        // The encoder reads items; a key's header is copied, which costs no allocation
        // (the name is a slice of shared memory).
        true
    }

    fn finish(&mut self) -> Result<SinkStats, Error> {
        let (Some(encoder), Some(output)) = (self.encoder.take(), self.output.take()) else {
            return Ok(self.stats.clone());
        };
        let writer = encoder
            .finish()
            .map_err(|source| self.encode_error(source))?;
        let file = writer
            .finish()
            .map_err(|source| Error::Write {
                path: self.path.clone(),
                source,
            })?
            .into_file();
        // The file's size, not the encoder's count, so the trailer is included.
        let written = file.metadata().map_err(|source| Error::Write {
            path: self.path.clone(),
            source,
        })?;
        self.stats.bytes_written = written.len();
        output.commit(file)?;
        Ok(self.stats.clone())
    }
}
