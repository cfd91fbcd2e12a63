//! The codec's end-to-end promise, on real servers: whatever a Redis or Valkey server saved,
//! `ferry convert` turns into a file each Valkey target loads from disk, holding the same
//! data key by key, except exactly what the chosen policies change.

use crate::support::ferry;
use std::path::Path;

use ferry_testkit::expect::{after_policies, FieldTtl, VectorSets};
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::{dataset, Server, ServerKind};

const TARGETS: [ServerKind; 3] = [
    ServerKind::Valkey80,
    ServerKind::Valkey81,
    ServerKind::Valkey91,
];

fn convert(input: &Path, output: &Path, target: ServerKind, policy: &[&str]) {
    let mut args = vec![
        "convert",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--to",
        target.name(),
    ];
    args.extend_from_slice(policy);
    let out = ferry(&args);
    assert!(
        out.status.success(),
        "ferry {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Saves the populated dataset of `source`, converts it for every Valkey target and checks
/// that each target, started from the converted file, holds what the policies promise.
fn every_target_loads_what(source_kind: ServerKind) {
    let source = Server::start(source_kind).expect("start source");
    dataset::populate(&source).expect("populate");
    let saved = source.save().expect("save");
    let before = Snapshot::capture(&source).expect("capture source");
    let work = tempfile::tempdir().unwrap();

    for target_kind in TARGETS {
        let output = work.path().join(format!("{}.rdb", target_kind.name()));
        convert(
            &saved,
            &output,
            target_kind,
            &["--hash-field-ttl", "persist", "--vector-set", "skip"],
        );
        let target = Server::start_with_rdb(target_kind, &output)
            .unwrap_or_else(|e| panic!("{} refused the converted file: {e:#}", target_kind.name()));
        let field_ttl = if target_kind.has_hash_field_ttl() {
            FieldTtl::Keep
        } else {
            FieldTtl::Persist
        };
        let expected = after_policies(&before, field_ttl, VectorSets::Remove);
        let after = Snapshot::capture(&target).expect("capture target");
        let differences = expected.snapshot.diff(&after, &DiffOptions::new());
        assert!(
            differences.is_empty(),
            "{} → {}: {} differences:\n{}",
            source_kind.name(),
            target_kind.name(),
            differences.len(),
            differences
                .iter()
                .map(|d| format!("  {d}\n"))
                .collect::<String>()
        );
        assert!(after.key_count() > 50, "the dataset reached the target");
    }
}

#[test]
fn redis_6_0_file_loads_in_every_valkey() {
    every_target_loads_what(ServerKind::Redis60);
}

#[test]
fn redis_7_0_file_loads_in_every_valkey() {
    every_target_loads_what(ServerKind::Redis70);
}

#[test]
fn redis_8_0_file_loads_in_every_valkey() {
    every_target_loads_what(ServerKind::Redis80);
}

#[test]
fn valkey_8_0_file_loads_in_every_valkey() {
    every_target_loads_what(ServerKind::Valkey80);
}

#[test]
fn valkey_8_1_file_loads_in_every_valkey() {
    every_target_loads_what(ServerKind::Valkey81);
}

#[test]
fn valkey_9_1_file_loads_in_every_valkey() {
    every_target_loads_what(ServerKind::Valkey91);
}

/// `drop-field` and `export=PATH` on the hardest pair: Redis 8 data into Valkey 8.1.
#[test]
fn redis_8_0_drop_field_and_export_into_valkey_8_1() {
    let source = Server::start(ServerKind::Redis80).expect("start source");
    dataset::populate(&source).expect("populate");
    let saved = source.save().expect("save");
    let before = Snapshot::capture(&source).expect("capture source");
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("out.rdb");
    let export = work.path().join("vectors.jsonl");
    let export_flag = format!("export={}", export.display());
    convert(
        &saved,
        &output,
        ServerKind::Valkey81,
        &[
            "--hash-field-ttl",
            "drop-field",
            "--vector-set",
            &export_flag,
        ],
    );

    let target = Server::start_with_rdb(ServerKind::Valkey81, &output).expect("load");
    let expected = after_policies(&before, FieldTtl::DropField, VectorSets::Remove);
    let differences = expected
        .snapshot
        .diff(&Snapshot::capture(&target).unwrap(), &DiffOptions::new());
    assert!(differences.is_empty(), "{differences:#?}");
    assert!(
        expected.changed_fields > 0,
        "the dataset has volatile fields to drop"
    );

    // Every element of every removed vector set is in the export, with its name.
    let lines = std::fs::read_to_string(&export).expect("export written");
    let exported: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let elements: usize = expected
        .removed_vector_sets
        .values()
        .map(|set| set.elements.len())
        .sum();
    assert!(elements > 0);
    assert_eq!(exported.len(), elements, "one line per vector set element");
}
