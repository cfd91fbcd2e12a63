//! The seam through which replicated commands pass before they reach the target.
//!
//! Commands the target lacks (HSETEX/HEXPIRE family on a target without field TTLs, the
//! VADD family, ...) are rewritten or skipped under the policies by
//! `transforms::commands::CommandTranslator` (written in parallel); until it is merged,
//! [`Passthrough`] forwards every command unchanged.

use crate::error::Error;
use bytes::Bytes;

/// What becomes of one replicated command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamAction {
    /// Send these commands, in order (usually just the command itself).
    Apply(Vec<Vec<Bytes>>),
    /// Send nothing; `reason` is counted in the report.
    Skip { reason: &'static str },
}

pub trait CommandTransform: Send {
    /// Rewrites one command of the stream. `db` is the database the stream has selected.
    fn translate(&mut self, db: u64, args: Vec<Bytes>) -> Result<StreamAction, Error>;
    /// Summary lines for the final report.
    fn report_lines(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Forwards every command unchanged.
#[derive(Debug, Default)]
pub struct Passthrough;

impl CommandTransform for Passthrough {
    fn translate(&mut self, _db: u64, args: Vec<Bytes>) -> Result<StreamAction, Error> {
        Ok(StreamAction::Apply(vec![args]))
    }
}
