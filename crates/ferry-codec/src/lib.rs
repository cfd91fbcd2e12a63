//! Streaming codec for Redis and Valkey RDB files and DUMP payloads.
//!
//! [`decode::Decoder`] reads any RDB version 1–12 and Valkey 80/81 from a [`std::io::Read`]
//! and yields [`model::Item`]s with bounded memory; [`encode::Encoder`] writes them back in
//! the format of a chosen [`target::Format`]. No networking lives here.

pub mod crc64;
pub mod decode;
pub mod dump;
pub mod encode;
pub mod error;
pub mod intset;
pub mod length;
pub mod listpack;
pub mod lzf;
mod lzf_memo;
pub mod members;
pub mod model;
pub mod raw_string;
pub mod target;
pub mod types;
pub mod vectorset;
pub mod ziplist;
pub mod zipmap;

pub use error::{DecodeError, EncodeError, FormatError};
pub use model::*;
