//! The manifest of a multi-part AOF (Redis 7.0+, every Valkey): one line per file,
//! `file <name> seq <n> type <b|h|i>`, keys in any order, unknown keys ignored, names
//! possibly quoted. `#` lines are comments. History files (`h`) are never loaded.

use super::error::AofError;
use std::path::Path;

/// The longest manifest line Redis writes or reads.
const MAX_LINE: usize = 1024;

/// One loadable file of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub seq: u64,
}

/// The files to load, in order: the base (if any), then the incremental files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub base: Option<Entry>,
    pub incremental: Vec<Entry>,
}

/// Parses the manifest text read from `path` (named in errors).
pub fn parse(text: &[u8], path: &Path) -> Result<Manifest, AofError> {
    let mut manifest = Manifest::default();
    let mut files = 0;
    for (index, raw) in text.split(|b| *b == b'\n').enumerate() {
        let line = index + 1;
        let problem = |problem: String| AofError::Manifest {
            path: path.to_owned(),
            line,
            problem,
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) || raw.first() == Some(&b'#') {
            continue;
        }
        if raw.len() > MAX_LINE {
            return Err(problem(format!("longer than {MAX_LINE} bytes")));
        }
        let words = split_words(raw).map_err(|p| problem(p.into()))?;
        if words.len() < 6 || words.len() % 2 != 0 {
            return Err(problem(format!(
                "expected `file <name> seq <n> type <b|h|i>`, found {} words",
                words.len()
            )));
        }
        let (mut name, mut seq, mut kind) = (None, None, None);
        for pair in words.chunks(2) {
            match pair[0].as_str() {
                "file" => name = Some(pair[1].clone()),
                "seq" => seq = Some(pair[1].clone()),
                "type" => kind = Some(pair[1].clone()),
                _ => {}
            }
        }
        let (Some(name), Some(seq), Some(kind)) = (name, seq, kind) else {
            return Err(problem("a file line needs `file`, `seq` and `type`".into()));
        };
        if name.contains('/') || name.is_empty() {
            return Err(problem(format!("{name:?} is not a bare file name")));
        }
        let seq: u64 = seq
            .parse()
            .map_err(|_| problem(format!("seq {seq:?} is not a number")))?;
        files += 1;
        let entry = Entry { name, seq };
        match kind.as_str() {
            "b" if manifest.base.is_some() => {
                return Err(problem("a second base file".into()));
            }
            "b" => manifest.base = Some(entry),
            "h" => {}
            "i" => {
                if let Some(last) = manifest.incremental.last() {
                    if entry.seq <= last.seq {
                        return Err(problem(format!(
                            "incremental seq {} after {}: they must increase",
                            entry.seq, last.seq
                        )));
                    }
                }
                manifest.incremental.push(entry);
            }
            other => return Err(problem(format!("unknown file type {other:?}"))),
        }
    }
    if files == 0 {
        return Err(AofError::ManifestContent {
            path: path.to_owned(),
            problem: "lists no file".into(),
        });
    }
    Ok(manifest)
}

/// Splits a line into words the way Redis reads its manifest: spaces separate, a word
/// may be "double quoted" (with `\n`, `\"`, `\xHH` escapes) or 'single quoted'.
fn split_words(line: &[u8]) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut rest = line;
    loop {
        while let [b' ' | b'\t', tail @ ..] = rest {
            rest = tail;
        }
        let Some(&first) = rest.first() else {
            break;
        };
        let mut word = Vec::new();
        match first {
            b'"' => {
                rest = &rest[1..];
                loop {
                    match rest {
                        [b'\\', b'x', h, l, tail @ ..]
                            if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() =>
                        {
                            let hex = [*h, *l];
                            let text = std::str::from_utf8(&hex).map_err(|_| "bad escape")?;
                            word.push(u8::from_str_radix(text, 16).map_err(|_| "bad escape")?);
                            rest = tail;
                        }
                        [b'\\', c, tail @ ..] => {
                            word.push(match c {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 8,
                                b'a' => 7,
                                other => *other,
                            });
                            rest = tail;
                        }
                        [b'"', tail @ ..] => {
                            if tail.first().is_some_and(|b| *b != b' ' && *b != b'\t') {
                                return Err("a closing quote must be followed by a space");
                            }
                            rest = tail;
                            break;
                        }
                        [c, tail @ ..] => {
                            word.push(*c);
                            rest = tail;
                        }
                        [] => return Err("unbalanced quotes"),
                    }
                }
            }
            b'\'' => {
                rest = &rest[1..];
                loop {
                    match rest {
                        [b'\\', b'\'', tail @ ..] => {
                            word.push(b'\'');
                            rest = tail;
                        }
                        [b'\'', tail @ ..] => {
                            if tail.first().is_some_and(|b| *b != b' ' && *b != b'\t') {
                                return Err("a closing quote must be followed by a space");
                            }
                            rest = tail;
                            break;
                        }
                        [c, tail @ ..] => {
                            word.push(*c);
                            rest = tail;
                        }
                        [] => return Err("unbalanced quotes"),
                    }
                }
            }
            _ => {
                let end = rest
                    .iter()
                    .position(|b| *b == b' ' || *b == b'\t')
                    .unwrap_or(rest.len());
                word.extend_from_slice(&rest[..end]);
                rest = &rest[end..];
            }
        }
        words.push(String::from_utf8(word).map_err(|_| "a word is not UTF-8")?);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Manifest, String> {
        parse(text.as_bytes(), Path::new("m")).map_err(|e| e.to_string())
    }

    #[test]
    fn base_then_increments_in_order_history_left_out() {
        let m = parsed(
            "file appendonly.aof.1.base.rdb seq 1 type h\n\
             file appendonly.aof.2.base.rdb seq 2 type b\n\
             file appendonly.aof.1.incr.aof seq 1 type i\n\
             file appendonly.aof.2.incr.aof seq 2 type i\n",
        )
        .unwrap();
        assert_eq!(m.base.unwrap().name, "appendonly.aof.2.base.rdb");
        let incr: Vec<_> = m.incremental.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            incr,
            ["appendonly.aof.1.incr.aof", "appendonly.aof.2.incr.aof"]
        );
    }

    #[test]
    fn quoted_names_keys_in_any_order_and_unknown_keys() {
        let m = parsed("# c\r\nseq 3 type b file \"my file\\x41.rdb\" extra x\r\n").unwrap();
        assert_eq!(m.base.unwrap().name, "my fileA.rdb");
        let m = parsed("file 'a b' seq 1 type i").unwrap();
        assert_eq!(m.incremental[0].name, "a b");
    }

    #[test]
    fn bad_manifests_name_the_line() {
        for (text, expected) in [
            ("", "m: lists no file"),
            ("file a seq 1\n", "m line 1: expected"),
            (
                "file a seq 1 type b\nfile b seq 2 type b\n",
                "m line 2: a second base",
            ),
            (
                "file a seq 2 type i\nfile b seq 2 type i\n",
                "m line 2: incremental seq",
            ),
            ("file a seq x type i\n", "m line 1: seq \"x\""),
            ("file a seq 1 type z\n", "m line 1: unknown file type"),
            ("file ../a seq 1 type i\n", "not a bare file name"),
            ("file \"a seq 1 type i\n", "unbalanced quotes"),
        ] {
            let error = parsed(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
