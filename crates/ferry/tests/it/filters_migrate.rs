//! `migrate --match/--exclude/--db/--db-map` from a real Redis 7.0 into Valkey 8.1: the
//! full sync copies exactly the kept keys into their mapped databases; in the stream,
//! multi-key commands across the boundary keep their kept part exactly, and those that
//! cannot be split stop ferry with one line naming them. `verify` with the same scope
//! passes on the partial copy and names a kept key deleted on the target.

use crate::support::ferry;
use crate::support::migrate::{wait_applied, Ferry};
use ferry_testkit::snapshot::{is_ferry_marker, DiffOptions, Snapshot};
use ferry_testkit::{Server, ServerKind};
use std::collections::BTreeMap;
use std::time::Duration;

pub const SCOPE: [&str; 10] = [
    "--match",
    "app:*",
    "--exclude",
    "app:tmp:*",
    "--db",
    "0",
    "--db",
    "3",
    "--db-map",
    "3:1",
];

fn kept(db: u32, key: &[u8]) -> bool {
    (db == 0 || db == 3) && key.starts_with(b"app:") && !key.starts_with(b"app:tmp:")
}

fn mapped(db: u32) -> u32 {
    if db == 3 {
        1
    } else {
        db
    }
}

/// What the target should hold: the source's kept keys, in their mapped databases.
pub fn scoped(source: &Snapshot, kept: fn(u32, &[u8]) -> bool, mapped: fn(u32) -> u32) -> Snapshot {
    let mut databases: BTreeMap<u32, BTreeMap<Vec<u8>, _>> = BTreeMap::new();
    for (&db, keys) in &source.databases {
        for (key, entry) in keys {
            if kept(db, key) {
                databases
                    .entry(mapped(db))
                    .or_default()
                    .insert(key.clone(), entry.clone());
            }
        }
    }
    Snapshot {
        databases,
        ..source.clone()
    }
}

pub fn run(con: &mut redis::Connection, db: u32, words: &[&str]) {
    redis::cmd("SELECT").arg(db).query::<()>(con).unwrap();
    let mut command = redis::cmd(words[0]);
    for word in &words[1..] {
        command.arg(*word);
    }
    command.query::<redis::Value>(con).unwrap();
}

/// Keys in databases 0, 3 and 5, kept and left out, of several types.
pub fn seed(source: &Server) {
    let mut con = source.client();
    for (db, words) in [
        (
            0,
            &[
                "MSET",
                "app:1",
                "a",
                "other:1",
                "b",
                "app:tmp:1",
                "c",
                "app:r",
                "r",
            ][..],
        ),
        (0, &["SADD", "app:set", "x", "y"]),
        (0, &["SADD", "other:set", "m", "n"]),
        (0, &["RPUSH", "app:list", "1", "2", "3"]),
        (0, &["SET", "app:mv", "moved"]),
        (0, &["SET", "app:mv2", "gone"]),
        (0, &["SET", "app:c", "copied"]),
        (0, &["HSET", "app:h", "f", "v"]),
        (3, &["SET", "app:3", "three"]),
        (3, &["SET", "other:3", "three"]),
        (5, &["SET", "app:5", "five"]),
    ] {
        run(&mut con, db, words);
    }
}

pub fn assert_target_holds_the_scope(source: &Server, target: &Server, context: &str) {
    let expected = scoped(&Snapshot::capture(source).unwrap(), kept, mapped);
    let actual = Snapshot::capture(target).unwrap();
    let options = DiffOptions::new().exclude_keys(|_, key| is_ferry_marker(key));
    let differences: Vec<String> = expected
        .diff(&actual, &options)
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert!(differences.is_empty(), "{differences:#?}\n{context}");
    assert!(expected.key_count() > 5, "{context}");
}

#[test]
fn the_scope_moves_exactly_its_keys_and_splits_the_stream() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    seed(&source);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut migration = Ferry::migrate(&source, &target, &state, &SCOPE);
    migration.wait_in_sync();
    assert_target_holds_the_scope(&source, &target, &migration.output());

    // Each multi-key case, on the source, while ferry follows.
    let mut con = source.client();
    let cases: &[(u32, &[&str])] = &[
        (
            0,
            &[
                "MSET",
                "app:m1",
                "1",
                "other:m1",
                "2",
                "app:tmp:m",
                "3",
                "app:m2",
                "4",
            ],
        ),
        (0, &["MSETNX", "app:n1", "1", "other:n1", "2"]),
        (0, &["DEL", "app:1", "other:1", "app:tmp:1"]),
        (0, &["RENAME", "app:r", "other:r"]),
        (0, &["SMOVE", "other:set", "app:set2", "m"]),
        (0, &["SMOVE", "app:set", "other:set2", "x"]),
        (0, &["LMOVE", "app:list", "other:list", "LEFT", "RIGHT"]),
        (0, &["COPY", "app:c", "other:c"]),
        (0, &["COPY", "app:c", "app:c2"]),
        (0, &["MOVE", "app:mv", "3"]),
        (0, &["MOVE", "app:mv2", "5"]),
        (0, &["SUNIONSTORE", "other:u", "app:set", "other:set"]),
        (0, &["SUNIONSTORE", "app:u", "app:set", "app:set2"]),
        // Effects in MULTI/EXEC: split command by command, the block kept whole.
        (
            0,
            &[
                "EVAL",
                "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); \
                 redis.call('INCR', KEYS[1])",
                "2",
                "app:e",
                "other:e",
                "7",
            ],
        ),
        (5, &["FLUSHDB"]),
        (3, &["SET", "app:3b", "new"]),
        (0, &["SWAPDB", "0", "3"]),
    ];
    for (db, words) in cases {
        run(&mut con, *db, words);
    }
    redis::cmd("MULTI").query::<()>(&mut con).unwrap();
    redis::cmd("SELECT").arg(0).query::<()>(&mut con).unwrap();
    redis::cmd("SET")
        .arg("app:tx")
        .arg("1")
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("SET")
        .arg("other:tx")
        .arg("1")
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("EXEC").query::<redis::Value>(&mut con).unwrap();

    wait_applied(&source, &state, &migration);
    assert_target_holds_the_scope(&source, &target, &migration.output());
    migration.signal("INT");
    assert!(
        migration.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        migration.output()
    );

    // verify with the same scope: clean on the partial copy.
    let (source_url, target_url) = (source.url(), target.url());
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "--source", &source_url, "--target", &target_url];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--rounds", "1"]);
        ferry(&args)
    };
    let clean = verify(&SCOPE);
    let text = String::from_utf8_lossy(&clean.stdout);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    // Without the scope the same copy is far from the source.
    assert_eq!(verify(&[]).status.code(), Some(1));

    // A kept key gone from the target (in its mapped database) is a difference, named.
    let mut target_con = target.client();
    // (SWAPDB 0 3 took app:3b from source db 3 into db 0, and so into target db 0.)
    run(&mut target_con, 0, &["DEL", "app:3b"]);
    // The target's keys outside the scope are none of verify's business.
    run(&mut target_con, 0, &["SET", "unrelated", "x"]);
    let missing = verify(&SCOPE);
    let text = String::from_utf8_lossy(&missing.stdout);
    assert_eq!(missing.status.code(), Some(1), "{text}");
    assert!(text.contains("app:3b"), "{text}");
    assert!(!text.contains("unrelated"), "{text}");
}

/// Starts a scoped migration of a seeded source, runs `words` in `db` on the source, and
/// returns ferry's stderr once it stopped (it must stop), with the target.
fn refused(db: u32, words: &[&str]) -> (String, Server) {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    seed(&source);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate(&source, &target, &state, &SCOPE);
    ferry.wait_in_sync();
    run(&mut source.client(), db, words);
    let status = ferry.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "{}", ferry.output());
    (ferry.output(), target)
}

#[test]
fn commands_the_scope_cannot_split_stop_ferry_with_one_line() {
    let cases: &[(u32, &[&str], &str)] = &[
        (
            0,
            &["RENAME", "other:1", "app:from-other"],
            "source sent RENAME in db 0, which renames left-out key \"other:1\" to kept key \"app:from-other\"",
        ),
        (
            0,
            &["SUNIONSTORE", "app:u", "app:set", "other:set"],
            "source sent SUNIONSTORE in db 0, which writes kept key \"app:u\" from left-out key \"other:set\"",
        ),
        (
            0,
            &["FLUSHDB"],
            "source sent FLUSHDB in db 0, which empties a database that --match/--exclude keep in part",
        ),
        (
            0,
            &["SWAPDB", "0", "5"],
            "source sent SWAPDB in db 0, which exchanges db 0 and db 5, one kept and one left out",
        ),
        (
            5,
            &["MOVE", "app:5", "0"],
            "source sent MOVE in db 5, which moves \"app:5\" from a left-out db into kept db 0",
        ),
    ];
    for (db, words, expected) in cases {
        let (output, target) = refused(*db, words);
        let line = output
            .lines()
            .find(|line| line.contains(expected))
            .unwrap_or_else(|| panic!("{words:?}: no line says {expected:?}:\n{output}"));
        assert!(line.starts_with("ferry: "), "{line}");
        assert!(
            line.contains("ferry stops rather than let the target diverge"),
            "{line}"
        );
        // Nothing of the refused command reached the target.
        let mut con = target.client();
        let exists: bool = redis::cmd("EXISTS")
            .arg("app:from-other")
            .query(&mut con)
            .unwrap();
        assert!(!exists);
    }
}

#[test]
fn a_resume_with_another_scope_is_refused_and_bad_maps_are_usage_errors() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    seed(&source);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut first = Ferry::migrate(&source, &target, &state, &SCOPE);
    first.wait_in_sync();
    first.signal("INT");
    assert!(first.wait_exit(Duration::from_secs(30)).success());

    let mut again = Ferry::migrate(&source, &target, &state, &["--match", "other:*"]);
    let status = again.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{}", again.output());
    assert!(
        again.output().contains("was written for the scope"),
        "{}",
        again.output()
    );

    // db 3 would land in db 0, where db 0's keys are.
    let collide = ferry(&[
        "migrate",
        "--source",
        &source.url(),
        "--target",
        &target.url(),
        "--db-map",
        "3:0",
    ]);
    let line = String::from_utf8_lossy(&collide.stderr);
    assert_eq!(collide.status.code(), Some(2), "{line}");
    assert!(
        line.contains("db 0 and db 3 would both land in db 0 of the target"),
        "{line}"
    );
}
