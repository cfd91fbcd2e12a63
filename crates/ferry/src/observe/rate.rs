//! Per-second rates the runs measure for their progress lines and `/status`.

use std::time::{Duration, Instant};

/// The window the runs measure their rates (keys/s, commands/s) over.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A per-second rate of a growing count, measured over at least `window`.
#[derive(Debug)]
pub struct Rate {
    window: Duration,
    since: Instant,
    from: u64,
    last: f64,
}

impl Rate {
    pub fn new(start: u64, window: Duration) -> Self {
        Self {
            window,
            since: Instant::now(),
            from: start,
            last: 0.0,
        }
    }

    /// The rate over the last full window, updated once the window has passed.
    pub fn update(&mut self, now_count: u64) -> f64 {
        let elapsed = self.since.elapsed();
        if elapsed >= self.window {
            self.last = now_count.saturating_sub(self.from) as f64 / elapsed.as_secs_f64();
            self.from = now_count;
            self.since = Instant::now();
        }
        self.last
    }
}
