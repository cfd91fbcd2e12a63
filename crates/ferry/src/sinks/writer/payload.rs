//! RESTORE payloads for the target's format, from the codec's DUMP encoder.

use crate::codec::encode::dump::encode_payload;
use ferry_codec::target::Format;
use ferry_codec::{EncodeError, KeyHeader, ValuePart};

pub fn encode(
    format: Format,
    header: &KeyHeader,
    parts: &[ValuePart],
) -> Result<Vec<u8>, EncodeError> {
    encode_payload(format, header, parts)
}
