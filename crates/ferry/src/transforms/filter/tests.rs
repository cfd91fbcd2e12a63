//! The scope's decision for each kind of multi-key command.

use super::commands::{scoped, Scoped};
use crate::filter::Scope;
use bytes::Bytes;

fn scope(matches: &[&str], dbs: &[u64], map: &[&str]) -> Scope {
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Scope::new(&strings(matches), &[], dbs, &strings(map)).unwrap()
}

fn words(text: &str) -> Vec<Bytes> {
    text.split(' ')
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

/// The commands sent instead, as text; "drop" for none; the refusal's text on error.
fn decide(scope: &Scope, db: u64, command: &str) -> String {
    let show = |args: &[Bytes]| {
        args.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    match scoped(scope, db, words(command)) {
        Ok(Scoped::Keep(args)) => show(&args),
        Ok(Scoped::Replace(commands)) => commands
            .iter()
            .map(|c| show(c))
            .collect::<Vec<_>>()
            .join("; "),
        Ok(Scoped::Drop) => "drop".into(),
        Err(refusal) => format!("refused: {refusal}"),
    }
}

#[test]
fn split_commands_keep_their_kept_part() {
    let s = scope(&["a:*"], &[], &[]);
    assert_eq!(decide(&s, 0, "MSET a:1 x b:1 y a:2 z"), "MSET a:1 x a:2 z");
    assert_eq!(decide(&s, 0, "MSETNX a:1 x b:1 y"), "MSET a:1 x");
    assert_eq!(decide(&s, 0, "MSETNX a:1 x a:2 y"), "MSETNX a:1 x a:2 y");
    assert_eq!(decide(&s, 0, "DEL b:1 a:1 b:2"), "DEL a:1");
    assert_eq!(decide(&s, 0, "UNLINK b:1"), "drop");
    assert_eq!(decide(&s, 0, "SET a:1 v"), "SET a:1 v");
    assert_eq!(decide(&s, 0, "set b:1 v"), "drop");
}

#[test]
fn crossing_the_boundary_keeps_the_kept_side_or_refuses() {
    let s = scope(&["a:*"], &[], &[]);
    assert_eq!(decide(&s, 0, "RENAME a:1 a:2"), "RENAME a:1 a:2");
    assert_eq!(decide(&s, 0, "RENAME a:1 b:1"), "DEL a:1");
    assert!(decide(&s, 0, "RENAME b:1 a:1").starts_with(
        "refused: source sent RENAME in db 0, which renames left-out key \"b:1\" to kept key \"a:1\""
    ));
    assert_eq!(decide(&s, 0, "SMOVE a:s b:s m"), "SREM a:s m");
    assert_eq!(decide(&s, 0, "SMOVE b:s a:s m"), "SADD a:s m");
    assert_eq!(decide(&s, 0, "LMOVE a:l b:l LEFT RIGHT"), "LPOP a:l");
    assert_eq!(decide(&s, 0, "RPOPLPUSH a:l b:l"), "RPOP a:l");
    assert!(decide(&s, 0, "LMOVE b:l a:l LEFT RIGHT").starts_with("refused"));
    assert_eq!(decide(&s, 0, "COPY a:1 b:1"), "drop");
    assert!(decide(&s, 0, "COPY b:1 a:1").starts_with("refused"));
    assert_eq!(
        decide(&s, 0, "SUNIONSTORE a:d a:1 a:2"),
        "SUNIONSTORE a:d a:1 a:2"
    );
    assert_eq!(decide(&s, 0, "SUNIONSTORE b:d a:1 b:2"), "drop");
    assert!(decide(&s, 0, "SUNIONSTORE a:d a:1 b:2")
        .contains("writes kept key \"a:d\" from left-out key \"b:2\""));
    assert!(decide(&s, 0, "ZUNIONSTORE a:d 2 a:1 b:2 WEIGHTS 1 2").starts_with("refused"));
    assert_eq!(
        decide(&s, 0, "ZUNIONSTORE a:d 1 a:1"),
        "ZUNIONSTORE a:d 1 a:1"
    );
    assert!(decide(&s, 0, "EVALSHA abc 2 a:1 b:1")
        .contains("touches kept keys (\"a:1\") and left-out keys (\"b:1\")"));
    assert_eq!(decide(&s, 0, "EVAL x 1 b:1"), "drop");
    assert!(decide(&s, 0, "EVAL x 0").starts_with("refused"));
    assert!(
        decide(&s, 0, "JSON.SET a:1 $ 1").contains("does not know which of its arguments are keys")
    );
    assert!(decide(&s, 0, "FLUSHDB").starts_with("refused"));
    assert!(decide(&s, 0, "FLUSHALL").starts_with("refused"));
    assert_eq!(decide(&s, 0, "FUNCTION FLUSH"), "FUNCTION FLUSH");
}

#[test]
fn databases_are_kept_dropped_and_mapped() {
    let s = scope(&[], &[0, 3], &["3:1"]);
    assert_eq!(decide(&s, 2, "SET k v"), "drop");
    assert_eq!(decide(&s, 3, "SET k v"), "SET k v");
    assert_eq!(decide(&s, 2, "FLUSHDB"), "drop");
    assert_eq!(decide(&s, 3, "FLUSHDB"), "FLUSHDB");
    assert_eq!(
        decide(&s, 3, "FLUSHALL"),
        "SELECT 0; FLUSHDB; SELECT 1; FLUSHDB; SELECT 1"
    );
    assert_eq!(decide(&s, 0, "SWAPDB 0 3"), "SWAPDB 0 1");
    assert_eq!(decide(&s, 0, "SWAPDB 2 5"), "drop");
    assert!(decide(&s, 0, "SWAPDB 0 2").starts_with("refused"));
    assert_eq!(decide(&s, 0, "MOVE k 3"), "MOVE k 1");
    assert_eq!(decide(&s, 0, "MOVE k 2"), "DEL k");
    assert!(decide(&s, 2, "MOVE k 0").starts_with("refused"));
    assert_eq!(decide(&s, 2, "MOVE k 5"), "drop");
    assert_eq!(
        decide(&s, 0, "COPY a b DB 3 REPLACE"),
        "COPY a b DB 1 REPLACE"
    );
    assert_eq!(decide(&s, 0, "COPY a b DB 2"), "drop");
    let everything = scope(&[], &[], &["0:1", "1:0"]);
    assert_eq!(decide(&everything, 0, "FLUSHALL"), "FLUSHALL");
    assert_eq!(decide(&everything, 0, "SWAPDB 0 2"), "SWAPDB 1 2");
}
