//! `--hash-field-ttl`: one hash key's fields, for a target without hash field TTLs.

use super::report::HashFieldTtlCounts;
use super::PolicyError;
use crate::display::quoted;
use crate::policy::HashFieldTtlPolicy;
use ferry_codec::{Flavor, HashField, Item, KeyHeader, ValuePart};

/// Follows one hash from its `KeyStart` to its `KeyEnd`.
pub(super) struct HashTtlFilter {
    policy: HashFieldTtlPolicy,
    key: bytes::Bytes,
    /// `drop-field` holds the key's start back until a field survives, so that a hash whose
    /// fields all had TTLs disappears whole instead of arriving empty.
    held: Option<KeyHeader>,
    /// Whether the emitted header promised an element count we would break by dropping.
    count_promised: bool,
    fields_changed: u64,
}

impl HashTtlFilter {
    pub(super) fn start(
        policy: HashFieldTtlPolicy,
        mut header: KeyHeader,
        source: Flavor,
        out: &mut Vec<Item>,
    ) -> Self {
        let key = header.key.clone();
        let mut held = None;
        if policy == HashFieldTtlPolicy::DropField {
            // Fields may be dropped, so the count the source gave may no longer hold.
            if can_carry_field_ttls(source, header.encoding) {
                header.len = None;
            }
            held = Some(header);
        } else {
            out.push(Item::KeyStart(header));
        }
        Self {
            policy,
            key,
            held,
            count_promised: false,
            fields_changed: 0,
        }
    }

    pub(super) fn fields(
        &mut self,
        mut fields: Vec<HashField>,
        target: &str,
        out: &mut Vec<Item>,
    ) -> Result<(), PolicyError> {
        match self.policy {
            HashFieldTtlPolicy::Fail => {
                if let Some(field) = fields.iter().find(|f| f.expire_at_ms.is_some()) {
                    return Err(PolicyError::HashFieldTtl {
                        key: quoted(&self.key),
                        field: quoted(&field.field),
                        target: target.to_owned(),
                    });
                }
            }
            HashFieldTtlPolicy::Persist => {
                for field in fields.iter_mut().filter(|f| f.expire_at_ms.is_some()) {
                    field.expire_at_ms = None;
                    self.fields_changed += 1;
                }
            }
            HashFieldTtlPolicy::DropField => {
                let before = fields.len();
                fields.retain(|f| f.expire_at_ms.is_none());
                let dropped = (before - fields.len()) as u64;
                if dropped > 0 {
                    self.forget_count()?;
                }
                self.fields_changed += dropped;
                if fields.is_empty() {
                    return Ok(());
                }
                self.release(out);
            }
        }
        out.push(Item::Part(ValuePart::HashFields(fields)));
        Ok(())
    }

    /// Ends the key: emits its end, or nothing if every field was dropped.
    pub(super) fn end(mut self, counts: &mut HashFieldTtlCounts, out: &mut Vec<Item>) {
        if self.fields_changed > 0 {
            counts.keys += 1;
            counts.fields += self.fields_changed;
        }
        if self.held.is_some() && self.fields_changed > 0 {
            counts.keys_dropped += 1;
            return;
        }
        // A hash that arrived empty stays as it was.
        self.release(out);
        out.push(Item::KeyEnd);
    }

    fn release(&mut self, out: &mut Vec<Item>) {
        if let Some(header) = self.held.take() {
            self.count_promised = header.len.is_some();
            out.push(Item::KeyStart(header));
        }
    }

    fn forget_count(&mut self) -> Result<(), PolicyError> {
        match &mut self.held {
            Some(header) => header.len = None,
            // Only an encoding that cannot carry field TTLs keeps its count, and only a
            // decoder bug gives such a hash a field TTL.
            None if self.count_promised => {
                return Err(PolicyError::UnexpectedFieldTtl {
                    key: quoted(&self.key),
                })
            }
            None => {}
        }
        Ok(())
    }
}

/// The hash encodings that store per-field TTLs; the `len` of any other hash is safe to keep
/// under `drop-field`.
fn can_carry_field_ttls(source: Flavor, encoding: u8) -> bool {
    use ferry_codec::types::*;
    match source {
        Flavor::Valkey => encoding == VALKEY_HASH_2,
        Flavor::Redis => matches!(
            encoding,
            REDIS_HASH_METADATA_PRE_GA
                | REDIS_HASH_LISTPACK_EX_PRE_GA
                | REDIS_HASH_METADATA
                | REDIS_HASH_LISTPACK_EX
        ),
    }
}
