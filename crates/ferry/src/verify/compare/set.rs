//! Sets: SCARD, then every source member (SSCAN windows) checked on the target. Equal
//! cardinality and every source member present means the sets are equal.

use super::{Findings, Pair, CHUNK};
use crate::verify::error::VerifyError;
use crate::verify::report::{excerpt, DiffKind};

pub fn compare(pair: &mut Pair, key: &[u8], findings: &mut Findings) -> Result<(), VerifyError> {
    let scard = redis::cmd("SCARD").arg(key).clone();
    let source_len: i64 = pair.source.query(&scard)?;
    let target_len: i64 = pair.target.query(&scard)?;
    if source_len != target_len {
        findings.push(
            DiffKind::Value,
            format!("cardinality {source_len} vs {target_len}"),
        );
        return Ok(());
    }
    let mut cursor = 0u64;
    loop {
        let scan = redis::cmd("SSCAN")
            .arg(key)
            .arg(cursor)
            .arg("COUNT")
            .arg(CHUNK)
            .clone();
        let (next, members): (u64, Vec<Vec<u8>>) = pair.source.query(&scan)?;
        if !members.is_empty() {
            // SISMEMBER rather than SMISMEMBER: Redis 6.0 targets (rollback) lack the latter.
            let mut pipe = redis::pipe();
            for member in &members {
                pipe.cmd("SISMEMBER").arg(key).arg(member);
            }
            let present: Vec<bool> = pair.target.pipeline(&pipe, members.len(), "SISMEMBER")?;
            for (member, present) in members.iter().zip(present) {
                if !present {
                    findings.push(
                        DiffKind::Value,
                        format!("member {} not on the target", excerpt(member)),
                    );
                }
            }
            if findings.full() {
                return Ok(());
            }
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
