//! The scope on the replicated command stream: each command is kept whole, dropped
//! whole, split (its kept part only), or refused with one line naming it, where keeping
//! the kept part exactly is impossible (see docs/filters.md for the table).
//!
//! Every rule rests on one fact: a primary propagates a command only when it changed
//! something, and the target holds exactly the kept keys. So `RENAME kept → left-out`
//! is `DEL kept` on the target, `SMOVE left-out → kept m` is `SADD kept m`, while
//! `RENAME left-out → kept` would need a value the target never had: refused.

use super::keys::{keys_of, Keys};
use crate::display::{plain_or_quoted, quoted};
use crate::error::Error;
use crate::filter::Scope;
use crate::transforms::commands::transform::CommandTransform;
use crate::transforms::commands::Translated;
use bytes::Bytes;

/// A command the scope cannot split without changing its meaning on the target.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "source sent {command} in db {db}, which {why}; it cannot be split along the scope \
     ({scope}), so ferry stops rather than let the target diverge"
)]
pub struct ScopeRefusal {
    pub command: String,
    pub db: u64,
    pub why: String,
    pub scope: String,
}

/// What the scope makes of one command.
#[derive(Debug, PartialEq, Eq)]
pub enum Scoped {
    Keep(Vec<Bytes>),
    /// These commands instead (the kept part, or a rewrite with mapped databases).
    Replace(Vec<Vec<Bytes>>),
    Drop,
}

const LEFT_OUT: &str = "left out by the scope";

/// A [`CommandTransform`] that applies the scope before the rules behind it.
pub struct ScopedCommands {
    scope: Scope,
    inner: Box<dyn CommandTransform>,
}

impl ScopedCommands {
    pub fn new(scope: Scope, inner: Box<dyn CommandTransform>) -> Self {
        Self { scope, inner }
    }
}

impl CommandTransform for ScopedCommands {
    fn translate(&mut self, db: u64, args: Vec<Bytes>) -> Result<Translated, Error> {
        match scoped(&self.scope, db, args)? {
            Scoped::Keep(args) => self.inner.translate(db, args),
            Scoped::Drop => Ok(Translated::Skip { reason: LEFT_OUT }),
            Scoped::Replace(commands) => {
                let mut out = Vec::new();
                for command in commands {
                    if let Translated::Apply(translated) = self.inner.translate(db, command)? {
                        out.extend(translated);
                    }
                }
                Ok(if out.is_empty() {
                    Translated::Skip { reason: LEFT_OUT }
                } else {
                    Translated::Apply(out)
                })
            }
        }
    }

    fn target_db(&self, db: u64) -> u64 {
        self.scope.target_db(db)
    }

    fn report_lines(&self) -> Vec<String> {
        self.inner.report_lines()
    }
}

/// The scope's decision for one command in source database `db`.
pub fn scoped(scope: &Scope, db: u64, args: Vec<Bytes>) -> Result<Scoped, ScopeRefusal> {
    if scope.is_everything() {
        return Ok(Scoped::Keep(args));
    }
    let name = args.first().cloned().unwrap_or_default();
    let refuse = |why: String| ScopeRefusal {
        command: plain_or_quoted(&name.to_ascii_uppercase()),
        db,
        why,
        scope: scope.describe(),
    };
    let Some(keys) = keys_of(&name) else {
        return Err(refuse(
            "ferry does not know which of its arguments are keys".into(),
        ));
    };
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .ok_or_else(|| refuse("lacks an argument".into()))
    };
    let kept = |key: &[u8]| scope.keeps(db, key);
    match keys {
        Keys::None => Ok(Scoped::Keep(args)),
        Keys::One(i) => {
            let key = arg(i)?;
            Ok(keep_if(kept(&key), args))
        }
        Keys::All => {
            let fates: Vec<bool> = args[1..].iter().map(|k| kept(k)).collect();
            Ok(split(args, &fates, 1))
        }
        Keys::Pairs => {
            if args.len().is_multiple_of(2) {
                return Err(refuse("has a key without a value".into()));
            }
            let fates: Vec<bool> = args[1..].chunks(2).map(|pair| kept(&pair[0])).collect();
            let mut scoped = split(args, &fates, 2);
            // MSETNX succeeded on the source: every key was new. Its kept part is that.
            if let Scoped::Replace(commands) = &mut scoped {
                commands[0][0] = Bytes::from_static(b"MSET");
            }
            Ok(scoped)
        }
        Keys::AllButLast => {
            let keys = &args[1..args.len().saturating_sub(1).max(1)];
            all_or_none(keys.iter().map(|k| kept(k)), args.clone())
                .ok_or_else(|| refuse(mixed(scope, db, keys)))
        }
        Keys::Counted(at) => {
            let count = number(&arg(at)?).ok_or_else(|| refuse("has no key count".into()))?;
            let keys = args
                .get(at + 1..at + 1 + count as usize)
                .ok_or_else(|| refuse("has fewer keys than its count".into()))?;
            if keys.is_empty() {
                return Err(refuse(
                    "declares no keys, so ferry cannot tell which keys it writes".into(),
                ));
            }
            all_or_none(keys.iter().map(|k| kept(k)), args.clone())
                .ok_or_else(|| refuse(mixed(scope, db, keys)))
        }
        Keys::StoreRest(destination) => {
            let reads = args.get(destination + 1..).unwrap_or_default().to_vec();
            store(scope, db, &arg(destination)?, &reads, args).map_err(refuse)
        }
        Keys::StoreCounted => {
            let count = number(&arg(2)?).ok_or_else(|| refuse("has no key count".into()))?;
            let reads = args
                .get(3..3 + count as usize)
                .ok_or_else(|| refuse("has fewer keys than its count".into()))?
                .to_vec();
            store(scope, db, &arg(1)?, &reads, args).map_err(refuse)
        }
        Keys::Move(source, destination) => {
            let reads = vec![arg(source)?];
            store(scope, db, &arg(destination)?, &reads, args).map_err(refuse)
        }
        Keys::StoreOption => {
            let store_at = args.iter().position(|a| {
                a.eq_ignore_ascii_case(b"STORE") || a.eq_ignore_ascii_case(b"STOREDIST")
            });
            let reads = vec![arg(1)?];
            match store_at {
                None => Ok(keep_if(kept(&reads[0]), args)),
                Some(at) => {
                    let reads_patterns = args
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(b"BY") || a.eq_ignore_ascii_case(b"GET"));
                    let destination = arg(at + 1)?;
                    if reads_patterns && kept(&destination) {
                        return Err(refuse(
                            "reads keys named by patterns (BY/GET) into a kept key".into(),
                        ));
                    }
                    store(scope, db, &destination, &reads, args).map_err(refuse)
                }
            }
        }
        Keys::Special => special(scope, db, args).map_err(refuse),
    }
}

/// The command when `kept`, else nothing.
fn keep_if(kept: bool, args: Vec<Bytes>) -> Scoped {
    if kept {
        Scoped::Keep(args)
    } else {
        Scoped::Drop
    }
}

/// A command whose keys share one fate: `None` when they do not.
fn all_or_none(mut fates: impl Iterator<Item = bool> + Clone, args: Vec<Bytes>) -> Option<Scoped> {
    if fates.clone().all(|kept| kept) {
        Some(Scoped::Keep(args))
    } else if fates.all(|kept| !kept) {
        Some(Scoped::Drop)
    } else {
        None
    }
}

/// Keeps the groups of `width` arguments (from index 1) whose fate is kept.
fn split(args: Vec<Bytes>, fates: &[bool], width: usize) -> Scoped {
    if fates.iter().all(|kept| *kept) {
        return Scoped::Keep(args);
    }
    if !fates.iter().any(|kept| *kept) {
        return Scoped::Drop;
    }
    let mut kept = vec![args[0].clone()];
    for (group, &fate) in args[1..].chunks(width).zip(fates) {
        if fate {
            kept.extend_from_slice(group);
        }
    }
    Scoped::Replace(vec![kept])
}

/// A command writing `destination` from `reads`: dropped with a left-out destination,
/// refused when a kept destination would be computed from left-out keys.
fn store(
    scope: &Scope,
    db: u64,
    destination: &[u8],
    reads: &[Bytes],
    args: Vec<Bytes>,
) -> Result<Scoped, String> {
    if !scope.keeps(db, destination) {
        return Ok(Scoped::Drop);
    }
    match reads.iter().find(|key| !scope.keeps(db, key)) {
        None => Ok(Scoped::Keep(args)),
        Some(left_out) => Err(format!(
            "writes kept key {} from left-out key {}",
            quoted(destination),
            quoted(left_out)
        )),
    }
}

fn mixed(scope: &Scope, db: u64, keys: &[Bytes]) -> String {
    let list = |kept: bool| {
        keys.iter()
            .filter(|k| scope.keeps(db, k) == kept)
            .map(|k| quoted(k))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "touches kept keys ({}) and left-out keys ({}) at once",
        list(true),
        list(false)
    )
}

fn number(arg: &[u8]) -> Option<u64> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}

fn db_number(arg: Option<&Bytes>) -> Result<u64, String> {
    arg.and_then(|a| number(a))
        .ok_or_else(|| "names no database number".to_owned())
}

fn bytes(text: impl ToString) -> Bytes {
    Bytes::from(text.to_string())
}

/// The commands with rules of their own.
fn special(scope: &Scope, db: u64, args: Vec<Bytes>) -> Result<Scoped, String> {
    let name = args[0].to_ascii_uppercase();
    let key = |i: usize| {
        args.get(i)
            .cloned()
            .ok_or_else(|| "lacks an argument".to_owned())
    };
    match name.as_slice() {
        b"FLUSHDB" => {
            if !scope.keeps_db(db) {
                Ok(Scoped::Drop)
            } else if scope.filters_keys() {
                Err(flush_refusal())
            } else {
                Ok(Scoped::Keep(args))
            }
        }
        b"FLUSHALL" => {
            if scope.filters_keys() {
                return Err(flush_refusal());
            }
            match scope.kept_dbs() {
                // Every database is kept and the map is one-to-one: all of the target's
                // databases are images of the source's.
                None => Ok(Scoped::Keep(args)),
                Some(dbs) => {
                    let mut commands = Vec::new();
                    for &kept in dbs {
                        commands.push(vec![bytes("SELECT"), bytes(scope.target_db(kept))]);
                        let mut flush = vec![bytes("FLUSHDB")];
                        flush.extend_from_slice(&args[1..]);
                        commands.push(flush);
                    }
                    commands.push(vec![bytes("SELECT"), bytes(scope.target_db(db))]);
                    Ok(Scoped::Replace(commands))
                }
            }
        }
        b"SWAPDB" => {
            let a = db_number(args.get(1))?;
            let b = db_number(args.get(2))?;
            match (scope.keeps_db(a), scope.keeps_db(b)) {
                (true, true) => Ok(Scoped::Replace(vec![vec![
                    args[0].clone(),
                    bytes(scope.target_db(a)),
                    bytes(scope.target_db(b)),
                ]])),
                (false, false) => Ok(Scoped::Drop),
                _ => Err(format!(
                    "exchanges db {a} and db {b}, one kept and one left out"
                )),
            }
        }
        b"MOVE" => {
            let key = key(1)?;
            let to = db_number(args.get(2))?;
            match (scope.keeps(db, &key), scope.keeps(to, &key)) {
                (true, true) => Ok(Scoped::Replace(vec![vec![
                    args[0].clone(),
                    key,
                    bytes(scope.target_db(to)),
                ]])),
                // It leaves the kept keys: on the target, it is gone.
                (true, false) => Ok(Scoped::Replace(vec![vec![bytes("DEL"), key]])),
                (false, false) => Ok(Scoped::Drop),
                (false, true) => Err(format!(
                    "moves {} from a left-out db into kept db {to}",
                    quoted(&key)
                )),
            }
        }
        b"COPY" => {
            let (from, to) = (key(1)?, key(2)?);
            let db_at = args.iter().position(|a| a.eq_ignore_ascii_case(b"DB"));
            let to_db = match db_at {
                Some(at) => db_number(args.get(at + 1))?,
                None => db,
            };
            match (scope.keeps(db, &from), scope.keeps(to_db, &to)) {
                (true, true) => {
                    let mut args = args;
                    if let Some(at) = db_at {
                        args[at + 1] = bytes(scope.target_db(to_db));
                    }
                    Ok(Scoped::Keep(args))
                }
                (_, false) => Ok(Scoped::Drop),
                (false, true) => Err(format!(
                    "copies left-out key {} into kept key {}",
                    quoted(&from),
                    quoted(&to)
                )),
            }
        }
        b"RENAME" | b"RENAMENX" => {
            let (from, to) = (key(1)?, key(2)?);
            match (scope.keeps(db, &from), scope.keeps(db, &to)) {
                (true, true) => Ok(Scoped::Keep(args)),
                (true, false) => Ok(Scoped::Replace(vec![vec![bytes("DEL"), from]])),
                (false, false) => Ok(Scoped::Drop),
                (false, true) => Err(format!(
                    "renames left-out key {} to kept key {}",
                    quoted(&from),
                    quoted(&to)
                )),
            }
        }
        b"SMOVE" => {
            let (from, to, member) = (key(1)?, key(2)?, key(3)?);
            match (scope.keeps(db, &from), scope.keeps(db, &to)) {
                (true, true) => Ok(Scoped::Keep(args)),
                (true, false) => Ok(Scoped::Replace(vec![vec![bytes("SREM"), from, member]])),
                (false, true) => Ok(Scoped::Replace(vec![vec![bytes("SADD"), to, member]])),
                (false, false) => Ok(Scoped::Drop),
            }
        }
        b"LMOVE" | b"BLMOVE" | b"RPOPLPUSH" | b"BRPOPLPUSH" => {
            let (from, to) = (key(1)?, key(2)?);
            // LMOVE and BLMOVE say the side they popped; the others pop the right.
            let from_left = matches!(name.as_slice(), b"LMOVE" | b"BLMOVE")
                && key(3)?.eq_ignore_ascii_case(b"LEFT");
            let pop = if from_left { "LPOP" } else { "RPOP" };
            match (scope.keeps(db, &from), scope.keeps(db, &to)) {
                (true, true) => Ok(Scoped::Keep(args)),
                (true, false) => Ok(Scoped::Replace(vec![vec![bytes(pop), from]])),
                (false, false) => Ok(Scoped::Drop),
                (false, true) => Err(format!(
                    "moves an element of left-out list {} into kept list {}",
                    quoted(&from),
                    quoted(&to)
                )),
            }
        }
        _ => Err("ferry does not know which of its arguments are keys".into()),
    }
}

fn flush_refusal() -> String {
    "empties a database that --match/--exclude keep in part (on the target it would also \
     delete keys ferry did not copy)"
        .into()
}
