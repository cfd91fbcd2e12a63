//! The one place this crate names the codec's decoder, encoder and vector-set parser.
//!
//! TEMPORARY: `ferry_codec::{decode, encode, vectorset}` are being written in parallel. Until
//! they land on main, this module stands in for them with the agreed signatures: the decoder
//! only checks the magic, the encoder discards, the parser refuses. When the codec lands, this
//! file becomes plain re-exports of `ferry_codec::decode::*`, `encode::*`, `vectorset::*`.

pub mod decode {
    use ferry_codec::{DecodeError, Item, RdbVersion};
    use std::io::Read;

    #[derive(Debug, Clone, Default)]
    pub struct DecodeOptions {}

    pub struct Decoder<R> {
        reader: R,
        bytes_read: u64,
        version: Option<RdbVersion>,
    }

    impl<R: Read> Decoder<R> {
        pub fn new(reader: R) -> Self {
            Self {
                reader,
                bytes_read: 0,
                version: None,
            }
        }

        pub fn next_item(&mut self) -> Result<Option<Item>, DecodeError> {
            if self.version.is_some() {
                return Err(DecodeError::Unsupported {
                    offset: self.bytes_read,
                    what: "decoding past the header (codec not merged yet)".into(),
                });
            }
            let mut magic = [0u8; 9];
            let mut filled = 0;
            while filled < magic.len() {
                match self.reader.read(&mut magic[filled..]) {
                    Ok(0) => {
                        return Err(DecodeError::Truncated {
                            offset: filled as u64,
                            context: "the header",
                        })
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(source) => {
                        return Err(DecodeError::Io {
                            offset: filled as u64,
                            source,
                        })
                    }
                }
            }
            self.bytes_read = 9;
            let text = String::from_utf8_lossy(&magic).into_owned();
            let version = if let Some(n) = text.strip_prefix("REDIS") {
                n.parse().ok().map(RdbVersion::redis)
            } else if let Some(n) = text.strip_prefix("VALKEY") {
                n.parse().ok().map(RdbVersion::valkey)
            } else {
                None
            };
            let version = version.ok_or(DecodeError::BadMagic { found: text })?;
            self.version = Some(version);
            Ok(Some(Item::Header(version)))
        }

        pub fn bytes_read(&self) -> u64 {
            self.bytes_read
        }

        pub fn version(&self) -> Option<RdbVersion> {
            self.version
        }
    }
}

pub mod encode {
    use ferry_codec::target::Format;
    use ferry_codec::{EncodeError, Item};
    use std::io::Write;

    #[derive(Debug, Clone)]
    pub struct EncodeOptions {
        pub compress: bool,
        pub buffer_limit: usize,
    }

    impl Default for EncodeOptions {
        fn default() -> Self {
            Self {
                compress: true,
                buffer_limit: 8 << 20,
            }
        }
    }

    pub struct Encoder<W> {
        writer: W,
    }

    impl<W: Write> Encoder<W> {
        pub fn new(writer: W, _format: Format, _options: EncodeOptions) -> Self {
            Self { writer }
        }
        /// Accepts and discards: the stand-in writes nothing.
        pub fn write_item(&mut self, _item: &Item) -> Result<(), EncodeError> {
            Ok(())
        }
        pub fn finish(self) -> Result<W, EncodeError> {
            Ok(self.writer)
        }
        pub fn bytes_written(&self) -> u64 {
            0
        }
    }
}

pub mod vectorset {
    use bytes::Bytes;
    use ferry_codec::FormatError;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Quantization {
        Fp32,
        Int8,
        Binary,
    }

    #[derive(Debug, Clone, PartialEq)]
    pub struct VectorElement {
        pub name: Bytes,
        pub vector: Vec<f32>,
        pub attributes: Option<Bytes>,
    }

    #[derive(Debug, Clone, PartialEq)]
    pub struct Projection {
        pub input_dim: u32,
        pub matrix: Vec<f32>,
    }

    #[derive(Debug, Clone, PartialEq)]
    pub struct VectorSet {
        pub dim: u32,
        pub quantization: Quantization,
        pub hnsw_m: u32,
        pub projection: Option<Projection>,
        pub elements: Vec<VectorElement>,
    }

    pub fn parse(_body: &[u8]) -> Result<VectorSet, FormatError> {
        Err(FormatError::new(
            "vector set",
            0,
            "the parser is not merged yet",
        ))
    }
}
