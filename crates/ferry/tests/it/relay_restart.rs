//! `ferry relay --state`: SIGKILLed and started again, ferry picks up the history its
//! replica follows (the source continues from the saved offset, the relay's stream is
//! rebuilt byte for byte), the replica reconnects with `+CONTINUE`, and ends equal.

use crate::support::info_field;
use crate::support::relay::{assert_replicas_equal, start_replica, wait_link_up, Relay};
use ferry_testkit::expect::FieldTtl;
use ferry_testkit::workload::{Workload, SHORT_TTLS_PASSED};
use ferry_testkit::{dataset, Server, ServerKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn a_killed_relay_restarted_with_its_state_lets_the_replica_continue() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    dataset::populate(&source).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::spawn(source.url(), ServerKind::Redis80, stop.clone());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("relay.state");
    let state_arg = state.display().to_string();
    let args = [
        "--state",
        state_arg.as_str(),
        "--hash-field-ttl",
        "persist",
        "--vector-set",
        "skip",
    ];
    let mut relay = Relay::start(&source, 0, &args);
    let port = relay.port;
    let replica = start_replica(ServerKind::Valkey81, &relay, &[]);
    wait_link_up(&replica, &relay);
    // The state file records a point the replica has ACKed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        let saved: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        let acked = relay.info_field("ferry_acked_source_offset").is_some();
        if acked && saved.is_some_and(|s| s["histories"].as_array().is_some_and(|h| !h.is_empty()))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no saved history:\n{text}\n{}",
            relay.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));

    relay.kill();
    // The source keeps writing while ferry is down.
    std::thread::sleep(Duration::from_secs(1));
    let mut relay = Relay::start(&source, port, &args);
    relay.wait_for("partial resync accepted", Duration::from_secs(30));
    wait_link_up(&replica, &relay);
    let info = relay.info();
    assert_eq!(
        info_field(&info, "sync_partial_ok").as_deref(),
        Some("1"),
        "{info}"
    );
    assert_eq!(
        info_field(&info, "sync_full").as_deref(),
        Some("0"),
        "{info}"
    );

    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    load.join().expect("the load ends");
    std::thread::sleep(SHORT_TTLS_PASSED);
    assert_replicas_equal(&source, &relay, &[&replica], FieldTtl::Persist, 0);
}
