//! Later rounds: on a live source some keys differ only because a write was in flight.
//! After a pause, each round re-checks just the keys still differing.

use super::compare::Pair;
use super::error::VerifyError;
use super::report::VerifyReport;
use super::walk::compare_batch;
use std::collections::BTreeMap;
use std::time::Duration;

/// Runs rounds 2..=`rounds` while differences remain (round 1 has filled `report`).
pub fn settle(
    pair: &mut Pair,
    report: &mut VerifyReport,
    rounds: u32,
    pause: Duration,
) -> Result<(), VerifyError> {
    report.rounds = 1;
    while report.rounds < rounds && !report.differences.is_empty() {
        std::thread::sleep(pause);
        report.rounds += 1;
        let differing_before = report.summary.differing;
        let mut by_db: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
        for difference in std::mem::take(&mut report.differences) {
            report.unrecord(&difference);
            by_db
                .entry(difference.db)
                .or_default()
                .push(difference.raw_key);
        }
        for (db, keys) in by_db {
            compare_batch(pair, db, &keys, report)?;
        }
        report.settled += differing_before.saturating_sub(report.summary.differing);
    }
    Ok(())
}
