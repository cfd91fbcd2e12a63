//! Comparing one key on both servers: existence, type and TTL first, then the value by
//! type, cheap checks (lengths) before full values read in bounded windows.

pub mod hash;
mod list;
mod set;
mod small;
mod stream;
mod string;
mod zset;

use super::endpoint::Endpoint;
use super::error::VerifyError;
use super::policy;
use super::report::{DiffKind, Finding, KeyOutcome};
use crate::filter::Scope;
use crate::policy::Policies;
use redis::Value;

/// Elements per window (LRANGE, SCAN COUNT, XRANGE COUNT, pipelines).
pub const CHUNK: usize = 500;
/// Findings listed per key; the comparison of a key stops there.
const MAX_FINDINGS: usize = 5;

pub struct Settings {
    pub ttl_tolerance_ms: u64,
    pub policies: Policies,
    /// Only kept keys are compared, each source database against its mapped place.
    pub scope: Scope,
}

/// The two servers and how to compare them.
pub struct Pair {
    pub source: Endpoint,
    pub target: Endpoint,
    pub settings: Settings,
}

impl Pair {
    /// The target's database for source database `db` (`--db-map`).
    pub fn target_db(&self, db: u32) -> u32 {
        let mapped = self.settings.scope.target_db(u64::from(db));
        u32::try_from(mapped).unwrap_or(u32::MAX)
    }
}

/// A key's type ("none" when absent) and absolute expiry.
#[derive(Debug, Clone)]
pub struct Header {
    pub type_name: String,
    pub expire_at_ms: Option<i64>,
}

impl Header {
    fn exists(&self) -> bool {
        self.type_name != "none"
    }
}

/// What the comparison of one key's value found.
#[derive(Default)]
pub struct Findings {
    pub list: Vec<Finding>,
    /// Set when a policy explains a difference that was then not counted.
    pub excuse: Option<&'static str>,
    /// Set when a counter the source does not replicate differs (not counted).
    pub note: Option<&'static str>,
    pub type_only: bool,
}

impl Findings {
    pub fn push(&mut self, kind: DiffKind, detail: impl Into<String>) {
        if !self.full() {
            self.list.push(Finding::new(kind, detail));
        }
    }

    /// Enough found; stop reading this key.
    pub fn full(&self) -> bool {
        self.list.len() >= MAX_FINDINGS
    }
}

/// TYPE and absolute expiry of each key, one pipeline per server. `db` must be selected.
pub fn headers(endpoint: &mut Endpoint, keys: &[Vec<u8>]) -> Result<Vec<Header>, VerifyError> {
    let exact = endpoint.abilities.pexpiretime;
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("TYPE").arg(key);
        pipe.cmd(if exact { "PEXPIRETIME" } else { "PTTL" })
            .arg(key);
    }
    let replies: Vec<Value> = endpoint.pipeline(&pipe, keys.len() * 2, "TYPE/PEXPIRETIME")?;
    let now = now_ms();
    let headers = replies
        .chunks(2)
        .map(|pair| {
            let type_name = pair.first().and_then(super::reply::text);
            let expiry = pair.get(1).and_then(super::reply::int);
            match (type_name, expiry) {
                (Some(type_name), Some(expiry)) => Ok(Header {
                    type_name,
                    expire_at_ms: match expiry {
                        e if e < 0 => None,
                        at if exact => Some(at),
                        remaining => Some(now + remaining),
                    },
                }),
                _ => Err(endpoint.reply_error("TYPE")),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if headers.len() != keys.len() {
        return Err(endpoint.reply_error("TYPE"));
    }
    Ok(headers)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One key's outcome and its type (the source's; the target's for a key only there).
pub struct Compared {
    pub outcome: KeyOutcome,
    pub type_name: String,
}

/// Compares `keys` (at most [`CHUNK`]) of the database selected on both sides.
pub fn compare_keys(pair: &mut Pair, keys: &[Vec<u8>]) -> Result<Vec<Compared>, VerifyError> {
    let source = headers(&mut pair.source, keys)?;
    let target = headers(&mut pair.target, keys)?;
    let small_values = small::compare(pair, keys, &source, &target)?;
    let mut outcomes = Vec::with_capacity(keys.len());
    for (((key, s), t), prefetched) in keys.iter().zip(&source).zip(&target).zip(small_values) {
        let type_name = if s.exists() {
            &s.type_name
        } else {
            &t.type_name
        };
        outcomes.push(Compared {
            type_name: type_name.clone(),
            outcome: compare_key(pair, key, s, t, prefetched)?,
        });
    }
    Ok(outcomes)
}

/// Compares one key, given its headers on both sides (the db is selected on both) and,
/// for a small value, what [`small::compare`] found.
fn compare_key(
    pair: &mut Pair,
    key: &[u8],
    source: &Header,
    target: &Header,
    small_value: Option<Vec<Finding>>,
) -> Result<KeyOutcome, VerifyError> {
    match (source.exists(), target.exists()) {
        (false, false) => return Ok(KeyOutcome::Gone),
        (false, true) => {
            return Ok(KeyOutcome::Differs(vec![Finding::new(
                DiffKind::Extra,
                format!("only on the target ({})", target.type_name),
            )]))
        }
        (true, false) => {
            return Ok(
                match policy::excuse_missing(pair, key, &source.type_name)? {
                    Some(reason) => KeyOutcome::Excused(reason),
                    None => KeyOutcome::Differs(vec![Finding::new(
                        DiffKind::Missing,
                        format!("not on the target ({})", source.type_name),
                    )]),
                },
            )
        }
        (true, true) => {}
    }
    if source.type_name != target.type_name {
        return Ok(KeyOutcome::Differs(vec![Finding::new(
            DiffKind::Type,
            format!("{} vs {}", source.type_name, target.type_name),
        )]));
    }
    let mut findings = Findings::default();
    if let Some(detail) = expiry_difference(
        source.expire_at_ms,
        target.expire_at_ms,
        pair.settings.ttl_tolerance_ms,
    ) {
        findings.push(DiffKind::Ttl, format!("expires {detail}"));
    }
    let compared = match (source.type_name.as_str(), small_value) {
        (_, Some(found)) => {
            found
                .into_iter()
                .for_each(|f| findings.push(f.kind, f.detail));
            Ok(())
        }
        ("string", None) => string::compare(pair, key, &mut findings),
        ("list", None) => list::compare(pair, key, &mut findings),
        ("set", None) => set::compare(pair, key, &mut findings),
        ("zset", None) => zset::compare(pair, key, &mut findings),
        ("hash", None) => hash::compare(pair, key, &mut findings),
        ("stream", None) => stream::compare(pair, key, &mut findings),
        (_, None) => {
            findings.type_only = true;
            Ok(())
        }
    };
    if let Err(err) = compared {
        match changed_while_read(&err) {
            Some(detail) => findings.push(DiffKind::Value, detail),
            None => return Err(err),
        }
    }
    Ok(if !findings.list.is_empty() {
        KeyOutcome::Differs(findings.list)
    } else if let Some(reason) = findings.excuse {
        KeyOutcome::Excused(reason)
    } else if let Some(note) = findings.note {
        KeyOutcome::Noted(note)
    } else if findings.type_only {
        KeyOutcome::TypeOnly
    } else {
        KeyOutcome::Equal
    })
}

/// A key deleted or replaced while its value was read gets error replies (no such key,
/// WRONGTYPE) or odd ones: a difference of this round, re-checked by the next. Failures
/// of the connection itself still end the run.
fn changed_while_read(err: &VerifyError) -> Option<String> {
    match err {
        VerifyError::Command { source, role, .. }
            if !source.is_io_error() && !source.is_timeout() && !source.is_connection_dropped() =>
        {
            Some(format!("changed while being read ({role}: {source})"))
        }
        VerifyError::Reply { role, command, .. } => Some(format!(
            "changed while being read (odd {command} reply from the {role})"
        )),
        _ => None,
    }
}

/// "at X vs Y" when two expiry times differ by more than the tolerance.
pub fn expiry_difference(
    source: Option<i64>,
    target: Option<i64>,
    tolerance: u64,
) -> Option<String> {
    let show = |at: Option<i64>| match at {
        Some(ms) => format!("at {ms} ms"),
        None => "never".to_owned(),
    };
    let differs = match (source, target) {
        (Some(a), Some(b)) => a.abs_diff(b) > tolerance,
        (None, None) => false,
        _ => true,
    };
    differs.then(|| format!("{} vs {}", show(source), show(target)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_within_tolerance_is_equal() {
        assert_eq!(expiry_difference(Some(1000), Some(1400), 500), None);
        assert_eq!(expiry_difference(None, None, 0), None);
        assert!(expiry_difference(Some(1000), Some(1600), 500).is_some());
        let detail = expiry_difference(Some(5), None, 1000).unwrap();
        assert_eq!(detail, "at 5 ms vs never");
    }
}
