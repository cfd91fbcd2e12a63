//! `--mode scan`: the run's settings handed to the scan engine ([`super::scan`]).

use super::*;
use crate::commands::migrate::scan::{ScanJob, ScanState};
use crate::state::StateMode;

impl Migration {
    /// What `--mode scan` needs (commands/migrate/scan/). `state` is the state file's
    /// content (the saved one, if any): its checkpoint is where the scan resumes.
    pub(super) fn scan_job<'a>(
        &'a self,
        args: &MigrateArgs,
        source: &'a ServerInfo,
        target: &TargetSetup,
        owned: bool,
        mut state: MigrationState,
    ) -> ScanJob<'a> {
        let saved = state.scan.take();
        state.mode = StateMode::Scan;
        ScanJob {
            source_url: &self.source_url,
            source,
            target_url: &self.target_url,
            target: Target {
                format: target.format,
                name: target.info.name(),
            },
            write_mode: target.mode,
            restore_refusal: target.restore_refusal.clone(),
            writer_limits: self.memory.writer,
            dirty_budget_bytes: self.memory.writer.restore_bytes,
            queued_bytes: self.memory.in_flight_bytes,
            policies: self.policies.clone(),
            scope: self.scope.clone(),
            connect_timeout: self.connect_timeout,
            keys_per_sec: args.scan_keys_per_sec,
            follow: !args.no_follow,
            flush_target: args.flush_target,
            owns_target: owned || args.flush_target || target.info.total_keys() == 0,
            state: self.state_path.clone().map(|path| ScanState {
                path,
                file: state,
                // The target was emptied: nothing copied before is there any more.
                saved: saved.filter(|_| !args.flush_target),
                owned: owned && !args.flush_target,
            }),
            events: &self.events,
            notifications_changed: Default::default(),
        }
    }
}
