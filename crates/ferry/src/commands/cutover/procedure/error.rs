//! Why a step failed. The texts are the reasons the switch's one-line error gives after
//! `failed at step NAME: `; a server's or a helper's own words follow as the source, so
//! [`crate::error::one_line`] of the chain is the whole reason.

use crate::commands::cutover::hook::HookError;
use crate::commands::cutover::primaries::{PauseError, PrimaryError};
use crate::commands::cutover::server::SlotMapError;
use crate::commands::cutover::status::StatusError;

/// `run` is always the address of a run's `/status` (`--status`; one per worker).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("interrupted (Ctrl-C or SIGTERM)")]
    Interrupted,
    /// A step ran before the one that connects (`source` or `target`): a bug.
    #[error("internal: no {0} connection")]
    NoConnection(&'static str),

    // Preflight: the servers and the run are the ones the operator named.
    #[error("target {address} is unreachable")]
    TargetUnreachable {
        address: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("target {address} does not answer")]
    TargetSilent {
        address: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("target {address}")]
    TargetInfo {
        address: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("the run at {run} copies {copies}, not {wanted}")]
    OtherServers {
        run: std::net::SocketAddr,
        /// `source -> target`, as `/status` and the command line say.
        copies: String,
        wanted: String,
    },
    #[error(
        "the run at {run} follows replication ID {followed} for {primary}, which has \
         {replid}"
    )]
    OtherHistory {
        run: std::net::SocketAddr,
        /// The ID the run follows, or `none yet`.
        followed: String,
        primary: String,
        replid: String,
    },
    #[error("the run at {run} is {phase}, not streaming")]
    NotStreaming {
        run: std::net::SocketAddr,
        phase: String,
    },
    #[error("the target is {lag} bytes behind (--max-lag-bytes {max_lag}) after {waited_s} s")]
    Lagging {
        lag: u64,
        max_lag: u64,
        waited_s: u64,
    },
    #[error("target {address} is a cluster node: there is no replica to promote")]
    ClusterTarget { address: String },
    #[error("target {address} is not a replica (role:{role}); nothing to promote")]
    NotAReplica { address: String, role: String },
    #[error("the run at {run} reads a cluster source, and {primary} is not a cluster node")]
    RunReadsCluster {
        run: std::net::SocketAddr,
        primary: String,
    },
    #[error(
        "the run at {run} reads one server, and {primary} is a cluster node (an older \
         ferry, or another run)"
    )]
    RunReadsOneServer {
        run: std::net::SocketAddr,
        primary: String,
    },
    #[error(
        "no run at {runs} follows {primary} (they follow {followed}): the source's \
         primaries changed since they started, or a worker is missing; wait for them to \
         follow it, or give every worker's --status"
    )]
    NoShard {
        runs: String,
        primary: String,
        /// The shards' nodes, comma-separated.
        followed: String,
    },
    #[error(
        "{primary} is followed by the runs at {runs}: each source primary must be one \
         worker's (check their --shards K/N)"
    )]
    FollowedTwice { primary: String, runs: String },
    #[error("the runs at {runs} copy different servers ({copies}); give cutover the workers of one migration")]
    RunsDisagree { runs: String, copies: String },

    // The pause and the offsets under it.
    #[error(
        "the target applied offset {applied} of {wanted} within {timeout_ms} ms \
         (--drain-timeout-ms)"
    )]
    NotDrained {
        applied: String,
        wanted: String,
        timeout_ms: u128,
    },
    #[error("the write pause ({timeout_ms} ms, --pause-timeout-ms) ran out {when}")]
    PauseRanOut {
        timeout_ms: u128,
        /// Where the switch was, e.g. `before the migration was stopped`.
        when: &'static str,
    },
    #[error(
        "the source's offset moved from {before} to {after} while paused (on {primary}), by \
         more than replication PINGs; those writes may be missing on the target"
    )]
    WrittenWhilePaused {
        before: i64,
        after: i64,
        primary: String,
    },

    // Verify.
    #[error(
        "not done within {timeout_ms} ms (--verify-timeout-ms; a huge key in the sample?): \
         lower --verify-sample or raise the limit"
    )]
    VerifySlow { timeout_ms: u128 },
    #[error(
        "{differing} of {compared} sampled keys differ{first}; run ferry verify for the full \
         list"
    )]
    SampleDiffers {
        differing: u64,
        compared: u64,
        /// ` (first: db0 key differs by ttl)`, or empty.
        first: String,
    },

    #[error("the run at {run} did not stop within {timeout_s} s")]
    NotStopped {
        run: std::net::SocketAddr,
        timeout_s: u64,
    },

    // The helpers' errors, in their own words.
    #[error(transparent)]
    Primary(#[from] PrimaryError),
    #[error(transparent)]
    Pause(#[from] PauseError),
    #[error(transparent)]
    Status(#[from] StatusError),
    /// A command the target refused or could not answer (promotion, its undo).
    #[error(transparent)]
    TargetCommand(redis::RedisError),
    #[error(transparent)]
    SlotMap(#[from] SlotMapError),
    #[error(transparent)]
    Verify(Box<crate::error::Error>),
    #[error(transparent)]
    Hook(#[from] HookError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{chain, one_line};

    fn line(error: &StepError) -> String {
        one_line(chain(error))
    }

    #[test]
    fn a_wrapped_cause_follows_its_step_reason_once() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = StepError::TargetUnreachable {
            address: "127.0.0.1:1".into(),
            source: Box::new(refused),
        };
        assert_eq!(line(&error), "target 127.0.0.1:1 is unreachable: refused");
        let server = redis::RedisError::from((redis::ErrorKind::Io, "gone"));
        let error = StepError::TargetCommand(server);
        assert_eq!(line(&error), "gone - Io");
    }

    #[test]
    fn reasons_read_as_before() {
        let error = StepError::PauseRanOut {
            timeout_ms: 3000,
            when: "before the migration was stopped",
        };
        assert_eq!(
            line(&error),
            "the write pause (3000 ms, --pause-timeout-ms) ran out before the migration was \
             stopped"
        );
        let error = StepError::WrittenWhilePaused {
            before: 10,
            after: 11,
            primary: "a:1".into(),
        };
        assert_eq!(
            line(&error),
            "the source's offset moved from 10 to 11 while paused (on a:1), by more than \
             replication PINGs; those writes may be missing on the target"
        );
        assert_eq!(
            line(&StepError::Interrupted),
            "interrupted (Ctrl-C or SIGTERM)"
        );
        assert_eq!(
            line(&StepError::NoConnection("source")),
            "internal: no source connection"
        );
    }
}
