//! `--vector-set` and `--module`: what becomes of module values and module AUX records.

use super::PolicyError;
use crate::display::quoted;
use crate::policy::{ModulePolicy, Policies, VectorSetPolicy};
use crate::target::Target;
use ferry_codec::ModuleId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// The target loads it: pass it on unchanged.
    Keep,
    /// Leave it out (counted).
    Skip,
    /// Vector sets only: write the elements to the export file, then leave the key out.
    Export,
}

/// What to do with a key of module type `module`.
pub(super) fn for_key(
    module: ModuleId,
    key: &[u8],
    target: &Target,
    policies: &Policies,
) -> Result<Action, PolicyError> {
    let name = module.name();
    if target.format.has_builtin_module(&name) {
        return Ok(Action::Keep);
    }
    if module.is_vector_set() {
        return match policies.vector_set {
            VectorSetPolicy::Fail => Err(PolicyError::VectorSet {
                key: quoted(key),
                target: target.name.clone(),
            }),
            VectorSetPolicy::Skip => Ok(Action::Skip),
            VectorSetPolicy::Export(_) => Ok(Action::Export),
        };
    }
    match policies.module {
        ModulePolicy::Fail => Err(PolicyError::Module {
            key: quoted(key),
            module: name,
            target: target.name.clone(),
        }),
        ModulePolicy::Skip => Ok(Action::Skip),
    }
}

/// What to do with a module AUX record (a module's global data): it goes wherever the
/// module's keys go, since a target without the module refuses the record too.
pub(super) fn for_aux(
    module: ModuleId,
    target: &Target,
    policies: &Policies,
) -> Result<Action, PolicyError> {
    let name = module.name();
    if target.format.has_builtin_module(&name) {
        return Ok(Action::Keep);
    }
    let (fails, flag) = if module.is_vector_set() {
        (
            policies.vector_set == VectorSetPolicy::Fail,
            "--vector-set skip",
        )
    } else {
        (policies.module == ModulePolicy::Fail, "--module skip")
    };
    if fails {
        return Err(PolicyError::ModuleAux {
            module: name,
            target: target.name.clone(),
            flag,
        });
    }
    Ok(Action::Skip)
}
