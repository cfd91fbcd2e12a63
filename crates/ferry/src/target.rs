//! The server a command writes for: a format plus the name messages call it by.

use crate::error::Error;
use ferry_codec::{Format, PROFILES};

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub format: Format,
    /// `valkey-8.1` for `--to valkey-8.1`, `RDB 9` for `--rdb-version 9`.
    pub name: String,
}

impl Target {
    pub fn from_profile(name: &str) -> Result<Self, Error> {
        match Format::from_profile(name) {
            Some(format) => Ok(Self {
                format,
                name: name.to_owned(),
            }),
            None => Err(Error::Usage(format!(
                "unknown profile '{name}'; valid profiles: {}",
                profile_names().join(", ")
            ))),
        }
    }

    pub fn from_rdb_version(number: u16) -> Result<Self, Error> {
        match Format::from_rdb_version(number) {
            Some(format) => Ok(Self {
                format,
                name: format.version.to_string(),
            }),
            None => Err(Error::Usage(format!(
                "cannot write RDB version {number}; choose 9, 10, 11, 12 or 80"
            ))),
        }
    }

    /// The profile or version the command line chose; clap makes sure exactly one is given.
    pub fn from_args(profile: Option<&str>, rdb_version: Option<u16>) -> Result<Self, Error> {
        match (profile, rdb_version) {
            (Some(name), None) => Self::from_profile(name),
            (None, Some(number)) => Self::from_rdb_version(number),
            _ => Err(Error::Usage(
                "give exactly one of --to PROFILE and --rdb-version N".into(),
            )),
        }
    }
}

pub fn profile_names() -> Vec<&'static str> {
    PROFILES.iter().map(|(name, _)| *name).collect()
}

/// The Valkey releases `inspect` checks a file against.
pub fn valkey_targets() -> Vec<Target> {
    profile_names()
        .into_iter()
        .filter(|name| name.starts_with("valkey-"))
        .filter_map(|name| Target::from_profile(name).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_profile_lists_the_valid_ones() {
        let err = Target::from_profile("valkey-7.9").unwrap_err().to_string();
        assert!(err.contains("'valkey-7.9'"), "{err}");
        for name in profile_names() {
            assert!(err.contains(name), "{err} lacks {name}");
        }
    }

    #[test]
    fn rdb_version_targets_are_named_by_version() {
        assert_eq!(Target::from_rdb_version(9).unwrap().name, "RDB 9");
        assert!(matches!(Target::from_rdb_version(13), Err(Error::Usage(_))));
    }

    #[test]
    fn inspect_checks_every_valkey_profile() {
        let names: Vec<_> = valkey_targets().into_iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            ["valkey-8.0", "valkey-8.1", "valkey-9.0", "valkey-9.1"]
        );
    }
}
