//! The switch itself, shared by cutover and rollback:
//!
//! ```text
//! preflight ─ pause ─ offset ─ drain ─ verify ─ [promote] ─ [hook] ─ stop ─ check ─
//!             release ─ kill ─ unpause
//!             └── writes paused on the source, from pause to unpause ──┘
//! ```
//!
//! Once the source is paused every failure unpauses it; a promotion is undone; the
//! migration keeps running unless the failure came after it was stopped (then its state
//! file resumes it).
//!
//! A cluster source is paused, read, drained and checked primary by primary
//! ([`Primaries`]), each against its own shard of the run's `/status`.

use super::hook;
use super::interrupt::Interrupt;
use super::primaries::Primaries;
use super::report::{StepTime, SwitchReport};
use super::server::ServerLink;
use super::status::{RunStatus, ShardRun, StatusEndpoint};
use crate::error::{chain, one_line};
use crate::policy::Policies;
use crate::url::ServerUrl;
use crate::verify::{self, VerifyOptions};
use std::time::{Duration, Instant};

/// How long preflight waits for the lag to come under the limit.
const LAG_WAIT: Duration = Duration::from_secs(10);
/// How often `/status` is read while waiting; the run refreshes it every 100 ms.
const POLL: Duration = Duration::from_millis(5);
/// Longest wait for the run to exit after `POST /stop`; it has nothing left to apply.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// `*1\r\n$4\r\nPING\r\n`: what a paused primary still adds to its stream.
const PING_BYTES: i64 = 14;
/// Slack for the two clocks timing the pause (ours and the server's).
const PAUSE_MARGIN: Duration = Duration::from_millis(200);

/// Everything the switch needs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `cutover` or `rollback`, for messages.
    pub command: &'static str,
    /// The running migration's source (clients leave it) and target (they move to it).
    pub source: ServerUrl,
    pub target: ServerUrl,
    pub status: StatusEndpoint,
    pub exec: Option<String>,
    /// Moves clients back if a step after the hook fails.
    pub exec_undo: Option<String>,
    pub exec_timeout: Duration,
    pub max_lag_bytes: u64,
    pub pause_timeout: Duration,
    pub drain_timeout: Duration,
    pub verify_sample: u64,
    pub verify_timeout: Duration,
    pub promote: bool,
    pub kill_clients: bool,
    pub policies: Policies,
}

/// Why a step stopped when the operator interrupted the switch.
const INTERRUPTED: &str = "interrupted (Ctrl-C or SIGTERM)";

/// A failed step: its name and the reason, one line.
struct Failure {
    step: &'static str,
    reason: String,
}

fn line(error: &(dyn std::error::Error + 'static)) -> String {
    one_line(chain(error))
}

/// The switch as it goes: what has been done so far, so a failure can be undone.
struct Switch<'a> {
    plan: &'a Plan,
    interrupt: &'a Interrupt,
    report: SwitchReport,
    source: Option<Primaries>,
    target: Option<ServerLink>,
    /// Whether the target is a cluster: markers per slot, no import mode, nothing to promote.
    target_cluster: bool,
    paused_at: Option<Instant>,
    /// Each source primary's offset once paused, in the order of [`Primaries::list`].
    paused_offsets: Vec<i64>,
    /// The target's primary before promotion, to go back to.
    promoted_from: Option<(String, u16)>,
    run_stopped: bool,
    stop_sent: bool,
    hook_ran: bool,
}

/// Runs the switch; the report says how it went (`ok`, the failed step, the pause). An
/// `interrupt` before the migration is told to stop undoes it like a failure.
pub fn run(plan: &Plan, interrupt: &Interrupt) -> SwitchReport {
    let mut switch = Switch {
        plan,
        interrupt,
        report: SwitchReport::new(plan.command, plan.source.address(), plan.target.address()),
        source: None,
        target: None,
        target_cluster: false,
        paused_at: None,
        paused_offsets: Vec::new(),
        promoted_from: None,
        run_stopped: false,
        stop_sent: false,
        hook_ran: false,
    };
    match switch.steps() {
        Ok(()) => switch.report.ok = true,
        Err(failure) => switch.fail(failure),
    }
    switch.report
}

impl Switch<'_> {
    fn steps(&mut self) -> Result<(), Failure> {
        let status = self.step("preflight", Self::preflight)?;
        let promote = self.plan.promote || status.is_relay();
        self.step("pause", Self::pause)?;
        self.step("offset", Self::offset)?;
        self.step("drain", Self::drain)?;
        if self.plan.verify_sample > 0 {
            self.step("verify", Self::verify)?;
        }
        if promote {
            self.step("promote", Self::promote)?;
        }
        if self.plan.exec.is_some() {
            self.step("hook", Self::hook)?;
        }
        self.step("stop", Self::stop_run)?;
        self.step("check", Self::check)?;
        self.step("release", Self::release_target)?;
        if self.plan.kill_clients {
            self.step("kill", Self::kill_clients)?;
        }
        self.step("unpause", Self::unpause)?;
        Ok(())
    }

    /// Times one step and records it.
    fn step<T>(
        &mut self,
        name: &'static str,
        action: impl FnOnce(&mut Self) -> Result<(T, String), String>,
    ) -> Result<T, Failure> {
        self.not_interrupted()
            .map_err(|reason| Failure { step: name, reason })?;
        let started = Instant::now();
        let result = action(self);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok((value, detail)) => {
                self.report.steps.push(StepTime {
                    step: name,
                    ms,
                    detail,
                });
                Ok(value)
            }
            Err(reason) => Err(Failure { step: name, reason }),
        }
    }

    /// Fails once the operator asked to stop, unless the migration was already told to
    /// stop: from there finishing is quicker and safer than undoing.
    fn not_interrupted(&self) -> Result<(), String> {
        if self.interrupt.requested() && !self.stop_sent {
            return Err(INTERRUPTED.to_owned());
        }
        Ok(())
    }

    fn source(&mut self) -> Result<&mut Primaries, String> {
        self.source
            .as_mut()
            .ok_or_else(|| "internal: no source connection".to_owned())
    }

    fn target(&mut self) -> Result<&mut ServerLink, String> {
        self.target
            .as_mut()
            .ok_or_else(|| "internal: no target connection".to_owned())
    }

    /// Both servers answer, the run copies from this source into this target, and its
    /// lag is small.
    fn preflight(&mut self) -> Result<(RunStatus, String), String> {
        let plan = self.plan;
        let target_address = plan.target.address();
        let mut target = ServerLink::connect(&plan.target)
            .map_err(|e| format!("target {target_address} is unreachable: {}", line(&*e)))?;
        target
            .ping()
            .map_err(|e| format!("target {target_address} does not answer: {}", line(&e)))?;
        self.target_cluster = target
            .is_cluster()
            .map_err(|e| format!("target {target_address}: {}", line(&e)))?;
        let source_address = plan.source.address();
        let mut source = Primaries::connect(&plan.source)?;
        let replication = source.replication()?;
        self.source = Some(source);
        self.target = Some(target);
        let mut status = plan.status.status().map_err(|e| line(&e))?;
        if status.source != source_address || status.target != target_address {
            return Err(format!(
                "the run at {} copies {} -> {}, not {source_address} -> {target_address}",
                plan.status.addr, status.source, status.target
            ));
        }
        for (index, replication) in replication.iter().enumerate() {
            let followed = self.followed_replid(&status, index)?;
            if followed != Some(replication.replid.as_str()) {
                return Err(format!(
                    "the run at {} follows replication ID {} for {}, which has {}",
                    plan.status.addr,
                    followed.unwrap_or("none yet"),
                    self.source()?.list[index].link.address,
                    replication.replid
                ));
            }
        }
        let deadline = Instant::now() + LAG_WAIT;
        let lag = loop {
            if !matches!(status.phase.as_str(), "streaming" | "in-sync") {
                return Err(format!(
                    "the run at {} is {}, not streaming",
                    plan.status.addr, status.phase
                ));
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
                return Err(format!(
                    "the target is {lag} bytes behind (--max-lag-bytes {}) after {} s",
                    plan.max_lag_bytes,
                    LAG_WAIT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
            self.not_interrupted()?;
            status = plan.status.status().map_err(|e| line(&e))?;
        };
        if plan.promote || status.is_relay() {
            if self.target_cluster {
                return Err(format!(
                    "target {target_address} is a cluster node: there is no replica to promote"
                ));
            }
            let role = self.target()?.replication().map_err(|e| line(&e))?;
            if role.primary.is_none() {
                return Err(format!(
                    "target {target_address} is not a replica (role:{}); nothing to promote",
                    role.role
                ));
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
    ) -> Result<Option<&'s ShardRun>, String> {
        let source = self
            .source
            .as_ref()
            .ok_or_else(|| "internal: no source connection".to_owned())?;
        let address = &source.list[index].link.address;
        match (source.cluster, status.shards.is_empty()) {
            (false, true) => Ok(None),
            (false, false) => Err(format!(
                "the run at {} reads a cluster source, and {address} is not a cluster node",
                self.plan.status.addr
            )),
            (true, true) => Err(format!(
                "the run at {} reads one server, and {address} is a cluster node (an older \
                 ferry, or another run)",
                self.plan.status.addr
            )),
            (true, false) => status
                .shards
                .iter()
                .find(|shard| shard.node == *address)
                .map(Some)
                .ok_or_else(|| {
                    let followed: Vec<&str> =
                        status.shards.iter().map(|s| s.node.as_str()).collect();
                    format!(
                        "the run at {} follows no shard at {address} (it follows {}): the \
                         source's primaries changed since it started; wait for it to follow \
                         them",
                        self.plan.status.addr,
                        followed.join(", ")
                    )
                }),
        }
    }

    fn followed_replid<'s>(
        &self,
        status: &'s RunStatus,
        index: usize,
    ) -> Result<Option<&'s str>, String> {
        Ok(match self.shard_of(status, index)? {
            Some(shard) => shard.replid.as_deref(),
            None => status.source_replid.as_deref(),
        })
    }

    /// The offset the run has applied of source primary `index`'s stream.
    fn applied_for(&self, status: &RunStatus, index: usize) -> Result<i64, String> {
        Ok(match self.shard_of(status, index)? {
            Some(shard) => shard.applied_offset,
            None => status.applied_offset,
        })
    }

    fn pause(&mut self) -> Result<((), String), String> {
        let timeout = self.plan.pause_timeout;
        // The window counts from the moment the command leaves: writes may already wait.
        self.paused_at = Some(Instant::now());
        if let Err((reason, maybe_paused)) = self.source()?.pause_writes(timeout) {
            if !maybe_paused {
                self.paused_at = None;
            }
            return Err(reason);
        }
        let primaries = self.source()?.list.len();
        Ok((
            (),
            match primaries {
                1 => format!("CLIENT PAUSE {} WRITE", timeout.as_millis()),
                n => format!(
                    "CLIENT PAUSE {} WRITE on {n} primaries",
                    timeout.as_millis()
                ),
            },
        ))
    }

    /// Every write the source accepted before the pause is at or below its offset now.
    fn offset(&mut self) -> Result<((), String), String> {
        let source = self.source()?;
        let offsets: Vec<i64> = source.replication()?.iter().map(|r| r.offset).collect();
        let detail = describe_offsets(&source.addresses(), &offsets);
        if source.cluster {
            self.report.paused_offsets = source
                .addresses()
                .into_iter()
                .zip(offsets.iter().copied())
                .collect();
        } else {
            self.report.paused_offset = offsets.first().copied();
        }
        self.paused_offsets = offsets;
        Ok(((), format!("source offset {detail}")))
    }

    /// Waits until the run reports each primary's offset applied on the target.
    fn drain(&mut self) -> Result<((), String), String> {
        let plan = self.plan;
        let wanted = self.paused_offsets.clone();
        let deadline = Instant::now() + plan.drain_timeout;
        loop {
            let status = plan.status.status().map_err(|e| line(&e))?;
            let mut applied = Vec::with_capacity(wanted.len());
            for index in 0..wanted.len() {
                applied.push(self.applied_for(&status, index)?);
            }
            if applied.iter().zip(&wanted).all(|(have, want)| have >= want) {
                let addresses = self.source()?.addresses();
                return Ok((
                    (),
                    format!("applied offset {}", describe_offsets(&addresses, &applied)),
                ));
            }
            if Instant::now() >= deadline {
                let addresses = self.source()?.addresses();
                return Err(format!(
                    "the target applied offset {} of {} within {} ms (--drain-timeout-ms)",
                    describe_offsets(&addresses, &applied),
                    describe_offsets(&addresses, &wanted),
                    plan.drain_timeout.as_millis()
                ));
            }
            self.not_interrupted()?;
            std::thread::sleep(POLL);
        }
    }

    /// A sample of keys compared while nothing moves.
    fn verify(&mut self) -> Result<((), String), String> {
        let plan = self.plan;
        let options = VerifyOptions {
            // Both sides are still: a second look only rules out a key expiring mid-read.
            rounds: 2,
            round_pause: Duration::from_millis(50),
            policies: plan.policies.clone(),
            ..VerifyOptions::new(plan.source.clone(), plan.target.clone())
        };
        // On its own thread, so that a slow one is abandoned (it only reads) at the limit.
        let (done, outcome) = std::sync::mpsc::channel();
        let sample = plan.verify_sample;
        std::thread::spawn(move || {
            let _ = done.send(verify::run_sampled(&options, sample));
        });
        let deadline = Instant::now() + plan.verify_timeout;
        let report = loop {
            match outcome.recv_timeout(POLL) {
                Ok(result) => break result.map_err(|e| line(&e))?,
                Err(_) if Instant::now() >= deadline => {
                    return Err(format!(
                        "not done within {} ms (--verify-timeout-ms; a huge key in the sample?): \
                         lower --verify-sample or raise the limit",
                        plan.verify_timeout.as_millis()
                    ))
                }
                Err(_) => self.not_interrupted()?,
            }
        };
        let compared = report.summary.keys_compared;
        if report.is_clean() {
            return Ok(((), format!("{compared} sampled keys equal")));
        }
        let first = report
            .differences
            .first()
            .map(|d| {
                let kinds: Vec<&str> = d.kinds().iter().map(|k| k.name()).collect();
                format!(
                    " (first: db{} {} differs by {})",
                    d.db,
                    d.key,
                    kinds.join(", ")
                )
            })
            .unwrap_or_default();
        Err(format!(
            "{} of {compared} sampled keys differ{first}; run ferry verify for the full list",
            report.summary.differing
        ))
    }

    /// The target stops following (relay mode) and takes writes.
    fn promote(&mut self) -> Result<((), String), String> {
        let target = self.target()?;
        let before = target.replication().map_err(|e| line(&e))?;
        target.replicate_from(None).map_err(|e| line(&e))?;
        let detail = match &before.primary {
            Some((host, port)) => format!("REPLICAOF NO ONE (was replica of {host}:{port})"),
            None => "REPLICAOF NO ONE".to_owned(),
        };
        self.promoted_from = before.primary;
        Ok(((), detail))
    }

    fn hook(&mut self) -> Result<((), String), String> {
        let plan = self.plan;
        let Some(command) = &plan.exec else {
            return Ok(((), String::new()));
        };
        // A hook that fails may have moved some clients already: undo counts from here.
        self.hook_ran = true;
        let interrupt = self.interrupt;
        hook::run(
            command,
            (&plan.source.address(), &plan.target.address()),
            plan.exec_timeout,
            &|| interrupt.requested(),
        )
        .map_err(|e| line(&e))?;
        Ok(((), "--exec exited 0".to_owned()))
    }

    /// Ends the run, so that nothing written on the old source from now on reaches the
    /// target (which clients now write to).
    fn stop_run(&mut self) -> Result<((), String), String> {
        // Past the pause, writes reach the source again: the run must go on carrying them.
        self.pause_in_force("before the migration was stopped")?;
        let endpoint = &self.plan.status;
        endpoint.stop().map_err(|e| line(&e))?;
        self.stop_sent = true;
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match endpoint.status() {
                Ok(status) if status.phase == "stopped" => break,
                Err(error) if error.is_refused() => break,
                Ok(_) | Err(_) if Instant::now() >= deadline => {
                    return Err(format!(
                        "the run at {} did not stop within {} s",
                        endpoint.addr,
                        STOP_TIMEOUT.as_secs()
                    ))
                }
                _ => std::thread::sleep(POLL),
            }
        }
        self.run_stopped = true;
        Ok(((), format!("the run at {} stopped", endpoint.addr)))
    }

    /// Proof that no write reached the source since its offsets were read: the pause was
    /// still in force (the server's timer started after ours), and each primary's offset
    /// moved by replication PINGs at most (a primary keeps sending them while paused).
    fn check(&mut self) -> Result<((), String), String> {
        let wanted = self.paused_offsets.clone();
        self.pause_in_force(
            "while the migration stopped; writes made since may be missing on the target",
        )?;
        let source = self.source()?;
        let now: Vec<i64> = source.replication()?.iter().map(|r| r.offset).collect();
        let addresses = source.addresses();
        let mut moved_total = 0;
        for ((address, before), after) in addresses.iter().zip(&wanted).zip(&now) {
            let moved = after - before;
            if moved < 0 || moved % PING_BYTES != 0 {
                return Err(format!(
                    "the source's offset moved from {before} to {after} while paused (on \
                     {address}), by more than replication PINGs; those writes may be missing \
                     on the target"
                ));
            }
            moved_total += moved;
        }
        Ok((
            (),
            format!(
                "pause held; source offset {} (+{moved_total} bytes of PINGs)",
                describe_offsets(&addresses, &now)
            ),
        ))
    }

    /// The target is now the live server: ferry's marker goes and import mode ends. Not
    /// a reason to undo the switch (the data is complete); a refusal is reported for the
    /// operator to finish by hand.
    fn release_target(&mut self) -> Result<((), String), String> {
        if self.target_cluster {
            return self.release_cluster_target();
        }
        let detail = match self.target()?.leave_migration() {
            Ok(done) if done.is_empty() => "nothing to release".to_owned(),
            Ok(done) => done.join(", "),
            Err(error) => format!(
                "could not release the target ({}): delete {} in db {} and run CONFIG SET \
                 import-mode no by hand",
                line(&error),
                crate::state::marker::KEY,
                crate::state::marker::DB
            ),
        };
        Ok(((), detail))
    }

    /// Each primary of a cluster target drops ferry's per-slot markers.
    fn release_cluster_target(&mut self) -> Result<((), String), String> {
        let template = self.plan.target.clone();
        let map = self
            .target()?
            .slot_map(&template.host, template.tls.is_some())?;
        let mut done = Vec::new();
        for node in &map.nodes {
            let mut url = template.clone();
            url.host = node.host.clone();
            url.port = node.port;
            let released = ServerLink::connect(&url)
                .map_err(|e| line(&*e))
                .and_then(|mut link| link.leave_migration().map_err(|e| line(&e)));
            match released {
                Ok(steps) => {
                    done.extend(steps.into_iter().map(|s| format!("{}: {s}", url.address())))
                }
                Err(error) => done.push(format!(
                    "{}: could not release ({error}): delete the keys {}:* by hand",
                    url.address(),
                    crate::state::marker::KEY
                )),
            }
        }
        let detail = match done.is_empty() {
            true => "nothing to release".to_owned(),
            false => done.join(", "),
        };
        Ok(((), detail))
    }

    /// Fails if the pause's safety timeout may have run out by now (`when` says where).
    fn pause_in_force(&self, when: &str) -> Result<(), String> {
        let timeout = self.plan.pause_timeout;
        let paused_for = self.paused_at.map(|at| at.elapsed()).unwrap_or_default();
        if paused_for + PAUSE_MARGIN >= timeout {
            return Err(format!(
                "the write pause ({} ms, --pause-timeout-ms) ran out {when}",
                timeout.as_millis()
            ));
        }
        Ok(())
    }

    fn kill_clients(&mut self) -> Result<((), String), String> {
        let killed = self.source()?.kill_clients()?;
        Ok(((), format!("closed {killed} client connections")))
    }

    fn unpause(&mut self) -> Result<((), String), String> {
        self.source()?.unpause()?;
        self.record_window();
        Ok(((), "CLIENT UNPAUSE".to_owned()))
    }

    fn record_window(&mut self) {
        if let Some(at) = self.paused_at.take() {
            self.report.pause_window_ms = Some(at.elapsed().as_secs_f64() * 1000.0);
        }
    }

    /// Puts back what the steps so far changed, and words the one-line error.
    fn fail(&mut self, failure: Failure) {
        let mut after = Vec::new();
        if self.hook_ran {
            // Clients go back before the source takes writes again.
            let plan = self.plan;
            after.push(match &plan.exec_undo {
                // Not cancellable: clients must go back before the source takes writes.
                Some(undo) => match hook::run(
                    undo,
                    (&plan.target.address(), &plan.source.address()),
                    plan.exec_timeout,
                    &|| false,
                ) {
                    Ok(()) => "--exec-undo moved clients back".to_owned(),
                    Err(e) => format!(
                        "--exec-undo failed ({}): clients may be on both servers",
                        line(&e)
                    ),
                },
                None => {
                    "--exec ran and is not undone (no --exec-undo): clients may be on both servers"
                        .to_owned()
                }
            });
        }
        if let Some(primary) = self.promoted_from.take() {
            let (host, port) = &primary;
            match self
                .target()
                .and_then(|t| t.replicate_from(Some(&primary)).map_err(|e| line(&e)))
            {
                Ok(()) => after.push(format!("the target follows {host}:{port} again")),
                Err(e) => after.push(format!(
                    "the target stays promoted (REPLICAOF {host} {port} failed: {e})"
                )),
            }
        }
        if self.paused_at.is_some() {
            match self.unpause_anyway() {
                Ok(()) => {
                    self.record_window();
                    let ms = self.report.pause_window_ms.unwrap_or_default();
                    after.push(format!("the source is unpaused (writes paused {ms:.0} ms)"));
                }
                Err(e) => after.push(format!(
                    "CLIENT UNPAUSE failed ({e}): the source unpauses by itself within {} ms",
                    self.plan.pause_timeout.as_millis()
                )),
            }
        } else {
            after.push("the source was not paused".to_owned());
        }
        after.push(if self.run_stopped {
            "the migration is stopped: start it again with the same --state to resume".to_owned()
        } else if self.stop_sent {
            "the migration was asked to stop and may be stopping: check it, and start it \
             again with the same --state if it ended"
                .to_owned()
        } else {
            "the migration keeps running".to_owned()
        });
        self.report.failed_step = Some(failure.step);
        self.report.error = Some(format!(
            "{} failed at step {}: {}; {}",
            self.plan.command,
            failure.step,
            failure.reason,
            after.join("; ")
        ));
    }

    /// CLIENT UNPAUSE on every source primary, on new connections if needed.
    fn unpause_anyway(&mut self) -> Result<(), String> {
        match self.source.as_mut() {
            Some(source) => source.unpause(),
            None => Primaries::connect(&self.plan.source)?.unpause(),
        }
    }
}

/// `1234`, or `127.0.0.1:7000 1234, 127.0.0.1:7001 99` for several primaries.
fn describe_offsets(addresses: &[String], offsets: &[i64]) -> String {
    match offsets {
        [one] => one.to_string(),
        _ => addresses
            .iter()
            .zip(offsets)
            .map(|(address, offset)| format!("{address} {offset}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
