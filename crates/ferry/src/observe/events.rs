//! Typed events for automation: with `--json`, one JSON object per line on stdout.

use serde::Serialize;
use std::io::Write;

/// Where the migration is. Serialized in kebab case (`full-sync`), as in `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Starting,
    FullSync,
    Streaming,
    InSync,
    Reconnecting,
    Stopped,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::Starting,
        Phase::FullSync,
        Phase::Streaming,
        Phase::InSync,
        Phase::Reconnecting,
        Phase::Stopped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::FullSync => "full-sync",
            Phase::Streaming => "streaming",
            Phase::InSync => "in-sync",
            Phase::Reconnecting => "reconnecting",
            Phase::Stopped => "stopped",
        }
    }

    pub(crate) fn from_index(index: u8) -> Phase {
        Phase::ALL
            .get(usize::from(index))
            .copied()
            .unwrap_or(Phase::Starting)
    }

    pub(crate) fn index(self) -> u8 {
        Phase::ALL.iter().position(|p| *p == self).unwrap_or(0) as u8
    }
}

/// One event. Addresses never carry a password (they are `host:port`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event<'a> {
    /// Both servers answered.
    Started {
        source: &'a str,
        source_server: &'a str,
        target: &'a str,
        target_server: &'a str,
    },
    Phase {
        phase: Phase,
        /// The replication offset the phase starts at, when there is one.
        #[serde(skip_serializing_if = "Option::is_none")]
        offset: Option<i64>,
    },
    /// Periodic, during the full sync.
    FullSyncProgress {
        keys: u64,
        bytes: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        total_bytes: Option<u64>,
        keys_per_sec: f64,
    },
    /// Periodic, while streaming.
    StreamProgress {
        applied_offset: i64,
        source_offset: i64,
        lag_bytes: i64,
        ops_per_sec: f64,
    },
    /// A policy decision reported (what a policy flag did to the data).
    Policy { report: &'a str },
    /// Every human log line, as printed on stderr without the `ferry: ` prefix.
    Log { message: &'a str },
    /// The error the run ends with (also printed on stderr as the last line).
    Error { message: &'a str },
}

/// Writes events as JSON lines on stdout, or nothing.
///
/// `main` keeps stdout locked for the whole command; the lock is reentrant, and events are
/// only written from the migration future, which runs on that same thread (`block_on`).
#[derive(Debug, Clone, Copy)]
pub struct JsonLines {
    pub enabled: bool,
}

impl JsonLines {
    pub fn emit(&self, event: &Event<'_>) {
        if !self.enabled {
            return;
        }
        // Serializing a plain enum of numbers and strings cannot fail.
        if let Ok(mut line) = serde_json::to_string(event) {
            line.push('\n');
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip_through_their_index() {
        for phase in Phase::ALL {
            assert_eq!(Phase::from_index(phase.index()), phase);
        }
    }

    #[test]
    fn events_are_tagged_and_kebab_cased() {
        let text = serde_json::to_string(&Event::Phase {
            phase: Phase::FullSync,
            offset: None,
        })
        .unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["event"], "phase");
        assert_eq!(value["phase"], "full-sync");
        assert!(value.get("offset").is_none());
    }
}
