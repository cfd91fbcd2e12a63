//! Connection settings.

use std::time::Duration;

use crate::resp::Limits;
use crate::secret::Secret;
use crate::stream::StreamUpgrade;
use std::sync::Arc;

/// How to connect and what to announce; `Default` suits a plain-TCP source on loopback.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// ACL user for `AUTH user pass`; `None` sends `AUTH pass` (the `default` user).
    pub username: Option<String>,
    /// Sent only if set.
    pub password: Option<Secret>,
    /// Announced with `REPLCONF listening-port`; the primary lists it in `INFO replication`.
    pub listening_port: u16,
    /// Sent as `REPLCONF version <x.y.z>` when set. Valkey 9.1+ picks the RDB version of
    /// the snapshot from it (without it: RDB 11, which cannot hold Valkey 9 types);
    /// Redis answers an error, which is ignored.
    pub announce_version: Option<String>,
    /// Applied to the TCP connection before anything is sent (TLS); `None`: plain TCP.
    pub upgrade: Option<Arc<dyn StreamUpgrade>>,
    /// Bound on the whole connect: TCP, the upgrade (which gets a second more, so that
    /// its own message says why) and the handshake before PSYNC.
    pub connect_timeout: Duration,
    /// Bound on each wait for bytes from (or room to write to) the primary. A primary sends
    /// something at least every `repl-ping-replica-period` (10 s) once streaming.
    pub read_timeout: Duration,
    /// Interval of `REPLCONF ACK` once the command stream runs (Redis replicas use 1 s).
    pub ack_interval: Duration,
    /// Retries of PSYNC while the primary answers `-LOADING` or `-NOMASTERLINK`.
    pub psync_retry: RetryPolicy,
    /// Frame size caps for the command stream.
    pub limits: Limits,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            username: None,
            password: None,
            listening_port: 0,
            announce_version: None,
            upgrade: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            ack_interval: Duration::from_secs(1),
            psync_retry: RetryPolicy::default(),
            limits: Limits::default(),
        }
    }
}

/// Exponential backoff: `first_delay`, doubling up to `max_delay`, for `max_attempts`
/// attempts in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt.
    pub first_delay: Duration,
    /// Cap of the doubling wait.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// About a minute in all: a primary loading a big dataset may need that long.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 30,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt` (the first retry is attempt 1).
    pub fn delay_before(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_stays_at_the_maximum() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay_before(1), Duration::from_millis(100));
        assert_eq!(policy.delay_before(2), Duration::from_millis(200));
        assert_eq!(policy.delay_before(5), Duration::from_millis(1600));
        assert_eq!(policy.delay_before(6), Duration::from_secs(2));
        assert_eq!(policy.delay_before(40), Duration::from_secs(2));
    }
}
