//! ferry's integration tests, one binary: each module is what used to be a test file of its
//! own (`cargo test -p ferry --test it migrate_cluster_source::` runs one of them), and
//! `support` is shared by all of them.

mod support;

mod assess_real_servers;
mod browser_tooling;
mod cli;
mod cluster_slots;
mod command_translation;
mod connect_errors;
mod convert;
mod convert_real_servers;
mod convert_refusals;
mod cutover_cluster;
mod cutover_failures;
mod cutover_promote;
mod cutover_rollback;
mod cutover_tls;
mod cutover_zero_loss;
mod filters_assess;
mod filters_cluster;
mod filters_convert;
mod filters_migrate;
mod filters_relay;
mod filters_scan;
mod migrate_aof;
mod migrate_big_keys;
mod migrate_cluster;
mod migrate_cluster_databases;
mod migrate_cluster_source;
mod migrate_errors;
mod migrate_faults;
mod migrate_hostile;
mod migrate_import_mode;
mod migrate_observe;
mod migrate_proxy_faults;
mod migrate_restarts;
mod migrate_resume;
mod migrate_scan;
mod migrate_sync;
mod migrate_vector_export;
mod propagation;
mod relay_cutover;
mod relay_hostile;
mod relay_peers;
mod relay_restart;
mod relay_resync;
mod relay_sync;
mod relay_tls;
mod secrets;
mod sentinel;
mod tls_errors;
mod tls_migrate;
mod verify_after_migrate;
mod verify_cluster;
mod verify_real_servers;
