//! The one place this crate names the codec's decoder, encoder and vector-set parser.

pub use ferry_codec::{dump, vectorset, Decoder, EncodeOptions, Encoder};
