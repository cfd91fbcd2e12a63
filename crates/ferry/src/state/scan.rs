//! Scan mode's checkpoint in the state file: how far each database's SCAN got with every
//! key before it written and acknowledged by the target, and what a resumed run needs to
//! tell what changed on the source while ferry was stopped.

use serde::{Deserialize, Serialize};

/// Which `--mode` wrote a state file: a file of one mode means nothing to the other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateMode {
    /// Files of earlier versions, which have no `mode`, are replication files.
    #[default]
    Replication,
    Scan,
}

impl StateMode {
    pub fn name(self) -> &'static str {
        match self {
            StateMode::Replication => "replication",
            StateMode::Scan => "scan",
        }
    }

    pub fn is_replication(&self) -> bool {
        *self == StateMode::Replication
    }
}

/// Where a scan stood when every key it had read, and every change notified before
/// [`ScanCheckpoint::source_time_ms`], was on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanCheckpoint {
    /// The source's URL (without its password).
    pub source: String,
    /// The source process's `run_id`: a SCAN cursor and an idle time mean something only
    /// to the process that gave them.
    pub run_id: String,
    /// The source's clock (`TIME`, in ms) when the checkpoint was taken: a key of the
    /// passed range that has not changed since is the same on the target.
    pub source_time_ms: i64,
    /// FLUSHDB, FLUSHALL and SWAPDB calls the source had counted (`INFO commandstats`);
    /// `None` when it refused to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unnotified_calls: Option<u64>,
    /// The source's `total_forks`: a write made while a fork runs leaves the key's idle
    /// time alone. `None` when the source does not count them or a fork was running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forks: Option<u64>,
    /// The databases scanned, or being scanned (at most one), in order.
    pub dbs: Vec<DbScan>,
}

/// One database's part of the scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbScan {
    pub db: u64,
    /// `true` once the SCAN came back to cursor 0.
    pub done: bool,
    /// The cursor the SCAN goes on from (unused when done).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cursor: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_is_written_only_for_scan_files() {
        #[derive(Serialize, Deserialize)]
        struct File {
            #[serde(default, skip_serializing_if = "StateMode::is_replication")]
            mode: StateMode,
        }
        let scan = serde_json::to_string(&File {
            mode: StateMode::Scan,
        })
        .unwrap();
        assert_eq!(scan, r#"{"mode":"scan"}"#);
        let replication = serde_json::to_string(&File {
            mode: StateMode::Replication,
        })
        .unwrap();
        assert_eq!(replication, "{}");
        let old: File = serde_json::from_str("{}").unwrap();
        assert_eq!(old.mode, StateMode::Replication);
    }
}
