//! Splitting of an inline command line (`SET k "a b"`) into arguments, with the quoting
//! rules Redis applies to inline requests: blanks separate arguments; `"..."` understands
//! `\n \r \t \b \a \xHH` and `\<any>`; `'...'` understands only `\'`; a closing quote must be
//! followed by a blank or the end of the line.

use bytes::Bytes;

/// Why an inline line could not be split; the position is relative to the line start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InlineError {
    pub what: &'static str,
    pub at: usize,
}

fn is_blank(byte: u8) -> bool {
    matches!(byte, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

enum Quote {
    None,
    Double,
    Single,
}

/// Splits `line` (without its line terminator) into arguments.
pub(crate) fn split_inline(line: &[u8]) -> Result<Vec<Bytes>, InlineError> {
    let mut args = Vec::new();
    let mut pos = 0;
    loop {
        while line.get(pos).is_some_and(|&b| is_blank(b)) {
            pos += 1;
        }
        if pos >= line.len() {
            return Ok(args);
        }
        let (arg, next) = split_one(line, pos)?;
        args.push(Bytes::from(arg));
        pos = next;
    }
}

/// Reads one argument starting at `start` (not a blank); returns it and the position after it.
fn split_one(line: &[u8], start: usize) -> Result<(Vec<u8>, usize), InlineError> {
    let mut arg = Vec::new();
    let mut quote = Quote::None;
    let mut quote_start = start;
    let mut pos = start;
    loop {
        let Some(&byte) = line.get(pos) else {
            return match quote {
                Quote::None => Ok((arg, pos)),
                _ => Err(InlineError {
                    what: "unbalanced quotes in inline command",
                    at: quote_start,
                }),
            };
        };
        match quote {
            Quote::None => match byte {
                _ if is_blank(byte) => return Ok((arg, pos)),
                b'"' => {
                    quote = Quote::Double;
                    quote_start = pos;
                }
                b'\'' => {
                    quote = Quote::Single;
                    quote_start = pos;
                }
                _ => arg.push(byte),
            },
            Quote::Double => match byte {
                b'\\' => {
                    let escaped = line.get(pos + 1).copied();
                    let hex = (line.get(pos + 2).copied().and_then(hex_value))
                        .zip(line.get(pos + 3).copied().and_then(hex_value));
                    match (escaped, hex) {
                        (Some(b'x'), Some((high, low))) => {
                            arg.push(high * 16 + low);
                            pos += 3;
                        }
                        (Some(next), _) => {
                            arg.push(match next {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 0x08,
                                b'a' => 0x07,
                                other => other,
                            });
                            pos += 1;
                        }
                        (None, _) => arg.push(byte),
                    }
                }
                b'"' => return closing_quote(line, pos, arg),
                _ => arg.push(byte),
            },
            Quote::Single => match byte {
                b'\\' if line.get(pos + 1) == Some(&b'\'') => {
                    arg.push(b'\'');
                    pos += 1;
                }
                b'\'' => return closing_quote(line, pos, arg),
                _ => arg.push(byte),
            },
        }
        pos += 1;
    }
}

fn closing_quote(
    line: &[u8],
    quote_at: usize,
    arg: Vec<u8>,
) -> Result<(Vec<u8>, usize), InlineError> {
    match line.get(quote_at + 1) {
        Some(&next) if !is_blank(next) => Err(InlineError {
            what: "closing quote not followed by a blank in inline command",
            at: quote_at,
        }),
        _ => Ok((arg, quote_at + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Vec<String> {
        split_inline(line.as_bytes())
            .unwrap()
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn blanks_separate_arguments() {
        assert_eq!(split("  SET  key\tvalue "), ["SET", "key", "value"]);
        assert!(split("").is_empty());
        assert!(split("   ").is_empty());
    }

    #[test]
    fn double_quotes_understand_escapes() {
        assert_eq!(split(r#"SET k "a b\n\x41\"""#), ["SET", "k", "a b\nA\""]);
        assert_eq!(split(r#"x"y z""#), ["xy z"]);
        // An incomplete hex escape keeps the letter, as an unknown escape does.
        assert_eq!(split(r#""\xZ1""#), ["xZ1"]);
    }

    #[test]
    fn single_quotes_only_escape_the_quote() {
        assert_eq!(split(r"'it\'s \n'"), [r"it's \n"]);
    }

    #[test]
    fn unbalanced_or_glued_quotes_are_errors() {
        assert_eq!(
            split_inline(b"SET \"abc").unwrap_err().what,
            "unbalanced quotes in inline command"
        );
        assert_eq!(split_inline(b"SET \"abc\"x").unwrap_err().at, 8);
        assert!(split_inline(b"'abc").is_err());
    }
}
