//! Where a migration stands: the state file ([`file`]: the resume point and ownership of
//! the target, written every second; `scan`: scan mode's checkpoint) and ferry's
//! markers on the target, written with the data (the single-stream [`marker`], and the
//! per-slot [`slot_markers`] of a cluster target), and how far a load from the spool got
//! ([`loading_marker`]). On start the markers win over the file (see
//! [`file::resume_from_target`]).

mod file;
pub mod loading_marker;
pub mod marker;
mod scan;
pub mod slot_markers;

/// Where the markers' commands go: the target writer's batches take them as ferry's own
/// commands (not counted as commands applied). The markers say what to write; the sinks
/// write it.
pub trait MarkerCommands {
    fn push_framing(&mut self, args: &[&str]);
}

pub use file::{
    load, resume_from_target, save, MigrationState, MovedKeyState, Reconciled, ShardState,
    StateError,
};
pub(crate) use file::{read_if_present, write_atomically};
pub use scan::{DbScan, ScanCheckpoint, StateMode};
