//! Streaming codec for Redis and Valkey RDB files and DUMP payloads.
//!
//! A [`Decoder`] reads an RDB stream from any [`std::io::Read`] and yields [`Item`]s: the
//! header, top-level records and, per key, a [`KeyHeader`] followed by its value in
//! [`ValuePart`]s of bounded size, so that a file of any size is read in bounded memory.
//! It reads Redis RDB versions 1–12 and Valkey's own versions 80 and 81.
//!
//! An [`Encoder`] takes the same items and writes them to any [`std::io::Write`] in the
//! dialect of a target [`Format`] (RDB 9–12, or Valkey 80), giving each value the encoding
//! that target's server would give it. Decoding one release's file and encoding it for
//! another is therefore a conversion.
//!
//! The [`dump`] module does the same for single values as `DUMP` returns them and
//! `RESTORE` takes them. There is no networking here: sockets, replication and commands
//! are the caller's business.
//!
//! # Example
//!
//! Write a one-key file for Valkey 8.0 and read it back:
//!
//! ```
//! use bytes::Bytes;
//! use ferry_codec::{
//!     types, Decoder, EncodeOptions, Encoder, Format, Item, KeyHeader, Kind, ValuePart,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let format = Format::from_profile("valkey-8.0").expect("a known profile");
//! let mut encoder = Encoder::new(Vec::new(), format, EncodeOptions::default());
//! let header = KeyHeader {
//!     db: 0,
//!     key: Bytes::from_static(b"greeting"),
//!     expire_at_ms: None,
//!     idle_secs: None,
//!     freq: None,
//!     kind: Kind::String,
//!     encoding: types::STRING,
//!     len: None,
//! };
//! for item in [
//!     Item::Header(format.version),
//!     Item::KeyStart(header),
//!     Item::Part(ValuePart::String(Bytes::from_static(b"hello"))),
//!     Item::KeyEnd,
//!     Item::End { checksum: None },
//! ] {
//!     encoder.write_item(&item)?;
//! }
//! let file: Vec<u8> = encoder.finish()?;
//!
//! let mut keys = Vec::new();
//! for item in Decoder::new(file.as_slice()) {
//!     if let Item::KeyStart(header) = item? {
//!         keys.push((header.db, header.kind.type_name(), header.key));
//!     }
//! }
//! assert_eq!(keys, [(0, "string".to_string(), Bytes::from_static(b"greeting"))]);
//! # Ok(())
//! # }
//! ```
//!
//! `examples/inspect.rs` lists the keys of an RDB file given on the command line
//! (`cargo run -p ferry-codec --example inspect -- dump.rdb`).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod crc64;
mod decode;
pub mod dump;
mod encode;
mod error;
mod intset;
mod length;
mod listpack;
mod lzf;
mod lzf_memo;
mod members;
mod model;
mod raw_string;
mod target;
pub mod types;
pub mod vectorset;
mod ziplist;
mod zipmap;

pub use crate::crc64::checksum as crc64;
pub use crate::decode::{DecodeOptions, Decoder};
pub use crate::encode::{EncodeOptions, Encoder};
pub use crate::error::{DecodeError, EncodeError, FormatError};
pub use crate::length::{write_len, write_string};
pub use crate::members::DuplicateFinder;
pub use crate::model::{
    Flavor, HashField, Item, KeyHeader, Kind, ModuleId, PendingEntry, RdbVersion, ScoredMember,
    StreamConsumer, StreamGroup, StreamId, StreamMeta, ValuePart,
};
pub use crate::raw_string::RawString;
pub use crate::target::{Format, HashTtlForm, PROFILES};
