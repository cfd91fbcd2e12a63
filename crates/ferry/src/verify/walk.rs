//! Which keys get compared: every key of every database in both directions (SCAN on the
//! source, then SCAN on the target for keys the source lacks; every primary of a cluster),
//! or a random sample. Under a scope (`--match`, `--db`, `--db-map`) only kept keys of
//! kept databases count, each source database against its mapped one on the target; the
//! target's keys outside the scope are not differences.

use super::compare::{compare_keys, Pair, CHUNK};
use super::endpoint::Endpoint;
use super::error::{Role, VerifyError};
use super::report::{DiffKind, Finding, KeyOutcome, VerifyReport};
use crate::state::marker;
use std::collections::BTreeSet;

/// Compares every key of every database that holds keys on either side. A cluster side
/// is scanned node by node (every primary).
pub fn everything(pair: &mut Pair, report: &mut VerifyReport) -> Result<(), VerifyError> {
    for db in databases(pair)? {
        if !paired(pair, db) {
            // Only the standalone side can hold it: its keys are listed as not comparable.
            let side_db = standalone_db(pair, db);
            let side = standalone_side(pair);
            side.select(side_db)?;
            let mut keys = Scan::default();
            let node = side.server.clone();
            while let Some(batch) = keys.next(standalone_side(pair), &node)? {
                compare_batch(pair, db, &batch, report)?;
            }
            continue;
        }
        let target_db = pair.target_db(db);
        pair.source.select(db)?;
        pair.target.select(target_db)?;
        for node in pair.source.nodes() {
            let mut source_keys = Scan::default();
            while let Some(batch) = source_keys.next(&mut pair.source, &node)? {
                compare_batch(pair, db, &batch, report)?;
            }
        }
        // Keys only the target has; those on both sides were compared above.
        let mut only_on_target = Vec::new();
        for node in pair.target.nodes() {
            let mut target_keys = Scan::default();
            while let Some(batch) = target_keys.next(&mut pair.target, &node)? {
                // Compared batches may have switched the source's database.
                pair.source.select(db)?;
                pair.target.select(target_db)?;
                let batch = in_scope(pair, batch);
                only_on_target.extend(missing_on(&mut pair.source, &batch)?);
                if only_on_target.len() >= CHUNK {
                    compare_batch(pair, db, &std::mem::take(&mut only_on_target), report)?;
                }
            }
        }
        compare_batch(pair, db, &only_on_target, report)?;
    }
    Ok(())
}

/// Compares about `n` random source keys (spread over databases and primaries by their
/// size), and about a tenth as many random target keys checked for being extra.
pub fn sample(pair: &mut Pair, n: u64, report: &mut VerifyReport) -> Result<(), VerifyError> {
    let dbs = databases(pair)?;
    let target_dbs: Vec<u32> = dbs.iter().map(|&db| pair.target_db(db)).collect();
    let source_parts = sizes(&mut pair.source, &dbs)?;
    let total: u64 = source_parts.iter().map(|part| part.2).sum::<u64>().max(1);
    for (db, node, size) in source_parts {
        let share = (n * size).div_ceil(total).min(size) as usize;
        pair.source.select(db)?;
        let keys = random_keys(&mut pair.source, &node, share)?;
        compare_batch(pair, db, &keys, report)?;
    }
    let target_parts = sizes(&mut pair.target, &target_dbs)?;
    let total: u64 = target_parts.iter().map(|part| part.2).sum::<u64>().max(1);
    for (target_db, node, size) in target_parts {
        let share = (n * size).div_ceil(total).min(size).div_ceil(10) as usize;
        pair.target.select(target_db)?;
        let keys = random_keys(&mut pair.target, &node, share)?;
        let keys = in_scope(pair, keys);
        let Some(db) = dbs
            .iter()
            .copied()
            .find(|&db| pair.target_db(db) == target_db)
        else {
            continue;
        };
        let extra = if paired(pair, db) {
            pair.source.select(db)?;
            missing_on(&mut pair.source, &keys)?
        } else {
            keys
        };
        compare_batch(pair, db, &extra, report)?;
    }
    Ok(())
}

/// Whether source database `db` and its place on the target both exist: a cluster has
/// database 0 only, unless it has `cluster-databases`.
fn paired(pair: &Pair, db: u32) -> bool {
    pair.source.has_database(db) && pair.target.has_database(pair.target_db(db))
}

/// The database the standalone side of a pair with a cluster holds source database
/// `db` in.
fn standalone_db(pair: &Pair, db: u32) -> u32 {
    if pair.source.is_cluster() {
        pair.target_db(db)
    } else {
        db
    }
}

/// The keys the scope keeps (their database is kept already).
fn in_scope(pair: &Pair, keys: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let scope = &pair.settings.scope;
    if !scope.filters_keys() {
        return keys;
    }
    keys.into_iter()
        .filter(|key| scope.keeps_key(key))
        .collect()
}

/// The side that is not a cluster, when the other one is.
fn standalone_side(pair: &mut Pair) -> &mut Endpoint {
    if pair.source.is_cluster() {
        &mut pair.target
    } else {
        &mut pair.source
    }
}

/// The source databases to compare: the kept ones holding keys on the source, and those
/// whose place on the target holds keys.
fn databases(pair: &mut Pair) -> Result<Vec<u32>, VerifyError> {
    let scope = pair.settings.scope.clone();
    let mut dbs: BTreeSet<u32> = pair
        .source
        .databases()?
        .into_iter()
        .filter(|&db| scope.keeps_db(u64::from(db)))
        .collect();
    for target_db in pair.target.databases()? {
        if let Some(db) = scope.source_db(u64::from(target_db)) {
            dbs.insert(u32::try_from(db).unwrap_or(u32::MAX));
        }
    }
    Ok(dbs.into_iter().collect())
}

/// DBSIZE of each database in `dbs` on each node of `endpoint` holding keys:
/// `(db, node, size)`.
fn sizes(endpoint: &mut Endpoint, dbs: &[u32]) -> Result<Vec<(u32, String, u64)>, VerifyError> {
    let mut parts = Vec::new();
    for &db in dbs {
        if !endpoint.has_database(db) {
            continue;
        }
        endpoint.select(db)?;
        for node in endpoint.nodes() {
            let size: u64 = endpoint.node_query(&node, &redis::cmd("DBSIZE"))?;
            if size > 0 {
                parts.push((db, node, size));
            }
        }
    }
    Ok(parts)
}

/// Up to `count` distinct random keys of the selected database on `node`.
fn random_keys(
    endpoint: &mut Endpoint,
    node: &str,
    count: usize,
) -> Result<Vec<Vec<u8>>, VerifyError> {
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
        let drawn: Vec<Option<Vec<u8>>> =
            endpoint.node_pipeline(node, &pipe, draws, "RANDOMKEY")?;
        keys.extend(drawn.into_iter().flatten());
        left = count.saturating_sub(keys.len());
    }
    Ok(keys.into_iter().collect())
}

/// SCAN of the selected database on one node, a batch at a time.
#[derive(Default)]
struct Scan {
    cursor: u64,
    done: bool,
}

impl Scan {
    fn next(
        &mut self,
        endpoint: &mut Endpoint,
        node: &str,
    ) -> Result<Option<Vec<Vec<u8>>>, VerifyError> {
        while !self.done {
            let (next, keys): (u64, Vec<Vec<u8>>) = endpoint.node_query(
                node,
                redis::cmd("SCAN").arg(self.cursor).arg("COUNT").arg(CHUNK),
            )?;
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
    let in_marker_db = u64::from(db) == marker::DB || u64::from(pair.target_db(db)) == marker::DB;
    let is_marker = |key: &Vec<u8>| in_marker_db && marker::is_marker(key);
    let skipped = keys.iter().filter(|key| is_marker(key)).count();
    report.ferry_markers_skipped += skipped as u64;
    let owned;
    let scope = &pair.settings.scope;
    let keys = if skipped == 0 && !scope.filters_keys() {
        keys
    } else {
        owned = keys
            .iter()
            .filter(|key| !is_marker(key) && scope.keeps_key(key))
            .cloned()
            .collect::<Vec<_>>();
        owned.as_slice()
    };
    if !paired(pair, db) {
        return record_unpaired(pair, db, keys, report);
    }
    let target_db = pair.target_db(db);
    for chunk in keys.chunks(CHUNK) {
        pair.source.select(db)?;
        pair.target.select(target_db)?;
        for (key, compared) in chunk.iter().zip(compare_keys(pair, chunk)?) {
            report.record(db, &compared.type_name, key, compared.outcome);
        }
    }
    Ok(())
}

/// The type shown for keys compared without reading them.
const UNREAD_TYPE: &str = "unread";

/// Keys of a database other than 0 on the standalone side of a pair with a cluster: not
/// comparable, so listed as missing (source) or extra (target) with the reason.
fn record_unpaired(
    pair: &mut Pair,
    db: u32,
    keys: &[Vec<u8>],
    report: &mut VerifyReport,
) -> Result<(), VerifyError> {
    let side_db = standalone_db(pair, db);
    let side = standalone_side(pair);
    let (kind, detail) = match side.role {
        Role::Source => (
            DiffKind::Missing,
            format!("in db{db} of the source; the target is a cluster, which has only db0"),
        ),
        Role::Target => (
            DiffKind::Extra,
            format!("in db{side_db} of the target; the source is a cluster, which has only db0"),
        ),
    };
    for chunk in keys.chunks(CHUNK) {
        side.select(side_db)?;
        let absent = missing_on(side, chunk)?;
        for key in chunk {
            let outcome = if absent.contains(key) {
                KeyOutcome::Gone
            } else {
                KeyOutcome::Differs(vec![Finding::new(kind, detail.clone())])
            };
            // Not read on the other side: its type is not asked for either.
            report.record(db, UNREAD_TYPE, key, outcome);
        }
    }
    Ok(())
}
