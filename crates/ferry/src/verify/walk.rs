//! Which keys get compared: every key of every database in both directions (SCAN on the
//! source, then SCAN on the target for keys the source lacks), or a random sample.

use super::compare::{compare_keys, Pair, CHUNK};
use super::endpoint::Endpoint;
use super::error::VerifyError;
use super::report::VerifyReport;
use crate::sinks::writer::marker;
use std::collections::BTreeSet;

/// Compares every key of every database that holds keys on either side.
pub fn everything(pair: &mut Pair, report: &mut VerifyReport) -> Result<(), VerifyError> {
    for db in databases(pair)? {
        pair.source.select(db)?;
        pair.target.select(db)?;
        let mut source_keys = Scan::default();
        while let Some(batch) = source_keys.next(&mut pair.source)? {
            compare_batch(pair, db, &batch, report)?;
        }
        // Keys only the target has; those on both sides were compared above.
        let mut target_keys = Scan::default();
        let mut only_on_target = Vec::new();
        while let Some(batch) = target_keys.next(&mut pair.target)? {
            only_on_target.extend(missing_on(&mut pair.source, &batch)?);
            if only_on_target.len() >= CHUNK {
                compare_batch(pair, db, &std::mem::take(&mut only_on_target), report)?;
            }
        }
        compare_batch(pair, db, &only_on_target, report)?;
    }
    Ok(())
}

/// Compares about `n` random source keys (spread over databases by size), and a tenth as
/// many random target keys checked for being extra.
pub fn sample(pair: &mut Pair, n: u64, report: &mut VerifyReport) -> Result<(), VerifyError> {
    let dbs = databases(pair)?;
    let mut sizes = Vec::new();
    for &db in &dbs {
        pair.source.select(db)?;
        let size: u64 = pair.source.query(&redis::cmd("DBSIZE"))?;
        sizes.push(size);
    }
    let total: u64 = sizes.iter().sum::<u64>().max(1);
    for (&db, &size) in dbs.iter().zip(&sizes) {
        pair.source.select(db)?;
        pair.target.select(db)?;
        let share = (n * size).div_ceil(total).min(size) as usize;
        let keys = random_keys(&mut pair.source, share)?;
        compare_batch(pair, db, &keys, report)?;
        let target_keys = random_keys(&mut pair.target, share.div_ceil(10))?;
        let extra = missing_on(&mut pair.source, &target_keys)?;
        compare_batch(pair, db, &extra, report)?;
    }
    Ok(())
}

fn databases(pair: &mut Pair) -> Result<Vec<u32>, VerifyError> {
    let mut dbs: BTreeSet<u32> = pair.source.databases()?.into_iter().collect();
    dbs.extend(pair.target.databases()?);
    Ok(dbs.into_iter().collect())
}

/// Up to `count` distinct random keys of the selected database.
fn random_keys(endpoint: &mut Endpoint, count: usize) -> Result<Vec<Vec<u8>>, VerifyError> {
    let mut keys = BTreeSet::new();
    let mut left = count;
    // Repeats are likely in small databases: a few extra draws, then settle for fewer.
    for _ in 0..3 {
        if left == 0 {
            break;
        }
        let draws = left.min(CHUNK);
        let mut pipe = redis::pipe();
        for _ in 0..draws {
            pipe.cmd("RANDOMKEY");
        }
        let drawn: Vec<Option<Vec<u8>>> = endpoint.pipeline(&pipe, draws, "RANDOMKEY")?;
        keys.extend(drawn.into_iter().flatten());
        left = count.saturating_sub(keys.len());
    }
    Ok(keys.into_iter().collect())
}

/// SCAN of the selected database, a batch at a time.
#[derive(Default)]
struct Scan {
    cursor: u64,
    done: bool,
}

impl Scan {
    fn next(&mut self, endpoint: &mut Endpoint) -> Result<Option<Vec<Vec<u8>>>, VerifyError> {
        while !self.done {
            let (next, keys): (u64, Vec<Vec<u8>>) =
                endpoint.query(redis::cmd("SCAN").arg(self.cursor).arg("COUNT").arg(CHUNK))?;
            self.cursor = next;
            self.done = next == 0;
            if !keys.is_empty() {
                return Ok(Some(keys));
            }
        }
        Ok(None)
    }
}

/// The keys of `keys` that `endpoint` does not have.
fn missing_on(endpoint: &mut Endpoint, keys: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, VerifyError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("EXISTS").arg(key);
    }
    let present: Vec<bool> = endpoint.pipeline(&pipe, keys.len(), "EXISTS")?;
    Ok(keys
        .iter()
        .zip(present)
        .filter(|(_, present)| !present)
        .map(|(key, _)| key.clone())
        .collect())
}

/// Compares `keys` of `db` (selected on both sides) and records the outcomes.
pub fn compare_batch(
    pair: &mut Pair,
    db: u32,
    keys: &[Vec<u8>],
    report: &mut VerifyReport,
) -> Result<(), VerifyError> {
    // ferry's own marker (what migrate applied) is bookkeeping, not data to compare; it
    // lives in one database, a copy elsewhere would be a stray.
    let is_marker = |key: &Vec<u8>| u64::from(db) == marker::DB && marker::is_marker(key);
    let skipped = keys.iter().filter(|key| is_marker(key)).count();
    report.ferry_markers_skipped += skipped as u64;
    let owned;
    let keys = if skipped == 0 {
        keys
    } else {
        owned = keys
            .iter()
            .filter(|key| !is_marker(key))
            .cloned()
            .collect::<Vec<_>>();
        owned.as_slice()
    };
    for chunk in keys.chunks(CHUNK) {
        pair.source.select(db)?;
        pair.target.select(db)?;
        for (key, outcome) in chunk.iter().zip(compare_keys(pair, chunk)?) {
            report.record(db, key, outcome);
        }
    }
    Ok(())
}
