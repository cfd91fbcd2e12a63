//! The standalone soak: Redis 7.0 → Valkey 8.1 through two fault proxies, under a write
//! load, while ferry is killed, the target crashes (append-only file, fsync every
//! second), the source restarts, and either link is cut or stalled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use ferry_testkit::rng::Rng;
use ferry_testkit::snapshot::Snapshot;
use ferry_testkit::workload::Workload;
use ferry_testkit::FaultProxy;
use ferry_testkit::{dataset, Server, ServerKind};

use super::record::{FaultLog, Outcome};
use super::supervisor::{count_in_log, Supervised};
use super::{pause_between_faults, settle, verify, wait_for, Soak};
use crate::bench::migrate::{master_repl_offset, read_state};

#[derive(Clone, Copy)]
enum Fault {
    KillFerry,
    CrashTarget,
    RestartSource,
    CutSourceLink,
    CutTargetLink,
    StallSourceLink,
    StallTargetLink,
}

const FAULTS: [Fault; 7] = [
    Fault::KillFerry,
    Fault::CrashTarget,
    Fault::RestartSource,
    Fault::CutSourceLink,
    Fault::CutTargetLink,
    Fault::StallSourceLink,
    Fault::StallTargetLink,
];

pub fn run(soak: &Soak, minutes: f64, rng: &mut Rng) -> Result<Outcome> {
    let dir = soak.dir.join("standalone");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut source = Server::start(ServerKind::Redis70)?;
    dataset::populate(&source)?;
    let mut target = Server::start_with_args(ServerKind::Valkey81, &["--appendonly", "yes"])?;
    let source_link = FaultProxy::start(source.port())?;
    let target_link = FaultProxy::start(target.port())?;

    let stop_load = Arc::new(AtomicBool::new(false));
    let load = Workload::new(ServerKind::Redis70, rng.next_u64())
        .with_rate(Some(2_000))
        .start(source.url(), stop_load.clone());

    let state = dir.join("ferry.state");
    let args = vec![
        "migrate".to_string(),
        "--source".into(),
        source_link.url(),
        "--target".into(),
        target_link.url(),
        "--state".into(),
        state.display().to_string(),
        "--connect-timeout".into(),
        "5".into(),
    ];
    let mut ferry = Supervised::start(&soak.ferry, args, dir.join("ferry.log"))?;
    let mut faults = FaultLog::new();
    let deadline = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    while Instant::now() < deadline {
        pause_between_faults(rng, &mut ferry, &mut faults)?;
        let fault = rng.pick(&FAULTS);
        match fault {
            Fault::KillFerry => {
                ferry.kill_and_restart()?;
                faults.note("kill ferry (SIGKILL) and restart", "");
            }
            Fault::CrashTarget => {
                target.crash_and_restart()?;
                faults.note("crash the target (SIGKILL, AOF everysec)", "");
            }
            Fault::RestartSource => {
                source.restart()?;
                faults.note("restart the source (SHUTDOWN SAVE)", "");
            }
            Fault::CutSourceLink => {
                source_link.cut();
                faults.note("cut the source link", "");
            }
            Fault::CutTargetLink => {
                target_link.cut();
                faults.note("cut the target link", "");
            }
            Fault::StallSourceLink | Fault::StallTargetLink => {
                let (link, kind) = match fault {
                    Fault::StallSourceLink => (&source_link, "stall the source link"),
                    _ => (&target_link, "stall the target link"),
                };
                let seconds = 2 + rng.below(7);
                link.stall();
                faults.note(kind, format!("{seconds} s"));
                wait_for(Duration::from_secs(seconds), &mut ferry, &mut faults)?;
                link.resume();
            }
        }
    }

    // Quiet: the load stops, ferry catches up, and both checks run.
    stop_load.store(true, Ordering::Relaxed);
    let stats = load
        .join()
        .map_err(|_| anyhow::anyhow!("the write load panicked"))?;
    faults.event(format!("load stopped after {} operations", stats.total()));
    let quiet = Instant::now();
    let (differences, keys) = settle(
        &mut ferry,
        &mut faults,
        || Snapshot::capture(&source),
        || master_repl_offset(&mut source.client()),
        |wanted| read_state(&state).is_some_and(|(_, applied)| applied >= *wanted),
        || Snapshot::capture(&target),
    )?;
    let verify_exit = verify(soak, &source.url(), &target.url())?;
    let time_to_equal = quiet.elapsed();
    ferry.stop()?;
    Ok(Outcome {
        name: "Redis 7.0 → Valkey 8.1 (standalone, through fault proxies)".into(),
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
