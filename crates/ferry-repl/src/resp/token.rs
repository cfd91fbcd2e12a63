//! Reading one RESP element header (and, for leaf types, its body) at a position in a buffer.
//! Both the resumable scanner and the frame builder use this, so the wire rules live here
//! only.

use std::ops::Range;

use super::{Limits, Mode, ProtoError};

/// The kind of an aggregate element (its children follow it in the buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggregateKind {
    Array,
    Set,
    Push,
    Map,
    Attribute,
}

/// One element read at a position. Ranges index the buffer that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Simple(Range<usize>),
    Error(Range<usize>),
    Integer(i64),
    Bulk(Range<usize>),
    NullBulk,
    NullArray,
    Null,
    Boolean(bool),
    Double(Range<usize>),
    BigNumber(Range<usize>),
    BulkError(Range<usize>),
    Verbatim {
        format: Range<usize>,
        text: Range<usize>,
    },
    /// `children` counts elements, so a map of n pairs has 2n.
    Aggregate {
        kind: AggregateKind,
        children: u64,
    },
    /// An inline command line, without its `\r\n` or `\n`.
    Inline(Range<usize>),
}

/// Redis refuses aggregates longer than this (`INT_MAX`); so do we.
const MAX_AGGREGATE_LEN: i64 = i32::MAX as i64;

/// Reads the element starting at `pos`. `Ok(None)`: the buffer ends before the element does.
/// On success also returns the position just after the element's own bytes (for an
/// aggregate, after its header).
pub(crate) fn read_token(
    buf: &[u8],
    pos: usize,
    top_level: bool,
    mode: Mode,
    limits: &Limits,
) -> Result<Option<(Token, usize)>, ProtoError> {
    let Some(&marker) = buf.get(pos) else {
        return Ok(None);
    };
    let is_inline = top_level
        && match mode {
            Mode::Requests => marker != b'*',
            Mode::Replies => !is_marker(marker),
        };
    if is_inline {
        return read_inline(buf, pos, limits);
    }
    let Some(line_end) = find_crlf(buf, pos + 1, limits.max_line_len)? else {
        return Ok(None);
    };
    let line = pos + 1..line_end;
    let after_line = line_end + 2;
    let leaf = |token| Ok(Some((token, after_line)));
    match marker {
        b'+' => leaf(Token::Simple(line)),
        b'-' => leaf(Token::Error(line)),
        b':' => leaf(Token::Integer(parse_integer(buf, line, "integer")?)),
        b'_' if line.is_empty() => leaf(Token::Null),
        b'_' => Err(ProtoError::new("null with a payload", pos)),
        b'#' => match buf.get(line.clone()) {
            Some(b"t") => leaf(Token::Boolean(true)),
            Some(b"f") => leaf(Token::Boolean(false)),
            _ => Err(ProtoError::new("boolean that is neither t nor f", pos)),
        },
        b',' => {
            check_double(buf, line.clone())?;
            leaf(Token::Double(line))
        }
        b'(' => {
            check_big_number(buf, line.clone())?;
            leaf(Token::BigNumber(line))
        }
        b'$' | b'!' | b'=' => read_blob(buf, marker, line, after_line, limits),
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let count = parse_integer(buf, line, "aggregate length")?;
            if count == -1 && marker == b'*' {
                return leaf(Token::NullArray);
            }
            if !(0..=MAX_AGGREGATE_LEN).contains(&count) {
                return Err(ProtoError::new(
                    format!("invalid aggregate length {count}"),
                    pos,
                ));
            }
            let (kind, per_entry) = match marker {
                b'*' => (AggregateKind::Array, 1),
                b'~' => (AggregateKind::Set, 1),
                b'>' => (AggregateKind::Push, 1),
                b'%' => (AggregateKind::Map, 2),
                _ => (AggregateKind::Attribute, 2),
            };
            let children = count.unsigned_abs() * per_entry;
            leaf(Token::Aggregate { kind, children })
        }
        other => Err(ProtoError::new(
            format!("unknown type byte 0x{other:02x}"),
            pos,
        )),
    }
}

fn is_marker(byte: u8) -> bool {
    matches!(
        byte,
        b'+' | b'-'
            | b':'
            | b'$'
            | b'*'
            | b'_'
            | b'#'
            | b','
            | b'('
            | b'!'
            | b'='
            | b'%'
            | b'~'
            | b'|'
            | b'>'
    )
}

/// A length-prefixed element (`$`, `!`, `=`): header line already found.
fn read_blob(
    buf: &[u8],
    marker: u8,
    line: Range<usize>,
    body_start: usize,
    limits: &Limits,
) -> Result<Option<(Token, usize)>, ProtoError> {
    let header_at = line.start - 1;
    let len = parse_integer(buf, line, "bulk length")?;
    if len == -1 && marker == b'$' {
        return Ok(Some((Token::NullBulk, body_start)));
    }
    let len = u64::try_from(len)
        .ok()
        .filter(|&len| len <= limits.max_bulk_len)
        .ok_or_else(|| {
            ProtoError::new(
                format!(
                    "bulk length {len} is negative or above the limit of {} bytes",
                    limits.max_bulk_len
                ),
                header_at,
            )
        })?;
    // The limit keeps this far below usize::MAX on 64-bit; checked anyway for 32-bit.
    let body_end = usize::try_from(len)
        .ok()
        .and_then(|len| body_start.checked_add(len))
        .ok_or_else(|| ProtoError::new("bulk length does not fit in memory", header_at))?;
    let Some(terminator) = body_end
        .checked_add(2)
        .and_then(|terminator_end| buf.get(body_end..terminator_end))
    else {
        return Ok(None);
    };
    if terminator != b"\r\n" {
        return Err(ProtoError::new(
            "bulk string not followed by CRLF",
            body_end,
        ));
    }
    let body = body_start..body_end;
    let token = match marker {
        b'$' => Token::Bulk(body),
        b'!' => Token::BulkError(body),
        _ => {
            // Verbatim strings start with a three-letter format and a colon ("txt:").
            if body.len() < 4 || buf.get(body_start + 3) != Some(&b':') {
                return Err(ProtoError::new(
                    "verbatim string without a format prefix",
                    body_start,
                ));
            }
            Token::Verbatim {
                format: body_start..body_start + 3,
                text: body_start + 4..body_end,
            }
        }
    };
    Ok(Some((token, body_end + 2)))
}

fn read_inline(
    buf: &[u8],
    pos: usize,
    limits: &Limits,
) -> Result<Option<(Token, usize)>, ProtoError> {
    let window_end = buf.len().min(pos.saturating_add(limits.max_line_len + 1));
    let window = buf.get(pos..window_end).unwrap_or_default();
    match window.iter().position(|&b| b == b'\n') {
        Some(offset) => {
            let newline = pos + offset;
            let end = if offset > 0 && buf.get(newline - 1) == Some(&b'\r') {
                newline - 1
            } else {
                newline
            };
            Ok(Some((Token::Inline(pos..end), newline + 1)))
        }
        None if window.len() > limits.max_line_len => Err(ProtoError::new(
            format!("inline line longer than {} bytes", limits.max_line_len),
            pos,
        )),
        None => Ok(None),
    }
}

/// Finds the `\r\n` ending a line that starts at `start`; returns the index of `\r`.
fn find_crlf(buf: &[u8], start: usize, max_len: usize) -> Result<Option<usize>, ProtoError> {
    let window_end = buf.len().min(start.saturating_add(max_len + 1));
    let window = buf.get(start..window_end).unwrap_or_default();
    match window.iter().position(|&b| b == b'\r') {
        Some(offset) => {
            let cr = start + offset;
            match buf.get(cr + 1) {
                None => Ok(None),
                Some(b'\n') => Ok(Some(cr)),
                Some(_) => Err(ProtoError::new("CR not followed by LF", cr)),
            }
        }
        None if window.len() > max_len => Err(ProtoError::new(
            format!("line longer than {max_len} bytes"),
            start,
        )),
        None => Ok(None),
    }
}

/// Parses a decimal i64: optional `-`, then digits only.
pub(crate) fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut value: i64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(digit - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

fn parse_integer(buf: &[u8], line: Range<usize>, what: &str) -> Result<i64, ProtoError> {
    let at = line.start;
    buf.get(line)
        .and_then(parse_i64)
        .ok_or_else(|| ProtoError::new(format!("invalid {what}"), at))
}

fn check_double(buf: &[u8], line: Range<usize>) -> Result<(), ProtoError> {
    let at = line.start;
    let valid = buf
        .get(line)
        .and_then(|text| std::str::from_utf8(text).ok())
        .is_some_and(|text| {
            matches!(text, "inf" | "-inf" | "nan" | "-nan") || text.parse::<f64>().is_ok()
        });
    if valid {
        Ok(())
    } else {
        Err(ProtoError::new("invalid double", at))
    }
}

fn check_big_number(buf: &[u8], line: Range<usize>) -> Result<(), ProtoError> {
    let at = line.start;
    let digits = match buf.get(line) {
        Some([b'-', rest @ ..]) => rest,
        Some(text) => text,
        None => &[],
    };
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        Ok(())
    } else {
        Err(ProtoError::new("invalid big number", at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_i64_is_strict_and_checks_overflow() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b"1 "), None);
    }
}
