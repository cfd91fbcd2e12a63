//! `ferry verify` against clusters: a standalone source migrated into a cluster verifies
//! clean and each difference made on the cluster's nodes afterwards is found; two
//! clusters with different primary counts holding the same data verify clean; keys of a
//! database a cluster cannot have are listed as not comparable.

use crate::support::migrate::{wait_applied, Ferry};
use ferry::url::ServerUrl;
use ferry::verify::{self, DiffKind, VerifyOptions};
use ferry_testkit::cluster::slot_ranges;
use ferry_testkit::{dataset, Cluster, Server, ServerKind};
use redis::Connection;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

fn ferry_verify(source: &str, target: &str) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["verify", "--source", source, "--target", target, "--json"])
        .output()
        .expect("run ferry");
    let code = out.status.code().expect("exit code");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}); exit {code}, stderr: {stderr}"));
    (code, json, stderr)
}

fn dbsize(con: &mut Connection) -> u64 {
    redis::cmd("DBSIZE").query(con).expect("DBSIZE")
}

fn keys_of(con: &mut Connection) -> Vec<Vec<u8>> {
    redis::cmd("KEYS").arg("*").query(con).expect("KEYS")
}

/// The node of `cluster` (started with `primaries` even slot ranges) serving `key`,
/// as the server computes the slot.
fn node_for<'a>(cluster: &'a Cluster, key: &[u8]) -> &'a Server {
    let slot = cluster.keyslot(key).expect("CLUSTER KEYSLOT");
    let ranges = slot_ranges(cluster.nodes().len());
    let index = ranges
        .iter()
        .position(|(first, last)| (*first..=*last).contains(&slot))
        .expect("a slot in range");
    &cluster.nodes()[index]
}

/// Copies every key of db 0 of `from` into `cluster` (DUMP, then RESTORE with the
/// remaining TTL on the node serving the key's slot).
fn copy_into(from: &Server, cluster: &Cluster) {
    let mut source = from.client();
    let mut nodes: Vec<Connection> = cluster.nodes().iter().map(Server::client).collect();
    for key in keys_of(&mut source) {
        let (dump, pttl): (Option<Vec<u8>>, i64) = redis::pipe()
            .cmd("DUMP")
            .arg(&key)
            .cmd("PTTL")
            .arg(&key)
            .query(&mut source)
            .expect("DUMP");
        let Some(dump) = dump else { continue };
        let owner = node_for(cluster, &key);
        let index = cluster
            .nodes()
            .iter()
            .position(|node| node.port() == owner.port())
            .expect("owner");
        redis::cmd("RESTORE")
            .arg(&key)
            .arg(pttl.max(0))
            .arg(dump)
            .arg("REPLACE")
            .query::<()>(&mut nodes[index])
            .unwrap_or_else(|e| panic!("RESTORE {}: {e}", String::from_utf8_lossy(&key)));
    }
}

/// A string key of `server`'s db 0 without TTL, and another key, both from the dataset.
fn two_keys(server: &Server) -> (Vec<u8>, Vec<u8>) {
    let mut con = server.client();
    let mut keys = keys_of(&mut con);
    keys.sort();
    let is_plain_string = |key: &Vec<u8>| {
        let (kind, ttl): (String, i64) = redis::pipe()
            .cmd("TYPE")
            .arg(key)
            .cmd("PTTL")
            .arg(key)
            .query(&mut server.client())
            .expect("TYPE");
        kind == "string" && ttl == -1
    };
    let changed = keys.iter().find(|k| is_plain_string(k)).expect("a string");
    let deleted = keys.iter().find(|k| *k != changed).expect("another key");
    (changed.clone(), deleted.clone())
}

/// The listed differences as (key, kinds), sorted.
fn differences(json: &Value) -> Vec<(String, Vec<String>)> {
    let mut found: Vec<(String, Vec<String>)> = json["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|d| {
            let mut kinds: Vec<String> = d["findings"]
                .as_array()
                .expect("findings")
                .iter()
                .map(|f| f["kind"].as_str().expect("kind").to_owned())
                .collect();
            kinds.dedup();
            (d["key"].as_str().expect("key").to_owned(), kinds)
        })
        .collect();
    found.sort();
    found
}

/// A Redis 7.0 server with the db 0 dataset, migrated by `ferry migrate` into a
/// 3-primary Valkey 8.1 cluster; ferry is stopped once everything is applied.
fn migrated() -> (Server, Cluster) {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let cluster = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    dataset::populate_db0(&source).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate_between(&source.url(), &cluster.url(), &state, &[]);
    ferry.wait_in_sync();
    wait_applied(&source, &state, &ferry);
    ferry.signal("TERM");
    let status = ferry.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}:\n{}", ferry.output());
    (source, cluster)
}

#[test]
fn a_standalone_source_migrated_into_a_cluster_verifies_clean() {
    let (source, cluster) = migrated();
    let source_keys = dbsize(&mut source.client());
    assert!(source_keys > 100, "{source_keys}");
    let (code, json, stderr) = ferry_verify(&source.url(), &cluster.url());
    assert_eq!(code, 0, "{json:#}\n{stderr}");
    let summary = &json["summary"];
    assert_eq!(summary["keys_compared"], source_keys, "{summary}");
    assert_eq!(summary["equal"], source_keys, "{summary}");
    assert_eq!(summary["differing"], 0, "{summary}");
    // migrate leaves no marker on a cluster target.
    assert_eq!(json["ferry_markers_skipped"], 0, "{json:#}");
}

#[test]
fn differences_made_on_the_cluster_nodes_are_each_found() {
    let (source, cluster) = migrated();
    let (changed, deleted) = two_keys(&source);
    let extra = b"verify:only-on-the-cluster".to_vec();
    redis::cmd("APPEND")
        .arg(&changed)
        .arg("!")
        .query::<()>(&mut node_for(&cluster, &changed).client())
        .unwrap();
    redis::cmd("DEL")
        .arg(&deleted)
        .query::<()>(&mut node_for(&cluster, &deleted).client())
        .unwrap();
    redis::cmd("SET")
        .arg(&extra)
        .arg("x")
        .query::<()>(&mut node_for(&cluster, &extra).client())
        .unwrap();

    let (code, json, stderr) = ferry_verify(&source.url(), &cluster.url());
    assert_eq!(code, 1, "{json:#}\n{stderr}");
    let name = |key: &[u8]| String::from_utf8_lossy(key).into_owned();
    let mut expected = vec![
        (name(&changed), vec!["value".to_owned()]),
        (name(&deleted), vec!["missing".to_owned()]),
        (name(&extra), vec!["extra".to_owned()]),
    ];
    expected.sort();
    assert_eq!(differences(&json), expected, "{json:#}");
    assert_eq!(json["summary"]["differing"], 3, "{json:#}");

    // The text names the nodes compared and each differing key.
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "verify",
            "--source",
            &source.url(),
            "--target",
            &cluster.url(),
        ])
        .output()
        .expect("run ferry");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let first = format!("127.0.0.1:{}", cluster.nodes()[0].port());
    assert!(
        text.contains(&format!("source: standalone 127.0.0.1:{}", source.port())),
        "{text}"
    );
    assert!(text.contains("target: cluster of 3 primaries ("), "{text}");
    assert!(text.contains(&first), "{text}");
    assert!(
        text.contains(&format!("db0 {:?} [extra]", name(&extra))),
        "{text}"
    );
}

#[test]
fn clusters_of_three_and_four_primaries_with_the_same_data_verify_clean() {
    let filled = Server::start(ServerKind::Valkey81).unwrap();
    dataset::populate_db0(&filled).unwrap();
    let three = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let four = Cluster::start(ServerKind::Valkey81, 4).unwrap();
    copy_into(&filled, &three);
    copy_into(&filled, &four);
    let keys = dbsize(&mut filled.client());
    for node in four.nodes() {
        assert!(dbsize(&mut node.client()) > 10, "every primary holds keys");
    }

    let url = |cluster: &Cluster| ServerUrl::parse(&cluster.url()).unwrap();
    let options = VerifyOptions::new(url(&three), url(&four));
    let report = verify::run(&options).expect("verify");
    assert!(report.is_clean(), "{:#?}", report.differences);
    assert_eq!(report.summary.keys_compared, keys, "{:?}", report.summary);
    let mut text = Vec::new();
    report.write_text(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("target: cluster of 4 primaries"), "{text}");

    // The sampled verify cutover makes spreads its keys over the primaries too.
    let sampled = verify::run_sampled(&options, 50).expect("sampled verify");
    assert!(sampled.is_clean(), "{:#?}", sampled.differences);
    assert!(sampled.summary.keys_compared >= 40, "{:?}", sampled.summary);

    // One value changed on one node of the four-primary cluster.
    let (changed, _) = two_keys(&filled);
    redis::cmd("APPEND")
        .arg(&changed)
        .arg("!")
        .query::<()>(&mut node_for(&four, &changed).client())
        .unwrap();
    let report = verify::run(&VerifyOptions {
        rounds: 1,
        ..options.clone()
    })
    .expect("verify");
    let found: Vec<(&[u8], Vec<DiffKind>)> = report
        .differences
        .iter()
        .map(|d| (d.raw_key.as_slice(), d.kinds()))
        .collect();
    assert_eq!(found, [(changed.as_slice(), vec![DiffKind::Value])]);
}

#[test]
fn keys_of_other_databases_are_listed_as_not_comparable_with_a_cluster() {
    let source = Server::start(ServerKind::Valkey81).unwrap();
    let cluster = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    let mut con = source.client();
    for i in 0..20 {
        redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query::<()>(&mut con)
            .unwrap();
    }
    redis::cmd("SELECT").arg(3).query::<()>(&mut con).unwrap();
    redis::cmd("SET")
        .arg("in-db3")
        .arg("v")
        .query::<()>(&mut con)
        .unwrap();
    copy_into(&source, &cluster);

    let (code, json, stderr) = ferry_verify(&source.url(), &cluster.url());
    assert_eq!(code, 1, "{json:#}\n{stderr}");
    assert_eq!(
        differences(&json),
        [("in-db3".to_owned(), vec!["missing".to_owned()])]
    );
    assert_eq!(json["differences"][0]["db"], 3);
    let detail = json["differences"][0]["findings"][0]["detail"]
        .as_str()
        .unwrap();
    assert!(detail.contains("cluster"), "{detail}");
    assert_eq!(json["summary"]["equal"], 20, "{json:#}");
    // The sample finds it as well.
    let url = |text: String| ServerUrl::parse(&text).unwrap();
    let options = VerifyOptions::new(url(source.url()), url(cluster.url()));
    let sampled = verify::run_sampled(&options, 100).expect("sampled verify");
    let found: Vec<(u32, &str, Vec<DiffKind>)> = sampled
        .differences
        .iter()
        .map(|d| (d.db, d.key.as_str(), d.kinds()))
        .collect();
    assert_eq!(found, [(3, "in-db3", vec![DiffKind::Missing])]);

    // The other way round: the cluster as the source, the standalone server as target.
    let (code, json, _) = ferry_verify(&cluster.url(), &source.url());
    assert_eq!(code, 1, "{json:#}");
    assert_eq!(
        differences(&json),
        [("in-db3".to_owned(), vec!["extra".to_owned()])]
    );
}

#[test]
fn slots_moving_between_primaries_while_verify_runs_leave_no_false_difference() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let source = Server::start(ServerKind::Valkey81).unwrap();
    dataset::populate_db0(&source).unwrap();
    let cluster = Arc::new(Cluster::start(ServerKind::Valkey81, 3).unwrap());
    copy_into(&source, &cluster);
    // Slots holding keys of the first node: they move to the second and back (MOVED
    // once done, ASK for keys already moved while a move is under way).
    let mut first_node = cluster.nodes()[0].client();
    let mut slots: Vec<u16> = keys_of(&mut first_node)
        .iter()
        .map(|key| cluster.keyslot(key).unwrap())
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots.truncate(8);
    assert!(!slots.is_empty());

    let done = Arc::new(AtomicBool::new(false));
    let mover = {
        let (cluster, done) = (cluster.clone(), done.clone());
        std::thread::spawn(move || {
            let mut moves = 0u32;
            let mut on_first = true;
            while !done.load(Ordering::Relaxed) {
                let (from, to) = if on_first { (0, 1) } else { (1, 0) };
                for &slot in &slots {
                    cluster.move_slot(slot, from, to).expect("move slot");
                    moves += 1;
                }
                // Moved back at once, a slot could be lost to a stale ping (and its keys
                // deleted by the cluster itself): see `wait_epochs_agree`.
                cluster.wait_epochs_agree().expect("epochs agree");
                on_first = !on_first;
            }
            moves
        })
    };
    let url = |text: String| ServerUrl::parse(&text).unwrap();
    // Paced, so that the moves happen while it runs; one round, so that a redirect
    // taken for a changed key (re-checked by a later round) would show.
    let options = VerifyOptions {
        rounds: 1,
        max_ops_per_sec: Some(3000),
        ..VerifyOptions::new(url(source.url()), url(cluster.url()))
    };
    let report = verify::run(&options);
    done.store(true, Ordering::Relaxed);
    let moves = mover.join().expect("the mover ends");
    let report = report.expect("verify");
    assert!(moves >= 2, "slots moved while verify ran: {moves}");
    assert!(report.is_clean(), "{:#?}", report.differences);
    assert!(report.summary.keys_compared > 100, "{:?}", report.summary);
}

#[test]
fn a_primary_that_refuses_the_login_is_named_without_the_password() {
    let source = Server::start(ServerKind::Valkey81).unwrap();
    let cluster = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    // The URL's password opens the first two primaries; the third wants another one.
    for (node, password) in cluster.nodes().iter().zip(["pw-one", "pw-one", "pw-other"]) {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("requirepass")
            .arg(password)
            .query::<()>(&mut node.client())
            .unwrap();
    }
    let target = format!("redis://:pw-one@127.0.0.1:{}", cluster.nodes()[0].port());
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["verify", "--source", &source.url(), "--target", &target])
        .output()
        .expect("run ferry");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let third = format!("127.0.0.1:{}", cluster.nodes()[2].port());
    assert!(stderr.contains(&third), "names the node: {stderr}");
    assert!(!stderr.contains("pw-one"), "{stderr}");
}

#[test]
fn without_cluster_shards_the_slot_map_comes_from_cluster_slots() {
    let source = Server::start(ServerKind::Valkey81).unwrap();
    dataset::populate_db0(&source).unwrap();
    let cluster = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    copy_into(&source, &cluster);
    // An ACL user that may not run CLUSTER SHARDS (as on servers before 7.0, which lack
    // it); its name and password must reach every primary.
    for node in cluster.nodes() {
        redis::cmd("ACL")
            .arg(&[
                "SETUSER",
                "checker",
                "on",
                ">pw",
                "~*",
                "+@all",
                "-cluster|shards",
            ])
            .query::<()>(&mut node.client())
            .unwrap();
    }
    let target = format!("redis://checker:pw@127.0.0.1:{}", cluster.nodes()[0].port());
    let mut as_checker = redis::Client::open(target.as_str())
        .and_then(|client| client.get_connection())
        .unwrap();
    let refused = redis::cmd("CLUSTER")
        .arg("SHARDS")
        .query::<redis::Value>(&mut as_checker);
    assert!(refused.is_err(), "{refused:?}");
    let (code, json, stderr) = ferry_verify(&source.url(), &target);
    assert_eq!(code, 0, "{json:#}\n{stderr}");
    assert_eq!(
        json["summary"]["keys_compared"],
        dbsize(&mut source.client())
    );
}

#[test]
fn keys_of_a_slot_half_moved_are_followed_with_asking() {
    let source = Server::start(ServerKind::Valkey81).unwrap();
    dataset::populate_db0(&source).unwrap();
    let keys: Vec<String> = (0..10).map(|i| format!("{{moving}}k{i}")).collect();
    for key in &keys {
        redis::cmd("SET")
            .arg(key)
            .arg("v")
            .query::<()>(&mut source.client())
            .unwrap();
    }
    let cluster = Cluster::start(ServerKind::Valkey81, 3).unwrap();
    copy_into(&source, &cluster);
    // The slot is left mid-move: half its keys on the importing node, where the old owner
    // answers ASK for them.
    let slot = cluster.keyslot(b"moving").unwrap();
    let owner = node_for(&cluster, b"moving");
    let from = cluster
        .nodes()
        .iter()
        .position(|node| node.port() == owner.port())
        .unwrap();
    let to = (from + 1) % 3;
    let setslot = |node: usize, state: &str, peer: usize| {
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(cluster.node_id(peer).unwrap())
            .query::<()>(&mut cluster.nodes()[node].client())
            .unwrap();
    };
    setslot(to, "IMPORTING", from);
    setslot(from, "MIGRATING", to);
    redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(cluster.nodes()[to].port())
        .arg("")
        .arg(0)
        .arg(10_000)
        .arg("KEYS")
        .arg(&keys[..5])
        .query::<()>(&mut cluster.nodes()[from].client())
        .unwrap();
    let asked = redis::cmd("TYPE")
        .arg(&keys[0])
        .query::<String>(&mut cluster.nodes()[from].client());
    let error = asked.expect_err("the old owner redirects a moved key");
    assert_eq!(error.code(), Some("ASK"), "{error}");

    let url = |text: String| ServerUrl::parse(&text).unwrap();
    let (source_url, cluster_url) = (url(source.url()), url(cluster.url()));
    let keys_on_source = dbsize(&mut source.client());
    for (from_side, to_side) in [
        (source_url.clone(), cluster_url.clone()),
        (cluster_url, source_url),
    ] {
        let options = VerifyOptions {
            rounds: 1,
            ..VerifyOptions::new(from_side, to_side)
        };
        let report = verify::run(&options).expect("verify");
        assert!(report.is_clean(), "{:#?}", report.differences);
        assert_eq!(report.summary.keys_compared, keys_on_source);
    }
}
