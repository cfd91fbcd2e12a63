//! A string value exactly as the input stored it: its length or encoding prefix and its
//! data. A conversion copies it instead of expanding it and encoding it again, when the
//! encoder would have written these very bytes (the string encodings are the same in every
//! RDB version).

use bytes::Bytes;

use crate::error::FormatError;
use crate::lzf;

/// How the stored string is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawForm {
    /// Length and bytes.
    Plain,
    /// An integer stored in 1, 2 or 4 bytes; the value is its decimal text.
    Int(i64),
    /// LZF data that expands to `original_len` bytes (checked by the decoder).
    Lzf { original_len: usize },
}

/// A string as stored in the input, read by
/// [`Decoder::take_raw_string`](crate::Decoder::take_raw_string): a view into the
/// decoder's buffer, valid until the decoder reads on. Borrowed rather than a refcounted
/// slice: the count's increment and decrement per key showed at millions of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawString<'a> {
    /// The length field, or the encoding byte and (for LZF) its two length fields; then
    /// the string, the integer, or the LZF data.
    pub(crate) stored: &'a [u8],
    /// Bytes of `stored` before the data.
    pub(crate) head: usize,
    pub(crate) form: RawForm,
}

impl RawString<'_> {
    /// The string's value: the bytes, the integer's decimal text, or the expanded LZF data.
    pub fn value(&self) -> Result<Bytes, FormatError> {
        match self.form {
            RawForm::Plain => Ok(Bytes::copy_from_slice(self.data())),
            RawForm::Int(value) => Ok(crate::decode::reader::decimal(value)),
            RawForm::Lzf { original_len } => {
                let mut out = Vec::new();
                lzf::decompress_into(self.data(), original_len, &mut out)?;
                Ok(Bytes::from(out))
            }
        }
    }

    /// The bytes as stored, prefix included.
    pub fn stored(&self) -> &[u8] {
        self.stored
    }

    /// The LZF data and the length it expands to, for a string stored compressed.
    pub(crate) fn lzf(&self) -> Option<(&[u8], usize)> {
        match self.form {
            RawForm::Lzf { original_len } => Some((self.data(), original_len)),
            _ => None,
        }
    }

    fn data(&self) -> &[u8] {
        self.stored.get(self.head..).unwrap_or_default()
    }

    /// True when the encoder, given the value, would write exactly these bytes (see
    /// [`crate::length::write_string`]): lengths in their smallest form, integers in their
    /// narrowest width, LZF data kept when compressing (as the encoder keeps the data of a
    /// string it just saw expanded), plain bytes where the encoder would not try LZF or an
    /// integer.
    pub(crate) fn is_what_encoder_writes(&self, compress: bool) -> bool {
        match self.form {
            RawForm::Plain => {
                let data = self.data();
                let len = data.len();
                let integer = len <= 11
                    && crate::listpack::parse_canonical_int(data)
                        .is_some_and(|v| i32::try_from(v).is_ok());
                let compressible = compress && len > 20;
                !integer && !compressible && self.head == len_width(len as u64)
            }
            RawForm::Int(value) => {
                let narrowest = if i8::try_from(value).is_ok() {
                    1
                } else if i16::try_from(value).is_ok() {
                    2
                } else {
                    4
                };
                self.data().len() == narrowest
            }
            RawForm::Lzf { original_len } => {
                // Each length field is at least its smallest width, so equal totals mean
                // both are smallest.
                compress
                    && self.head
                        == 1 + len_width(self.data().len() as u64) + len_width(original_len as u64)
            }
        }
    }
}

/// Bytes of a length field in its smallest form (see [`crate::length::write_len`]).
fn len_width(len: u64) -> usize {
    if len < 1 << 6 {
        1
    } else if len < 1 << 14 {
        2
    } else if len <= u64::from(u32::MAX) {
        5
    } else {
        9
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::length::write_len;

    #[test]
    fn len_width_matches_write_len() {
        for len in [0, 63, 64, 16383, 16384, u64::from(u32::MAX), 1 << 32] {
            let mut out = Vec::new();
            write_len(&mut out, len);
            assert_eq!(len_width(len), out.len(), "{len}");
        }
    }
}
