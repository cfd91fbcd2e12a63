//! How keys, byte strings and sizes look in messages and reports.

use base64::Engine;
use serde_json::{json, Value};

/// A byte string in double quotes with anything unprintable escaped (`\x00`, `\n`, `\"`),
/// so a key always prints on one line and can be told apart from its neighbours.
pub fn quoted(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out.push('"');
    out
}

/// A byte string as is when it is plain printable text, else [`quoted`].
pub fn plain_or_quoted(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text)
            if !text.is_empty()
                && !text
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '"') =>
        {
            text.to_owned()
        }
        _ => quoted(bytes),
    }
}

/// A byte string as JSON: a string when it is UTF-8, else `{"base64": "..."}`.
pub fn json_bytes(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) }),
    }
}

/// A byte count for people: `512 B`, `3.4 KB`, `12.0 MB` (powers of 1000).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `1 key`, `3 keys`.
pub fn count(n: u64, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_escapes_what_would_break_a_line_or_hide_a_byte() {
        assert_eq!(quoted(b"user:1"), "\"user:1\"");
        assert_eq!(quoted(b"a\nb\"c\\"), "\"a\\nb\\\"c\\\\\"");
        assert_eq!(quoted(b"\xff\x00ok"), "\"\\xff\\u{0}ok\"");
        assert_eq!(quoted("ключ".as_bytes()), "\"ключ\"");
    }

    #[test]
    fn plain_text_stays_unquoted() {
        assert_eq!(plain_or_quoted(b"8.0.2"), "8.0.2");
        assert_eq!(plain_or_quoted(b"two words"), "\"two words\"");
        assert_eq!(plain_or_quoted(b""), "\"\"");
    }

    #[test]
    fn json_bytes_falls_back_to_base64_only_for_non_utf8() {
        assert_eq!(json_bytes(b"plain"), json!("plain"));
        assert_eq!(json_bytes(b"\xff\xfe"), json!({"base64": "//4="}));
    }

    #[test]
    fn sizes_round_to_one_decimal() {
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1500), "1.5 KB");
        assert_eq!(size(12_345_678), "12.3 MB");
    }
}
