//! `ferry relay` against real servers: Valkey replicas attach with REPLICAOF, get the
//! dataset by full sync while a write load runs, follow the stream, and end equal to the
//! source key by key (after the policies, for Valkey 8.1).

use crate::support::relay::{assert_replicas_equal, start_replica, wait_link_up, Relay};
use ferry_testkit::expect::FieldTtl;
use ferry_testkit::workload::{Workload, SHORT_TTLS_PASSED};
use ferry_testkit::{dataset, Server, ServerKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn relay_and_compare(
    source_kind: ServerKind,
    replica_kind: ServerKind,
    policy: &[&str],
    field_ttl: FieldTtl,
) {
    let source = Server::start(source_kind).unwrap();
    dataset::populate(&source).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::spawn(source.url(), source_kind, stop.clone());
    let mut relay = Relay::start(&source, 0, policy);
    let replica = start_replica(replica_kind, &relay, &[]);
    wait_link_up(&replica, &relay);
    relay.wait_for("full sync sent", Duration::from_secs(5));
    // The replica got the RDB version it can load: 80 for Valkey 9, 11 before.
    let version = if replica_kind.series().0 >= 9 {
        "Valkey RDB 80)"
    } else {
        "(RDB 11)"
    };
    relay.wait_for(version, Duration::from_secs(1));
    // The load goes on through the stream for a while.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let stats = load.join().expect("the load ends");
    assert!(stats.total() > 1000, "{stats:?}");
    std::thread::sleep(SHORT_TTLS_PASSED);
    // Redis 6.0 replicates relative TTLs, made absolute on arrival (see migrate_sync).
    let tolerance = if source_kind == ServerKind::Redis60 {
        2_000
    } else {
        0
    };
    assert_replicas_equal(&source, &relay, &[&replica], field_ttl, tolerance);
    let info = relay.info();
    assert!(info.contains("sync_full:1"), "{info}");
    assert!(info.contains("connected_slaves:1"), "{info}");
}

#[test]
fn redis_8_0_to_valkey_8_1_replica_with_policies() {
    relay_and_compare(
        ServerKind::Redis80,
        ServerKind::Valkey81,
        &["--hash-field-ttl", "persist", "--vector-set", "skip"],
        FieldTtl::Persist,
    );
}

#[test]
fn redis_8_0_to_valkey_9_1_replica_keeps_field_ttls() {
    relay_and_compare(
        ServerKind::Redis80,
        ServerKind::Valkey91,
        &["--vector-set", "skip"],
        FieldTtl::Keep,
    );
}

#[test]
fn redis_7_0_to_valkey_8_1_replica() {
    relay_and_compare(
        ServerKind::Redis70,
        ServerKind::Valkey81,
        &[],
        FieldTtl::Keep,
    );
}

#[test]
fn redis_7_0_to_valkey_9_1_replica() {
    relay_and_compare(
        ServerKind::Redis70,
        ServerKind::Valkey91,
        &[],
        FieldTtl::Keep,
    );
}

#[test]
fn redis_6_0_to_valkey_8_1_replica() {
    relay_and_compare(
        ServerKind::Redis60,
        ServerKind::Valkey81,
        &[],
        FieldTtl::Keep,
    );
}

#[test]
fn redis_6_0_to_valkey_9_1_replica() {
    relay_and_compare(
        ServerKind::Redis60,
        ServerKind::Valkey91,
        &[],
        FieldTtl::Keep,
    );
}
