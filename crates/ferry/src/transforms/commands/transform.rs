//! The seam through which replicated commands pass before they reach the target: commands
//! the target lacks (the HSETEX/HEXPIRE family on a target without field TTLs, the VADD
//! family, ...) are rewritten or skipped under the policies by
//! [`CommandTranslator`]; another sink can plug in its own rules.

use crate::error::Error;
use crate::transforms::commands::{CommandTranslator, Translated};
use bytes::Bytes;

pub trait CommandTransform: Send {
    /// Rewrites one command of the stream. `db` is the database the stream has selected.
    fn translate(&mut self, db: u64, args: Vec<Bytes>) -> Result<Translated, Error>;
    /// Summary lines for the final report.
    fn report_lines(&self) -> Vec<String> {
        Vec::new()
    }
    /// The target's database for the source's database `db` (`--db-map`): what a SELECT
    /// of the stream selects on the target.
    fn target_db(&self, db: u64) -> u64 {
        db
    }
}

impl CommandTransform for CommandTranslator {
    fn translate(&mut self, db: u64, args: Vec<Bytes>) -> Result<Translated, Error> {
        CommandTranslator::translate(self, db, args)
    }

    fn report_lines(&self) -> Vec<String> {
        CommandTranslator::report_lines(self)
    }
}

/// Applies every command as it came: for tests of what surrounds the rules.
#[cfg(test)]
pub struct PassThrough;

#[cfg(test)]
impl CommandTransform for PassThrough {
    fn translate(&mut self, _db: u64, args: Vec<Bytes>) -> Result<Translated, Error> {
        Ok(Translated::Apply(vec![args]))
    }
}
