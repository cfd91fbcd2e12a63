//! `ferry migrate --mode scan` against real servers whose replication is refused (PSYNC
//! and SYNC denied by an ACL, or renamed away): SCAN + DUMP with a write load running,
//! then changes followed through keyspace notifications until the target equals the
//! source key by key.

use crate::support::migrate::Ferry;
use ferry_testkit::expect::{after_policies, FieldTtl, VectorSets};
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::workload::{Workload, DEFAULT_SEED, SHORT_TTLS_PASSED};
use ferry_testkit::{dataset, Server, ServerKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What scan mode documents it cannot follow: no notification names a key for these.
const UNFOLLOWED: [&str; 2] = ["FLUSHDB", "SWAPDB"];
const IN_SYNC: &str = "ferry: in sync";
const SCAN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the target may take to catch up once the load stopped.
const CONVERGE_WITHIN: Duration = Duration::from_secs(30);

/// A user that may do everything but replicate, as a managed service's.
fn deny_replication(server: &Server, extra: &str) -> String {
    let mut con = server.client();
    // Channel rules (`&*`) came with Redis 6.2; before, every channel is allowed.
    let channels = if server.kind() == ServerKind::Redis60 {
        ""
    } else {
        "&* "
    };
    let rules = format!("on >s3cret ~* {channels}+@all -psync -sync {extra}");
    let mut command = redis::cmd("ACL");
    command.arg("SETUSER").arg("migrator");
    for rule in rules.split(' ') {
        command.arg(rule);
    }
    command.query::<()>(&mut con).unwrap();
    format!("redis://migrator:s3cret@127.0.0.1:{}", server.port())
}

/// A Redis 8.0 source holding one key, whose user may not replicate (nor what `extra`
/// denies), an empty Valkey 8.1 target, and the user's URL.
fn one_key_denied(extra: &str) -> (Server, Server, String) {
    let source = Server::start(ServerKind::Redis80).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let url = deny_replication(&source, extra);
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query::<()>(&mut source.client())
        .unwrap();
    (source, target, url)
}

fn scan(source_url: &str, target: &Server, extra: &[&str]) -> Ferry {
    scan_paced(source_url, target, "200000", extra)
}

fn scan_paced(source_url: &str, target: &Server, keys_per_sec: &str, extra: &[&str]) -> Ferry {
    let target_url = target.url();
    let mut args = vec![
        "--source",
        source_url,
        "--target",
        &target_url,
        "--mode",
        "scan",
        "--scan-keys-per-sec",
        keys_per_sec,
    ];
    args.extend_from_slice(extra);
    Ferry::start(&args)
}

/// The run ends with exit 1, its last line naming every one of `needles`, and the
/// password of `deny_replication`'s user printed nowhere. Returns the whole output.
fn assert_stops_with(ferry: &mut Ferry, needles: &[&str]) -> String {
    let status = ferry.wait_exit(Duration::from_secs(30));
    let output = ferry.output();
    assert_eq!(status.code(), Some(1), "{output}");
    let last = output.lines().last().unwrap_or_default();
    for needle in needles {
        assert!(
            last.contains(needle),
            "no {needle:?} in the last line: {output}"
        );
    }
    assert!(!output.contains("s3cret"), "{output}");
    output
}

/// Waits until `needle` was printed `count` times.
fn wait_count(ferry: &Ferry, needle: &str, count: usize) {
    let deadline = Instant::now() + SCAN_TIMEOUT;
    while ferry.output().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "{needle:?} not {count} times:\n{}",
            ferry.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn notify_setting(server: &Server) -> String {
    let mut con = server.client();
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query(&mut con)
        .unwrap();
    pair.get(1).cloned().unwrap_or_default()
}

/// Polls until the target holds what the source does after the policies.
fn wait_equal(source: &Server, target: &Server, field_ttl: FieldTtl, ferry: &Ferry) {
    wait_equal_at_least(source, target, field_ttl, ferry, 100);
}

fn wait_equal_at_least(
    source: &Server,
    target: &Server,
    field_ttl: FieldTtl,
    ferry: &Ferry,
    min_keys: usize,
) {
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let before = Snapshot::capture(source).expect("capture source");
        let vectors = if target.kind().has_vector_sets() {
            VectorSets::Keep
        } else {
            VectorSets::Remove
        };
        let expected = after_policies(&before, field_ttl, vectors).snapshot;
        let actual = Snapshot::capture(target).expect("capture target");
        // Before Redis 7.0 the expiry is read relative (PTTL) and made absolute by ferry's
        // clock, a few ms off.
        let tolerance = if source.kind() == ServerKind::Redis60 {
            1_000
        } else {
            0
        };
        let options = DiffOptions::new().ttl_tolerance_ms(tolerance);
        let differences = expected.diff(&actual, &options);
        if differences.is_empty() {
            assert!(expected.key_count() >= min_keys, "{}", expected.key_count());
            return;
        }
        if Instant::now() > deadline {
            let shown: Vec<String> = differences.iter().take(40).map(|d| d.to_string()).collect();
            panic!(
                "{} differences after {CONVERGE_WITHIN:?}:\n{}\n{}",
                differences.len(),
                shown.join("\n"),
                ferry.output()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What happens to the subscription while the load runs.
#[derive(Clone, Copy, PartialEq)]
enum Disconnect {
    No,
    /// The source drops ferry's subscriber (as a restarted proxy would): notifications
    /// are lost until ferry is back, so it rescans.
    KillSubscriber,
}

/// The dataset, a write load during the scan (paced to take a few seconds) and after it,
/// then equal key by key.
fn scan_under_load(
    source: &Server,
    source_url: &str,
    target_kind: ServerKind,
    policy: &[&str],
    disconnect: Disconnect,
) -> String {
    let field_ttl = if policy.contains(&"persist") {
        FieldTtl::Persist
    } else {
        FieldTtl::Keep
    };
    let target = Server::start(target_kind).unwrap();
    dataset::populate(source).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::new(source.kind(), DEFAULT_SEED)
        .without(&UNFOLLOWED)
        .start(source.url(), stop.clone());
    // About 600 keys: the scan takes 2 to 3 s with the load writing all along.
    let mut ferry = scan_paced(source_url, &target, "250", policy);
    ferry.wait_for(IN_SYNC, SCAN_TIMEOUT);
    if disconnect == Disconnect::KillSubscriber {
        let mut con = source.client();
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query(&mut con)
            .unwrap();
        assert_eq!(killed, 1);
        ferry.wait_for("scanning everything again", Duration::from_secs(20));
        wait_count(&ferry, "ferry: scan done", 2);
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let stats = load.join().expect("the load ends");
    assert!(stats.total() > 1000, "{stats:?}");
    std::thread::sleep(SHORT_TTLS_PASSED);
    wait_equal(source, &target, field_ttl, &ferry);

    ferry.signal("TERM");
    let status = ferry.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}:\n{}", ferry.output());
    ferry.output()
}

#[test]
fn redis_8_0_denying_psync_to_valkey_8_1_under_load() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    let url = deny_replication(&source, "");
    assert_eq!(notify_setting(&source), "");
    let output = scan_under_load(
        &source,
        &url,
        ServerKind::Valkey81,
        &["--hash-field-ttl", "persist", "--vector-set", "skip"],
        Disconnect::KillSubscriber,
    );
    assert!(output.contains("lost the source"), "{output}");
    // ferry turned notifications on and put the setting back when it stopped.
    assert_eq!(notify_setting(&source), "");
}

#[test]
fn redis_8_0_denying_psync_to_valkey_9_1_keeps_field_ttls() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    let url = deny_replication(&source, "");
    let _ = scan_under_load(
        &source,
        &url,
        ServerKind::Valkey91,
        &["--vector-set", "skip"],
        Disconnect::No,
    );
}

/// Redis 8.0 into Redis 8.0: vector sets are kept, and VADD, VREM and VSETATTR notify
/// nothing, so ferry reads them again every 2 s.
#[test]
fn redis_8_0_to_redis_8_0_follows_vector_sets() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    let url = deny_replication(&source, "");
    let output = scan_under_load(&source, &url, ServerKind::Redis80, &[], Disconnect::No);
    assert!(output.contains("in sync"), "{output}");
}

/// With drop-field, a hash left with only volatile fields is left out; the copy written
/// while it had other fields must go too.
#[test]
fn a_key_the_policies_now_leave_out_is_deleted_on_the_target() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let url = deny_replication(&source, "");
    let mut con = source.client();
    redis::cmd("HSET")
        .arg("h")
        .arg("kept")
        .arg("1")
        .arg("volatile")
        .arg("2")
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("HEXPIRE")
        .arg("h")
        .arg(100)
        .arg("FIELDS")
        .arg(1)
        .arg("volatile")
        .query::<()>(&mut con)
        .unwrap();
    let policy = ["--hash-field-ttl", "drop-field", "--vector-set", "skip"];
    let mut ferry = scan(&url, &target, &policy);
    ferry.wait_for(IN_SYNC, SCAN_TIMEOUT);
    let mut target_con = target.client();
    let fields: Vec<String> = redis::cmd("HKEYS").arg("h").query(&mut target_con).unwrap();
    assert_eq!(fields, vec!["kept".to_string()]);
    redis::cmd("HDEL")
        .arg("h")
        .arg("kept")
        .query::<()>(&mut con)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let exists: i64 = redis::cmd("EXISTS")
            .arg("h")
            .query(&mut target_con)
            .unwrap();
        if exists == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "h still on the target:\n{}",
            ferry.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn vector_set_export_is_refused_in_scan_mode() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let export = format!("export={}", dir.path().join("v.jsonl").display());
    let mut ferry = scan(&source.url(), &target, &["--vector-set", &export]);
    let status = ferry.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(2), "{}", ferry.output());
    let output = ferry.output();
    assert!(
        output.contains("not available with --mode scan"),
        "{output}"
    );
}

/// Redis 6.0 has no PEXPIRETIME (expiries read with PTTL), no functions, and other class
/// letters; Valkey 8.0 is a Valkey source.
#[test]
fn redis_6_0_and_valkey_8_0_sources() {
    for (kind, target_kind) in [
        (ServerKind::Redis60, ServerKind::Valkey81),
        (ServerKind::Valkey80, ServerKind::Valkey91),
    ] {
        let source = Server::start(kind).unwrap();
        let url = deny_replication(&source, "");
        let output = scan_under_load(&source, &url, target_kind, &[], Disconnect::No);
        assert!(output.contains("in sync"), "{output}");
    }
}

/// PSYNC and SYNC renamed away, CONFIG denied to ferry's user, and notifications already
/// on (as an operator sets them on a managed service): ferry finds out with a probe key.
#[test]
fn psync_renamed_away_and_config_denied_with_notifications_on() {
    let source = Server::start_with_args(
        ServerKind::Redis80,
        &[
            "--rename-command",
            "PSYNC",
            "",
            "--rename-command",
            "SYNC",
            "",
        ],
    )
    .unwrap();
    let mut con = source.client();
    let psync = redis::cmd("PSYNC").arg("?").arg(-1).query::<()>(&mut con);
    let refusal = psync.expect_err("PSYNC is renamed away").to_string();
    assert!(refusal.contains("unknown command"), "{refusal}");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("KEA")
        .query::<()>(&mut con)
        .unwrap();
    // Replication mode finds PSYNC missing and points here.
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let (source_url, target_url) = (source.url(), target.url());
    let mut replica = Ferry::start(&["--source", &source_url, "--target", &target_url]);
    let status = replica.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{}", replica.output());
    let last = replica
        .output()
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(
        last.contains("unknown command") && last.contains("--mode scan"),
        "{last}"
    );

    let url = deny_replication(&source, "-config");
    let output = scan_under_load(
        &source,
        &url,
        ServerKind::Valkey81,
        &["--hash-field-ttl", "persist", "--vector-set", "skip"],
        Disconnect::No,
    );
    assert!(
        output.contains("a probe key's changes were notified"),
        "{output}"
    );
    assert_eq!(
        notify_setting(&source),
        "AKE",
        "ferry left the operator's setting alone"
    );
}

/// FLUSHDB, FLUSHALL and SWAPDB notify no keys: ferry sees them in INFO commandstats and
/// scans both sides again. The whole load (flushes and swaps included) runs here.
#[test]
fn flushes_and_swaps_are_caught_up_by_rescans() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let url = deny_replication(&source, "");
    let mut con = source.client();
    for db in [0, 2, 3] {
        redis::cmd("SELECT").arg(db).query::<()>(&mut con).unwrap();
        for i in 0..50 {
            redis::cmd("SET")
                .arg(format!("k{db}:{i}"))
                .arg(i)
                .query::<()>(&mut con)
                .unwrap();
        }
    }
    let policy = ["--hash-field-ttl", "persist", "--vector-set", "skip"];
    let mut ferry = scan(&url, &target, &policy);
    ferry.wait_for(IN_SYNC, SCAN_TIMEOUT);
    redis::cmd("SWAPDB")
        .arg(2)
        .arg(3)
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("SELECT").arg(0).query::<()>(&mut con).unwrap();
    redis::cmd("FLUSHDB").query::<()>(&mut con).unwrap();
    ferry.wait_for("scanning everything again", Duration::from_secs(20));
    wait_equal_at_least(&source, &target, FieldTtl::Persist, &ferry, 100);

    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::spawn(source.url(), source.kind(), stop.clone());
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let stats = load.join().expect("the load ends");
    assert!(
        stats.applied("FLUSHDB") + stats.applied("SWAPDB") > 0,
        "{stats:?}"
    );
    std::thread::sleep(SHORT_TTLS_PASSED);
    wait_equal_at_least(&source, &target, FieldTtl::Persist, &ferry, 100);
}

#[test]
fn replication_mode_points_at_scan_mode_when_psync_is_denied() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let url = deny_replication(&source, "");
    let target_url = target.url();
    let mut ferry = Ferry::start(&["--source", &url, "--target", &target_url]);
    assert_stops_with(&mut ferry, &["refuses replication", "--mode scan"]);
}

#[test]
fn refused_config_with_notifications_off_is_one_clear_line() {
    let (_source, target, url) = one_key_denied("-config");
    let mut ferry = scan(&url, &target, &[]);
    // Names the flags to set.
    assert_stops_with(
        &mut ferry,
        &["notify-keyspace-events", "not notified", "\"EA\""],
    );
    let mut target_con = target.client();
    let keys: u64 = redis::cmd("DBSIZE").query(&mut target_con).unwrap();
    assert_eq!(keys, 0, "nothing copied without following changes");
}

/// A value the target cannot hold without a policy stops the run with the policy's one
/// line, and the source's setting is put back.
#[test]
fn a_field_ttl_without_a_policy_stops_with_one_line() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let url = deny_replication(&source, "");
    let mut ferry = scan(&url, &target, &["--vector-set", "skip"]);
    ferry.wait_for(IN_SYNC, SCAN_TIMEOUT);
    let mut con = source.client();
    redis::cmd("HSET")
        .arg("h")
        .arg("f")
        .arg("v")
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("HEXPIRE")
        .arg("h")
        .arg(100)
        .arg("FIELDS")
        .arg(1)
        .arg("f")
        .query::<()>(&mut con)
        .unwrap();
    let output = assert_stops_with(&mut ferry, &["--hash-field-ttl"]);
    assert!(
        output.contains("put notify-keyspace-events back"),
        "{output}"
    );
    assert_eq!(notify_setting(&source), "");
}

/// A user that may not DUMP cannot be copied from: one line naming the command.
#[test]
fn a_refused_dump_is_one_clear_line() {
    let (_source, target, url) = one_key_denied("-dump");
    let mut ferry = scan(&url, &target, &[]);
    assert_stops_with(&mut ferry, &["DUMP failed", "NOPERM"]);
}

#[test]
fn no_follow_copies_once_and_exits() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let url = deny_replication(&source, "-config");
    dataset::populate(&source).unwrap();
    let mut ferry = scan(
        &url,
        &target,
        &[
            "--no-follow",
            "--hash-field-ttl",
            "persist",
            "--vector-set",
            "skip",
        ],
    );
    let status = ferry.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status}:\n{}", ferry.output());
    assert!(ferry.output().contains("copy done (--no-follow)"));
    wait_equal(&source, &target, FieldTtl::Persist, &ferry);
}
