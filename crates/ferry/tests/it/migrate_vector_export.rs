//! `--vector-set export=PATH` into a target without vector sets: the export must be
//! current when the migration stops (cutover stops it while the source is paused), not a
//! picture of the full sync. Checked element by element against the source's own `VEMB`
//! and `VGETATTR` at the stop.

use crate::support::migrate;
use crate::support::migrate::Ferry;
use ferry_testkit::{Server, ServerKind};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

fn run(con: &mut redis::Connection, args: &[&str]) -> redis::Value {
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command
        .query(con)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// (key, element) → (vector, attributes) as the source reports them now.
fn source_elements(source: &Server) -> BTreeMap<(String, String), (Vec<f32>, Value)> {
    let mut con = source.client();
    let keys: Vec<String> = redis::cmd("KEYS").arg("vs:*").query(&mut con).unwrap();
    let mut all = BTreeMap::new();
    for key in keys {
        let card: usize = redis::cmd("VCARD").arg(&key).query(&mut con).unwrap();
        let elements: Vec<String> = redis::cmd("VRANDMEMBER")
            .arg(&key)
            .arg(card)
            .query(&mut con)
            .unwrap();
        for element in elements {
            let vector: Vec<f32> = redis::cmd("VEMB")
                .arg(&key)
                .arg(&element)
                .query(&mut con)
                .unwrap();
            let attributes: Option<String> = redis::cmd("VGETATTR")
                .arg(&key)
                .arg(&element)
                .query(&mut con)
                .unwrap();
            let attributes = attributes
                .map(|a| serde_json::from_str(&a).unwrap())
                .unwrap_or(Value::Null);
            all.insert((key.clone(), element), (vector, attributes));
        }
    }
    all
}

fn exported(path: &std::path::Path) -> BTreeMap<(String, String), (Vec<f32>, Value)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let vector = v["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (
                (
                    v["key"].as_str().unwrap().to_owned(),
                    v["element"].as_str().unwrap().to_owned(),
                ),
                (vector, v["attributes"].clone()),
            )
        })
        .collect()
}

#[test]
fn the_export_is_current_when_the_migration_stops() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let mut con = source.client();
    let add = |con: &mut redis::Connection, key: &str, element: &str, x: &str, attrs: &str| {
        run(
            con,
            &[
                "VADD", key, "VALUES", "2", x, "1.5", element, "NOQUANT", "SETATTR", attrs,
            ],
        );
    };
    add(&mut con, "vs:kept", "a", "0.5", r#"{"n":1}"#);
    add(&mut con, "vs:kept", "b", "0.25", r#"{"n":2}"#);
    add(&mut con, "vs:gone", "x", "1", r#"{"n":3}"#);
    run(&mut con, &["SET", "plain", "value"]);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.jsonl");
    let export = format!("export={}", path.display());
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate(&source, &target, &state, &["--vector-set", &export]);
    ferry.wait_in_sync();
    assert_eq!(
        exported(&path),
        source_elements(&source),
        "at the full sync"
    );

    // Every kind of change after the full sync.
    add(&mut con, "vs:kept", "c", "2", r#"{"n":4}"#);
    run(&mut con, &["VREM", "vs:kept", "a"]);
    run(&mut con, &["VSETATTR", "vs:kept", "b", r#"{"n":20}"#]);
    add(&mut con, "vs:new", "y", "3", r#"{"n":5}"#);
    run(&mut con, &["DEL", "vs:gone"]);
    migrate::wait_applied(&source, &state, &ferry);

    ferry.signal("TERM");
    let status = ferry.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{}", ferry.output());
    assert_eq!(
        exported(&path),
        source_elements(&source),
        "at the stop:\n{}",
        ferry.output()
    );
}

/// Each vector set's database in the export, as the lines say.
fn exported_dbs(path: &std::path::Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (
                v["key"].as_str().unwrap().to_owned(),
                v["db"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Vector sets that change database after the full sync (SWAPDB, MOVE; Redis 8.0 refuses
/// COPY of a vector set) are in the export at the stop, in the database they are in then.
#[test]
fn vector_sets_moved_between_databases_are_exported_where_they_are() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let mut con = source.client();
    let add = |con: &mut redis::Connection, db: &str, key: &str| {
        run(con, &["SELECT", db]);
        run(
            con,
            &["VADD", key, "VALUES", "2", "0.5", "1.5", "e", "NOQUANT"],
        );
    };
    add(&mut con, "2", "vs:in-2");
    add(&mut con, "3", "vs:in-3");
    add(&mut con, "0", "vs:moved");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.jsonl");
    let export = format!("export={}", path.display());
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate(&source, &target, &state, &["--vector-set", &export]);
    ferry.wait_in_sync();

    run(&mut con, &["SELECT", "0"]);
    run(&mut con, &["SWAPDB", "2", "3"]);
    run(&mut con, &["MOVE", "vs:moved", "5"]);
    migrate::wait_applied(&source, &state, &ferry);
    ferry.signal("TERM");
    let status = ferry.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{}", ferry.output());

    let expected: BTreeMap<String, u64> = [("vs:in-2", 3), ("vs:in-3", 2), ("vs:moved", 5)]
        .into_iter()
        .map(|(key, db)| (key.to_owned(), db))
        .collect();
    assert_eq!(exported_dbs(&path), expected, "{}", ferry.output());
}
