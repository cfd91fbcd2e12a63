//! How long a live source that went away is tried again, for every command that follows
//! one (migrate's replication and scan modes, the relay's histories): one window from the
//! first loss, one pause between attempts.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a lost live source is retried before the run gives up.
pub const RECONNECT_FOR: Duration = Duration::from_secs(300);
/// The pause between attempts: a restarting server needs a moment, and a tight loop
/// against a dead port helps no one.
pub const RECONNECT_PAUSE: Duration = Duration::from_millis(1000);

/// The retry window of one source: opened by the first loss, closed by a success.
#[derive(Debug, Default)]
pub struct Reconnect {
    lost_since: Option<Instant>,
}

impl Reconnect {
    /// A loss (or a failed attempt): whether the window still allows another attempt.
    pub fn lost(&mut self) -> bool {
        self.lost_since.get_or_insert_with(Instant::now).elapsed() <= RECONNECT_FOR
    }

    /// Connected again: the next loss opens a new window.
    pub fn connected(&mut self) {
        self.lost_since = None;
    }

    /// Whether the source is being retried (a loss and no success since).
    pub fn retrying(&self) -> bool {
        self.lost_since.is_some()
    }

    /// Waits [`RECONNECT_PAUSE`] before the next attempt, unless `stop` resolves first:
    /// false when it did.
    pub async fn pause(stop: impl Future<Output = ()>) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT_PAUSE) => true,
            _ = stop => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_opens_at_the_first_loss_and_closes_at_a_success() {
        let mut reconnect = Reconnect::default();
        assert!(!reconnect.retrying());
        assert!(reconnect.lost());
        assert!(reconnect.retrying());
        reconnect.lost_since = Some(Instant::now() - RECONNECT_FOR - Duration::from_secs(1));
        assert!(!reconnect.lost(), "the window ran out");
        reconnect.connected();
        assert!(!reconnect.retrying());
        assert!(reconnect.lost(), "a new loss opens a new window");
    }
}
