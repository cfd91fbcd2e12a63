//! The binary as a user runs it: bad input ends in one `ferry: ...` line on stderr and a
//! non-zero exit code, never a panic, and never a half-written output file.

use crate::support::{ferry_in, files_in};
use std::process::Output;

/// Asserts the run failed with `code` and exactly one error line; returns that line.
fn one_line_error(output: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr should be one line: {stderr:?}");
    assert!(lines[0].starts_with("ferry: "), "{stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr:?}");
    assert_eq!(output.status.code(), Some(code), "{stderr:?}");
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout: {:?}",
        output.stdout
    );
    lines[0].to_owned()
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["inspect", "missing.rdb"][..],
        &["convert", "missing.rdb", "out.rdb", "--to", "valkey-8.1"][..],
    ] {
        let line = one_line_error(&ferry_in(args, dir.path()), 1);
        assert!(line.contains("missing.rdb"), "{line}");
    }
    assert!(files_in(dir.path()).is_empty(), "no output left behind");
}

#[test]
fn directory_instead_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let line = one_line_error(&ferry_in(&["inspect", "."], dir.path()), 1);
    assert!(line.contains("holds no AOF manifest"), "{line}");
}

#[test]
fn non_rdb_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "shopping list: eggs, milk\n").unwrap();
    for args in [
        &["inspect", "notes.txt"][..],
        &["convert", "notes.txt", "out.rdb", "--to", "valkey-8.1"][..],
    ] {
        let line = one_line_error(&ferry_in(args, dir.path()), 1);
        assert!(line.contains("notes.txt"), "{line}");
    }
    assert_eq!(files_in(dir.path()), ["notes.txt"], "no output left behind");
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    // A header, then an AUX record cut off inside its key.
    std::fs::write(dir.path().join("cut.rdb"), b"REDIS0011\xfa\x09redis").unwrap();
    for args in [
        &["inspect", "cut.rdb"][..],
        &["inspect", "--json", "cut.rdb"][..],
        &["convert", "cut.rdb", "out.rdb", "--to", "valkey-8.1"][..],
    ] {
        let line = one_line_error(&ferry_in(args, dir.path()), 1);
        assert!(line.contains("cut.rdb"), "{line}");
    }
    assert_eq!(files_in(dir.path()), ["cut.rdb"], "no output left behind");
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.rdb"), b"").unwrap();
    one_line_error(&ferry_in(&["inspect", "empty.rdb"], dir.path()), 1);
}

#[test]
fn unknown_profile_lists_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.rdb"), b"REDIS0011").unwrap();
    let out = ferry_in(
        &["convert", "in.rdb", "out.rdb", "--to", "valkey-7.9"],
        dir.path(),
    );
    let line = one_line_error(&out, 2);
    assert!(
        line.contains("valkey-7.9") && line.contains("valkey-8.1"),
        "{line}"
    );
    assert_eq!(files_in(dir.path()), ["in.rdb"]);
}

#[test]
fn unsupported_rdb_version_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = ferry_in(
        &["convert", "in.rdb", "out.rdb", "--rdb-version", "7"],
        dir.path(),
    );
    let line = one_line_error(&out, 2);
    assert!(line.contains("RDB version 7"), "{line}");
}

#[test]
fn existing_output_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.rdb"), b"REDIS0011").unwrap();
    std::fs::write(dir.path().join("out.rdb"), b"precious").unwrap();
    let out = ferry_in(
        &["convert", "in.rdb", "out.rdb", "--to", "valkey-8.1"],
        dir.path(),
    );
    let line = one_line_error(&out, 1);
    assert!(
        line.contains("out.rdb") && line.contains("--force"),
        "{line}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("out.rdb")).unwrap(),
        b"precious"
    );
    assert_eq!(files_in(dir.path()), ["in.rdb", "out.rdb"]);
}

#[test]
fn existing_export_file_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.rdb"), b"REDIS0011").unwrap();
    std::fs::write(dir.path().join("v.jsonl"), b"precious").unwrap();
    let args = [
        "convert",
        "in.rdb",
        "out.rdb",
        "--to",
        "valkey-8.1",
        "--vector-set",
        "export=v.jsonl",
    ];
    let line = one_line_error(&ferry_in(&args, dir.path()), 1);
    assert!(
        line.contains("v.jsonl") && line.contains("--force"),
        "{line}"
    );
    assert_eq!(files_in(dir.path()), ["in.rdb", "v.jsonl"]);
}

#[test]
fn bad_flag_values_are_usage_errors_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (
            &[
                "convert",
                "a",
                "b",
                "--to",
                "valkey-8.1",
                "--hash-field-ttl",
                "keep",
            ][..],
            "persist",
        ),
        (
            &[
                "convert",
                "a",
                "b",
                "--to",
                "valkey-8.1",
                "--vector-set",
                "export=",
            ][..],
            "export=PATH",
        ),
        (&["convert", "a", "b"][..], "--to"),
        (&["inspect"][..], "FILE"),
        (&["frobnicate"][..], "frobnicate"),
    ] {
        let line = one_line_error(&ferry_in(args, dir.path()), 2);
        assert!(line.contains(expected), "{args:?}: {line}");
    }
}

#[test]
fn help_and_version_succeed() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["--version"][..],
        &["convert", "--help"][..],
    ] {
        let out = ferry_in(args, dir.path());
        assert!(out.status.success(), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}
