//! Lists: LLEN, then LRANGE windows side by side; the first differing index is reported.

use super::{Findings, Pair, CHUNK};
use crate::verify::error::VerifyError;
use crate::verify::report::{excerpt, DiffKind};

pub fn compare(pair: &mut Pair, key: &[u8], findings: &mut Findings) -> Result<(), VerifyError> {
    let llen = redis::cmd("LLEN").arg(key).clone();
    let source_len: i64 = pair.source.query(&llen)?;
    let target_len: i64 = pair.target.query(&llen)?;
    if source_len != target_len {
        findings.push(
            DiffKind::Value,
            format!("length {source_len} vs {target_len}"),
        );
        return Ok(());
    }
    let mut start = 0i64;
    while start < source_len {
        let range = redis::cmd("LRANGE")
            .arg(key)
            .arg(start)
            .arg(start + CHUNK as i64 - 1)
            .clone();
        let a: Vec<Vec<u8>> = pair.source.query(&range)?;
        let b: Vec<Vec<u8>> = pair.target.query(&range)?;
        if let Some(at) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
            let show = |v: &[Vec<u8>]| v.get(at).map_or("nothing".to_owned(), |e| excerpt(e));
            findings.push(
                DiffKind::Value,
                format!(
                    "element {}: {} vs {}",
                    start + at as i64,
                    show(&a),
                    show(&b)
                ),
            );
            return Ok(());
        }
        if a.is_empty() {
            break; // shortened while we read; a later round sees it settled
        }
        start += CHUNK as i64;
    }
    Ok(())
}
