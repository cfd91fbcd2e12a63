//! `--vector-set` for the command stream: Redis 8's vector-set commands, for a target
//! without vector sets.

use super::{key_of, CommandError, CommandTranslator, Translated};
use crate::error::Error;
use crate::policy::VectorSetPolicy;
use bytes::Bytes;

const SKIPPED: &str = "the target has no vector sets and --vector-set skip leaves them out";
const EXPORTED: &str = "the target has no vector sets; --vector-set export leaves them out \
                        and brings the export file up to date when the run stops";

impl CommandTranslator {
    /// `name` is the command's canonical (upper-case) name.
    pub(super) fn vector_command(
        &mut self,
        name: &'static str,
        db: u64,
        args: Vec<Bytes>,
    ) -> Result<Translated, Error> {
        if self.vector_sets {
            return Ok(Translated::Apply(vec![args]));
        }
        let reason = match self.policies.vector_set {
            VectorSetPolicy::Fail => {
                return Err(CommandError::VectorSet {
                    command: name.to_owned(),
                    key: key_of(&args),
                    db,
                    target: self.target.clone(),
                }
                .into())
            }
            VectorSetPolicy::Skip => SKIPPED,
            VectorSetPolicy::Export(_) => {
                if let (Some(keys), Some(key)) = (&self.exported_keys, args.get(1)) {
                    keys.note(db, key);
                }
                EXPORTED
            }
        };
        self.report.vector_command_skipped(name);
        Ok(Translated::Skip { reason })
    }
}
