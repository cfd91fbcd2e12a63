//! `--max-ops-per-sec`: paces the commands sent to one server so that verify can run
//! against production. A pipeline of n commands counts as n.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Limiter {
    per_second: Option<u32>,
    window_start: Instant,
    sent_in_window: u64,
}

impl Limiter {
    pub fn new(per_second: Option<u32>) -> Self {
        Self {
            per_second: per_second.filter(|n| *n > 0),
            window_start: Instant::now(),
            sent_in_window: 0,
        }
    }

    /// Waits until `commands` more may be sent.
    pub fn take(&mut self, commands: u64) {
        let Some(rate) = self.per_second else {
            return;
        };
        let now = Instant::now();
        // A quiet spell must not turn into a burst afterwards: restart the window.
        if now.duration_since(self.window_start) > Duration::from_secs(1) && self.due(rate) <= now {
            self.window_start = now;
            self.sent_in_window = 0;
        }
        self.sent_in_window += commands;
        let due = self.due(rate);
        if due > now {
            std::thread::sleep(due - now);
        }
    }

    /// When the commands sent so far in this window are allowed to have been sent.
    fn due(&self, rate: u32) -> Instant {
        let seconds = self.sent_in_window as f64 / f64::from(rate);
        self.window_start + Duration::from_secs_f64(seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_to_the_rate() {
        let mut limiter = Limiter::new(Some(1000));
        let start = Instant::now();
        for _ in 0..20 {
            limiter.take(10);
        }
        // 200 commands at 1000/s take about 0.2 s.
        assert!(start.elapsed() >= Duration::from_millis(180));
    }

    #[test]
    fn no_rate_never_waits() {
        let mut limiter = Limiter::new(None);
        let start = Instant::now();
        limiter.take(1_000_000);
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
