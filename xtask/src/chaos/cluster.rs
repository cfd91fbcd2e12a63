//! The cluster soak: a Redis 7.0 cluster of three primaries, each with a replica, into a
//! Valkey 8.1 cluster of three, under a write load on every primary, while ferry is
//! killed, source primaries fail over (`CLUSTER FAILOVER`), and the operator's own
//! `redis-cli --cluster reshard` and `rebalance` move slots between source shards.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;
use ferry_testkit::rng::Rng;
use ferry_testkit::workload::{Workload, WorkloadStats};
use ferry_testkit::{dataset, Cluster, Server, ServerKind};

use super::record::{FaultLog, Outcome};
use super::supervisor::{count_in_log, Supervised};
use super::{pause_between_faults, settle, verify, Soak};
use crate::bench::migrate::master_repl_offset;

const PRIMARIES: usize = 3;

#[derive(Clone, Copy)]
enum Fault {
    KillFerry,
    Failover,
    Reshard,
    Rebalance,
}

const FAULTS: [Fault; 4] = [
    Fault::KillFerry,
    Fault::Failover,
    Fault::Reshard,
    Fault::Rebalance,
];

/// One write load per source primary, restarted on the node that primary's slots move
/// to when it fails over.
struct Loads {
    stop: Vec<Arc<AtomicBool>>,
    threads: Vec<Option<JoinHandle<WorkloadStats>>>,
    operations: u64,
}

impl Loads {
    fn start(cluster: &Cluster, rng: &mut Rng) -> Result<Loads> {
        let mut loads = Loads {
            stop: Vec::new(),
            threads: Vec::new(),
            operations: 0,
        };
        for primary in 0..PRIMARIES {
            loads.stop.push(Arc::new(AtomicBool::new(false)));
            loads.threads.push(None);
            loads.restart(cluster, primary, rng)?;
        }
        Ok(loads)
    }

    fn restart(&mut self, cluster: &Cluster, primary: usize, rng: &mut Rng) -> Result<()> {
        self.end(primary);
        self.stop[primary] = Arc::new(AtomicBool::new(false));
        let load = Workload::new(cluster.kind(), rng.next_u64())
            .for_cluster()
            .with_key_tag(&cluster.tag_for(primary)?)
            .with_rate(Some(700))
            .start(cluster.nodes()[primary].url(), self.stop[primary].clone());
        self.threads[primary] = Some(load);
        Ok(())
    }

    fn end(&mut self, primary: usize) {
        self.stop[primary].store(true, Ordering::Relaxed);
        if let Some(thread) = self.threads[primary].take() {
            self.operations += thread.join().map_or(0, |stats| stats.total());
        }
    }

    fn end_all(&mut self) -> u64 {
        for primary in 0..PRIMARIES {
            self.end(primary);
        }
        self.operations
    }
}

pub fn run(soak: &Soak, minutes: f64, rng: &mut Rng) -> Result<Outcome> {
    let dir = soak.dir.join("cluster");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut source = Cluster::start_with_replicas(ServerKind::Redis70, PRIMARIES, 1)?;
    let staging = Server::start(ServerKind::Redis70)?;
    dataset::populate_db0(&staging)?;
    source.copy_from(&staging)?;
    drop(staging);
    let target = Cluster::start(ServerKind::Valkey81, PRIMARIES)?;
    let mut loads = Loads::start(&source, rng)?;

    let state = dir.join("ferry.state");
    let args = vec![
        "migrate".to_string(),
        "--source".into(),
        source.url(),
        "--target".into(),
        target.url(),
        "--state".into(),
        state.display().to_string(),
    ];
    let mut ferry = Supervised::start(&soak.ferry, args, dir.join("ferry.log"))?;
    let mut faults = FaultLog::new();
    let deadline = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    while Instant::now() < deadline {
        pause_between_faults(rng, &mut ferry, &mut faults)?;
        match rng.pick(&FAULTS) {
            Fault::KillFerry => {
                ferry.kill_and_restart()?;
                faults.note("kill ferry (SIGKILL) and restart", "");
            }
            Fault::Failover => {
                let primary = rng.index(PRIMARIES);
                source.failover(primary)?;
                loads.restart(&source, primary, rng)?;
                faults.note(
                    "CLUSTER FAILOVER of a source primary",
                    format!("shard {primary}"),
                );
            }
            Fault::Reshard => {
                let from = rng.index(PRIMARIES);
                let to = (from + 1 + rng.index(PRIMARIES - 1)) % PRIMARIES;
                let slots = 50 + rng.below(300) as u32;
                source.cli_reshard(from, to, slots)?;
                faults.note(
                    "redis-cli --cluster reshard",
                    format!("{slots} slots, shard {from} → {to}"),
                );
            }
            Fault::Rebalance => {
                source.cli_rebalance(0, 1)?;
                faults.note("redis-cli --cluster rebalance", "");
            }
        }
    }

    let operations = loads.end_all();
    faults.event(format!("loads stopped after {operations} operations"));
    let quiet = Instant::now();
    let (differences, keys) = settle(
        &mut ferry,
        &mut faults,
        || source.snapshot(),
        || {
            source
                .nodes()
                .iter()
                .map(|node| {
                    let offset = master_repl_offset(&mut node.try_client()?)?;
                    Ok((format!("127.0.0.1:{}", node.port()), offset))
                })
                .collect::<Result<Vec<_>>>()
        },
        |wanted| {
            let applied = shard_offsets(&state);
            wanted.iter().all(|(node, offset)| {
                applied
                    .iter()
                    .any(|(at, applied)| at == node && applied >= offset)
            })
        },
        || target.snapshot(),
    )?;
    let verify_exit = verify(soak, &source.url(), &target.url())?;
    let time_to_equal = quiet.elapsed();
    ferry.stop()?;
    Ok(Outcome {
        name: "Redis 7.0 cluster of 3 (+replicas) → Valkey 8.1 cluster of 3".into(),
        minutes,
        full_syncs: count_in_log(ferry.log(), "full sync: receiving"),
        ferry_exits: ferry.exits.clone(),
        faults,
        time_to_equal,
        keys,
        verify_exit,
        differences,
    })
}

/// The offset each shard's entry in the state file records, by the node it follows.
fn shard_offsets(state: &Path) -> Vec<(String, i64)> {
    let Ok(text) = std::fs::read_to_string(state) else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    value
        .get("shards")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
        .filter_map(|shard| {
            shard.get("replid")?.as_str()?;
            Some((
                shard.get("node")?.as_str()?.to_string(),
                shard.get("offset")?.as_i64()?,
            ))
        })
        .collect()
}
