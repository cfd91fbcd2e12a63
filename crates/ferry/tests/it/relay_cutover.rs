//! The whole runbook through `ferry relay`: a Valkey replica of ferry, then `ferry
//! cutover` against the relay's `/status` (mode `relay`): it waits until the replica
//! ACKed everything the paused source wrote (ferry's offset map), promotes the replica
//! (REPLICAOF NO ONE), stops the relay with POST /stop, and the promoted Valkey holds the
//! source's data.

use crate::support::migrate::{refused_stops, CONTROL_FLAGS, CONTROL_TOKEN};
use crate::support::relay::{start_replica, wait_link_up, Relay};
use crate::support::{cutover, relay};
use crate::support::{http_get, http_post, info_field, server_info};
use ferry_testkit::expect::{after_policies, FieldTtl, VectorSets};
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::{dataset, Server, ServerKind};
use std::time::Duration;

#[test]
fn cutover_promotes_the_relayed_replica_once_it_acked_everything() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    dataset::populate(&source).unwrap();
    let policy = ["--hash-field-ttl", "persist", "--vector-set", "skip"];
    let mut args = vec!["--metrics-addr", "127.0.0.1:0"];
    args.extend_from_slice(&CONTROL_FLAGS);
    args.extend_from_slice(&policy);
    let mut relay = Relay::start(&source, 0, &args);
    let status = relay.status_address(Duration::from_secs(5));
    let replica = start_replica(ServerKind::Valkey81, &relay, &[]);
    wait_link_up(&replica, &relay);
    relay::simple_writes(&source);
    // As a person would: the relay says in-sync (the replica ACKed what ferry took in).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = http_get(&status, "/status").1;
        let document: serde_json::Value = serde_json::from_str(&text).unwrap();
        if document["phase"] == "in-sync" && document["target"] != "" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never in sync: {text}\n{}",
            relay.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let output = cutover::ferry(&cutover::switch_args(
        "cutover", &source, &replica, &status, &policy,
    ));
    let result = cutover::report(&output);
    assert_eq!(
        result["ok"],
        true,
        "{result}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        relay.output()
    );
    assert_eq!(
        info_field(&server_info(&replica, "replication"), "role").as_deref(),
        Some("master")
    );
    let exit = relay.wait_exit(Duration::from_secs(20));
    assert!(exit.success(), "{exit}\n{}", relay.output());
    assert!(relay.output().contains("asked to by POST /stop"));

    let before = Snapshot::capture(&source).expect("capture source");
    let expected = after_policies(&before, FieldTtl::Persist, VectorSets::Remove).snapshot;
    let actual = Snapshot::capture(&replica).expect("capture the promoted replica");
    let differences = expected.diff(&actual, &DiffOptions::new());
    let shown: Vec<String> = differences.iter().take(20).map(|d| d.to_string()).collect();
    assert!(differences.is_empty(), "{}", shown.join("\n"));
}

/// The relay's phase from `/status`, and that the process still runs.
fn assert_relay_running(relay: &mut Relay, status: &str, what: &str) {
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        relay.is_running(),
        "{what} stopped the relay:\n{}",
        relay.output()
    );
    let text = http_get(status, "/status").1;
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_ne!(document["phase"], "stopped", "{what}: {text}");
    assert!(!relay.output().contains("asked to by POST /stop"), "{what}");
}

#[test]
fn post_stop_on_a_relay_needs_the_control_token_and_its_own_origin() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    relay::simple_writes(&source);
    let bearer = format!("Bearer {CONTROL_TOKEN}");

    // A relay started without a token refuses POST /stop, naming the flag.
    let mut open = Relay::start(&source, 0, &["--metrics-addr", "127.0.0.1:0"]);
    let status = open.status_address(Duration::from_secs(5));
    let (code, body) = http_post(&status, "/stop", &[("Authorization", &bearer)]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("--control-token-env"), "{body}");
    assert_relay_running(
        &mut open,
        &status,
        "a POST /stop to a relay without a token",
    );
    open.kill();

    let mut args = vec!["--metrics-addr", "127.0.0.1:0"];
    args.extend_from_slice(&CONTROL_FLAGS);
    let mut relay = Relay::start(&source, 0, &args);
    let status = relay.status_address(Duration::from_secs(5));
    for (what, code, body) in refused_stops(&status) {
        assert!(code == 401 || code == 403, "{what}: {code} {body}");
        assert_relay_running(&mut relay, &status, what);
    }
    let (code, body) = http_post(&status, "/stop", &[("Authorization", &bearer)]);
    assert_eq!(code, 202, "{body}");
    let exit = relay.wait_exit(Duration::from_secs(20));
    assert!(exit.success(), "{exit}\n{}", relay.output());
    assert!(relay.output().contains("asked to by POST /stop"));
    assert!(!relay.output().contains(CONTROL_TOKEN));
}
