//! RESTORE payloads for the target's format.
//!
//! TEMPORARY: the codec's DUMP encoder (`ferry_codec::encode::dump::encode_payload`) is
//! being merged. Until it is on main this returns `None` ("no payload"), and the writer
//! uses plain commands for every key that has a plain form.

use ferry_codec::target::Format;
use ferry_codec::{EncodeError, KeyHeader, ValuePart};

/// The payload, or `None` when no payload encoder is available.
pub fn encode(
    format: Format,
    header: &KeyHeader,
    parts: &[ValuePart],
) -> Option<Result<Vec<u8>, EncodeError>> {
    let _ = (format, header, parts);
    None
}
