//! Keys a migration policy left out on purpose: missing on the target, but not a loss.

use super::compare::{hash, Pair};
use super::error::VerifyError;
use crate::policy::{HashFieldTtlPolicy, ModulePolicy, VectorSetPolicy};

const BUILT_IN: [&str; 6] = ["string", "list", "set", "zset", "hash", "stream"];

/// Why a source key of `type_name` absent from the target is excused, if it is.
pub fn excuse_missing(
    pair: &mut Pair,
    key: &[u8],
    type_name: &str,
) -> Result<Option<&'static str>, VerifyError> {
    let policies = &pair.settings.policies;
    Ok(match type_name {
        "vectorset" => (!pair.target.abilities.vector_sets
            && policies.vector_set != VectorSetPolicy::Fail)
            .then_some("vector sets left out by --vector-set"),
        "hash" => {
            let drops = hash::applied_policy(pair) == Some(HashFieldTtlPolicy::DropField);
            (drops && hash::every_field_volatile(pair, key)?).then_some(
                "hashes whose every field had a TTL, left out by --hash-field-ttl drop-field",
            )
        }
        name if BUILT_IN.contains(&name) => None,
        _ => (policies.module == ModulePolicy::Skip)
            .then_some("module values skipped by --module skip"),
    })
}
