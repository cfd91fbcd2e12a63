//! RESTORE payloads in the stream that the target cannot load as they are.
//!
//! A DUMP payload carries its producer's RDB version, and a server refuses a newer one
//! than its own ("DUMP payload version or checksum are wrong"); Valkey also refuses the
//! versions Redis 7.4+ writes (12 and up), and Redis refuses Valkey 9's (80 and up). A Redis 8
//! cluster source sends such payloads whenever a resharding moves keys (`RESTORE-ASKING`,
//! [`crate::transforms::shards::moves`]), as does any client's `RESTORE`. Those payloads
//! are decoded here, put through the same policies as the full sync's keys
//! ([`CompatTransform`]: `--hash-field-ttl`, `--vector-set`, `--module`) and encoded again
//! in the target's format. A key the policies leave out becomes a `DEL`: the RESTORE
//! would have replaced what the target held. `--vector-set export` leaves such a key out
//! too: the export file is written from the full sync only.

use super::CommandError;
use crate::error::Error;
use crate::policy::{Policies, VectorSetPolicy};
use crate::target::Target;
use crate::transforms::compat::CompatTransform;
use crate::transforms::Transform;
use bytes::Bytes;
use ferry_codec::{Flavor, Format, Item, RdbVersion, ValuePart};

/// The first version Valkey writes with its own type bytes (and Redis never loads).
const FIRST_VALKEY_VERSION: u16 = 80;
/// The last version every Redis and Valkey release from 7.2 on loads alike.
const LAST_SHARED_VERSION: u16 = 11;

/// What a payload becomes on the target.
pub(super) enum Recoded {
    /// The payload as the target loads it.
    Payload(Bytes),
    /// The policies leave the key out.
    LeftOut,
}

/// Re-encodes payloads for one target, under one set of policies.
pub(super) struct PayloadRecoder {
    target: Target,
    policies: Policies,
    /// Created at the first payload that needs it; its report is the translator's too.
    compat: Option<CompatTransform>,
}

impl PayloadRecoder {
    pub(super) fn new(target: Target, policies: &Policies) -> Self {
        let mut policies = policies.clone();
        if let VectorSetPolicy::Export(_) = policies.vector_set {
            policies.vector_set = VectorSetPolicy::Skip;
        }
        Self {
            target,
            policies,
            compat: None,
        }
    }

    /// `None` when the target loads `payload` as it is (or it is no payload ferry can
    /// read the version of: the target's own answer then says what is wrong).
    pub(super) fn recode(&mut self, key: &Bytes, payload: &[u8]) -> Result<Option<Recoded>, Error> {
        let Ok(split) = ferry_codec::dump::split_payload(payload) else {
            return Ok(None);
        };
        if loads(self.target.format, split.version) {
            return Ok(None);
        }
        let (header, parts) = ferry_codec::dump::decode(key.clone(), payload)
            .map_err(|source| CommandError::payload(key, source.to_string()))?;
        let flavor = match split.version >= FIRST_VALKEY_VERSION {
            true => Flavor::Valkey,
            false => Flavor::Redis,
        };
        let compat = match &mut self.compat {
            Some(compat) => compat,
            None => self.compat.insert(CompatTransform::new(
                self.target.clone(),
                self.policies.clone(),
                false,
            )?),
        };
        let mut out = Vec::new();
        let version = RdbVersion {
            flavor,
            number: split.version,
        };
        compat.apply(Item::Header(version), &mut out)?;
        compat.apply(Item::KeyStart(header), &mut out)?;
        for part in parts {
            compat.apply(Item::Part(part), &mut out)?;
        }
        compat.apply(Item::KeyEnd, &mut out)?;
        let mut kept = None;
        let mut kept_parts: Vec<ValuePart> = Vec::new();
        for item in out {
            match item {
                Item::KeyStart(header) => kept = Some(header),
                Item::Part(part) => kept_parts.push(part),
                _ => {}
            }
        }
        let Some(header) = kept else {
            return Ok(Some(Recoded::LeftOut));
        };
        let encoded = ferry_codec::dump::encode(self.target.format, &header, &kept_parts)
            .map_err(|source| CommandError::payload(key, source.to_string()))?;
        Ok(Some(Recoded::Payload(Bytes::from(encoded))))
    }

    /// The policies' decisions on re-encoded payloads, for the final report.
    pub(super) fn report_lines(&self) -> Vec<String> {
        self.compat
            .as_ref()
            .map(|compat| compat.report().lines())
            .unwrap_or_default()
    }
}

/// Whether a server writing `format` loads a payload of `version` as it is.
fn loads(format: Format, version: u16) -> bool {
    let own = format.dump_version();
    let valkey_payload = version >= FIRST_VALKEY_VERSION;
    let valkey_target = format.version.flavor == Flavor::Valkey && own >= FIRST_VALKEY_VERSION;
    version <= own && (version <= LAST_SHARED_VERSION || valkey_payload == valkey_target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_payload_versions_each_target_loads() {
        let format = |name| Format::from_profile(name).unwrap();
        for (target, version, loaded) in [
            ("valkey-8.1", 10, true),
            ("valkey-8.1", 11, true),
            ("valkey-8.1", 12, false),
            ("valkey-8.1", 80, false),
            ("valkey-9.1", 11, true),
            ("valkey-9.1", 12, false),
            ("valkey-9.1", 80, true),
            ("redis-8.0", 12, true),
            ("redis-8.0", 80, false),
            ("redis-7.0", 11, false),
        ] {
            assert_eq!(loads(format(target), version), loaded, "{target} {version}");
        }
    }
}
