//! Sorted sets: ZCARD, then ZRANGE WITHSCORES windows side by side. Rank order is fully
//! determined (ties by member bytes), so equal windows mean equal sets.

use super::{Findings, Pair, CHUNK};
use crate::verify::error::VerifyError;
use crate::verify::report::{excerpt, DiffKind};

pub fn compare(pair: &mut Pair, key: &[u8], findings: &mut Findings) -> Result<(), VerifyError> {
    let zcard = redis::cmd("ZCARD").arg(key).clone();
    let source_len: i64 = pair.source.query(&zcard)?;
    let target_len: i64 = pair.target.query(&zcard)?;
    if source_len != target_len {
        findings.push(
            DiffKind::Value,
            format!("cardinality {source_len} vs {target_len}"),
        );
        return Ok(());
    }
    let mut start = 0i64;
    while start < source_len {
        let range = redis::cmd("ZRANGE")
            .arg(key)
            .arg(start)
            .arg(start + CHUNK as i64 - 1)
            .arg("WITHSCORES")
            .clone();
        let a: Vec<(Vec<u8>, String)> = pair.source.query(&range)?;
        let b: Vec<(Vec<u8>, String)> = pair.target.query(&range)?;
        for i in 0..a.len().max(b.len()) {
            let (x, y) = (a.get(i), b.get(i));
            let same = match (x, y) {
                // Scores as numbers: releases print the same double differently.
                (Some((m, s)), Some((n, t))) => m == n && same_score(s, t),
                _ => false,
            };
            if !same {
                let show = |e: Option<&(Vec<u8>, String)>| {
                    e.map_or("nothing".to_owned(), |(m, s)| format!("{} {s}", excerpt(m)))
                };
                findings.push(
                    DiffKind::Value,
                    format!("rank {}: {} vs {}", start + i as i64, show(x), show(y)),
                );
                return Ok(());
            }
        }
        if a.is_empty() {
            break;
        }
        start += CHUNK as i64;
    }
    Ok(())
}

pub fn same_score(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}
