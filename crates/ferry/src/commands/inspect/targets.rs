//! What a target release cannot take from a file, and which flag deals with it.

use super::census::Census;
use crate::display::count;
use crate::target::Target;
use ferry_codec::{Flavor, RdbVersion};
use serde::Serialize;

/// One target release checked against the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetCheck {
    /// The profile name, as `convert --to` takes it.
    pub profile: String,
    /// The format the profile writes, e.g. `RDB 11`.
    pub format: String,
    /// Whether the file's version is one the release cannot read, so it must go through
    /// `ferry convert --to PROFILE` (which then applies the flags below).
    pub needs_convert: bool,
    /// What the release cannot store, each with the flag that handles it.
    pub cannot_load: Vec<Blocker>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    /// `hash-field-ttl`, `vector-set`, `module` or `functions`.
    pub feature: &'static str,
    /// For `module`: the module type name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Keys concerned (function libraries for `functions`).
    pub count: u64,
    /// For people: `10 hashes with field TTLs`.
    pub description: String,
    /// The flag choices that let `convert` go on, or `None` when no flag can.
    pub handled_by: Option<String>,
}

/// The `databases` setting a server starts with.
pub const DEFAULT_DATABASES: u64 = 16;

pub fn check(census: &Census, target: &Target) -> TargetCheck {
    let format = target.format;
    let mut cannot_load = Vec::new();
    if census.field_ttl_keys > 0 && !format.has_hash_field_ttl() {
        cannot_load.push(Blocker {
            feature: "hash-field-ttl",
            module: None,
            count: census.field_ttl_keys,
            description: format!(
                "{} with field TTLs ({})",
                count(census.field_ttl_keys, "hash", "hashes"),
                count(census.field_ttl_fields, "field", "fields")
            ),
            handled_by: Some("--hash-field-ttl persist|drop-field".into()),
        });
    }
    let vector_set_aux = census.module_aux.get("vectorset").copied().unwrap_or(0);
    if (census.vector_sets > 0 || vector_set_aux > 0) && !format.has_builtin_module("vectorset") {
        cannot_load.push(Blocker {
            feature: "vector-set",
            module: None,
            count: census.vector_sets,
            description: count(census.vector_sets, "vector set", "vector sets"),
            handled_by: Some("--vector-set skip|export=PATH".into()),
        });
    }
    let mut modules: Vec<(&String, u64)> = census
        .module_keys
        .iter()
        .map(|(name, keys)| (name, *keys))
        .collect();
    // A module may have global data but no keys; the target refuses that as well.
    for name in census.module_aux.keys() {
        if name != "vectorset" && !census.module_keys.contains_key(name) {
            modules.push((name, 0));
        }
    }
    for (name, keys) in modules {
        if format.has_builtin_module(name) {
            continue;
        }
        cannot_load.push(Blocker {
            feature: "module",
            module: Some(name.clone()),
            count: keys,
            description: format!("{} of module '{name}'", count(keys, "key", "keys")),
            handled_by: Some("--module skip".into()),
        });
    }
    // Damage no server loads: every target refuses these, whatever its format.
    for (feature, damaged, what) in [
        (
            "duplicate-member",
            &census.duplicate_members,
            "storing a member or field twice",
        ),
        ("nan-score", &census.nan_scores, "with a NaN score"),
    ] {
        if damaged.keys > 0 {
            let example = damaged.example.as_deref().unwrap_or_default();
            cannot_load.push(Blocker {
                feature,
                module: None,
                count: damaged.keys,
                description: format!(
                    "{} {what} (first: {}); the file is damaged",
                    count(damaged.keys, "key", "keys"),
                    crate::display::quoted(example)
                ),
                handled_by: None,
            });
        }
    }
    if census.highest_db >= DEFAULT_DATABASES {
        cannot_load.push(Blocker {
            feature: "databases",
            module: None,
            count: census
                .databases
                .keys()
                .filter(|db| **db >= DEFAULT_DATABASES)
                .count() as u64,
            description: format!(
                "db {}: a server has databases 0-{} unless its `databases` setting is raised",
                census.highest_db,
                DEFAULT_DATABASES - 1
            ),
            handled_by: Some(format!(
                "`databases {}` on the target and convert --databases {}",
                census.highest_db.saturating_add(1),
                census.highest_db.saturating_add(1)
            )),
        });
    }
    if census.functions > 0 && !format.has_functions() {
        cannot_load.push(Blocker {
            feature: "functions",
            module: None,
            count: census.functions,
            description: count(census.functions, "function library", "function libraries"),
            handled_by: None,
        });
    }
    TargetCheck {
        profile: target.name.clone(),
        format: format.version.to_string(),
        needs_convert: census.version.is_some_and(|v| !reads(format.version, v)),
        cannot_load,
    }
}

/// Whether a server writing `target` reads files of version `source` as they are.
fn reads(target: RdbVersion, source: RdbVersion) -> bool {
    match (target.flavor, source.flavor) {
        (Flavor::Redis, Flavor::Redis) | (Flavor::Valkey, Flavor::Valkey) => {
            source.number <= target.number
        }
        // Valkey 9 reads Redis files up to the last version both share.
        (Flavor::Valkey, Flavor::Redis) => source.number <= 11,
        (Flavor::Redis, Flavor::Valkey) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn census_with(f: impl FnOnce(&mut Census)) -> Census {
        let mut census = Census::default();
        census.version = Some(RdbVersion::redis(12));
        f(&mut census);
        census
    }

    fn features(check: &TargetCheck) -> Vec<&str> {
        check.cannot_load.iter().map(|b| b.feature).collect()
    }

    #[test]
    fn valkey_8_cannot_take_field_ttls_vector_sets_or_modules() {
        let census = census_with(|c| {
            c.field_ttl_keys = 2;
            c.field_ttl_fields = 5;
            c.vector_sets = 1;
            c.module_keys.insert("ReJSON-RL".into(), 3);
        });
        let check = check(&census, &Target::from_profile("valkey-8.1").unwrap());
        assert_eq!(features(&check), ["hash-field-ttl", "vector-set", "module"]);
        assert!(check.needs_convert);
        assert_eq!(
            check.cannot_load[0].description,
            "2 hashes with field TTLs (5 fields)"
        );
        assert_eq!(
            check.cannot_load[2].description,
            "3 keys of module 'ReJSON-RL'"
        );
    }

    #[test]
    fn valkey_9_takes_field_ttls_but_not_vector_sets() {
        let census = census_with(|c| {
            c.field_ttl_keys = 2;
            c.vector_sets = 1;
        });
        let check = check(&census, &Target::from_profile("valkey-9.0").unwrap());
        assert_eq!(features(&check), ["vector-set"]);
    }

    #[test]
    fn functions_block_only_rdb_9() {
        let census = census_with(|c| c.functions = 2);
        assert!(check(&census, &Target::from_profile("valkey-8.0").unwrap())
            .cannot_load
            .is_empty());
        let old = check(&census, &Target::from_profile("redis-6.0").unwrap());
        assert_eq!(features(&old), ["functions"]);
        assert_eq!(old.cannot_load[0].handled_by, None);
    }

    #[test]
    fn version_decides_whether_a_convert_is_needed() {
        let valkey9 = RdbVersion::valkey(80);
        assert!(reads(valkey9, RdbVersion::redis(11)));
        assert!(!reads(valkey9, RdbVersion::redis(12)));
        assert!(reads(RdbVersion::redis(11), RdbVersion::redis(9)));
        assert!(!reads(RdbVersion::redis(11), valkey9));
    }
}
