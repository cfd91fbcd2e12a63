//! What to do with data a target cannot store. Every command that writes takes these flags
//! (flatten [`PolicyArgs`] into its clap struct).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// `--hash-field-ttl`: hash fields that carry their own TTL, for a target without them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashFieldTtlPolicy {
    /// Stop with an error naming the key.
    #[default]
    Fail,
    /// Keep the field, forget its TTL (it will never expire).
    Persist,
    /// Leave out fields that have a TTL; a hash left empty is left out whole.
    DropField,
}

/// `--vector-set`: vector sets, for a target without the built-in type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VectorSetPolicy {
    #[default]
    Fail,
    Skip,
    /// Write the elements to this JSON Lines file and leave the key out.
    Export(PathBuf),
}

/// `--module`: values of any other module type, for a target without that module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModulePolicy {
    #[default]
    Fail,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Policies {
    pub hash_field_ttl: HashFieldTtlPolicy,
    pub vector_set: VectorSetPolicy,
    pub module: ModulePolicy,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PolicyArgs {
    /// Hash fields with their own TTL on a target without field TTLs: fail, persist (keep
    /// the field without its TTL) or drop-field (leave such fields out; a hash left empty
    /// is left out).
    #[arg(long, value_name = "fail|persist|drop-field", default_value = "fail")]
    pub hash_field_ttl: HashFieldTtlPolicy,
    /// Vector sets on a target without them: fail, skip, or export=PATH (write the
    /// elements to PATH as JSON Lines and leave the key out).
    #[arg(long, value_name = "fail|skip|export=PATH", default_value = "fail")]
    pub vector_set: VectorSetPolicy,
    /// Values of other module types the target has no module for: fail or skip.
    #[arg(long, value_name = "fail|skip", default_value = "fail")]
    pub module: ModulePolicy,
}

impl From<PolicyArgs> for Policies {
    fn from(args: PolicyArgs) -> Self {
        Self {
            hash_field_ttl: args.hash_field_ttl,
            vector_set: args.vector_set,
            module: args.module,
        }
    }
}

/// Why a policy value did not parse; clap prints it after the flag name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}")]
pub struct ParsePolicyError {
    expected: &'static str,
}

impl FromStr for HashFieldTtlPolicy {
    type Err = ParsePolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fail" => Ok(Self::Fail),
            "persist" => Ok(Self::Persist),
            "drop-field" => Ok(Self::DropField),
            _ => Err(ParsePolicyError {
                expected: "fail, persist or drop-field",
            }),
        }
    }
}

impl FromStr for VectorSetPolicy {
    type Err = ParsePolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fail" => Ok(Self::Fail),
            "skip" => Ok(Self::Skip),
            _ => match s.strip_prefix("export=") {
                Some(path) if !path.is_empty() => Ok(Self::Export(PathBuf::from(path))),
                _ => Err(ParsePolicyError {
                    expected: "fail, skip or export=PATH",
                }),
            },
        }
    }
}

impl FromStr for ModulePolicy {
    type Err = ParsePolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fail" => Ok(Self::Fail),
            "skip" => Ok(Self::Skip),
            _ => Err(ParsePolicyError {
                expected: "fail or skip",
            }),
        }
    }
}

impl fmt::Display for HashFieldTtlPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fail => "fail",
            Self::Persist => "persist",
            Self::DropField => "drop-field",
        })
    }
}

impl fmt::Display for VectorSetPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fail => f.write_str("fail"),
            Self::Skip => f.write_str("skip"),
            Self::Export(path) => write!(f, "export={}", path.display()),
        }
    }
}

impl fmt::Display for ModulePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fail => "fail",
            Self::Skip => "skip",
        })
    }
}

/// Policies serialize as their flag values (`"drop-field"`, `"export=v.jsonl"`).
macro_rules! serialize_as_flag_value {
    ($($policy:ty),*) => {$(
        impl serde::Serialize for $policy {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    )*};
}
serialize_as_flag_value!(HashFieldTtlPolicy, VectorSetPolicy, ModulePolicy);

/// How long a key at or near its expiry is kept on the target for the source's DEL (the
/// snapshot's writer and the stream's expiry rule both hold it this long).
pub const EXPIRY_GRACE_MS: i64 = 5_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_parse_by_their_exact_names() {
        assert_eq!("persist".parse(), Ok(HashFieldTtlPolicy::Persist));
        assert_eq!("drop-field".parse(), Ok(HashFieldTtlPolicy::DropField));
        assert!("drop_field".parse::<HashFieldTtlPolicy>().is_err());
        assert_eq!(
            "export=v.jsonl".parse(),
            Ok(VectorSetPolicy::Export("v.jsonl".into()))
        );
        assert!("export=".parse::<VectorSetPolicy>().is_err());
        assert_eq!("skip".parse(), Ok(ModulePolicy::Skip));
        assert!("persist".parse::<ModulePolicy>().is_err());
    }

    #[test]
    fn display_gives_back_the_flag_value() {
        for text in ["fail", "persist", "drop-field"] {
            assert_eq!(
                text.parse::<HashFieldTtlPolicy>().unwrap().to_string(),
                text
            );
        }
        for text in ["fail", "skip", "export=out/v.jsonl"] {
            assert_eq!(text.parse::<VectorSetPolicy>().unwrap().to_string(), text);
        }
    }
}
