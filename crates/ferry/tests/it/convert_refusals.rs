//! Files a target refuses to load, crafted byte by byte (checksum off, as `rdbchecksum no`
//! writes them): `ferry inspect` must say the target cannot load them, and `ferry convert`
//! must refuse on one line and leave no output, rather than write a file the target then
//! refuses. Each case first shows that a real Valkey 8.1 refuses the file.

use crate::support::ferry;
use ferry_codec::{types, write_len, write_string};
use ferry_testkit::{Server, ServerKind};
use std::path::Path;

const SELECT_DB: u8 = 0xFE;
const EOF: u8 = 0xFF;

/// An RDB 11 file around `body`, ending with a zero (unchecked) checksum.
fn rdb11(body: &[u8]) -> Vec<u8> {
    let mut out = b"REDIS0011".to_vec();
    out.extend_from_slice(body);
    out.push(EOF);
    out.extend_from_slice(&[0; 8]);
    out
}

fn string_key(out: &mut Vec<u8>, key: &str, value: &str) {
    out.push(types::STRING);
    write_string(out, key.as_bytes(), false);
    write_string(out, value.as_bytes(), false);
}

/// A plain (skiplist-form) sorted set: too many members for a listpack.
fn zset(out: &mut Vec<u8>, key: &str, members: &[(String, f64)]) {
    out.push(types::ZSET_2);
    write_string(out, key.as_bytes(), false);
    write_len(out, members.len() as u64);
    for (member, score) in members {
        write_string(out, member.as_bytes(), false);
        out.extend_from_slice(&score.to_le_bytes());
    }
}

fn plain_set(out: &mut Vec<u8>, key: &str, members: &[String]) {
    out.push(types::SET);
    write_string(out, key.as_bytes(), false);
    write_len(out, members.len() as u64);
    for member in members {
        write_string(out, member.as_bytes(), false);
    }
}

fn members(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("member-{i}")).collect()
}

/// Valkey 8.1's verdict on `file`, and what inspect and convert make of it.
fn check_refused(name: &str, file: &[u8], inspect_says: &str, convert_says: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join(format!("{name}.rdb"));
    std::fs::write(&input, file).unwrap();
    assert!(
        Server::start_with_rdb(ServerKind::Valkey81, &input).is_err(),
        "{name}: Valkey 8.1 loads it, so the case shows nothing"
    );

    let out = ferry(&["inspect", "--json", input.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let valkey_81 = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["profile"] == "valkey-8.1")
        .unwrap();
    let blockers = valkey_81["cannot_load"].to_string();
    assert!(blockers.contains(inspect_says), "{name}: {report:#}");

    let output = dir.path().join("out.rdb");
    let out = ferry(&[
        "convert",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--to",
        "valkey-8.1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
    assert!(
        stderr.starts_with("ferry: ") && stderr.contains(convert_says),
        "{name}: {stderr}"
    );
    assert!(
        !output.exists() && files(dir.path()) == 1,
        "{name}: output left behind"
    );
}

fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn a_database_beyond_the_targets_databases_is_refused() {
    let mut body = vec![SELECT_DB];
    write_len(&mut body, 1 << 40);
    string_key(&mut body, "k", "v");
    check_refused(
        "db-2-40",
        &rdb11(&body),
        "1099511627776",
        "db 1099511627776",
    );

    let mut body = vec![SELECT_DB];
    write_len(&mut body, 16);
    string_key(&mut body, "k", "v");
    check_refused("db-16", &rdb11(&body), "db 16", "db 16");
}

#[test]
fn a_duplicate_sorted_set_member_is_refused() {
    let mut list: Vec<(String, f64)> = members(200).into_iter().map(|m| (m, 1.5)).collect();
    list[150].0 = list[7].0.clone();
    let mut body = Vec::new();
    zset(&mut body, "scores", &list);
    check_refused("zset-dup", &rdb11(&body), "twice", "\"scores\"");
}

#[test]
fn a_duplicate_set_member_is_refused() {
    let mut list = members(600);
    list[599] = list[0].clone();
    let mut body = Vec::new();
    plain_set(&mut body, "tags", &list);
    check_refused("set-dup", &rdb11(&body), "twice", "\"tags\"");
}

#[test]
fn a_nan_score_is_refused_by_both() {
    let mut body = Vec::new();
    zset(
        &mut body,
        "nan",
        &[("a".into(), 1.0), ("b".into(), f64::NAN), ("c".into(), 2.0)],
    );
    check_refused("zset-nan", &rdb11(&body), "NaN", "NaN");
}
