//! `ferry migrate --mode scan`: for sources that refuse replication (managed services deny
//! SYNC/PSYNC), the keyspace is read with commands and changes are followed through
//! keyspace notifications.
//!
//! ```text
//! CONFIG notify-keyspace-events ─▶ PSUBSCRIBE __keyevent@*__:* (confirmed) ─▶ dirty keys
//!                                                                               │
//! SCAN (paced) ─▶ keys ─┬──────────────────────────────────────────────────────┘
//!                       ▼
//!        DUMP + PEXPIRETIME (pipelined) ─▶ apply thread: DUMP decode ─▶ compat ─▶ writer
//!                                          (gone: DEL)
//! ```
//!
//! Subscribing before the scan means every change made while or after a key is read is
//! notified, and the key is read again after it; reads and writes keep one order (one
//! source connection, one apply thread, one target pipe), so the last read wins. What
//! notifications cannot tell is handled by rescanning both sides: FLUSHDB, FLUSHALL and
//! SWAPDB (seen in `INFO commandstats`), a lost subscription, an overflowing changed-key
//! set. Keys that change silently (streams' consumer groups, vector sets) are re-read.
//! The limits are in docs/migrate.md.
//!
//! With `--state`, a checkpoint is saved about every second: each database's SCAN cursor
//! whose keys are all acknowledged by the target, and the source's clock. A restart goes
//! on from it, and catches up with what changed while ferry was stopped without reading
//! the copied part again: keys gone from the source are deleted on the target, and only
//! keys whose `OBJECT IDLETIME` says they were touched since the checkpoint are copied
//! again (everything again when the source restarted, flushed or forked meanwhile).
//!
//! Files: `notify` (the setting), `subscriber`, `dirty` (changed keys), `scanner` (SCAN,
//! pacing, commandstats), `conn` + `fetch` (pipelined DUMP and expiry), `apply` (decode,
//! compat, writer), `facts` (the source's clock, run_id, forks), `touched` (idle times,
//! existence), `copier/` (sessions, scans, following, progress, checkpoints, resuming).

mod apply;
mod conn;
mod copier;
mod dirty;
mod facts;
mod fetch;
mod notify;
mod scanner;
mod subscriber;
mod touched;

use crate::error::Error;
use crate::observe::rate::RATE_WINDOW;
use crate::observe::Observer;
use crate::policy::{Policies, VectorSetPolicy};
use crate::server::client::{Client, ClientError};
use crate::server::probe::ServerInfo;
use crate::server::reconnect::Reconnect;
use crate::sinks::writer::pipe::Pipe;
use crate::sinks::writer::DRAIN_TIMEOUT;
use crate::sinks::writer::{WriteMode, WriterLimits};
use crate::target::Target;
use crate::url::ServerUrl;
use copier::Copier;
use dirty::DirtyKeys;
use ferry_repl::ReplError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Changed keys read per round trip.
const DIRTY_BATCH: usize = 256;
/// Records between the fetcher and the apply thread (their bytes are bounded by
/// [`ScanJob::queued_bytes`]).
const APPLY_QUEUE: usize = 1024;
/// How often progress, `/status` and the periodic checks are looked at.
const TICK: Duration = Duration::from_millis(250);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Keys that change without notifications (streams with consumer groups, vector sets)
/// are read again this often.
const QUIET_EVERY: Duration = Duration::from_secs(2);
/// Keys examined per step (each tick) of the vector-set walk, at least.
const SWEEP_MIN: usize = 200;
/// How often INFO commandstats is read for FLUSHDB/FLUSHALL/SWAPDB.
const FLUSHES_EVERY: Duration = Duration::from_secs(1);
/// How long a probe key's notification may take.
const PROBE_WAIT: Duration = Duration::from_secs(3);

/// Everything scan mode needs from `migrate`'s setup.
pub struct ScanJob<'a> {
    pub source_url: &'a ServerUrl,
    pub source: &'a ServerInfo,
    pub target_url: &'a ServerUrl,
    pub target: Target,
    pub write_mode: WriteMode,
    pub restore_refusal: String,
    pub writer_limits: WriterLimits,
    /// Key names held as changed-and-not-copied before giving up and rescanning.
    pub dirty_budget_bytes: usize,
    /// Bytes of DUMP payloads read and not yet written (one bigger value goes alone).
    pub queued_bytes: usize,
    pub policies: Policies,
    /// Only kept keys are read and written, each into its mapped database; a target's
    /// key outside the scope is never deleted.
    pub scope: crate::filter::Scope,
    pub connect_timeout: Duration,
    pub keys_per_sec: u32,
    /// Follow changes (keyspace notifications); `false` copies once and exits.
    pub follow: bool,
    pub flush_target: bool,
    /// ferry may delete target keys the source lacks (the target was empty or flushed).
    pub owns_target: bool,
    /// `--state`: where checkpoints go, and the one to resume from.
    pub state: Option<ScanState>,
    pub events: &'a Observer,
    /// The primaries whose `notify-keyspace-events` ferry changed, with what it was: put
    /// back when the run stops (a Sentinel source's promoted primary gets its own).
    pub notifications_changed: std::sync::Mutex<Vec<(ServerUrl, String)>>,
}

/// The state file of a scan-mode run (`--state`).
#[derive(Debug, Clone)]
pub struct ScanState {
    pub path: std::path::PathBuf,
    /// What the file holds besides the checkpoint (target, format, scope, mode).
    pub file: crate::state::MigrationState,
    /// The checkpoint the run before left, to resume from.
    pub saved: Option<crate::state::ScanCheckpoint>,
    /// An earlier run wrote the target (the file was there), and it was not emptied since.
    pub owned: bool,
}

/// The server's words when a replication error means the source refuses to be replicated
/// (PSYNC or SYNC denied by an ACL or renamed away), so that `migrate` can point at
/// `--mode scan`.
pub fn replication_refused(error: &ReplError) -> Option<&str> {
    let text = match error {
        ReplError::Auth(text) | ReplError::ServerError(text) => text,
        _ => return None,
    };
    let lower = text.to_ascii_lowercase();
    let names_command = ["psync", "sync", "replconf"]
        .iter()
        .any(|name| lower.contains(name));
    let refusal = lower.contains("noperm")
        || lower.contains("no permissions")
        || lower.contains("unknown command");
    (names_command && refusal).then_some(text.as_str())
}

/// Runs scan mode until `shutdown` resolves (or once through with `follow` off).
pub async fn run(
    job: ScanJob<'_>,
    pipe: Pipe,
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
) -> Result<(), Error> {
    if let VectorSetPolicy::Export(_) = job.policies.vector_set {
        return Err(Error::Usage(
            "--vector-set export is not available with --mode scan: a vector set read again \
             (rescans, renames) would be exported again; use --vector-set skip here and export \
             from an RDB file with ferry convert"
                .into(),
        ));
    }
    if job.follow {
        job.enable_notifications(job.source_url).await?;
    } else {
        job.events.line(
            "--no-follow: copying once without following changes; writes made during the copy may be missed",
        );
    }
    if let Some(state) = &job.state {
        let source = job.source_url.to_string();
        if let Some(saved) = state.saved.as_ref().filter(|saved| saved.source != source) {
            return Err(
                crate::commands::migrate::MigrateError::StateOfAnotherSource {
                    path: state.path.display().to_string(),
                    saved: saved.source.clone(),
                    source_url: source,
                }
                .into(),
            );
        }
    }
    let result = Copier::new(&job, pipe).run(shutdown).await;
    let changed = std::mem::take(
        &mut *job
            .notifications_changed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    );
    for (primary, original) in changed {
        job.restore_notifications(&primary, &original).await;
    }
    result
}

impl ScanJob<'_> {
    fn source_error(&self, error: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Source {
            url: self.source_url.to_string(),
            source: Box::new(error),
        }
    }

    fn target_error(&self, error: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Target {
            url: self.target_url.to_string(),
            source: Box::new(error),
        }
    }

    /// Turns on the key events ferry follows on `primary`, remembering the original value
    /// when it changed it.
    async fn enable_notifications(&self, primary: &ServerUrl) -> Result<(), Error> {
        let mut client = Client::connect(primary, self.connect_timeout)
            .await
            .map_err(|e| self.source_error(e))?;
        let setting = notify::enable(&mut client)
            .await
            .map_err(|e| self.source_error(e))?;
        match setting {
            notify::Setting::Changed(was) => {
                self.events.line(format!(
                    "set notify-keyspace-events on the source to \"{}\" (was \"{was}\"); it is put back when ferry stops",
                    notify::with_needed(&was)
                ));
                if let Ok(mut changed) = self.notifications_changed.lock() {
                    changed.push((primary.clone(), was));
                }
                Ok(())
            }
            notify::Setting::AlreadyOn => {
                self.events.line(
                    "the source already sends the key events ferry follows (notify-keyspace-events)",
                );
                Ok(())
            }
            notify::Setting::Unknown { reason } => {
                match self.probe_notifications(primary, &mut client).await? {
                    Ok(()) => {
                        self.events.line(format!(
                            "CONFIG is refused ({reason}), but a probe key's changes were notified: notify-keyspace-events is on (ferry cannot check that it has every class it needs: E and A)"
                        ));
                        Ok(())
                    }
                    Err(probe) => {
                        Err(self.source_error(notify::NotifyError::NotObserved { reason, probe }))
                    }
                }
            }
        }
    }

    /// Writes and deletes a probe key (`ferry:notify-probe:…`) and checks that its key
    /// events arrive: the only check left when CONFIG is refused. `Ok(Err(why))` when
    /// they did not (or the key could not be written).
    async fn probe_notifications(
        &self,
        primary: &ServerUrl,
        client: &mut Client,
    ) -> Result<Result<(), notify::ProbeFailure>, Error> {
        let subscription = subscriber::subscribe(primary, self.connect_timeout)
            .await
            .map_err(|e| self.source_error(e))?;
        let seen = Arc::new(DirtyKeys::new(1 << 20));
        let follower = tokio::spawn(subscription.follow(seen.clone()));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let key = format!("ferry:notify-probe:{}:{nanos}", std::process::id());
        let written = async {
            client
                .call_ok(&["SET", key.as_str(), "1", "PX", "10000"])
                .await?;
            client.call_ok(&["DEL", key.as_str()]).await
        }
        .await;
        let arrived = match written {
            Ok(_) => {
                let wait = async {
                    while !seen
                        .take(usize::MAX)
                        .iter()
                        .any(|(_, k)| k.as_ref() == key.as_bytes())
                    {
                        seen.changed().await;
                    }
                };
                match tokio::time::timeout(PROBE_WAIT, wait).await {
                    Ok(()) => Ok(()),
                    Err(_) => Err(notify::ProbeFailure::NotNotified),
                }
            }
            Err(error) => Err(notify::ProbeFailure::NotWritten(error)),
        };
        follower.abort();
        Ok(arrived)
    }

    async fn restore_notifications(&self, primary: &ServerUrl, original: &str) {
        let restored = async {
            let mut client = Client::connect(primary, self.connect_timeout).await?;
            notify::restore(&mut client, original).await
        }
        .await;
        match restored {
            Ok(()) => self.events.line(format!(
                "put notify-keyspace-events back to \"{original}\" on the source"
            )),
            Err(error) => self.events.line(format!(
                "could not put notify-keyspace-events back to \"{original}\" on the source ({error}); set it by hand"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denied_or_renamed_psync_is_a_refusal_other_errors_are_not() {
        let denied = ReplError::Auth(
            "NOPERM User migrator has no permissions to run the 'psync' command".into(),
        );
        assert!(replication_refused(&denied).is_some());
        let renamed = ReplError::ServerError(
            "ERR unknown command 'PSYNC', with args beginning with: '?' '-1'".into(),
        );
        assert!(replication_refused(&renamed).is_some());
        let password = ReplError::Auth("WRONGPASS invalid username-password pair".into());
        assert!(replication_refused(&password).is_none());
        let loading = ReplError::ServerError("LOADING Redis is loading the dataset".into());
        assert!(replication_refused(&loading).is_none());
    }
}
