//! What the relay allows a connection that has not started replicating: a bounded number
//! of them at once, a bounded time to authenticate and between commands, a bounded
//! request size; and the log lines about the clients it turns away, rate-limited so that
//! a flood of them cannot flood the log.

use super::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections accepted and not yet replicating (TLS handshake, AUTH, REPLCONF, INFO).
/// A replica's handshake takes milliseconds: more than this many at once is a flood, and
/// the extra connections are closed as they arrive.
pub const MAX_HANDSHAKING: usize = 64;
/// A replica sends its handshake commands back to back: a connection that completes no
/// command for this long (idle, or dripping bytes) is closed, and one that has not
/// authenticated this long after connecting (when a password is set) is too.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request held while it is incomplete: a replica's longest (AUTH with a long
/// password) is far below it; a huge multibulk header would otherwise grow the buffer as
/// long as bytes come.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// At most one log line per kind of refusal in this time; the next one counts the rest.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// Kinds of refusal told apart; beyond them (reasons made of peer data), one shared kind.
const MAX_KINDS: usize = 32;
const OTHER_KIND: &str = "other refusals";

/// The places for connections in their handshake.
#[derive(Clone)]
pub struct Gate {
    slots: Arc<Semaphore>,
}

/// A connection's place; given back when it starts replicating or closes.
pub type Slot = OwnedSemaphorePermit;

impl Gate {
    pub fn new(max: usize) -> Gate {
        Gate {
            slots: Arc::new(Semaphore::new(max)),
        }
    }

    /// A place, or `None` when every one is taken.
    pub fn enter(&self) -> Option<Slot> {
        self.slots.clone().try_acquire_owned().ok()
    }
}

/// Log lines of one kind at most once per interval, each saying how many were left out
/// before it.
pub struct LimitedLog {
    every: Duration,
    kinds: Mutex<HashMap<String, KindState>>,
}

struct KindState {
    last: Instant,
    suppressed: u64,
}

impl LimitedLog {
    pub fn new(every: Duration) -> LimitedLog {
        LimitedLog {
            every,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// The line to print now, or `None` when one of this kind was printed less than the
    /// interval ago (it is counted instead).
    pub fn admit(&self, kind: &str, text: String) -> Option<String> {
        let now = Instant::now();
        let mut kinds = lock(&self.kinds);
        let kind = if kinds.contains_key(kind) || kinds.len() < MAX_KINDS {
            kind
        } else {
            OTHER_KIND
        };
        match kinds.get_mut(kind) {
            Some(state) if now.duration_since(state.last) < self.every => {
                state.suppressed += 1;
                None
            }
            Some(state) => {
                let left_out = std::mem::take(&mut state.suppressed);
                state.last = now;
                Some(match left_out {
                    0 => text,
                    n => {
                        format!("{text} (and {n} more {kind} since the last such line, not logged)")
                    }
                })
            }
            None => {
                kinds.insert(
                    kind.to_owned(),
                    KindState {
                        last: now,
                        suppressed: 0,
                    },
                );
                Some(text)
            }
        }
    }

    /// Lines for the kinds with refusals left out and none printed for an interval, so
    /// that the count is not lost when the flood stops.
    pub fn overdue(&self) -> Vec<String> {
        let now = Instant::now();
        let mut kinds = lock(&self.kinds);
        kinds
            .iter_mut()
            .filter(|(_, state)| {
                state.suppressed > 0 && now.duration_since(state.last) >= self.every
            })
            .map(|(kind, state)| {
                let n = std::mem::take(&mut state.suppressed);
                state.last = now;
                format!(
                    "{n} more {kind} in the last {}s, not logged one by one",
                    self.every.as_secs()
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_interval_then_the_count() {
        let log = LimitedLog::new(Duration::from_millis(50));
        assert!(log.admit("wrong passwords", "a".into()).is_some());
        assert!(log.admit("idle clients", "b".into()).is_some());
        for _ in 0..5 {
            assert_eq!(log.admit("wrong passwords", "c".into()), None);
        }
        std::thread::sleep(Duration::from_millis(60));
        let next = log.admit("wrong passwords", "d".into()).unwrap();
        assert!(
            next.starts_with('d') && next.contains("5 more wrong passwords"),
            "{next}"
        );
        assert!(log.overdue().is_empty());
        assert_eq!(log.admit("wrong passwords", "e".into()), None);
        std::thread::sleep(Duration::from_millis(60));
        let overdue = log.overdue();
        assert_eq!(overdue.len(), 1);
        assert!(
            overdue[0].starts_with("1 more wrong passwords"),
            "{overdue:?}"
        );
    }

    #[test]
    fn kinds_beyond_the_bound_share_one() {
        let log = LimitedLog::new(Duration::from_secs(60));
        for i in 0..MAX_KINDS {
            assert!(log.admit(&format!("kind {i}"), "x".into()).is_some());
        }
        assert!(log.admit("one more kind", "y".into()).is_some());
        assert_eq!(log.admit("yet another kind", "z".into()), None);
        assert_eq!(lock(&log.kinds).len(), MAX_KINDS + 1);
    }

    #[test]
    fn the_gate_lets_in_its_number_and_a_slot_given_back_frees_a_place() {
        let gate = Gate::new(2);
        let first = gate.enter().unwrap();
        let _second = gate.enter().unwrap();
        assert!(gate.enter().is_none());
        drop(first);
        assert!(gate.enter().is_some());
    }
}
