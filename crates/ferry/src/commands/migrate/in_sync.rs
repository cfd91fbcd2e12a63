//! When a run counts as in sync: the target has applied everything the source had sent a
//! second ago. Equality of the applied and received offsets at one instant is too strict:
//! under a steady load the target always owes the replies of one round trip, so a target
//! 200 ms away would never be "in sync" although it trails by 200 ms.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far behind the source a run in sync may trail.
pub const IN_SYNC_WITHIN: Duration = Duration::from_secs(1);

/// The received offsets of the last second or so, sampled at each tick.
#[derive(Debug, Default)]
pub struct CatchUp {
    samples: VecDeque<(Instant, i64)>,
}

impl CatchUp {
    /// Takes one sample; answers whether `applied` covers what had arrived
    /// [`IN_SYNC_WITHIN`] ago (or all that arrived, when nothing is owed).
    pub fn in_sync(&mut self, now: Instant, received: i64, applied: i64) -> bool {
        self.samples.push_back((now, received));
        // Keep the newest sample at least a second old at the front, and no older ones.
        while self
            .samples
            .get(1)
            .is_some_and(|(at, _)| now.duration_since(*at) >= IN_SYNC_WITHIN)
        {
            self.samples.pop_front();
        }
        if applied >= received {
            return true;
        }
        match self.samples.front() {
            Some((at, then)) => now.duration_since(*at) >= IN_SYNC_WITHIN && applied >= *then,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(100);

    #[test]
    fn a_target_one_round_trip_behind_is_in_sync_after_a_second() {
        let start = Instant::now();
        let mut catch_up = CatchUp::default();
        // 1,000 bytes arrive per tick; the target applies them 2 ticks later.
        let mut answers = Vec::new();
        for tick in 0..20i64 {
            let now = start + TICK * tick as u32;
            let received = 1000 * (tick + 1);
            let applied = (received - 2000).max(0);
            answers.push(catch_up.in_sync(now, received, applied));
        }
        assert!(!answers[..10].iter().any(|&a| a), "{answers:?}");
        assert!(answers[10..].iter().all(|&a| a), "{answers:?}");
    }

    #[test]
    fn a_target_more_than_a_second_behind_is_never_in_sync() {
        let start = Instant::now();
        let mut catch_up = CatchUp::default();
        for tick in 0..50i64 {
            let now = start + TICK * tick as u32;
            // Applies what arrived 15 ticks (1.5 s) earlier.
            let received = 1000 * (tick + 1);
            assert!(!catch_up.in_sync(now, received, (received - 15_000).max(0)));
        }
    }

    #[test]
    fn nothing_owed_is_in_sync_at_once() {
        let mut catch_up = CatchUp::default();
        assert!(catch_up.in_sync(Instant::now(), 500, 500));
    }
}
