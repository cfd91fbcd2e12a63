//! `ferry verify` on real servers: identical copies verify clean (exit 0); each injected
//! difference is reported with its key and kind (exit 1); policy changes are excused only
//! under the policy flags the migration used; a live source settles over rounds.

use crate::support::ferry;
use crate::support::server_url;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::verify::{self, VerifyOptions};
use ferry_testkit::workload::Workload;
use ferry_testkit::{dataset, Server, ServerKind};
use redis::Connection;
use serde_json::Value;

fn verify_json(source: &Server, target: &Server, extra: &[&str]) -> (i32, Value) {
    let (source_url, target_url) = (source.url(), target.url());
    let mut args = vec![
        "verify",
        "--source",
        &source_url,
        "--target",
        &target_url,
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = ferry(&args);
    let code = out.status.code().expect("exit code");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); exit {code}, stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, json)
}

fn cmd(con: &mut Connection, args: &[&str]) {
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command
        .query::<redis::Value>(con)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
}

/// A source filled with the dataset, and a target of the same kind started from its save.
pub(crate) fn identical_pair(
    kind: ServerKind,
    prepare: impl Fn(&mut Connection),
) -> (Server, Server) {
    let source = Server::start(kind).expect("start source");
    dataset::populate(&source).expect("populate");
    prepare(&mut source.client());
    let saved = source.save().expect("save");
    let target = Server::start_with_rdb(kind, &saved).expect("start target");
    (source, target)
}

/// The listed difference for `key`, with its kinds.
fn difference<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .find(|d| d["key"] == key)
        .unwrap_or_else(|| panic!("{key} not reported: {report:#}"))
}

fn kinds(difference: &Value) -> Vec<String> {
    let mut kinds: Vec<String> = difference["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect();
    kinds.dedup();
    kinds
}

#[test]
fn identical_copies_verify_clean() {
    // Redis 6.0 reads expiry through PTTL; Valkey 9.1 has PEXPIRETIME and field TTLs.
    for kind in [ServerKind::Redis60, ServerKind::Valkey91] {
        let (source, target) = identical_pair(kind, |_| {});
        let (code, report) = verify_json(&source, &target, &[]);
        assert_eq!(code, 0, "{kind}: {report:#}");
        let summary = &report["summary"];
        assert_eq!(summary["differing"], 0, "{kind}: {report:#}");
        assert!(
            summary["keys_compared"].as_u64().unwrap() > 100,
            "{report:#}"
        );
        assert_eq!(summary["keys_compared"], summary["equal"], "{report:#}");
        assert_eq!(report["rounds"], 1);
    }
}

#[test]
fn each_injected_difference_is_reported_with_its_key_and_kind() {
    let (source, target) = identical_pair(ServerKind::Valkey91, |con| {
        cmd(con, &["SET", "v:missing", "x"]);
        let mut push = vec!["RPUSH", "v:biglist"];
        let elements: Vec<String> = (0..3000).map(|i| format!("e{i}")).collect();
        push.extend(elements.iter().map(String::as_str));
        cmd(con, &push);
        cmd(con, &["SET", "v:ttl", "x", "PXAT", "4102444800000"]);
        cmd(con, &["XADD", "v:stream", "1-1", "f", "a"]);
        cmd(con, &["XADD", "v:stream", "1-2", "f", "b"]);
        cmd(con, &["XGROUP", "CREATE", "v:stream", "g", "0"]);
        cmd(
            con,
            &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "v:stream", ">"],
        );
        cmd(con, &["XADD", "v:counter", "1-1", "f", "a"]);
        cmd(con, &["XGROUP", "CREATE", "v:counter", "g", "0"]);
        cmd(
            con,
            &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "v:counter", ">"],
        );
        cmd(con, &["HSET", "v:fieldttl", "a", "1", "b", "2"]);
        cmd(
            con,
            &[
                "HPEXPIREAT",
                "v:fieldttl",
                "4102444800000",
                "FIELDS",
                "1",
                "a",
            ],
        );
    });

    // Before any change: clean, also through the library API.
    let options = VerifyOptions {
        rounds: 1,
        ..VerifyOptions::new(server_url(&source), server_url(&target))
    };
    let report = verify::run(&options).expect("verify");
    assert!(report.is_clean(), "{:?}", report.differences);

    let mut con = target.client();
    cmd(&mut con, &["DEL", "v:missing"]);
    cmd(&mut con, &["SET", "v:extra", "y"]);
    cmd(&mut con, &["LSET", "v:biglist", "2500", "changed"]);
    cmd(&mut con, &["PEXPIREAT", "v:ttl", "4102448400000"]);
    cmd(&mut con, &["XACK", "v:stream", "g", "1-2"]);
    // Valkey replicates a group's entries-read: on this source a changed one differs.
    cmd(
        &mut con,
        &[
            "XGROUP",
            "SETID",
            "v:counter",
            "g",
            "1-1",
            "ENTRIESREAD",
            "5",
        ],
    );
    cmd(
        &mut con,
        &[
            "HPEXPIREAT",
            "v:fieldttl",
            "4102448400000",
            "FIELDS",
            "1",
            "a",
        ],
    );

    let (code, report) = verify_json(&source, &target, &["--rounds", "2"]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["summary"]["differing"], 7, "{report:#}");
    assert_eq!(
        report["rounds"], 2,
        "differences persist into the second round"
    );
    for (key, kind) in [
        ("v:missing", "missing"),
        ("v:extra", "extra"),
        ("v:biglist", "value"),
        ("v:ttl", "ttl"),
        ("v:stream", "value"),
        ("v:counter", "value"),
        ("v:fieldttl", "ttl"),
    ] {
        let found = difference(&report, key);
        assert_eq!(kinds(found), [kind], "{key}: {found:#}");
    }
    let detail = |key| difference(&report, key)["findings"][0]["detail"].to_string();
    assert!(
        detail("v:biglist").contains("element 2500"),
        "{}",
        detail("v:biglist")
    );
    let stream = difference(&report, "v:stream").to_string();
    assert!(stream.contains("pending entry: 1-2"), "{stream}");
    assert!(
        detail("v:fieldttl").contains("\\\"a\\\""),
        "{}",
        detail("v:fieldttl")
    );

    // The text report names the keys too.
    let (s, t) = (source.url(), target.url());
    let out = ferry(&["verify", "--source", &s, "--target", &t, "--rounds", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("7 differing"), "{text}");
    assert!(text.contains("db0 \"v:biglist\" [value]"), "{text}");
}

#[test]
fn policy_changes_are_excused_only_under_the_same_policies() {
    // Redis 8.0 has field TTLs and vector sets; Valkey 8.1 has neither.
    let source = Server::start(ServerKind::Redis80).expect("start source");
    dataset::populate(&source).expect("populate");
    let mut con = source.client();
    cmd(&mut con, &["HSET", "v:all-volatile", "a", "1", "b", "2"]);
    let far = "4102444800000";
    cmd(
        &mut con,
        &["HPEXPIREAT", "v:all-volatile", far, "FIELDS", "2", "a", "b"],
    );
    let saved = source.save().expect("save");
    let work = tempfile::tempdir().unwrap();
    let converted = work.path().join("out.rdb");
    let policies = ["--hash-field-ttl", "persist", "--vector-set", "skip"];
    let mut args = vec![
        "convert",
        saved.to_str().unwrap(),
        converted.to_str().unwrap(),
        "--to",
        "valkey-8.1",
    ];
    args.extend_from_slice(&policies);
    let out = ferry(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = Server::start_with_rdb(ServerKind::Valkey81, &converted).expect("start target");

    let (code, report) = verify_json(&source, &target, &policies);
    assert_eq!(code, 0, "{report:#}");
    assert!(
        report["summary"]["policy_excused"].as_u64().unwrap() >= 2,
        "{report:#}"
    );

    let (code, report) = verify_json(&source, &target, &["--rounds", "1"]);
    assert_eq!(code, 1, "{report:#}");
    let summary = &report["summary"];
    assert_eq!(summary["policy_excused"], 0, "{report:#}");
    assert!(
        summary["missing"].as_u64().unwrap() >= 1,
        "vector sets: {report:#}"
    );
    assert!(
        summary["ttl"].as_u64().unwrap() >= 1,
        "field TTLs: {report:#}"
    );

    // drop-field leaves volatile fields (and hashes of only such fields) out.
    let dropped = work.path().join("dropped.rdb");
    let policies = ["--hash-field-ttl", "drop-field", "--vector-set", "skip"];
    let mut args = vec![
        "convert",
        saved.to_str().unwrap(),
        dropped.to_str().unwrap(),
        "--to",
        "valkey-8.1",
    ];
    args.extend_from_slice(&policies);
    let out = ferry(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = Server::start_with_rdb(ServerKind::Valkey81, &dropped).expect("start target");
    let (code, report) = verify_json(&source, &target, &policies);
    assert_eq!(code, 0, "{report:#}");
    let excused = report["excused"].as_object().unwrap();
    assert!(
        excused
            .keys()
            .any(|reason| reason.starts_with("hash fields with TTLs")),
        "{report:#}"
    );
    assert!(
        excused
            .keys()
            .any(|reason| reason.starts_with("hashes whose every field")),
        "v:all-volatile was left out whole: {report:#}"
    );
    // The same target judged as if persist had been used: the dropped fields are missing.
    let persist = [
        "--hash-field-ttl",
        "persist",
        "--vector-set",
        "skip",
        "--rounds",
        "1",
    ];
    let (code, report) = verify_json(&source, &target, &persist);
    assert_eq!(code, 1, "{report:#}");
    let summary = &report["summary"];
    assert!(summary["value"].as_u64().unwrap() >= 1, "{report:#}");
    assert!(summary["missing"].as_u64().unwrap() >= 1, "{report:#}");
}

fn wait_for_sync(replica: &Server) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut con = replica.client();
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut con)
            .unwrap();
        if info.contains("master_link_status:up") && !info.contains("master_sync_in_progress:1") {
            return;
        }
        assert!(Instant::now() < deadline, "replica never synced: {info}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_live_source_shows_no_false_differences_after_rounds() {
    let source = Server::start(ServerKind::Redis70).expect("start source");
    dataset::populate(&source).expect("populate");
    let target = Server::start(ServerKind::Valkey81).expect("start target");
    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::spawn(source.url(), ServerKind::Redis70, stop.clone());

    let port = source.port().to_string();
    cmd(&mut target.client(), &["REPLICAOF", "127.0.0.1", &port]);
    wait_for_sync(&target);

    // The load runs through the first pass and stops during the later rounds: a hot key
    // may differ at every look while writes go on, but must settle once they stop.
    let options = VerifyOptions {
        rounds: 6,
        round_pause: std::time::Duration::from_secs(1),
        ..VerifyOptions::new(server_url(&source), server_url(&target))
    };
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(2500));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let report = verify::run(&options);
    stop.store(true, Ordering::Relaxed);
    stopper.join().unwrap();
    let stats = load.join().expect("workload");
    let report = report.expect("verify");
    assert!(stats.total() > 100, "the load ran: {stats:?}");
    assert!(report.is_clean(), "{:#?}", report.differences);
    assert!(report.summary.keys_compared > 100);
    // Every round after the first re-checked keys that had differed, and they settled.
    assert_eq!(report.settled > 0, report.rounds > 1, "{report:?}");
}

#[test]
fn a_sample_compares_only_some_keys_and_still_finds_loss() {
    let (source, target) = identical_pair(ServerKind::Valkey81, |_| {});
    let options = VerifyOptions {
        rounds: 1,
        ..VerifyOptions::new(server_url(&source), server_url(&target))
    };
    let all = verify::run(&options).expect("verify").summary.keys_compared;
    let report = verify::run_sampled(&options, 50).expect("sampled verify");
    assert!(report.is_clean(), "{:?}", report.differences);
    let compared = report.summary.keys_compared;
    assert!(compared > 0 && compared < all / 2, "{compared} of {all}");
    assert_eq!(report.sampled, Some(50));

    cmd(&mut target.client(), &["FLUSHDB"]); // db0 is selected: its keys go missing
    let report = verify::run_sampled(&options, 50).expect("sampled verify");
    assert!(report.summary.missing > 0, "{:?}", report.summary);
    assert!(
        report.differences.iter().all(|d| d.db == 0),
        "{:?}",
        report.differences
    );
}

#[test]
fn the_rate_limit_paces_the_comparison() {
    let source = Server::start(ServerKind::Valkey81).expect("start source");
    let mut con = source.client();
    for i in 0..100 {
        cmd(&mut con, &["SET", &format!("k{i}"), "v"]);
    }
    let saved = source.save().expect("save");
    let target = Server::start_with_rdb(ServerKind::Valkey81, &saved).expect("start target");
    let options = VerifyOptions {
        rounds: 1,
        max_ops_per_sec: Some(500),
        ..VerifyOptions::new(server_url(&source), server_url(&target))
    };
    let start = Instant::now();
    let report = verify::run(&options).expect("verify");
    assert!(report.is_clean());
    // Each key costs at least TYPE, PEXPIRETIME and STRLEN on the source: 300+ commands.
    assert!(
        start.elapsed() >= Duration::from_millis(550),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn connection_errors_exit_2_without_the_password() {
    let out = ferry(&[
        "verify",
        "--source",
        "redis://user:s3cret@127.0.0.1:1",
        "--target",
        "redis://127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("cannot connect to the source (127.0.0.1:1)"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");

    let out = ferry(&[
        "verify",
        "--source",
        "http://user:s3cret@127.0.0.1:1",
        "--target",
        "redis://127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("--source"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

/// Across releases: a Redis 6.0 dataset converted for Valkey 8.0 verifies clean (expiry
/// from PTTL on one side, PEXPIRETIME on the other; stream metadata only one side reports).
#[test]
fn a_converted_copy_across_releases_verifies_clean() {
    let source = Server::start(ServerKind::Redis60).expect("start source");
    dataset::populate(&source).expect("populate");
    let saved = source.save().expect("save");
    let work = tempfile::tempdir().unwrap();
    let converted = work.path().join("out.rdb");
    let out = ferry(&[
        "convert",
        saved.to_str().unwrap(),
        converted.to_str().unwrap(),
        "--to",
        "valkey-8.0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = Server::start_with_rdb(ServerKind::Valkey80, &converted).expect("start target");
    let (code, report) = verify_json(&source, &target, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["summary"]["policy_excused"], 0, "{report:#}");
}
