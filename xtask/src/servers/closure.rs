//! Works out which packages each server needs: its server and tools packages plus the
//! transitive closure of their runtime libraries, each from the server's own suite.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};

use super::spec::Spec;
use crate::debian::Apt;

/// A package pinned to one exact version.
pub type Pinned = (String, String);

struct Walk<'a> {
    spec: &'a Spec,
    chosen: BTreeMap<String, String>,
    /// Dependency groups (alternatives) still to resolve; `true` marks a required root.
    pending: Vec<(Vec<String>, bool)>,
}

/// Only libraries are bundled: maintainer-script helpers (adduser, systemd, debconf, …) are
/// not needed to run a binary. A library missed here is caught by the loader check.
fn is_runtime_library(name: &str) -> bool {
    name.starts_with("lib") || name.starts_with("lua-") || name == "zlib1g"
}

pub fn resolve(apt: &Apt, specs: &[Spec]) -> Result<Vec<Vec<Pinned>>> {
    let mut walks: Vec<Walk> = specs
        .iter()
        .map(|spec| Walk {
            spec,
            chosen: BTreeMap::new(),
            pending: vec![
                (vec![spec.server_package()], true),
                (vec![spec.tools_package()], true),
            ],
        })
        .collect();

    while walks.iter().any(|walk| !walk.pending.is_empty()) {
        let names: BTreeSet<String> = walks
            .iter()
            .flat_map(|walk| walk.pending.iter().flat_map(|(group, _)| group.clone()))
            .collect();
        let available = apt.madison(&names.into_iter().collect::<Vec<_>>())?;

        let mut new_per_walk: Vec<Vec<Pinned>> = Vec::new();
        for walk in &mut walks {
            let mut new = Vec::new();
            for (group, required) in std::mem::take(&mut walk.pending) {
                if group.iter().any(|name| walk.chosen.contains_key(name)) {
                    continue;
                }
                let suites: &[&str] = if required {
                    &[walk.spec.suite]
                } else {
                    &[walk.spec.lib_suite, walk.spec.suite]
                };
                let pick = group
                    .iter()
                    .filter(|name| required || is_runtime_library(name))
                    .find_map(|name| {
                        let versions = available.get(name)?;
                        suites.iter().find_map(|suite| {
                            versions
                                .iter()
                                .find(|a| a.suite == *suite)
                                .map(|a| (name.clone(), a.version.clone()))
                        })
                    });
                match pick {
                    Some((name, version)) => {
                        walk.chosen.insert(name.clone(), version.clone());
                        new.push((name, version));
                    }
                    None if required => bail!(
                        "{}: package {} not found in Debian {}",
                        walk.spec.name,
                        group.join(" | "),
                        walk.spec.suite
                    ),
                    None => {}
                }
            }
            new_per_walk.push(new);
        }

        let refs: BTreeSet<String> = new_per_walk
            .iter()
            .flatten()
            .map(|(name, version)| format!("{name}={version}"))
            .collect();
        let stanzas = apt.show(&refs.into_iter().collect::<Vec<_>>())?;
        for (walk, new) in walks.iter_mut().zip(new_per_walk) {
            for (name, version) in new {
                let deps = stanzas
                    .iter()
                    .filter(|s| s.package == name && s.version == version)
                    .flat_map(|s| s.depends.clone());
                walk.pending.extend(deps.map(|group| (group, false)));
            }
        }
    }

    Ok(walks
        .into_iter()
        .map(|walk| walk.chosen.into_iter().collect())
        .collect())
}
