//! Makes the source's replication stream applicable to the target: the command-stream
//! counterpart of [`crate::transforms::compat`], with the same `--hash-field-ttl` and
//! `--vector-set` policies and the same meaning.
//!
//! What a Redis 8 primary propagates (verified against a real Redis 8.0 by
//! `tests/it/propagation.rs`, and in Redis's `t_hash.c` and `modules/vector-sets/vset.c`):
//! - `HSETEX` with `EX`/`PX`/`EXAT` arrives with `PXAT <absolute ms>`; `FNX`/`FXX`,
//!   `KEEPTTL` and TTL-less forms arrive verbatim; a TTL already past arrives as `HDEL`.
//! - `HEXPIRE`, `HPEXPIRE`, `HEXPIREAT` and `HGETEX EX|PX|EXAT|PXAT` arrive as
//!   `HPEXPIREAT key <absolute ms> [NX|XX|GT|LT] FIELDS n field…`, naming only the fields
//!   whose TTL changed.
//! - `HPERSIST` arrives verbatim (every field it was given); `HGETEX PERSIST` as `HPERSIST`.
//! - `HGETDEL` arrives as `HDEL` (and becomes `HDEL` here if it ever arrives as it is);
//!   a field expiring on the source arrives as `HDEL`.
//! - `HINCRBYFLOAT` arrives as `HSET` with the result (Redis 8.0.2; Redis's newer sources
//!   send `HSETEX … KEEPTTL FIELDS 1 field value`, which becomes `HSET` here).
//! - `VADD` (with `CAS` too), `VREM` and `VSETATTR` arrive verbatim.
//! - Scripts arrive as their effects inside `MULTI`/`EXEC` (Redis 6.0, 7.0 and 8.0).
//! - Redis 7.0+ sends key expiries as absolute times; Redis 6.0 sends `EXPIRE`, `PEXPIRE`,
//!   `SETEX`, `PSETEX`, `SET … EX|PX` and `RESTORE` TTLs relative, which this module makes
//!   absolute on arrival (see `expiry.rs`).
//!
//! Valkey 9.1 accepts every one of those forms as it is. Valkey 8.x has none of the hash
//! field TTL commands and no vector sets; this module rewrites or skips them there:
//!
//! | source sends | `fail` | `persist` | `drop-field` |
//! |---|---|---|---|
//! | `HSETEX … PXAT t FIELDS …` | error | `HSET` (no TTL) | `HDEL` of the fields |
//! | `HSETEX` without TTL / `KEEPTTL` | `HSET` | `HSET` | `HSET` |
//! | `HPEXPIREAT t … FIELDS …` | error | skipped | `HDEL` of the fields |
//! | `HPERSIST … FIELDS …` | skipped | skipped | skipped (fields stay dropped) |
//!
//! Under `persist` a field keeps living on the target after its TTL; once it expires on
//! the source, the source sends `HDEL` and the target follows. Under `drop-field` a field
//! leaves the target as soon as the source gives it a TTL, and `HPERSIST` cannot bring it
//! back: the stream does not carry its value. A field written by `HSETEX KEEPTTL` (or by
//! `HINCRBY`/`HINCRBYFLOAT`, which keep a TTL) while it has a TTL on the source is written
//! on the target too; the source's `HDEL` at expiry removes it again.
//!
//! Vector-set commands on a target without vector sets: `fail` stops, `skip` and
//! `export=PATH` skip them. The export file is written from the full sync; under
//! `export`, the keys these commands (and renames) change are noted, and `migrate` reads
//! them again from the source when it stops, so the file is current at the stop.
//!
//! A key these policies left out of the target (a vector set; under `drop-field` a hash
//! whose every field has a TTL) cannot be renamed there; RENAME and RENAMENX become a
//! script that renames when the key exists on the target and otherwise deletes the
//! destination (see `renames.rs`).

mod expiry;
mod hash_ttl;
mod payload;
mod renames;
mod report;
mod syntax;
/// Keeps the export's list of vector sets where the sets are: `SWAPDB` exchanges two
/// databases' entries, `MOVE` takes a noted set to its new database (the end of the run reads
/// each set again from where the list says; Redis refuses `COPY` of a vector set).
fn follow_database_changes(
    keys: &crate::transforms::compat::ExportedKeys,
    db: u64,
    args: &[Bytes],
) {
    let number = |arg: Option<&Bytes>| std::str::from_utf8(arg?).ok()?.parse::<u64>().ok();
    let name = &args[0];
    if name.eq_ignore_ascii_case(b"SWAPDB") {
        if let (Some(a), Some(b)) = (number(args.get(1)), number(args.get(2))) {
            keys.swap_dbs(a, b);
        }
    } else if name.eq_ignore_ascii_case(b"MOVE") {
        if let (Some(key), Some(to)) = (args.get(1), number(args.get(2))) {
            keys.move_key(db, key, to);
        }
    }
}

#[cfg(test)]
mod tests;
pub mod transform;
mod vector_sets;

pub use report::{CommandReport, HashTtlCommandCounts, VectorCommandCounts};

use crate::display::quoted;
use crate::error::Error;
use crate::policy::Policies;
use crate::target::Target;
use bytes::Bytes;
use expiry::Unit;
use payload::PayloadRecoder;
use renames::Rename;
use std::collections::HashSet;

/// What to send the target for one replicated command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Translated {
    /// These commands, in this order (usually the command itself, unchanged).
    Apply(Vec<Vec<Bytes>>),
    /// Nothing; `reason` says why, for logs. Counted in the [`CommandReport`] when a
    /// policy decided it.
    Skip { reason: &'static str },
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(
        "source sent {command} for hash {key} in db {db}, giving fields a TTL, and {target} \
         has no hash field TTLs; pass --hash-field-ttl persist (keep the fields without \
         TTL) or drop-field (delete them on the target)"
    )]
    HashFieldTtl {
        command: String,
        key: String,
        db: u64,
        target: String,
    },
    #[error(
        "source sent {command} for vector set {key} in db {db}, and {target} has no vector \
         sets; pass --vector-set skip or --vector-set export=PATH"
    )]
    VectorSet {
        command: String,
        key: String,
        db: u64,
        target: String,
    },
    #[error("source sent {command}, which {target} lacks")]
    Unsupported { command: String, target: String },
    #[error(
        "source sent RESTORE of key {key} with a payload ferry cannot convert for the \
         target: {reason}"
    )]
    Payload { key: String, reason: String },
    #[error("source sent {command} in a form ferry cannot read: {reason}")]
    Malformed {
        command: String,
        reason: &'static str,
    },
}

/// The commands that need more than passing on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    HSetEx,
    /// HEXPIRE, HPEXPIRE, HEXPIREAT, HPEXPIREAT: the time is the argument after the key.
    HExpire,
    HPersist,
    HGetEx,
    HGetDel,
    /// A command of Redis's built-in vector-set module.
    Vector,
    /// Commands that may carry a relative key TTL (from Redis 6.0 sources).
    Set,
    SetEx(Unit),
    Expire(Unit),
    /// Absolute key expiries: held for the source's DEL (expiry.rs).
    ExpireAt(Unit),
    GetEx,
    Restore,
    Rename(Rename),
}

const SPECIAL: &[(&str, Special)] = &[
    ("HSETEX", Special::HSetEx),
    ("HEXPIRE", Special::HExpire),
    ("HPEXPIRE", Special::HExpire),
    ("HEXPIREAT", Special::HExpire),
    ("HPEXPIREAT", Special::HExpire),
    ("HPERSIST", Special::HPersist),
    ("HGETEX", Special::HGetEx),
    ("HGETDEL", Special::HGetDel),
    // Writes; the reads never reach a replica but would be refused all the same.
    ("VADD", Special::Vector),
    ("VREM", Special::Vector),
    ("VSETATTR", Special::Vector),
    ("VCARD", Special::Vector),
    ("VDIM", Special::Vector),
    ("VEMB", Special::Vector),
    ("VGETATTR", Special::Vector),
    ("VINFO", Special::Vector),
    ("VISMEMBER", Special::Vector),
    ("VLINKS", Special::Vector),
    ("VRANDMEMBER", Special::Vector),
    ("VRANGE", Special::Vector),
    ("VSIM", Special::Vector),
    ("SET", Special::Set),
    ("SETEX", Special::SetEx(Unit::Seconds)),
    ("PSETEX", Special::SetEx(Unit::Milliseconds)),
    ("EXPIRE", Special::Expire(Unit::Seconds)),
    ("PEXPIRE", Special::Expire(Unit::Milliseconds)),
    ("EXPIREAT", Special::ExpireAt(Unit::Seconds)),
    ("PEXPIREAT", Special::ExpireAt(Unit::Milliseconds)),
    ("GETEX", Special::GetEx),
    ("RESTORE", Special::Restore),
    // What a cluster node propagates for a key MIGRATE brought it (see `expiry.rs`).
    ("RESTORE-ASKING", Special::Restore),
    ("RENAME", Special::Rename(Rename::Always)),
    ("RENAMENX", Special::Rename(Rename::IfAbsent)),
];

fn special(name: &[u8]) -> Option<(&'static str, Special)> {
    // Most commands pass straight through; only these initials need the table.
    match name.first()?.to_ascii_uppercase() {
        b'E' | b'G' | b'H' | b'P' | b'R' | b'S' | b'V' => SPECIAL
            .iter()
            .find(|(known, _)| name.eq_ignore_ascii_case(known.as_bytes()))
            .copied(),
        _ => None,
    }
}

/// Translates replicated commands for one target under one set of policies.
pub struct CommandTranslator {
    policies: Policies,
    target: String,
    field_ttls: bool,
    vector_sets: bool,
    /// Lower-case names of every command the target has, when the caller asked it
    /// ([`Self::with_target_commands`]).
    target_commands: Option<HashSet<Box<[u8]>>>,
    /// The current time in Unix ms, for relative TTLs.
    clock: fn() -> i64,
    /// Whether expiries due within the grace period are held (see `expiry.rs`).
    hold_expiries: bool,
    /// Under `--vector-set export`: where the vector sets the stream changes are noted, so
    /// that the run can bring the export up to date when it ends.
    exported_keys: Option<crate::transforms::compat::ExportedKeys>,
    report: CommandReport,
    /// RESTORE payloads the target cannot load as they are (see `payload.rs`).
    payloads: PayloadRecoder,
}

impl CommandTranslator {
    pub fn new(policies: &Policies, target: &Target) -> Self {
        Self {
            policies: policies.clone(),
            target: target.name.clone(),
            field_ttls: target.format.has_hash_field_ttl(),
            vector_sets: target.format.has_builtin_module("vectorset"),
            target_commands: None,
            clock: unix_time_ms,
            hold_expiries: true,
            exported_keys: None,
            report: CommandReport::new(policies),
            payloads: PayloadRecoder::new(target.clone(), policies),
        }
    }

    /// Notes in `keys` every key a vector-set command, or a rename onto it, changes.
    pub fn with_exported_keys(mut self, keys: crate::transforms::compat::ExportedKeys) -> Self {
        self.exported_keys = Some(keys);
        self.report.export_refreshed_at_stop = true;
        self
    }

    /// Also refuses, by name, any command the target does not have: pass the names from
    /// the target's `COMMAND LIST` (any case). Without this, such a command is sent and
    /// the target's "unknown command" error is what stops the migration.
    pub fn with_target_commands<N: AsRef<[u8]>>(
        mut self,
        names: impl IntoIterator<Item = N>,
    ) -> Self {
        let names = names
            .into_iter()
            .map(|name| name.as_ref().to_ascii_lowercase().into_boxed_slice())
            .collect();
        self.target_commands = Some(names);
        self
    }

    /// Passes absolute expiries on exactly (relative ones still become absolute): for a
    /// replica (relay), which deletes no key on its own clock and waits for its primary's
    /// DEL.
    pub fn with_exact_expiries(mut self) -> Self {
        self.hold_expiries = false;
        self
    }

    /// Reads the time for relative TTLs from `clock` (Unix ms) instead of the system.
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    pub fn report(&self) -> &CommandReport {
        &self.report
    }

    /// The report's lines, with the policies' decisions on re-encoded RESTORE payloads.
    pub fn report_lines(&self) -> Vec<String> {
        let mut lines = self.report.lines();
        lines.extend(self.payloads.report_lines());
        lines
    }

    /// One replicated command (`args[0]` is the name, any case) in db `db`, as the
    /// source's replication stream carries it. Returns what to send the target instead.
    pub fn translate(&mut self, db: u64, args: Vec<Bytes>) -> Result<Translated, Error> {
        let Some(name) = args.first() else {
            return Err(CommandError::Malformed {
                command: "a command".into(),
                reason: "it is empty",
            }
            .into());
        };
        if let Some(keys) = &self.exported_keys {
            follow_database_changes(keys, db, &args);
        }
        match special(name) {
            Some((_, Special::HSetEx)) => self.hsetex(db, args),
            Some((_, Special::HExpire)) => self.hexpire(db, args),
            Some((_, Special::HPersist)) => self.hpersist(args),
            Some((_, Special::HGetEx)) => self.hgetex(db, args),
            Some((_, Special::HGetDel)) => hash_ttl::hgetdel(args),
            Some((name, Special::Vector)) => self.vector_command(name, db, args),
            Some((_, Special::Set)) => self.set(args),
            Some((_, Special::SetEx(unit))) => self.setex(args, unit),
            Some((_, Special::Expire(unit))) => self.expire(args, unit),
            Some((_, Special::ExpireAt(unit))) => self.expire_at(args, unit),
            Some((_, Special::GetEx)) => self.getex(args),
            Some((_, Special::Restore)) => self.restore(db, args),
            Some((_, Special::Rename(kind))) => {
                // The destination may now be a vector set: the export looks at it again.
                if let (Some(keys), Some(destination)) = (&self.exported_keys, args.get(2)) {
                    keys.note(db, destination);
                }
                Ok(self.rename(args, kind))
            }
            None => {
                self.check_target_has(name)?;
                Ok(Translated::Apply(vec![args]))
            }
        }
    }

    fn check_target_has(&self, name: &[u8]) -> Result<(), CommandError> {
        let Some(known) = &self.target_commands else {
            return Ok(());
        };
        if known.contains(name.to_ascii_lowercase().as_slice()) {
            return Ok(());
        }
        Err(CommandError::Unsupported {
            command: command_name(name),
            target: self.target.clone(),
        })
    }
}

fn unix_time_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// A command name for messages: upper case, quoted only if it is not plain text.
fn command_name(name: &[u8]) -> String {
    crate::display::plain_or_quoted(&name.to_ascii_uppercase())
}

/// The key of a command whose key is its first argument, for messages.
fn key_of(args: &[Bytes]) -> String {
    args.get(1)
        .map(|k| quoted(k))
        .unwrap_or_else(|| "\"\"".into())
}

fn malformed(args: &[Bytes], reason: &'static str) -> CommandError {
    CommandError::Malformed {
        command: command_name(args.first().map(|a| &a[..]).unwrap_or_default()),
        reason,
    }
}

impl CommandError {
    fn payload(key: &[u8], reason: String) -> Self {
        CommandError::Payload {
            key: quoted(key),
            reason,
        }
    }
}
