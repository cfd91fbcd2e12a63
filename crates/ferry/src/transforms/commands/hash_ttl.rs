//! `--hash-field-ttl` for the command stream: the hash field TTL commands, for a target
//! without them. See the table in the module above.

use super::syntax::{self, FieldsCommand, Items};
use super::{command_name, key_of, malformed, CommandError, CommandTranslator, Translated};
use crate::error::Error;
use crate::policy::HashFieldTtlPolicy;
use bytes::Bytes;

const HSET: Bytes = Bytes::from_static(b"HSET");
const HDEL: Bytes = Bytes::from_static(b"HDEL");

const NO_FIELD_TTLS: &str = "the target has no field TTLs and --hash-field-ttl persist \
                             keeps the fields";
const NOTHING_TO_PERSIST: &str = "no field on the target has a TTL to remove";
const DROPPED_STAY_DROPPED: &str = "--hash-field-ttl drop-field: fields that had a TTL were \
                                    dropped and their values are not in the stream";
const READ_ONLY: &str = "HGETEX without TTL options only reads";

impl CommandTranslator {
    /// `HSETEX key [FNX|FXX] [PXAT t|…|KEEPTTL] FIELDS n field value …`
    pub(super) fn hsetex(&mut self, db: u64, args: Vec<Bytes>) -> Result<Translated, Error> {
        let parsed = parse(&args, 2, Items::FieldValuePairs)?;
        if self.field_ttls {
            return Ok(Translated::Apply(vec![args]));
        }
        // The source propagates an HSETEX only when its FNX/FXX condition held, so the
        // plain forms below need no condition.
        if parsed.ttl_option.is_none() {
            return Ok(Translated::Apply(vec![hset(args, &parsed)]));
        }
        match self.policies.hash_field_ttl {
            HashFieldTtlPolicy::Fail => Err(self.refuse(db, &args)),
            HashFieldTtlPolicy::Persist => {
                self.report.hash_field_ttl.fields_written_without_ttl += parsed.count as u64;
                Ok(Translated::Apply(vec![hset(args, &parsed)]))
            }
            HashFieldTtlPolicy::DropField => {
                // The fields are volatile on the source now, so they must not exist here.
                self.report.hash_field_ttl.fields_dropped += parsed.count as u64;
                Ok(Translated::Apply(vec![hdel(
                    &args,
                    &parsed,
                    Items::FieldValuePairs,
                )]))
            }
        }
    }

    /// `HPEXPIREAT key t [NX|XX|GT|LT] FIELDS n field …` (and its relative and
    /// second-based siblings, which a Redis primary never propagates).
    pub(super) fn hexpire(&mut self, db: u64, args: Vec<Bytes>) -> Result<Translated, Error> {
        if args.len() < 3 {
            return Err(malformed(&args, "no TTL").into());
        }
        let parsed = parse(&args, 3, Items::Fields)?;
        if self.field_ttls {
            return Ok(Translated::Apply(vec![args]));
        }
        self.set_field_ttls(db, args, &parsed)
    }

    /// `HPERSIST key FIELDS n field …`
    pub(super) fn hpersist(&mut self, args: Vec<Bytes>) -> Result<Translated, Error> {
        parse(&args, 2, Items::Fields)?;
        if self.field_ttls {
            return Ok(Translated::Apply(vec![args]));
        }
        Ok(self.skip_persist())
    }

    /// `HGETEX key [EX|PX|EXAT|PXAT t|PERSIST] FIELDS n field …`: a primary propagates it
    /// as HPEXPIREAT or HPERSIST, but other writers of a stream may not.
    pub(super) fn hgetex(&mut self, db: u64, args: Vec<Bytes>) -> Result<Translated, Error> {
        let parsed = parse(&args, 2, Items::Fields)?;
        if self.field_ttls {
            return Ok(Translated::Apply(vec![args]));
        }
        if parsed.persist {
            Ok(self.skip_persist())
        } else if parsed.ttl_option.is_some() {
            self.set_field_ttls(db, args, &parsed)
        } else {
            Ok(Translated::Skip { reason: READ_ONLY })
        }
    }

    /// Fields of `args` get a TTL on the source; the target cannot store it.
    fn set_field_ttls(
        &mut self,
        db: u64,
        args: Vec<Bytes>,
        parsed: &FieldsCommand,
    ) -> Result<Translated, Error> {
        match self.policies.hash_field_ttl {
            HashFieldTtlPolicy::Fail => Err(self.refuse(db, &args)),
            HashFieldTtlPolicy::Persist => {
                self.report.hash_field_ttl.field_ttls_ignored += parsed.count as u64;
                Ok(Translated::Skip {
                    reason: NO_FIELD_TTLS,
                })
            }
            HashFieldTtlPolicy::DropField => {
                self.report.hash_field_ttl.fields_dropped += parsed.count as u64;
                Ok(Translated::Apply(vec![hdel(&args, parsed, Items::Fields)]))
            }
        }
    }

    fn skip_persist(&mut self) -> Translated {
        match self.policies.hash_field_ttl {
            // Nothing on the target has a TTL, and nothing was lost.
            HashFieldTtlPolicy::Fail | HashFieldTtlPolicy::Persist => Translated::Skip {
                reason: NOTHING_TO_PERSIST,
            },
            HashFieldTtlPolicy::DropField => {
                self.report.hash_field_ttl.persists_skipped += 1;
                Translated::Skip {
                    reason: DROPPED_STAY_DROPPED,
                }
            }
        }
    }

    fn refuse(&self, db: u64, args: &[Bytes]) -> Error {
        CommandError::HashFieldTtl {
            command: command_name(args.first().map(|a| &a[..]).unwrap_or_default()),
            key: key_of(args),
            db,
            target: self.target.clone(),
        }
        .into()
    }
}

/// `HGETDEL key FIELDS n field …` deletes what it reads: `HDEL key field …` on any target
/// (a primary already propagates it so).
pub(super) fn hgetdel(args: Vec<Bytes>) -> Result<Translated, Error> {
    let parsed = parse(&args, 2, Items::Fields)?;
    Ok(Translated::Apply(vec![hdel(&args, &parsed, Items::Fields)]))
}

fn parse(args: &[Bytes], options_at: usize, items: Items) -> Result<FieldsCommand, CommandError> {
    if args.len() < 2 {
        return Err(malformed(args, "no key"));
    }
    syntax::parse(args, options_at, items).map_err(|reason| malformed(args, reason))
}

/// `HSET key field value …` from a parsed HSETEX, moving its pairs.
fn hset(mut args: Vec<Bytes>, parsed: &FieldsCommand) -> Vec<Bytes> {
    let pairs = args.split_off(parsed.items_at);
    let mut out = Vec::with_capacity(2 + pairs.len());
    out.push(HSET);
    out.push(args.swap_remove(1));
    out.extend(pairs);
    out
}

/// `HDEL key field …` for the fields of a parsed command.
fn hdel(args: &[Bytes], parsed: &FieldsCommand, items: Items) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(2 + parsed.count);
    out.push(HDEL);
    out.push(args.get(1).cloned().unwrap_or_default());
    out.extend(parsed.fields(args, items).cloned());
    out
}
