//! Strings: STRLEN, then the bytes in GETRANGE windows (a string can be 512 MB). Small
//! strings, the common case, are read for a whole batch of keys in one pipeline per side
//! ([`prefetch`]).

use super::{Findings, Header, Pair};
use crate::verify::endpoint::Endpoint;
use crate::verify::error::VerifyError;
use crate::verify::report::{excerpt, DiffKind};

const WINDOW: i64 = 1 << 20;

/// Strings up to this size are compared from the batch read.
const SMALL: usize = 8192;

/// Both sides' value of a small string key.
pub type Prefetched = (Vec<u8>, Vec<u8>);

/// For each key that is a string on both sides and small on both: its two values.
pub fn prefetch(
    pair: &mut Pair,
    keys: &[Vec<u8>],
    source: &[Header],
    target: &[Header],
) -> Result<Vec<Option<Prefetched>>, VerifyError> {
    let strings: Vec<usize> = (0..keys.len())
        .filter(|&i| {
            let is_string = |h: &[Header]| h.get(i).is_some_and(|h| h.type_name == "string");
            is_string(source) && is_string(target)
        })
        .collect();
    let mut values = vec![None; keys.len()];
    if strings.is_empty() {
        return Ok(values);
    }
    let a = heads(&mut pair.source, keys, &strings)?;
    let b = heads(&mut pair.target, keys, &strings)?;
    for ((&i, a), b) in strings.iter().zip(a).zip(b) {
        if let (Some(a), Some(b)) = (a, b) {
            values[i] = Some((a, b));
        }
    }
    Ok(values)
}

/// The whole value of each listed key that is at most [`SMALL`] bytes long (one pipeline
/// of STRLEN + GETRANGE); `None` for longer ones.
fn heads(
    endpoint: &mut Endpoint,
    keys: &[Vec<u8>],
    which: &[usize],
) -> Result<Vec<Option<Vec<u8>>>, VerifyError> {
    let mut pipe = redis::pipe();
    for key in which.iter().filter_map(|&i| keys.get(i)) {
        pipe.cmd("STRLEN").arg(key);
        pipe.cmd("GETRANGE").arg(key).arg(0).arg(SMALL - 1);
    }
    let replies: Vec<redis::Value> =
        endpoint.pipeline(&pipe, which.len() * 2, "STRLEN/GETRANGE")?;
    if replies.len() != which.len() * 2 {
        return Err(endpoint.reply_error("GETRANGE"));
    }
    Ok(replies
        .chunks(2)
        .map(|pair| match pair {
            [redis::Value::Int(len), redis::Value::BulkString(head)]
                if *len as usize == head.len() =>
            {
                Some(head.clone())
            }
            // Longer, or changed in between (then compared alone).
            _ => None,
        })
        .collect())
}

/// Compares two small values read by [`prefetch`].
pub fn compare_prefetched((a, b): &Prefetched, findings: &mut Findings) {
    if a.len() != b.len() {
        findings.push(
            DiffKind::Value,
            format!("length {} vs {}", a.len(), b.len()),
        );
    } else if let Some(at) = a.iter().zip(b).position(|(x, y)| x != y) {
        let tail = |v: &[u8]| excerpt(v.get(at..).unwrap_or_default());
        findings.push(
            DiffKind::Value,
            format!("bytes from offset {at}: {} vs {}", tail(a), tail(b)),
        );
    }
}

pub fn compare(pair: &mut Pair, key: &[u8], findings: &mut Findings) -> Result<(), VerifyError> {
    let len = |cmd: &str| redis::cmd(cmd).arg(key).clone();
    let source_len: i64 = pair.source.query(&len("STRLEN"))?;
    let target_len: i64 = pair.target.query(&len("STRLEN"))?;
    if source_len != target_len {
        findings.push(
            DiffKind::Value,
            format!("length {source_len} vs {target_len}"),
        );
        return Ok(());
    }
    let mut start = 0;
    while start < source_len {
        let range = redis::cmd("GETRANGE")
            .arg(key)
            .arg(start)
            .arg(start + WINDOW - 1)
            .clone();
        let a: Vec<u8> = pair.source.query(&range)?;
        let b: Vec<u8> = pair.target.query(&range)?;
        if a != b {
            let at = a
                .iter()
                .zip(&b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            let offset = start + at as i64;
            let tail = |v: &[u8]| excerpt(v.get(at..).unwrap_or_default());
            findings.push(
                DiffKind::Value,
                format!("bytes from offset {offset}: {} vs {}", tail(&a), tail(&b)),
            );
            return Ok(());
        }
        start += WINDOW;
    }
    Ok(())
}
