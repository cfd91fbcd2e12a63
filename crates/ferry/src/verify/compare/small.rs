//! Most keys are small. For a batch of keys, one pipeline per side reads every length
//! (STRLEN, LLEN, SCARD, ZCARD, HLEN) and a second one reads every small value whole;
//! keys settled this way cost no round trip of their own. Large keys, streams, module
//! values and hashes on servers with field TTLs are left to their type's windowed
//! comparison.

use super::{Header, Pair};
use crate::verify::endpoint::Endpoint;
use crate::verify::error::VerifyError;
use crate::verify::reply;
use crate::verify::report::{excerpt, DiffKind, Finding};
use redis::Value;

/// Strings up to this many bytes, collections up to this many elements, are read whole.
const SMALL_BYTES: i64 = 8192;
const SMALL_ELEMENTS: i64 = 128;

/// For each key: `Some(findings)` when its value was compared here (empty: equal),
/// `None` when its type's own comparison must run.
pub fn compare(
    pair: &mut Pair,
    keys: &[Vec<u8>],
    source: &[Header],
    target: &[Header],
) -> Result<Vec<Option<Vec<Finding>>>, VerifyError> {
    let field_ttls = pair.source.abilities.hash_field_ttl || pair.target.abilities.hash_field_ttl;
    let candidates: Vec<(usize, &str)> = (0..keys.len())
        .filter_map(|i| {
            let (s, t) = (source.get(i)?, target.get(i)?);
            let type_name = s.type_name.as_str();
            let handled = matches!(type_name, "string" | "list" | "set" | "zset")
                || (type_name == "hash" && !field_ttls);
            (handled && s.type_name == t.type_name).then_some((i, type_name))
        })
        .collect();
    let mut decided = vec![None; keys.len()];
    if candidates.is_empty() {
        return Ok(decided);
    }
    let lengths = |endpoint: &mut Endpoint| {
        let mut pipe = redis::pipe();
        for &(i, type_name) in &candidates {
            pipe.cmd(length_command(type_name)).arg(&keys[i]);
        }
        endpoint.pipeline::<Vec<i64>>(&pipe, candidates.len(), "length")
    };
    // A key whose type changed since TYPE fails the whole pipeline: then every key of
    // the batch is compared alone, where such a change is reported and re-checked.
    let (Some(a), Some(b)) = (
        changed_is_none(lengths(&mut pair.source))?,
        changed_is_none(lengths(&mut pair.target))?,
    ) else {
        return Ok(decided);
    };
    if a.len() != candidates.len() || b.len() != candidates.len() {
        return Ok(decided);
    }
    let mut small = Vec::new();
    for ((&(i, type_name), x), y) in candidates.iter().zip(a).zip(b) {
        if x != y {
            let what = if matches!(type_name, "set" | "zset") {
                "cardinality"
            } else {
                "length"
            };
            decided[i] = Some(vec![Finding::new(
                DiffKind::Value,
                format!("{what} {x} vs {y}"),
            )]);
        } else if x
            <= if type_name == "string" {
                SMALL_BYTES
            } else {
                SMALL_ELEMENTS
            }
        {
            small.push((i, type_name));
        }
    }
    if small.is_empty() {
        return Ok(decided);
    }
    let values = |endpoint: &mut Endpoint| {
        let mut pipe = redis::pipe();
        for &(i, type_name) in &small {
            let cmd = pipe.cmd(read_command(type_name)).arg(&keys[i]);
            match type_name {
                "list" => cmd.arg(0).arg(-1),
                "zset" => cmd.arg(0).arg(-1).arg("WITHSCORES"),
                _ => cmd,
            };
        }
        endpoint.pipeline::<Vec<Value>>(&pipe, small.len(), "read")
    };
    let (Some(a), Some(b)) = (
        changed_is_none(values(&mut pair.source))?,
        changed_is_none(values(&mut pair.target))?,
    ) else {
        return Ok(decided);
    };
    for ((&(i, type_name), x), y) in small.iter().zip(&a).zip(&b) {
        // A reply of an unexpected shape: the key changed in between; compare it alone.
        decided[i] = difference(type_name, x, y).map(|found| found.into_iter().collect());
    }
    Ok(decided)
}

/// `None` for an error reply about the data (the key changed under us); connection
/// failures stay errors.
fn changed_is_none<T>(result: Result<T, VerifyError>) -> Result<Option<T>, VerifyError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if super::changed_while_read(&err).is_some() => Ok(None),
        Err(err) => Err(err),
    }
}

fn length_command(type_name: &str) -> &'static str {
    match type_name {
        "string" => "STRLEN",
        "list" => "LLEN",
        "set" => "SCARD",
        "zset" => "ZCARD",
        _ => "HLEN",
    }
}

fn read_command(type_name: &str) -> &'static str {
    match type_name {
        "string" => "GET",
        "list" => "LRANGE",
        "set" => "SMEMBERS",
        "zset" => "ZRANGE",
        _ => "HGETALL",
    }
}

/// `Some(None)`: equal; `Some(Some(f))`: differs; `None`: replies not understood.
fn difference(type_name: &str, a: &Value, b: &Value) -> Option<Option<Finding>> {
    let found = |detail: String| Some(Some(Finding::new(DiffKind::Value, detail)));
    match type_name {
        "string" => {
            let (a, b) = (bytes(a)?, bytes(b)?);
            match a.iter().zip(&b).position(|(x, y)| x != y) {
                Some(at) => found(format!(
                    "bytes from offset {at}: {} vs {}",
                    excerpt(a.get(at..).unwrap_or_default()),
                    excerpt(b.get(at..).unwrap_or_default())
                )),
                None if a.len() != b.len() => found(format!("length {} vs {}", a.len(), b.len())),
                None => Some(None),
            }
        }
        "list" => {
            let (a, b) = (elements(a)?, elements(b)?);
            match (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
                Some(at) => {
                    let show =
                        |v: &[Vec<u8>]| v.get(at).map_or("nothing".to_owned(), |e| excerpt(e));
                    found(format!("element {at}: {} vs {}", show(&a), show(&b)))
                }
                None => Some(None),
            }
        }
        // Encodings differ in iteration order: compared sorted.
        "set" => {
            let (mut a, mut b) = (elements(a)?, elements(b)?);
            a.sort();
            b.sort();
            match a.iter().find(|m| b.binary_search(m).is_err()) {
                Some(member) => found(format!("member {} not on the target", excerpt(member))),
                None if a != b => found("members differ".to_owned()),
                None => Some(None),
            }
        }
        "zset" => {
            let (a, b) = (pairs(a)?, pairs(b)?);
            for i in 0..a.len().max(b.len()) {
                let (x, y) = (a.get(i), b.get(i));
                let same = match (x, y) {
                    (Some((m, s)), Some((n, t))) => {
                        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
                        m == n && super::zset::same_score(&text(s), &text(t))
                    }
                    _ => false,
                };
                if !same {
                    let show = |e: Option<&(Vec<u8>, Vec<u8>)>| {
                        e.map_or("nothing".to_owned(), |(m, s)| {
                            format!("{} {}", excerpt(m), String::from_utf8_lossy(s))
                        })
                    };
                    return found(format!("rank {i}: {} vs {}", show(x), show(y)));
                }
            }
            Some(None)
        }
        _ => {
            let (mut a, mut b) = (pairs(a)?, pairs(b)?);
            a.sort();
            b.sort();
            for (field, value) in &a {
                match b.binary_search_by(|(f, _)| f.cmp(field)) {
                    Err(_) => return found(format!("field {} not on the target", excerpt(field))),
                    Ok(at) if &b[at].1 != value => {
                        return found(format!(
                            "field {}: {} vs {}",
                            excerpt(field),
                            excerpt(value),
                            excerpt(&b[at].1)
                        ))
                    }
                    Ok(_) => {}
                }
            }
            if a.len() != b.len() {
                return found(format!("length {} vs {}", a.len(), b.len()));
            }
            Some(None)
        }
    }
}

fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes.clone()),
        _ => None,
    }
}

fn elements(value: &Value) -> Option<Vec<Vec<u8>>> {
    reply::items(value)?.iter().map(bytes).collect()
}

/// A flat [name, value, …] reply (ZRANGE WITHSCORES, HGETALL) or a RESP3 map as pairs.
fn pairs(value: &Value) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    match value {
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| Some((bytes(k)?, reply::bytes(v)?)))
            .collect(),
        Value::Array(items) => items
            .chunks(2)
            .map(|pair| match pair {
                // RESP3 sends ZRANGE WITHSCORES as [member, score] arrays; RESP2 flat.
                [k, v] => Some((bytes(k)?, reply::bytes(v).or_else(|| double(v))?)),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn double(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Double(d) => Some(d.to_string().into_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(items: &[&str]) -> Value {
        Value::Array(
            items
                .iter()
                .map(|s| Value::BulkString(s.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn sets_and_hashes_compare_in_any_order() {
        assert_eq!(
            difference("set", &bulk(&["a", "b"]), &bulk(&["b", "a"])),
            Some(None)
        );
        let differs = difference("set", &bulk(&["a", "b"]), &bulk(&["b", "c"]));
        assert!(matches!(differs, Some(Some(f)) if f.detail.contains("\"a\"")));
        assert_eq!(
            difference(
                "hash",
                &bulk(&["f", "1", "g", "2"]),
                &bulk(&["g", "2", "f", "1"])
            ),
            Some(None)
        );
        let differs = difference("hash", &bulk(&["f", "1"]), &bulk(&["f", "2"]));
        assert!(matches!(differs, Some(Some(f)) if f.detail == "field \"f\": \"1\" vs \"2\""));
    }

    #[test]
    fn lists_name_the_first_differing_index_and_scores_compare_as_numbers() {
        let differs = difference("list", &bulk(&["a", "b", "c"]), &bulk(&["a", "x", "c"]));
        assert!(matches!(differs, Some(Some(f)) if f.detail.starts_with("element 1:")));
        assert_eq!(
            difference("zset", &bulk(&["m", "0.5"]), &bulk(&["m", "0.50"])),
            Some(None)
        );
        assert_eq!(difference("string", &Value::Nil, &bulk(&[])), None);
    }
}
