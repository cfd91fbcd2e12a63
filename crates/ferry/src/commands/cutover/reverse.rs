//! `--keep-rollback`: after the cutover, ferry keeps running as `ferry migrate` from the
//! new server back to the old one, so the old one receives every write clients make on
//! the new one and `ferry rollback` can switch back without loss.
//!
//! The old source holds the data it had at the pause, and a migration refuses a non-empty
//! target it does not own. Cutover is the one place that knows the old source's data may be
//! replaced: it writes the reverse run's state file naming the old source as a target ferry
//! owns, with no replication position. The reverse run then does what it does for any
//! owned target without a position: empty it (FLUSHALL) and load a full copy.

use crate::cli::{CutoverArgs, MigrateArgs};
use crate::connection::{SourceConnectionArgs, TargetConnectionArgs};
use crate::error::Error;
use crate::policy::{Policies, PolicyArgs, VectorSetPolicy};
use crate::state::{self, MigrationState};
use crate::url::ServerUrl;
use std::io::Write;
use std::path::Path;

/// Refuses a state file that already exists (it may be another migration's) before the
/// cutover starts, so that the cutover is not made for nothing.
pub fn check_state_path(path: &Path) -> Result<(), Error> {
    if path.exists() {
        return Err(Error::Usage(format!(
            "--rollback-state {} exists; cutover writes a new one (remove it or choose another path)",
            path.display()
        )));
    }
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    if folder.is_some_and(|f| !f.is_dir()) {
        return Err(Error::Usage(format!(
            "--rollback-state {}: the folder does not exist",
            path.display()
        )));
    }
    Ok(())
}

/// The cutover's target flags, for the reverse run's source.
fn swap_to_source(target: &TargetConnectionArgs) -> SourceConnectionArgs {
    SourceConnectionArgs {
        source_tls_ca: target.target_tls_ca.clone(),
        source_tls_cert: target.target_tls_cert.clone(),
        source_tls_key: target.target_tls_key.clone(),
        source_tls_server_name: target.target_tls_server_name.clone(),
        source_insecure: target.target_insecure,
        source_password_file: target.target_password_file.clone(),
        source_password_env: target.target_password_env.clone(),
        source_sentinel_user: target.target_sentinel_user.clone(),
        source_sentinel_password_file: target.target_sentinel_password_file.clone(),
        source_sentinel_password_env: target.target_sentinel_password_env.clone(),
        source_sentinel_tls_ca: target.target_sentinel_tls_ca.clone(),
        source_sentinel_tls_cert: target.target_sentinel_tls_cert.clone(),
        source_sentinel_tls_key: target.target_sentinel_tls_key.clone(),
    }
}

/// The cutover's source flags, for the reverse run's target.
fn swap_to_target(source: &SourceConnectionArgs) -> TargetConnectionArgs {
    TargetConnectionArgs {
        target_tls_ca: source.source_tls_ca.clone(),
        target_tls_cert: source.source_tls_cert.clone(),
        target_tls_key: source.source_tls_key.clone(),
        target_tls_server_name: source.source_tls_server_name.clone(),
        target_insecure: source.source_insecure,
        target_password_file: source.source_password_file.clone(),
        target_password_env: source.source_password_env.clone(),
        target_sentinel_user: source.source_sentinel_user.clone(),
        target_sentinel_password_file: source.source_sentinel_password_file.clone(),
        target_sentinel_password_env: source.source_sentinel_password_env.clone(),
        target_sentinel_tls_ca: source.source_sentinel_tls_ca.clone(),
        target_sentinel_tls_cert: source.source_sentinel_tls_cert.clone(),
        target_sentinel_tls_key: source.source_sentinel_tls_key.clone(),
    }
}

/// Runs the reverse migration until stopped (Ctrl-C, SIGTERM, or `ferry rollback`).
pub fn run(
    old_source: &ServerUrl,
    new_source: &ServerUrl,
    state_path: &Path,
    args: &CutoverArgs,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let owned = MigrationState::new(old_source.to_string(), String::new());
    state::save(state_path, &owned)?;
    if Policies::from(args.switch.policies.clone()) != Policies::default() {
        let _ = writeln!(
            std::io::stderr(),
            "ferry: warning: the old source is emptied and reloaded from the target: what \
             the policies left out or changed on the way there (vector sets, module values, \
             field TTLs) is gone from it as well"
        );
    }
    // The target (Valkey) holds no vector sets, and the reverse run must not touch the
    // forward run's export file.
    let policies = PolicyArgs {
        vector_set: VectorSetPolicy::Fail,
        ..args.switch.policies.clone()
    };
    let reverse = MigrateArgs {
        source: Some(args.target.clone()),
        source_aof: None,
        target: args.source.clone(),
        state: Some(state_path.to_owned()),
        // `ferry rollback` has no spool flags: the reverse run loads as without a spool.
        spool_dir: None,
        spool_max_mb: None,
        allow_non_empty: false,
        flush_target: false,
        // One process carries the writes back, whatever the forward run's workers.
        shards: None,
        policies,
        // The whole target goes back: cutover's own flags carry no scope.
        filters: crate::filter::FilterArgs::default(),
        max_memory_mb: 64,
        connect_timeout: 5,
        target_reply_timeout: crate::server::client::DEFAULT_STALL_TIMEOUT.as_secs(),
        source_read_timeout: 60,
        json: args.switch.json,
        metrics_addr: args.rollback_metrics_addr,
        // The new primary is ferry's own target: it replicates.
        mode: crate::cli::MigrateMode::Replication,
        scan_keys_per_sec: crate::cli::DEFAULT_SCAN_KEYS_PER_SEC,
        no_follow: false,
        // The same token guards the reverse run: `ferry rollback` stops it with it.
        control: args.control.clone(),
        source_connection: swap_to_source(&args.target_connection),
        target_connection: swap_to_target(&args.source_connection),
    };
    let _ = writeln!(
        std::io::stderr(),
        "ferry: keeping the rollback: migrating {} back into {} (state {})",
        new_source.address(),
        old_source.address(),
        state_path.display()
    );
    crate::commands::migrate::run(reverse, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::ConnectionSettings;

    #[test]
    fn an_existing_state_file_or_a_missing_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("rollback.state");
        assert!(check_state_path(&fresh).is_ok());
        std::fs::write(&fresh, "{}").unwrap();
        let err = check_state_path(&fresh).unwrap_err().to_string();
        assert!(err.contains("exists"), "{err}");
        let nowhere = dir.path().join("no/such/folder/rollback.state");
        assert!(check_state_path(&nowhere).is_err());
    }

    #[test]
    fn connection_flags_change_sides_with_the_urls() {
        let target = TargetConnectionArgs {
            target_tls_ca: Some("ca.pem".into()),
            target_tls_cert: Some("cert.pem".into()),
            target_tls_key: Some("key.pem".into()),
            target_tls_server_name: Some("valkey.internal".into()),
            target_insecure: true,
            target_password_file: Some("pw".into()),
            target_password_env: Some("PW".into()),
            target_sentinel_user: Some("watcher".into()),
            target_sentinel_password_file: None,
            target_sentinel_password_env: Some("SPW".into()),
            target_sentinel_tls_ca: Some("sentinel-ca.pem".into()),
            target_sentinel_tls_cert: None,
            target_sentinel_tls_key: None,
        };
        let source = swap_to_source(&target);
        let settings = source.settings();
        assert_eq!(settings.flag_prefix, "--source");
        assert_eq!(
            (settings.tls_ca, settings.tls_cert, settings.tls_key),
            (
                target.target_tls_ca.clone(),
                target.target_tls_cert.clone(),
                target.target_tls_key.clone()
            )
        );
        assert_eq!(settings.tls_server_name.as_deref(), Some("valkey.internal"));
        assert!(settings.insecure);
        assert_eq!(settings.password_env.as_deref(), Some("PW"));
        assert_eq!(settings.sentinel_user.as_deref(), Some("watcher"));
        assert_eq!(settings.sentinel_password_env.as_deref(), Some("SPW"));
        assert_eq!(settings.sentinel_tls_ca, target.target_sentinel_tls_ca);
        let back = swap_to_target(&source).settings();
        assert_eq!(
            back,
            ConnectionSettings {
                flag_prefix: "--target",
                ..target.settings()
            }
        );
    }
}
