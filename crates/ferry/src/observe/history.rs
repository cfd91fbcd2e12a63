//! The run's recent past for the status page: one sample a second, the last hour, in a
//! ring of fixed size (the memory does not grow with the run). Rates are left to the
//! reader: each sample holds running totals, so the page divides differences.
//!
//! The lag in seconds comes from here too: how long ago the source was where the target
//! is now, found by looking back for the first sample whose source offset had reached
//! today's applied offset.

use serde::Serialize;
use std::collections::VecDeque;

/// An hour at one sample a second.
pub const CAPACITY: usize = 3600;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Unix time, seconds.
    pub t: f64,
    pub applied_offset: i64,
    pub source_offset: i64,
    pub lag_bytes: i64,
    pub lag_seconds: f64,
    /// Keys written by every full sync so far.
    pub keys_written: u64,
    pub commands_applied: u64,
    pub command_bytes_applied: u64,
}

#[derive(Debug, Default)]
pub struct History {
    samples: VecDeque<Sample>,
}

impl History {
    /// Adds a sample, dropping the oldest once the ring is full. The sample's lag in
    /// seconds is computed against the samples before it.
    pub fn push(&mut self, mut sample: Sample) {
        sample.lag_seconds =
            self.lag_seconds(sample.applied_offset, sample.source_offset, sample.t);
        if self.samples.len() == CAPACITY {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// Seconds since the source's offset first reached `applied` (0 when nothing is
    /// behind), interpolated between the two samples around that moment; at least the
    /// history's age when it was already past it in the oldest sample.
    pub fn lag_seconds(&self, applied: i64, source: i64, now: f64) -> f64 {
        if applied >= source {
            return 0.0;
        }
        // Walking back from now, `reached` is the earliest point seen whose source offset
        // had reached `applied`; the first one short of it brackets the moment.
        let mut reached = (now, source);
        for sample in self.samples.iter().rev() {
            if sample.source_offset >= applied {
                reached = (sample.t, sample.source_offset);
                continue;
            }
            let (t1, s1) = reached;
            let (t0, s0) = (sample.t, sample.source_offset);
            let share = (applied - s0) as f64 / (s1 - s0).max(1) as f64;
            return (now - (t0 + share * (t1 - t0))).max(0.0);
        }
        (now - reached.0).max(0.0)
    }

    pub fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// The samples taken after `since` (all for 0), oldest first.
    pub fn since(&self, since: f64) -> Vec<Sample> {
        let start = self.samples.partition_point(|sample| sample.t <= since);
        self.samples.range(start..).copied().collect()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, applied: i64, source: i64) -> Sample {
        Sample {
            t,
            applied_offset: applied,
            source_offset: source,
            lag_bytes: source - applied,
            lag_seconds: 0.0,
            keys_written: 0,
            commands_applied: 0,
            command_bytes_applied: 0,
        }
    }

    #[test]
    fn the_ring_keeps_the_last_hour_only() {
        let mut history = History::default();
        for second in 0..CAPACITY + 10 {
            history.push(sample(second as f64, 0, 0));
        }
        assert_eq!(history.len(), CAPACITY);
        assert_eq!(history.since(0.0).first().map(|s| s.t), Some(10.0));
        assert_eq!(history.since(CAPACITY as f64 + 7.0).len(), 2);
    }

    #[test]
    fn lag_in_seconds_is_how_long_ago_the_source_was_where_the_target_is() {
        let mut history = History::default();
        // The source moves 100 bytes a second; the target follows 3 s behind.
        for second in 0..10 {
            let t = second as f64;
            history.push(sample(t, (second - 3).max(0) * 100, second * 100));
        }
        let last = history.latest().unwrap();
        assert_eq!(last.lag_bytes, 300);
        assert_eq!(last.lag_seconds, 3.0);
        // Caught up: no lag.
        history.push(sample(10.0, 1000, 1000));
        assert_eq!(history.latest().unwrap().lag_seconds, 0.0);
        // Between two samples: interpolated.
        history.push(sample(11.0, 1050, 1100));
        assert_eq!(history.latest().unwrap().lag_seconds, 0.5);
        // Behind by more than the history holds: at least its age.
        let mut short = History::default();
        short.push(sample(100.0, 0, 500));
        short.push(sample(101.0, 0, 600));
        assert_eq!(short.latest().unwrap().lag_seconds, 1.0);
    }
}
