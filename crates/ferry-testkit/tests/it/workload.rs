//! The write load on real servers: it sends only commands each server knows, covers what
//! the migration tests need, repeats itself for a seed, and a native replica of the same
//! server ends up equal to its primary (so a difference seen behind ferry is ferry's).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::workload::{forget_unreplicated_group_state, Workload, WorkloadStats};
use ferry_testkit::{Server, ServerKind};

const OPS: usize = 6_000;

fn run(kind: ServerKind, seed: u64) -> (Server, WorkloadStats) {
    let server = Server::start(kind).expect("server");
    let mut load = Workload::new(kind, seed);
    load.run_for(&mut server.client(), OPS).expect("load runs");
    (server, load.stats().clone())
}

#[test]
fn every_operation_is_known_to_its_server_and_mostly_applied() {
    for kind in ServerKind::all() {
        let (_server, stats) = run(kind, 7);
        assert_eq!(stats.total(), OPS as u64, "{kind}");
        for (op, message) in &stats.first_rejection {
            assert!(
                !message.to_lowercase().contains("unknown command")
                    && !message.to_lowercase().contains("syntax error"),
                "{kind}: {op} refused: {message}"
            );
        }
        let mut wanted = vec![
            "SET",
            "APPEND",
            "INCR",
            "SET EX",
            "LPUSH",
            "RPOP",
            "LSET",
            "LTRIM",
            "SADD",
            "SREM",
            "SPOP",
            "ZADD",
            "ZINCRBY",
            "ZREM",
            "HSET",
            "HDEL",
            "HINCRBY",
            "XADD",
            "XDEL",
            "XTRIM",
            "XGROUP CREATE",
            "XREADGROUP",
            "XACK",
            "XCLAIM",
            "MULTI/EXEC",
            "EVAL",
            "PEXPIRE",
            "EXPIREAT",
            "PERSIST",
            "DEL",
            "UNLINK",
            "SWAPDB",
            "MOVE",
            "RENAME",
            "RENAMENX",
        ];
        if kind != ServerKind::Redis60 {
            wanted.push("COPY");
        }
        if kind.has_hash_field_ttl() {
            wanted.extend(["HEXPIRE", "HSETEX", "HPERSIST"]);
        }
        if kind.has_vector_sets() {
            wanted.extend(["VADD", "VREM", "VSETATTR"]);
        }
        for op in wanted {
            assert!(
                stats.applied(op) > 0,
                "{kind}: {op} never applied: {stats:#?}"
            );
        }
        // Nothing the server lacks is ever sent.
        if !kind.has_vector_sets() {
            assert!(!stats.ops.contains_key("VADD"), "{kind}");
        }
        if !kind.has_hash_field_ttl() {
            assert!(!stats.ops.contains_key("HSETEX"), "{kind}");
        }
        if kind == ServerKind::Redis60 {
            assert!(!stats.ops.contains_key("COPY"));
        }
    }
}

#[test]
fn a_seed_fixes_the_sequence_of_operations() {
    let (_a, first) = run(ServerKind::Redis70, 11);
    let (_b, again) = run(ServerKind::Redis70, 11);
    let (_c, other) = run(ServerKind::Redis70, 12);
    assert_eq!(first.ops, again.ops);
    assert_ne!(first.ops, other.ops);
}

#[test]
fn keys_stay_in_the_load_key_space_and_databases() {
    let (server, _) = run(ServerKind::Redis80, 3);
    let snapshot = Snapshot::capture(&server).expect("snapshot");
    assert!(snapshot.key_count() > 100, "{}", snapshot.key_count());
    for (db, keys) in &snapshot.databases {
        assert!([0, 1, 2, 3].contains(db), "db {db}");
        for key in keys.keys() {
            assert!(key.starts_with(b"wl:"), "{}", String::from_utf8_lossy(key));
        }
    }
    let types: BTreeMap<String, usize> = snapshot
        .databases
        .values()
        .flat_map(|keys| keys.values())
        .fold(BTreeMap::new(), |mut counts, entry| {
            *counts
                .entry(entry.value.type_name().to_owned())
                .or_default() += 1;
            counts
        });
    for wanted in [
        "string",
        "list",
        "set",
        "zset",
        "hash",
        "stream",
        "vectorset",
    ] {
        assert!(types.contains_key(wanted), "no {wanted}: {types:?}");
    }
}

/// Waits until every replica of `primary` has its offset.
fn wait_in_sync(primary: &Server, replica: &Server) {
    let offset = |server: &Server, field: &str| -> i64 {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut server.client())
            .unwrap();
        info.lines()
            .find_map(|line| line.trim_end().strip_prefix(field))
            .and_then(|n| n.parse().ok())
            .unwrap_or(-1)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (want, got) = (
            offset(primary, "master_repl_offset:"),
            offset(replica, "slave_repl_offset:"),
        );
        if want > 0 && want == got {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica at {got}, primary at {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_native_replica_of_the_loaded_server_ends_up_equal() {
    for kind in [
        ServerKind::Redis60,
        ServerKind::Redis80,
        ServerKind::Valkey91,
    ] {
        let primary = Server::start(kind).expect("primary");
        let replica = Server::start(kind).expect("replica");
        redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(primary.port())
            .query::<()>(&mut replica.client())
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let load = Workload::new(kind, 5)
            .with_rate(Some(3_000))
            .start(primary.url(), stop.clone());
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        let stats = load.join().expect("load thread");
        assert!(stats.total() > 1_000, "{kind}: {}", stats.total());
        assert_eq!(stats.connection_errors, 0, "{kind}: {stats:?}");
        // Short expiries pass, then the primary's deletions reach the replica.
        std::thread::sleep(ferry_testkit::workload::SHORT_TTLS_PASSED);
        wait_in_sync(&primary, &replica);
        // Redis 6.0 propagates relative TTLs, which its replica starts counting on
        // arrival: a few ms later than the primary.
        let options = if kind == ServerKind::Redis60 {
            DiffOptions::new().ttl_tolerance_ms(250)
        } else {
            DiffOptions::new()
        };
        let mut on_primary = Snapshot::capture(&primary).unwrap();
        let mut on_replica = Snapshot::capture(&replica).unwrap();
        forget_unreplicated_group_state(&mut on_primary);
        forget_unreplicated_group_state(&mut on_replica);
        let differences = on_primary.diff(&on_replica, &options);
        let listing: Vec<String> = differences.iter().map(ToString::to_string).collect();
        assert!(listing.is_empty(), "{kind}:\n{}", listing.join("\n"));
    }
}

#[test]
fn a_spawned_load_reconnects_when_its_connection_is_cut() {
    let server = Server::start(ServerKind::Redis70).expect("server");
    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::spawn(server.url(), ServerKind::Redis70, stop.clone());
    let mut admin = server.client();
    std::thread::sleep(Duration::from_millis(300));
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query(&mut admin)
        .unwrap();
    assert_eq!(killed, 1, "the load's connection");
    let writes = |admin: &mut redis::Connection| -> i64 {
        let info: String = redis::cmd("INFO").arg("stats").query(admin).unwrap();
        info.lines()
            .find_map(|l| l.trim_end().strip_prefix("total_commands_processed:"))
            .and_then(|n| n.parse().ok())
            .unwrap()
    };
    let after_kill = writes(&mut admin);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        writes(&mut admin) > after_kill + 100,
        "the load did not come back"
    );
    stop.store(true, Ordering::Relaxed);
    let stats = load.join().expect("load thread");
    assert_eq!(stats.connection_errors, 1, "{stats:?}");
    assert!(stats.last_connection_error.is_some());
}
