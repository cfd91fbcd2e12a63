//! An RDB file on disk.

use super::read_ahead::ReadAhead;
use super::Source;
use crate::codec::Decoder;
use crate::error::Error;
use ferry_codec::{Item, RawString};
use std::fs::File;
use std::path::{Path, PathBuf};

/// What a visitor of [`RdbFileSource::visit_all`] wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    Continue,
    /// After a `KeyStart`: go straight to the key's `KeyEnd`.
    SkipValue,
}

pub struct RdbFileSource {
    path: PathBuf,
    /// Read on a thread of its own (the decoder buffers too, to slice its strings).
    decoder: Decoder<ReadAhead>,
    size: u64,
    ended: bool,
}

impl RdbFileSource {
    pub fn open(path: &Path) -> Result<Self, Error> {
        let open_error = |source| Error::Open {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(open_error)?;
        let metadata = file.metadata().map_err(open_error)?;
        // A directory opens fine on Unix and fails only on the first read, with a worse message.
        if !metadata.is_file() {
            return Err(Error::NotAFile {
                path: path.to_owned(),
            });
        }
        Ok(Self {
            path: path.to_owned(),
            decoder: Decoder::new(ReadAhead::new(file).map_err(open_error)?),
            size: metadata.len(),
            ended: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads to the end marker, showing each item to `visit` with the offset after it.
    /// For a consumer that only looks at items: they stay where the decoder put them
    /// instead of moving through [`Source::next_item`]'s result, which is measurable on
    /// files of many small keys. When `visit` answers [`Visit::SkipValue`] to a
    /// `KeyStart`, the key's value is read and checked but not shown (nor materialized):
    /// the next item is its `KeyEnd`.
    pub fn visit_all(&mut self, mut visit: impl FnMut(&Item, u64) -> Visit) -> Result<(), Error> {
        while !self.ended {
            // Looked at inside the result rather than moved out of it: a move costs
            // measurably at millions of items.
            let next = self.decoder.next_item();
            if let Ok(Some(item)) = &next {
                self.ended = matches!(item, Item::End { .. });
                let answer = visit(item, self.decoder.bytes_read());
                if answer == Visit::SkipValue && matches!(item, Item::KeyStart(_)) {
                    self.decoder.skip_value().map_err(|source| Error::Decode {
                        path: self.path.clone(),
                        source,
                    })?;
                }
                continue;
            }
            match next {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(Error::NoEnd {
                        path: self.path.clone(),
                    })
                }
                Err(source) => {
                    return Err(Error::Decode {
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}

impl Source for RdbFileSource {
    #[inline]
    fn next_item(&mut self) -> Result<Option<Item>, Error> {
        if self.ended {
            return Ok(None);
        }
        // Matched and passed on whole: each rebuild of an item (over 100 bytes) costs at
        // millions of keys.
        match self.decoder.next_item() {
            Ok(Some(item)) => {
                self.ended = matches!(item, Item::End { .. });
                Ok(Some(item))
            }
            // The decoder reports truncation itself; this only guards against a stream that
            // stops cleanly between items without its end marker.
            Ok(None) => Err(Error::NoEnd {
                path: self.path.clone(),
            }),
            Err(source) => Err(Error::Decode {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn bytes_read(&self) -> u64 {
        self.decoder.bytes_read()
    }

    fn total_bytes(&self) -> Option<u64> {
        Some(self.size)
    }

    fn gives_raw_strings(&self) -> bool {
        true
    }

    fn take_raw_string(&mut self) -> Result<RawString<'_>, Error> {
        self.decoder
            .take_raw_string()
            .map_err(|source| Error::Decode {
                path: self.path.clone(),
                source,
            })
    }
}
