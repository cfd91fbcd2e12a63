//! Hashes: HLEN, then every source field (HSCAN windows) looked up on the target with
//! HMGET; field TTLs compared with HPEXPIRETIME where both servers have them. Under
//! `--hash-field-ttl persist|drop-field` (source with field TTLs, target without) the
//! fields the policy changed are expected changed, and the key is counted as excused.

use super::{expiry_difference, Findings, Pair, CHUNK};
use crate::policy::HashFieldTtlPolicy;
use crate::verify::endpoint::Endpoint;
use crate::verify::error::VerifyError;
use crate::verify::report::{excerpt, DiffKind};

const PERSISTED: &str = "hash field TTLs removed by --hash-field-ttl persist";
const DROPPED: &str = "hash fields with TTLs left out by --hash-field-ttl drop-field";

/// The policy the migration applied to this pair's hashes, if any.
pub fn applied_policy(pair: &Pair) -> Option<HashFieldTtlPolicy> {
    let policy = pair.settings.policies.hash_field_ttl;
    let applies = pair.source.abilities.hash_field_ttl
        && !pair.target.abilities.hash_field_ttl
        && policy != HashFieldTtlPolicy::Fail;
    applies.then_some(policy)
}

pub fn compare(pair: &mut Pair, key: &[u8], findings: &mut Findings) -> Result<(), VerifyError> {
    let policy = applied_policy(pair);
    let drops = policy == Some(HashFieldTtlPolicy::DropField);
    let hlen = redis::cmd("HLEN").arg(key).clone();
    let source_len: i64 = pair.source.query(&hlen)?;
    let target_len: i64 = pair.target.query(&hlen)?;
    if source_len != target_len && !drops {
        findings.push(
            DiffKind::Value,
            format!("length {source_len} vs {target_len}"),
        );
        return Ok(());
    }
    let both_have_ttls =
        pair.source.abilities.hash_field_ttl && pair.target.abilities.hash_field_ttl;
    let tolerance = pair.settings.ttl_tolerance_ms;
    let (mut changed, mut dropped) = (0i64, 0i64);
    let mut cursor = 0u64;
    loop {
        let (next, flat): (u64, Vec<Vec<u8>>) = pair.source.query(
            redis::cmd("HSCAN")
                .arg(key)
                .arg(cursor)
                .arg("COUNT")
                .arg(CHUNK),
        )?;
        let (fields, values): (Vec<Vec<u8>>, Vec<Vec<u8>>) = flat
            .chunks_exact(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .unzip();
        if !fields.is_empty() {
            let source_ttls = field_expiries(&mut pair.source, key, &fields)?;
            let target_ttls = if both_have_ttls {
                field_expiries(&mut pair.target, key, &fields)?
            } else {
                vec![None; fields.len()]
            };
            let mut hmget = redis::cmd("HMGET");
            hmget.arg(key).arg(&fields);
            let target_values: Vec<Option<Vec<u8>>> = pair.target.query(&hmget)?;
            let rows = fields
                .iter()
                .zip(&values)
                .zip(target_values)
                .zip(source_ttls.iter().zip(&target_ttls));
            for (((field, value), target_value), (source_ttl, target_ttl)) in rows {
                let name = excerpt(field);
                if source_ttl.is_some() && policy.is_some() {
                    changed += 1;
                    if drops {
                        dropped += 1;
                        if target_value.is_some() {
                            findings.push(
                                DiffKind::Value,
                                format!("field {name} kept although drop-field leaves it out"),
                            );
                        }
                        continue;
                    }
                }
                match target_value {
                    None => {
                        findings.push(DiffKind::Value, format!("field {name} not on the target"))
                    }
                    Some(v) if &v != value => findings.push(
                        DiffKind::Value,
                        format!("field {name}: {} vs {}", excerpt(value), excerpt(&v)),
                    ),
                    Some(_) if policy.is_some() => {}
                    Some(_) => {
                        if let Some(detail) = expiry_difference(*source_ttl, *target_ttl, tolerance)
                        {
                            findings.push(DiffKind::Ttl, format!("field {name} expires {detail}"));
                        }
                    }
                }
            }
            if findings.full() {
                return Ok(());
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    if drops && target_len != source_len - dropped {
        findings.push(
            DiffKind::Value,
            format!(
                "length {target_len} on the target, {} expected after drop-field",
                source_len - dropped
            ),
        );
    }
    if changed > 0 {
        findings.excuse = Some(if drops { DROPPED } else { PERSISTED });
    }
    Ok(())
}

/// HPEXPIRETIME of each field (None: no TTL), or all None on a server without field TTLs.
pub fn field_expiries(
    endpoint: &mut Endpoint,
    key: &[u8],
    fields: &[Vec<u8>],
) -> Result<Vec<Option<i64>>, VerifyError> {
    if !endpoint.abilities.hash_field_ttl {
        return Ok(vec![None; fields.len()]);
    }
    let mut cmd = redis::cmd("HPEXPIRETIME");
    cmd.arg(key).arg("FIELDS").arg(fields.len()).arg(fields);
    let times: Vec<i64> = endpoint.query(&cmd)?;
    if times.len() != fields.len() {
        return Err(endpoint.reply_error("HPEXPIRETIME"));
    }
    Ok(times
        .into_iter()
        .map(|at| (at >= 0).then_some(at))
        .collect())
}

/// Whether every field of the source hash has a TTL (so drop-field left the key out).
pub fn every_field_volatile(pair: &mut Pair, key: &[u8]) -> Result<bool, VerifyError> {
    let mut cursor = 0u64;
    let mut seen_any = false;
    loop {
        let (next, flat): (u64, Vec<Vec<u8>>) = pair.source.query(
            redis::cmd("HSCAN")
                .arg(key)
                .arg(cursor)
                .arg("COUNT")
                .arg(CHUNK),
        )?;
        let fields: Vec<Vec<u8>> = flat.chunks_exact(2).map(|pair| pair[0].clone()).collect();
        if !fields.is_empty() {
            seen_any = true;
            let ttls = field_expiries(&mut pair.source, key, &fields)?;
            if ttls.iter().any(Option::is_none) {
                return Ok(false);
            }
        }
        if next == 0 {
            return Ok(seen_any);
        }
        cursor = next;
    }
}
