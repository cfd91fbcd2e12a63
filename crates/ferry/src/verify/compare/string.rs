//! Strings: STRLEN, then the bytes in GETRANGE windows (a string can be 512 MB). Small
//! strings never get here: see [`super::small`].

use super::{Findings, Pair};
use crate::verify::error::VerifyError;
use crate::verify::report::{excerpt, DiffKind};

const WINDOW: i64 = 1 << 20;

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
