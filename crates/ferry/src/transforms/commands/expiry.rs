//! Relative key expiries become absolute times when the command arrives, and no expiry
//! falls due sooner than a short grace period from now.
//!
//! Redis 7.0 and later propagate every expiry as an absolute time (`PEXPIREAT`, `SET …
//! PXAT`, `RESTORE … ABSTTL`); Redis 6.0 propagates `EXPIRE`, `PEXPIRE`, `SETEX`, `PSETEX`,
//! `SET … EX|PX` and `RESTORE` with a relative TTL as the client sent them (both verified
//! by tests/it/propagation.rs). Applied as they are, such TTLs would start counting when the
//! target applies them, which after a lag or a resumed stream may be long after the
//! source set them. Converting them on arrival keeps the error to the replication delay,
//! as a native replica has it.
//!
//! The target is a primary and expires keys by its own clock, while a replica would wait
//! for its primary's DEL. An expiry that falls due within ferry's lag (after a reconnect,
//! a catch-up, a restart) would let the target drop a key before earlier source commands
//! on it arrive. So, as the full sync does for the snapshot's keys, every expiry is held
//! at least [`EXPIRY_GRACE_MS`] from now; the source's DEL at the real expiry removes the
//! key in step with the source.
//!
//! Valkey 8.1 and later have an import mode that gives a primary the replica's view (no
//! key deleted on its own clock), which ferry turns on where it can. The hold stays: a
//! restarted target comes back out of import mode and expires keys by its clock until
//! ferry reconnects. A replica needs no hold ([`CommandTranslator::with_exact_expiries`],
//! for the relay).

use super::payload::Recoded;
use super::{malformed, CommandTranslator, Translated};
use crate::error::Error;
use crate::policy::EXPIRY_GRACE_MS;
use bytes::Bytes;

const SET: Bytes = Bytes::from_static(b"SET");
const PXAT: Bytes = Bytes::from_static(b"PXAT");
const PEXPIREAT: Bytes = Bytes::from_static(b"PEXPIREAT");
const PERSIST: Bytes = Bytes::from_static(b"PERSIST");
const ABSTTL: Bytes = Bytes::from_static(b"ABSTTL");
const RESTORE: Bytes = Bytes::from_static(b"RESTORE");
const REPLACE: Bytes = Bytes::from_static(b"REPLACE");
const DEL: Bytes = Bytes::from_static(b"DEL");

const READ_ONLY: &str = "GETEX without options only reads";

/// How a relative TTL argument counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    Seconds,
    Milliseconds,
}

impl CommandTranslator {
    /// `SET key value [options]`: `EX s` and `PX ms` become `PXAT t`.
    pub(super) fn set(&self, mut args: Vec<Bytes>) -> Result<Translated, Error> {
        let mut at = 3;
        while let Some(token) = args.get(at) {
            let unit = if token.eq_ignore_ascii_case(b"EX") {
                Some(Unit::Seconds)
            } else if token.eq_ignore_ascii_case(b"PX") {
                Some(Unit::Milliseconds)
            } else {
                None
            };
            let absolute = if token.eq_ignore_ascii_case(b"EXAT") {
                Some(Unit::Seconds)
            } else if token.eq_ignore_ascii_case(b"PXAT") {
                Some(Unit::Milliseconds)
            } else {
                None
            };
            if let Some(unit) = unit {
                let deadline = self.deadline(&args, at + 1, unit)?;
                args[at] = PXAT;
                args[at + 1] = deadline;
                at += 2;
            } else if let Some(unit) = absolute {
                let deadline = self.absolute_ms(&args, at + 1, unit)?;
                args[at] = PXAT;
                args[at + 1] = deadline;
                at += 2;
            } else if takes_value(token) {
                at += 2;
            } else {
                at += 1;
            }
        }
        Ok(Translated::Apply(vec![args]))
    }

    /// `SETEX key seconds value` / `PSETEX key ms value` → `SET key value PXAT t`.
    pub(super) fn setex(&self, args: Vec<Bytes>, unit: Unit) -> Result<Translated, Error> {
        let deadline = self.deadline(&args, 2, unit)?;
        let [_, key, _, value] = <[Bytes; 4]>::try_from(args)
            .map_err(|args| malformed(&args, "it needs a key, a TTL and a value"))?;
        Ok(Translated::Apply(vec![vec![
            SET, key, value, PXAT, deadline,
        ]]))
    }

    /// `EXPIRE key seconds [cond]` / `PEXPIRE key ms [cond]` → `PEXPIREAT key t [cond]`.
    pub(super) fn expire(&self, mut args: Vec<Bytes>, unit: Unit) -> Result<Translated, Error> {
        if args.len() < 3 {
            return Err(malformed(&args, "it needs a key and a TTL").into());
        }
        args[2] = self.deadline(&args, 2, unit)?;
        args[0] = PEXPIREAT;
        Ok(Translated::Apply(vec![args]))
    }

    /// `GETEX key EX|PX|EXAT|PXAT n` → `PEXPIREAT key t`; `GETEX key PERSIST` → `PERSIST
    /// key`; a plain `GETEX` changes nothing.
    pub(super) fn getex(&self, args: Vec<Bytes>) -> Result<Translated, Error> {
        let Some(key) = args.get(1) else {
            return Err(malformed(&args, "no key").into());
        };
        let Some(option) = args.get(2) else {
            return Ok(Translated::Skip { reason: READ_ONLY });
        };
        if option.eq_ignore_ascii_case(b"PERSIST") {
            return Ok(Translated::Apply(vec![vec![PERSIST, key.clone()]]));
        }
        let deadline = if option.eq_ignore_ascii_case(b"EX") {
            self.deadline(&args, 3, Unit::Seconds)?
        } else if option.eq_ignore_ascii_case(b"PX") {
            self.deadline(&args, 3, Unit::Milliseconds)?
        } else if option.eq_ignore_ascii_case(b"EXAT") {
            self.absolute_ms(&args, 3, Unit::Seconds)?
        } else if option.eq_ignore_ascii_case(b"PXAT") {
            self.absolute_ms(&args, 3, Unit::Milliseconds)?
        } else {
            return Err(malformed(&args, "unknown option").into());
        };
        Ok(Translated::Apply(vec![vec![
            PEXPIREAT,
            key.clone(),
            deadline,
        ]]))
    }

    /// `EXPIREAT key s` / `PEXPIREAT key ms` → `PEXPIREAT key t`, held.
    pub(super) fn expire_at(&self, mut args: Vec<Bytes>, unit: Unit) -> Result<Translated, Error> {
        if args.len() < 3 {
            return Err(malformed(&args, "it needs a key and a time").into());
        }
        args[2] = self.absolute_ms(&args, 2, unit)?;
        if unit == Unit::Seconds {
            args[0] = PEXPIREAT;
        }
        Ok(Translated::Apply(vec![args]))
    }

    /// `RESTORE key ttl payload [options]`: always `REPLACE`; a relative TTL becomes
    /// absolute, with `ABSTTL`; a payload the target cannot load is re-encoded for it
    /// (`payload.rs`), or the key deleted when the policies leave it out.
    pub(super) fn restore(&mut self, db: u64, mut args: Vec<Bytes>) -> Result<Translated, Error> {
        if args.len() < 4 {
            return Err(malformed(&args, "it needs a key, a TTL and a payload").into());
        }
        // A cluster source's node propagates the keys MIGRATE brought it as RESTORE-ASKING
        // (the ASKING is for a slot being imported there); the target needs RESTORE.
        if args[0].eq_ignore_ascii_case(b"RESTORE-ASKING") {
            args[0] = RESTORE;
        }
        // The source ran it, so it held no such key: a copy on the target is stale (the
        // origin shard's before MIGRATE moved the key, `redis-cli --cluster reshard` sends
        // no REPLACE; or this RESTORE applied already before a resume) and gives way.
        if !args[4..].iter().any(|a| a.eq_ignore_ascii_case(b"REPLACE")) {
            args.insert(4, REPLACE);
        }
        match self.payloads.recode(&args[1], &args[3])? {
            None => {}
            Some(Recoded::Payload(payload)) => args[3] = payload,
            Some(Recoded::LeftOut) => {
                // A vector set restored here is one the export must read again.
                if let Some(keys) = &self.exported_keys {
                    keys.note(db, &args[1]);
                }
                return Ok(Translated::Apply(vec![vec![DEL, args[1].clone()]]));
            }
        }
        let absolute = args[4..].iter().any(|a| a.eq_ignore_ascii_case(b"ABSTTL"));
        if number(&args, 2)? != 0 {
            if absolute {
                args[2] = self.absolute_ms(&args, 2, Unit::Milliseconds)?;
            } else {
                args[2] = self.deadline(&args, 2, Unit::Milliseconds)?;
                args.push(ABSTTL);
            }
        }
        Ok(Translated::Apply(vec![args]))
    }

    /// An absolute time argument, in ms as text, held at least the grace period from now.
    fn absolute_ms(&self, args: &[Bytes], at: usize, unit: Unit) -> Result<Bytes, Error> {
        let time = number(args, at)?;
        let ms = match unit {
            Unit::Seconds => time.checked_mul(1000),
            Unit::Milliseconds => Some(time),
        };
        let ms = ms.ok_or_else(|| malformed(args, "the time is out of range"))?;
        let held = self.held(ms);
        if held == ms && unit == Unit::Milliseconds {
            // The common case: far enough ahead, passed on as it came.
            return Ok(args[at].clone());
        }
        Ok(Bytes::from(held.to_string()))
    }

    /// No sooner than the grace period from now (see the module docs), unless the target
    /// is in import mode.
    fn held(&self, at_ms: i64) -> i64 {
        if !self.hold_expiries {
            return at_ms;
        }
        at_ms.max((self.clock)().saturating_add(EXPIRY_GRACE_MS))
    }

    /// The absolute time, in ms as text, that the relative TTL at `args[at]` ends at.
    fn deadline(&self, args: &[Bytes], at: usize, unit: Unit) -> Result<Bytes, Error> {
        let ttl = number(args, at)?;
        let ms = match unit {
            Unit::Seconds => ttl.checked_mul(1000),
            Unit::Milliseconds => Some(ttl),
        };
        let deadline = ms
            .and_then(|ms| (self.clock)().checked_add(ms))
            .ok_or_else(|| malformed(args, "the TTL is out of range"))?;
        Ok(Bytes::from(self.held(deadline).to_string()))
    }
}

fn number(args: &[Bytes], at: usize) -> Result<i64, Error> {
    args.get(at)
        .and_then(|n| std::str::from_utf8(n).ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| malformed(args, "a TTL is not a number").into())
}

/// SET options followed by a value that is not a TTL to convert.
fn takes_value(token: &[u8]) -> bool {
    [&b"IFEQ"[..], b"IFNE", b"IFDEQ", b"IFDNE"]
        .iter()
        .any(|name| token.eq_ignore_ascii_case(name))
}
