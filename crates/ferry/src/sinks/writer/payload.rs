//! RESTORE payloads for the target's format, from the codec's DUMP encoder.

use crate::codec::dump::encode as encode_payload;
use ferry_codec::{EncodeError, Format, KeyHeader, ValuePart};

pub fn encode(
    format: Format,
    header: &KeyHeader,
    parts: &[ValuePart],
) -> Result<Vec<u8>, EncodeError> {
    encode_payload(format, header, parts)
}
