//! Sources and targets behind real Redis/Valkey Sentinel groups on loopback (a primary, a
//! replica, three sentinels): ferry finds the primary through the sentinels, follows a
//! failover triggered by killing the primary with a partial resync, and is never a
//! replica Sentinel could promote.

use crate::support::cutover;
use crate::support::cutover::{counter_values, report, switch_args_between, Counters};
use crate::support::migrate::{
    assert_as_policies_promise, capture_in_step, master_repl_offset, wait_applied, Ferry, Load,
    CONTROL_FLAGS,
};
use crate::support::relay::{
    assert_replicas_equal, simple_writes, start_replica, wait_link_up, Relay,
};
use crate::support::server_info;
use ferry_testkit::expect::{FieldTtl, VectorSets};
use ferry_testkit::sentinel::ReplicaFields;
use ferry_testkit::snapshot::DiffOptions;
use ferry_testkit::{dataset, SentinelGroup, Server, ServerKind};
use std::path::Path;
use std::time::{Duration, Instant};

/// The flags and promises for a source kind into Valkey 8.1.
fn policies(source: ServerKind) -> (&'static [&'static str], FieldTtl) {
    if source.has_hash_field_ttl() {
        (
            &["--hash-field-ttl", "persist", "--vector-set", "skip"],
            FieldTtl::Persist,
        )
    } else {
        (&[], FieldTtl::Keep)
    }
}

fn assert_equal(
    source: &Server,
    target: &Server,
    state: &Path,
    ferry: &Ferry,
    field_ttl: FieldTtl,
) {
    std::thread::sleep(ferry_testkit::workload::SHORT_TTLS_PASSED);
    wait_applied(source, state, ferry);
    let (before, actual) = capture_in_step(source, target, state, ferry);
    assert_as_policies_promise(
        &before,
        actual,
        (field_ttl, VectorSets::Remove),
        &DiffOptions::new(),
        &format!("{} -> {}", source.kind(), target.kind()),
        &ferry.output(),
    );
}

/// Waits until `replica` holds everything `primary` wrote.
fn wait_caught_up(primary: &Server, replica: &Server) {
    let written = master_repl_offset(primary);
    let deadline = Instant::now() + Duration::from_secs(30);
    while master_repl_offset(replica) < written {
        assert!(Instant::now() < deadline, "the replica does not catch up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A replica entry Sentinel could promote: linked, answering, priority above 0.
fn promotable(entry: &ReplicaFields) -> bool {
    let flags = entry.get("flags").map(String::as_str).unwrap_or_default();
    let priority = entry.get("slave-priority").map(String::as_str);
    !flags.contains("disconnected") && !flags.contains("s_down") && priority != Some("0")
}

/// Every replica the sentinels list that they could promote is one of `real` (ports; the
/// promoted one shows among them until the failover ends).
fn assert_only_real_replicas_promotable(group: &SentinelGroup, real: &[u16], ferry: &Ferry) {
    for (index, entries) in group.replicas_seen().unwrap().iter().enumerate() {
        for entry in entries {
            let port: u16 = entry["port"].parse().unwrap();
            assert!(
                real.contains(&port) || !promotable(entry),
                "sentinel {index} could promote {entry:?}:\n{}",
                ferry.output()
            );
        }
    }
}

/// Waits until some sentinel lists ferry (port 0: it never says where it listens) among
/// the primary's replicas, and returns what it says: Sentinel has seen ferry.
fn wait_ferry_listed(group: &SentinelGroup) -> ReplicaFields {
    // Sentinel reads the primary's INFO every 10 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = group.replicas_seen().unwrap();
        if let Some(entry) = seen.iter().flatten().find(|e| e["port"] == "0") {
            return entry.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no sentinel listed ferry: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn stat(server: &Server, name: &str) -> i64 {
    let info = server_info(server, "stats");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in INFO stats"))
}

fn source_failover_is_followed_by_partial_resync(kind: ServerKind) {
    let mut group = SentinelGroup::start(kind).unwrap();
    dataset::populate(group.primary()).unwrap();
    let load = Load::start(group.primary());
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let (flags, field_ttl) = policies(kind);
    let mut ferry = Ferry::migrate_between(&group.url(), &target.url(), &state, flags);
    let old_port = group.primary().port();
    ferry.wait_for(
        &format!("name 127.0.0.1:{old_port} as the primary"),
        Duration::from_secs(30),
    );
    ferry.wait_in_sync();

    // Sentinel sees ferry in the primary's INFO, and cannot reach it.
    let listed = wait_ferry_listed(&group);
    eprintln!("a sentinel lists ferry as {listed:?}");
    assert!(!promotable(&listed), "{listed:?}");

    // The replica holds all the primary wrote (as ferry does) when the primary dies.
    let stats = load.stop();
    assert!(stats.total() > 1000, "{stats:?}");
    let replica = group.replica().unwrap();
    let new_port = replica.port();
    wait_caught_up(group.primary(), replica);
    wait_applied(group.primary(), &state, &ferry);
    group.kill_primary().unwrap();
    assert_eq!(
        group.primary().port(),
        new_port,
        "Sentinel promoted the replica"
    );

    ferry.wait_for(
        &format!("failover followed from 127.0.0.1:{old_port} without a full sync"),
        Duration::from_secs(60),
    );
    let load = Load::start(group.primary());
    std::thread::sleep(Duration::from_secs(2));
    let stats = load.stop();
    assert!(stats.total() > 100, "{stats:?}");
    assert_equal(group.primary(), &target, &state, &ferry, field_ttl);
    // The promoted primary served ferry by partial resync, never a full one.
    assert_eq!(stat(group.primary(), "sync_full"), 0, "{}", ferry.output());
    assert!(stat(group.primary(), "sync_partial_ok") >= 1);
    assert!(!ferry.output().contains("partial resync refused"));
    assert_only_real_replicas_promotable(&group, &[new_port], &ferry);

    ferry.signal("TERM");
    let status = ferry.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", ferry.output());
}

#[test]
fn a_redis_7_0_source_failover_is_followed_by_partial_resync() {
    source_failover_is_followed_by_partial_resync(ServerKind::Redis70);
}

#[test]
fn a_redis_8_0_source_failover_is_followed_by_partial_resync() {
    source_failover_is_followed_by_partial_resync(ServerKind::Redis80);
}

/// What one sentinel says about the replica at `port`, if it knows one there.
fn replica_at(group: &SentinelGroup, sentinel: usize, port: u16) -> Option<ReplicaFields> {
    group.replicas_seen().unwrap()[sentinel]
        .iter()
        .find(|e| e["port"] == port.to_string())
        .cloned()
}

/// A sentinel group told the relay's address as one of its primary's replicas (the
/// sharpest case: the relay answers PING and INFO there) never promotes it, though the
/// real replica's priority (200) ranks below the default one, and cannot re-point it:
/// after the failover the relay still serves its own replica from its own source.
#[test]
fn a_relay_a_sentinel_reaches_is_never_promoted_nor_repointed() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    simple_writes(&source);
    let relay = Relay::start(&source, 0, &[]);
    let relayed = start_replica(ServerKind::Valkey81, &relay, &[]);
    wait_link_up(&relayed, &relay);
    let known = format!(
        "sentinel known-replica {} 127.0.0.1 {}",
        ferry_testkit::sentinel::MASTER_NAME,
        relay.port
    );
    let mut group = SentinelGroup::start_with(
        ServerKind::Valkey81,
        &["--replica-priority", "200"],
        &[known],
    )
    .unwrap();
    let real_replica = group.replica().unwrap().port();

    // What a sentinel reads: the relay as a replica of its source, never promoted and
    // not announced.
    let mut as_sentinel = redis::Client::open(format!("redis://127.0.0.1:{}", relay.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("sentinel-0123abcd-cmd")
        .query(&mut as_sentinel)
        .unwrap();
    let seen: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut as_sentinel)
        .unwrap();
    for line in [
        "role:slave",
        &format!("master_port:{}", source.port()),
        "slave_priority:0",
        "replica_announced:0",
    ] {
        assert!(seen.lines().any(|l| l == line), "no {line} in:\n{seen}");
    }
    let refused = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(group.primary().port())
        .query::<()>(&mut as_sentinel)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("never a replica to re-point"), "{refused}");

    // Every sentinel connected to the relay and read that INFO: it lists a replica until
    // its INFO says `replica_announced:0`.
    let deadline = Instant::now() + Duration::from_secs(30);
    for sentinel in 0..group.sentinels().len() {
        while let Some(entry) = replica_at(&group, sentinel, relay.port) {
            assert!(
                Instant::now() < deadline,
                "sentinel {sentinel} never read the relay's INFO: {entry:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    group.kill_primary().unwrap();
    assert_eq!(group.primary().port(), real_replica);
    // The sentinels' reconfiguration (SLAVEOF to every replica they know) had time to run.
    std::thread::sleep(Duration::from_secs(5));
    assert_only_real_replicas_promotable(&group, &[real_replica], &relay);
    // Any other client still sees the primary the relay is to its replicas.
    let info = relay.info();
    assert!(info.contains("role:master"), "{info}");
    assert!(info.contains("slave_priority:0"), "{info}");
    assert!(
        info.contains(&format!("ferry_source:{}", source.url())),
        "{info}"
    );
    // Still relaying: a new write on the source reaches the relay's replica.
    let _: () = redis::cmd("SET")
        .arg("after-failover")
        .arg("1")
        .query(&mut source.client())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value: Option<String> = redis::cmd("GET")
            .arg("after-failover")
            .query(&mut relayed.client())
            .unwrap();
        if value.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "{}", relay.output());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Valkey 8.1 target under its own sentinels, its primary killed while ferry streams a
/// write load into it: ferry finds the promoted replica through the sentinels and resumes
/// from its marker there, so the batches the replica had not received are applied again
/// and the others are not (the load's INCRs, APPENDs and LPUSHes would show a replay).
#[test]
fn a_valkey_target_failing_over_mid_stream_is_resumed_from_its_marker() {
    // A backlog that holds the seconds the failover takes, so the resume is partial.
    let source =
        Server::start_with_args(ServerKind::Redis70, &["--repl-backlog-size", "64mb"]).unwrap();
    dataset::populate(&source).unwrap();
    let load = Load::start(&source);
    let mut group = SentinelGroup::start(ServerKind::Valkey81).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate_between(&source.url(), &group.url(), &state, &[]);
    ferry.wait_in_sync();
    std::thread::sleep(Duration::from_secs(2));

    let promoted = group.replica().unwrap().port();
    group.kill_primary().unwrap();
    ferry.wait_for(
        &format!("the sentinels of the target name 127.0.0.1:{promoted} as the primary now"),
        Duration::from_secs(60),
    );
    ferry.wait_for("partial resync accepted", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let stats = load.stop();
    assert!(stats.total() > 1000, "{stats:?}");
    assert_equal(&source, group.primary(), &state, &ferry, FieldTtl::Keep);
    ferry.signal("TERM");
    let status = ferry.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", ferry.output());
}

/// A cutover between two Sentinel groups (Redis 7.0 → Valkey 8.1), both given by their
/// sentinels: it pauses the source's current primary, the hook gets the target's primary
/// in `FERRY_TO`, and every counter on the target equals the INCRs its client had
/// acknowledged (none lost, none twice).
#[test]
fn a_cutover_through_sentinel_loses_no_acknowledged_write() {
    let source = SentinelGroup::start(ServerKind::Redis70).unwrap();
    let target = SentinelGroup::start(ServerKind::Valkey81).unwrap();
    dataset::populate(source.primary()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut args = vec!["--metrics-addr", "127.0.0.1:0"];
    args.extend_from_slice(&CONTROL_FLAGS);
    let mut migrate = Ferry::migrate_between(&source.url(), &target.url(), &state, &args);
    let status = cutover::status_addr(&mut migrate);
    migrate.wait_in_sync();

    let counters = Counters::start(source.primary(), dir.path());
    counters.wait_progress(200);
    let hook = format!("printf %s \"$FERRY_TO\" > '{}'", counters.route.display());
    let extra = [
        "--exec",
        hook.as_str(),
        "--verify-sample",
        "200",
        "--drain-timeout-ms",
        "30000",
    ];
    let output = cutover::ferry(&switch_args_between(
        "cutover",
        &source.url(),
        &target.url(),
        &status,
        &extra,
    ));
    let result = report(&output);
    assert!(
        output.status.success(),
        "cutover failed: {result}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(result["ok"], true, "{result}");
    let route = std::fs::read_to_string(&counters.route).unwrap();
    assert_eq!(route, format!("127.0.0.1:{}", target.primary().port()));

    counters.wait_progress(200);
    let acked = counters.stop();
    assert!(
        migrate.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        migrate.output()
    );
    let on_target = counter_values(target.primary());
    assert_eq!(
        on_target, acked,
        "each counter on the target must equal the INCRs acknowledged to its client"
    );
    assert!(acked.iter().all(|n| *n >= 400), "{acked:?}");
}

/// One-line errors that name the master and every sentinel tried, never a password.
#[test]
fn unreachable_sentinels_are_one_line_naming_each() {
    let closed = ferry_testkit::ClosedPort::reserve().unwrap();
    let url = format!(
        "redis-sentinel://:hunter2@127.0.0.1:{0},127.0.0.1:{0}#orders",
        closed.port()
    );
    let output = crate::support::ferry(&["verify", "--source", &url, "--target", &url]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no sentinel named the primary of \"orders\""),
        "{stderr}"
    );
    assert!(
        stderr
            .matches(&format!("127.0.0.1:{}: cannot connect", closed.port()))
            .count()
            == 2,
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// A group whose every link is TLS (`rediss-sentinel://`): ferry asks the sentinels over
/// TLS with its client certificate, replicates from the primary over TLS, and follows
/// the failover to the replica's TLS port by partial resync.
#[test]
fn a_tls_group_is_reached_over_tls_and_its_failover_followed() {
    let pki = ferry_testkit::tls::TestPki::generate().unwrap();
    let mut group = SentinelGroup::start_tls(ServerKind::Redis70, &pki).unwrap();
    dataset::populate(group.primary()).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let path = |p: &Path| p.display().to_string();
    let (ca, cert, key) = (path(&pki.ca), path(&pki.client.cert), path(&pki.client.key));
    let url = group.url();
    assert!(url.starts_with("rediss-sentinel://"), "{url}");
    let flags = [
        "--source-tls-ca",
        ca.as_str(),
        "--source-tls-cert",
        cert.as_str(),
        "--source-tls-key",
        key.as_str(),
    ];
    let mut ferry = Ferry::migrate_between(&url, &target.url(), &state, &flags);
    let old_port = group.link_port(group.primary());
    ferry.wait_for(
        &format!("name 127.0.0.1:{old_port} as the primary"),
        Duration::from_secs(30),
    );
    ferry.wait_in_sync();
    simple_writes(group.primary());

    let replica = group.replica().unwrap();
    let new_port = group.link_port(replica);
    wait_caught_up(group.primary(), replica);
    wait_applied(group.primary(), &state, &ferry);
    group.kill_primary().unwrap();
    ferry.wait_for(
        &format!("failover followed from 127.0.0.1:{old_port} without a full sync"),
        Duration::from_secs(60),
    );
    simple_writes(group.primary());
    assert_equal(group.primary(), &target, &state, &ferry, FieldTtl::Keep);
    assert_eq!(stat(group.primary(), "sync_full"), 0, "{}", ferry.output());
    assert!(
        ferry.output().contains(&format!("127.0.0.1:{new_port}")),
        "{}",
        ferry.output()
    );

    // The sentinels' TLS needs the client certificate they require: without it, one
    // line naming each sentinel.
    let other_state = dir.path().join("other.state");
    let mut refused = Ferry::migrate_between(&url, &target.url(), &other_state, &flags[..2]);
    let status = refused.wait_exit(Duration::from_secs(60));
    assert!(!status.success());
    let output = refused.output();
    let last = output.lines().last().unwrap_or_default();
    assert!(last.starts_with("ferry: "), "{output}");
    assert!(last.contains("no sentinel named the primary"), "{output}");

    ferry.signal("TERM");
    assert!(
        ferry.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        ferry.output()
    );
}

/// `ferry relay` with a Sentinel source: its replicas keep streaming across a failover of
/// the source, which the relay continues on the promoted primary by partial resync; the
/// relay's replicas do not sync again.
#[test]
fn a_relay_follows_its_sentinel_sources_failover_without_a_full_sync() {
    let mut group = SentinelGroup::start(ServerKind::Redis70).unwrap();
    dataset::populate(group.primary()).unwrap();
    let relay = Relay::start_url(&group.url(), "127.0.0.1:0", &[]);
    let old_port = group.primary().port();
    relay
        .output()
        .contains(&format!("name 127.0.0.1:{old_port} as the primary"));
    let relayed = start_replica(ServerKind::Valkey81, &relay, &[]);
    wait_link_up(&relayed, &relay);
    simple_writes(group.primary());
    let replica = group.replica().unwrap();
    let new_port = replica.port();
    wait_caught_up(group.primary(), replica);
    relay.wait_acked(group.primary());
    group.kill_primary().unwrap();

    // Writes only the promoted primary has: they reach the relay's replica.
    let mut con = group.primary().client();
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("after-failover:{i}"))
            .arg(i)
            .query(&mut con)
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut replica_con = relayed.client();
        let last: Option<String> = redis::cmd("GET")
            .arg("after-failover:99")
            .query(&mut replica_con)
            .unwrap();
        if last.as_deref() == Some("99") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay's replica never got the promoted primary's writes:\n{}",
            relay.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_replicas_equal(group.primary(), &relay, &[&relayed], FieldTtl::Keep, 0);
    let output = relay.output();
    assert!(
        output.contains(&format!("name 127.0.0.1:{new_port} as the primary now")),
        "{output}"
    );
    // The promoted primary continued the relay's stream; the relay's replica was not
    // sent a second snapshot.
    assert_eq!(stat(group.primary(), "sync_full"), 0, "{output}");
    assert!(stat(group.primary(), "sync_partial_ok") >= 1, "{output}");
    assert_eq!(
        relay.info_field("sync_full").as_deref(),
        Some("1"),
        "{output}"
    );
}

/// `migrate --mode scan` with a Sentinel source: after the primary is killed it asks the
/// sentinels, turns the key events on on the promoted primary, rescans, and follows
/// changes there; what the load wrote before and after ends on the target.
#[test]
fn scan_mode_follows_a_sentinel_failover_and_rescans() {
    let mut group = SentinelGroup::start(ServerKind::Redis70).unwrap();
    simple_writes(group.primary());
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry =
        Ferry::migrate_between(&group.url(), &target.url(), &state, &["--mode", "scan"]);
    ferry.wait_for("ferry: in sync", Duration::from_secs(60));

    let replica = group.replica().unwrap();
    let new_port = replica.port();
    wait_caught_up(group.primary(), replica);
    group.kill_primary().unwrap();
    ferry.wait_for(
        &format!("name 127.0.0.1:{new_port} as the primary now"),
        Duration::from_secs(60),
    );
    let notify: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query(&mut group.primary().client())
        .unwrap();
    assert!(
        !notify[1].is_empty(),
        "key events are off on the promoted primary"
    );

    // Changes only the promoted primary saw: a new key, a changed one, a deleted one.
    let mut con = group.primary().client();
    let _: () = redis::cmd("SET")
        .arg("after-failover")
        .arg("1")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("w:1")
        .arg("changed")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("DEL").arg("w:2").query(&mut con).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let expected = ferry_testkit::snapshot::Snapshot::capture(group.primary()).unwrap();
        let actual = ferry_testkit::snapshot::Snapshot::capture(&target).unwrap();
        let differences = expected.diff(&actual, &DiffOptions::new());
        if differences.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} differences:\n{:?}\n{}",
            differences.len(),
            differences
                .iter()
                .take(10)
                .map(|d| d.to_string())
                .collect::<Vec<_>>(),
            ferry.output()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    ferry.signal("TERM");
    assert!(
        ferry.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        ferry.output()
    );
    // ferry put the promoted primary's setting back.
    let notify: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query(&mut group.primary().client())
        .unwrap();
    assert_eq!(notify[1], "", "{}", ferry.output());
}
