//! Preflight: both servers answer, the run at `--status` copies from this source into
//! this target and follows each source primary's current history, and its lag is small.
//! Nothing is paused yet, so a failure here changes nothing.
//!
//! Also how `/status` is read per source primary ([`Switch::applied_for`]): a cluster
//! source's primaries each have their own shard of the run, found by address.

use super::{StepError, StepResult, Switch};
use crate::commands::cutover::primaries::Primaries;
use crate::commands::cutover::server::ServerLink;
use crate::commands::cutover::status::{RunStatus, ShardRun};
use std::time::{Duration, Instant};

/// How long preflight waits for the lag to come under the limit.
const LAG_WAIT: Duration = Duration::from_secs(10);

impl Switch<'_> {
    pub(super) fn preflight(&mut self) -> StepResult<RunStatus> {
        let plan = self.plan;
        let target_address = plan.target.address();
        let mut target =
            ServerLink::connect(&plan.target).map_err(|source| StepError::TargetUnreachable {
                address: target_address.clone(),
                source,
            })?;
        target.ping().map_err(|source| StepError::TargetSilent {
            address: target_address.clone(),
            source,
        })?;
        self.target_cluster = target
            .is_cluster()
            .map_err(|source| StepError::TargetInfo {
                address: target_address.clone(),
                source,
            })?;
        let source_address = plan.source.address();
        let mut source = Primaries::connect(&plan.source)?;
        let replication = source.replication()?;
        self.source = Some(source);
        self.target = Some(target);
        let mut status = self.run_status()?;
        let run = status.run.unwrap_or(plan.runs[0].addr);
        if status.source != source_address || status.target != target_address {
            return Err(StepError::OtherServers {
                run,
                copies: format!("{} -> {}", status.source, status.target),
                wanted: format!("{source_address} -> {target_address}"),
            });
        }
        for (index, replication) in replication.iter().enumerate() {
            let followed = self.followed_replid(&status, index)?;
            if followed != Some(replication.replid.as_str()) {
                let shard_run = self.shard_of(&status, index)?.and_then(|s| s.run);
                return Err(StepError::OtherHistory {
                    run: shard_run.unwrap_or(run),
                    followed: followed.unwrap_or("none yet").to_owned(),
                    primary: self.source()?.list[index].link.address.clone(),
                    replid: replication.replid.clone(),
                });
            }
        }
        let deadline = Instant::now() + LAG_WAIT;
        let lag = loop {
            if !matches!(status.phase.as_str(), "streaming" | "in-sync") {
                return Err(StepError::NotStreaming {
                    run: status.run.unwrap_or(run),
                    phase: status.phase,
                });
            }
            let offsets = self.source()?.replication()?;
            let mut lag = 0u64;
            for (index, now) in offsets.iter().enumerate() {
                let applied = self.applied_for(&status, index)?;
                lag += now.offset.saturating_sub(applied).max(0) as u64;
            }
            if lag <= plan.max_lag_bytes {
                break lag;
            }
            if Instant::now() >= deadline {
                return Err(StepError::Lagging {
                    lag,
                    max_lag: plan.max_lag_bytes,
                    waited_s: LAG_WAIT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
            self.not_interrupted()?;
            status = self.run_status()?;
        };
        if plan.promote || status.is_relay() {
            if self.target_cluster {
                return Err(StepError::ClusterTarget {
                    address: target_address,
                });
            }
            let role = self
                .target()?
                .replication()
                .map_err(StepError::TargetCommand)?;
            if role.primary.is_none() {
                return Err(StepError::NotAReplica {
                    address: target_address,
                    role: role.role,
                });
            }
        }
        let primaries = self.source()?.list.len();
        let detail = format!(
            "{} run in phase {}, lag {lag} bytes{}",
            status.mode.as_deref().unwrap_or("migrate"),
            status.phase,
            match primaries {
                1 => String::new(),
                n => format!(" over {n} source primaries"),
            }
        );
        Ok((status, detail))
    }

    /// The shard of the run that follows source primary `index`: for a cluster source, the
    /// one `/status` lists at its address.
    fn shard_of<'s>(
        &self,
        status: &'s RunStatus,
        index: usize,
    ) -> Result<Option<&'s ShardRun>, StepError> {
        let source = self
            .source
            .as_ref()
            .ok_or(StepError::NoConnection("source"))?;
        let primary = &source.list[index].link.address;
        let run = status.run.unwrap_or(self.plan.runs[0].addr);
        match (source.cluster, status.shards.is_empty()) {
            (false, true) => Ok(None),
            (false, false) => Err(StepError::RunReadsCluster {
                run,
                primary: primary.clone(),
            }),
            (true, true) => Err(StepError::RunReadsOneServer {
                run,
                primary: primary.clone(),
            }),
            (true, false) => {
                let following: Vec<&ShardRun> = status
                    .shards
                    .iter()
                    .filter(|shard| shard.node == *primary)
                    .collect();
                match following[..] {
                    [one] => Ok(Some(one)),
                    [] => {
                        let followed: Vec<&str> =
                            status.shards.iter().map(|s| s.node.as_str()).collect();
                        Err(StepError::NoShard {
                            runs: self.run_addresses(),
                            primary: primary.clone(),
                            followed: followed.join(", "),
                        })
                    }
                    _ => Err(StepError::FollowedTwice {
                        primary: primary.clone(),
                        runs: following
                            .iter()
                            .filter_map(|shard| shard.run.map(|addr| addr.to_string()))
                            .collect::<Vec<_>>()
                            .join(", "),
                    }),
                }
            }
        }
    }

    fn followed_replid<'s>(
        &self,
        status: &'s RunStatus,
        index: usize,
    ) -> Result<Option<&'s str>, StepError> {
        Ok(match self.shard_of(status, index)? {
            Some(shard) => shard.replid.as_deref(),
            None => status.source_replid.as_deref(),
        })
    }

    /// The offset the run has applied of source primary `index`'s stream.
    pub(super) fn applied_for(&self, status: &RunStatus, index: usize) -> Result<i64, StepError> {
        Ok(match self.shard_of(status, index)? {
            Some(shard) => shard.applied_offset,
            None => status.applied_offset,
        })
    }
}
