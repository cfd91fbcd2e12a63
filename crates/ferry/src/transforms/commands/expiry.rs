//! Relative key expiries become absolute times when the command arrives.
//!
//! Redis 7.0 and later propagate every expiry as an absolute time (`PEXPIREAT`, `SET …
//! PXAT`, `RESTORE … ABSTTL`); Redis 6.0 propagates `EXPIRE`, `PEXPIRE`, `SETEX`, `PSETEX`,
//! `SET … EX|PX` and `RESTORE` with a relative TTL as the client sent them (both verified
//! by tests/propagation.rs). Applied as they are, such TTLs would start counting when the
//! target applies them, which after a lag or a resumed stream may be long after the
//! source set them. Converting them on arrival keeps the error to the replication delay,
//! as a native replica has it.

use super::{malformed, CommandTranslator, Translated};
use crate::error::Error;
use bytes::Bytes;

const SET: Bytes = Bytes::from_static(b"SET");
const PXAT: Bytes = Bytes::from_static(b"PXAT");
const PEXPIREAT: Bytes = Bytes::from_static(b"PEXPIREAT");
const PERSIST: Bytes = Bytes::from_static(b"PERSIST");
const ABSTTL: Bytes = Bytes::from_static(b"ABSTTL");

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
            if let Some(unit) = unit {
                let deadline = self.deadline(&args, at + 1, unit)?;
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
            absolute_ms(&args, 3, Unit::Seconds)?
        } else if option.eq_ignore_ascii_case(b"PXAT") {
            absolute_ms(&args, 3, Unit::Milliseconds)?
        } else {
            return Err(malformed(&args, "unknown option").into());
        };
        Ok(Translated::Apply(vec![vec![
            PEXPIREAT,
            key.clone(),
            deadline,
        ]]))
    }

    /// `RESTORE key ttl payload [options]`: a relative TTL becomes absolute, with `ABSTTL`.
    pub(super) fn restore(&self, mut args: Vec<Bytes>) -> Result<Translated, Error> {
        if args.len() < 4 {
            return Err(malformed(&args, "it needs a key, a TTL and a payload").into());
        }
        let absolute = args[4..].iter().any(|a| a.eq_ignore_ascii_case(b"ABSTTL"));
        if !absolute && number(&args, 2)? != 0 {
            args[2] = self.deadline(&args, 2, Unit::Milliseconds)?;
            args.push(ABSTTL);
        }
        Ok(Translated::Apply(vec![args]))
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
        Ok(Bytes::from(deadline.to_string()))
    }
}

/// An absolute time argument, in ms as text.
fn absolute_ms(args: &[Bytes], at: usize, unit: Unit) -> Result<Bytes, Error> {
    match unit {
        Unit::Milliseconds => {
            number(args, at)?;
            Ok(args[at].clone())
        }
        Unit::Seconds => number(args, at)?
            .checked_mul(1000)
            .map(|ms| Bytes::from(ms.to_string()))
            .ok_or_else(|| malformed(args, "the time is out of range").into()),
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
    [&b"EXAT"[..], b"PXAT", b"IFEQ", b"IFNE", b"IFDEQ", b"IFDNE"]
        .iter()
        .any(|name| token.eq_ignore_ascii_case(name))
}
