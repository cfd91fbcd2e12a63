//! RENAME and RENAMENX of a key a policy left out of the target.
//!
//! Under `--vector-set skip|export` (target without vector sets) and `--hash-field-ttl
//! drop-field` (target without field TTLs) some source keys do not exist on the target: a
//! vector set, or a hash whose every field has a TTL. Renaming one is an error on the
//! target ("no such key") although it succeeded on the source. There the key moved and
//! overwrote the destination; here nothing moves, and the destination has to go, since on
//! the source it now holds what the policy leaves out. Which case applies is known only
//! on the target, so the command becomes a small script that checks there.

use super::{CommandTranslator, Translated};
use crate::policy::{HashFieldTtlPolicy, VectorSetPolicy};
use bytes::Bytes;

const EVAL: Bytes = Bytes::from_static(b"EVAL");
const TWO_KEYS: Bytes = Bytes::from_static(b"2");
const RENAME: Bytes = Bytes::from_static(
    b"if redis.call('EXISTS', KEYS[1]) == 1 then \
      return redis.call('RENAME', KEYS[1], KEYS[2]) end \
      return redis.call('DEL', KEYS[2])",
);
// The source only propagates a RENAMENX that succeeded, so its destination did not exist.
const RENAMENX: Bytes = Bytes::from_static(
    b"if redis.call('EXISTS', KEYS[1]) == 1 then \
      return redis.call('RENAMENX', KEYS[1], KEYS[2]) end \
      return 0",
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rename {
    Always,
    IfAbsent,
}

impl CommandTranslator {
    /// Whether the policies leave some source keys out of this target.
    fn may_leave_keys_out(&self) -> bool {
        let vector_sets_out =
            !self.vector_sets && self.policies.vector_set != VectorSetPolicy::Fail;
        let hashes_out =
            !self.field_ttls && self.policies.hash_field_ttl == HashFieldTtlPolicy::DropField;
        vector_sets_out || hashes_out
    }

    /// `RENAME|RENAMENX source destination`.
    pub(super) fn rename(&self, args: Vec<Bytes>, kind: Rename) -> Translated {
        if !self.may_leave_keys_out() || args.len() != 3 {
            // A malformed one is for the target to refuse, as it would the original.
            return Translated::Apply(vec![args]);
        }
        let script = match kind {
            Rename::Always => RENAME,
            Rename::IfAbsent => RENAMENX,
        };
        let mut command = vec![EVAL, script, TWO_KEYS];
        command.extend(args.into_iter().skip(1));
        Translated::Apply(vec![command])
    }
}
