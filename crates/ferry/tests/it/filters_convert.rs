//! `convert` with a scope: a real Redis 7.0's RDB file, converted for Valkey 8.1 with
//! `--match`/`--exclude`/`--db`/`--db-map`, loads into a real Valkey 8.1 holding exactly
//! the kept keys in their mapped databases. And the glob itself against a real server's
//! `KEYS`.

use crate::filters_migrate::scoped;
use crate::support::{ferry, path};
use ferry::filter::Glob;
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::{dataset, Server, ServerKind};

fn kept(db: u32, key: &[u8]) -> bool {
    db != 2 && !key.starts_with(b"s")
}

fn mapped(db: u32) -> u32 {
    match db {
        0 => 4,
        4 => 0,
        other => other,
    }
}

#[test]
fn a_scoped_conversion_loads_with_exactly_the_kept_keys() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    dataset::populate(&source).unwrap();
    let mut con = source.client();
    for db in [2, 4] {
        redis::pipe()
            .cmd("SELECT")
            .arg(db)
            .cmd("SET")
            .arg("in-db")
            .arg(db)
            .cmd("SET")
            .arg("s-left-out")
            .arg(db)
            .query::<()>(&mut con)
            .unwrap();
    }
    let rdb = source.save().unwrap();
    let before = Snapshot::capture(&source).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scoped.rdb");
    let dbs: Vec<String> = before
        .databases
        .keys()
        .filter(|&&db| db != 2)
        .map(|db| db.to_string())
        .collect();
    let mut args = vec![
        "convert".to_owned(),
        path(&rdb),
        path(&out),
        "--to".into(),
        "valkey-8.1".into(),
        "--exclude".into(),
        "s*".into(),
        "--db-map".into(),
        "0:4".into(),
        "--db-map".into(),
        "4:0".into(),
    ];
    for db in &dbs {
        args.extend(["--db".to_owned(), db.clone()]);
    }
    let output = ferry(&args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("keys kept"), "{stdout}");

    let loaded = Server::start_with_rdb(ServerKind::Valkey81, &out).unwrap();
    let actual = Snapshot::capture(&loaded).unwrap();
    let expected = scoped(&before, kept, mapped);
    let differences: Vec<String> = expected
        .diff(&actual, &DiffOptions::new())
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert!(differences.is_empty(), "{differences:#?}");
    assert!(expected.key_count() > 10);
    assert!(expected.key_count() < before.key_count());
}

#[test]
fn the_glob_agrees_with_a_real_servers_keys() {
    let server = Server::start(ServerKind::Valkey81).unwrap();
    let keys = [
        "",
        "a",
        "ab",
        "abc",
        "a*c",
        "a?c",
        "a[c",
        "a]c",
        "a\\c",
        "h-llo",
        "hello",
        "hallo",
        "hbllo",
        "^x",
        "x^",
        "app:1",
        "app:tmp:1",
        "b",
        "-",
        "]",
    ];
    let mut con = server.client();
    for key in keys {
        redis::cmd("SET")
            .arg(key)
            .arg(1)
            .query::<()>(&mut con)
            .unwrap();
    }
    let patterns = [
        "*",
        "a*",
        "*c",
        "a?c",
        "a\\*c",
        "a[*]c",
        "a[\\]]c",
        "a[]c",
        "a[^b]c",
        "h[a-e]llo",
        "h[e-a]llo",
        "h[^e]llo",
        "[abc",
        "a\\",
        "a\\\\c",
        "[^]",
        "*[",
        "?",
        "??",
        "[-]",
        "[a-]",
        "[]]",
        "\\^x",
        "x^",
        "app:*",
        "app:[^t]*",
        "*:*:*",
        "**",
        "[\\-]",
        "h[-e]llo",
    ];
    for pattern in patterns {
        let mut from_server: Vec<Vec<u8>> =
            redis::cmd("KEYS").arg(pattern).query(&mut con).unwrap();
        from_server.sort();
        let glob = Glob::new(pattern);
        let mut ours: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| glob.matches(k.as_bytes()))
            .map(|k| k.as_bytes().to_vec())
            .collect();
        ours.sort();
        assert_eq!(ours, from_server, "pattern {pattern:?}");
    }
}
