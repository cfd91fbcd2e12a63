//! Reconnections through `ferry relay`: a replica restarted mid-stream continues from
//! ferry's backlog (`+CONTINUE`, counted in `sync_partial_ok`) instead of copying
//! everything again, and ends equal to the source.

use crate::support::migrate::master_repl_offset;
use crate::support::relay::{assert_replicas_equal, start_replica, wait_link_up, Relay};
use crate::support::{http_get, info_field};
use ferry_testkit::expect::FieldTtl;
use ferry_testkit::workload::{Workload, SHORT_TTLS_PASSED};
use ferry_testkit::{dataset, Server, ServerKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn a_restarted_replica_continues_from_the_backlog() {
    let source = Server::start(ServerKind::Redis80).unwrap();
    dataset::populate(&source).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Workload::spawn(source.url(), ServerKind::Redis80, stop.clone());
    let policy = [
        "--hash-field-ttl",
        "persist",
        "--vector-set",
        "skip",
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    let mut relay = Relay::start(&source, 0, &policy);
    let mut replica = start_replica(ServerKind::Valkey81, &relay, &[]);
    wait_link_up(&replica, &relay);
    relay.wait_for("full sync sent", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(1));

    // Down and up again while the source keeps writing.
    replica.restart().unwrap();
    wait_link_up(&replica, &relay);
    relay.wait_for("partial resync accepted", Duration::from_secs(10));
    let info = relay.info();
    assert_eq!(
        info_field(&info, "sync_partial_ok").as_deref(),
        Some("1"),
        "{info}"
    );
    assert_eq!(
        info_field(&info, "sync_full").as_deref(),
        Some("1"),
        "{info}"
    );

    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    load.join().expect("the load ends");
    std::thread::sleep(SHORT_TTLS_PASSED);
    assert_replicas_equal(&source, &relay, &[&replica], FieldTtl::Persist, 0);

    // The offset the replica's ACKs cover, in the source's terms, for a cutover to wait on.
    let address = relay.status_address(Duration::from_secs(1));
    let source_offset = master_repl_offset(&source);
    // Refreshed every 250 ms.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status: serde_json::Value =
            serde_json::from_str(&http_get(&address, "/status").1).unwrap();
        if status["applied_offset"]
            .as_i64()
            .is_some_and(|o| o >= source_offset)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{status} vs source offset {source_offset}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = http_get(&address, "/metrics").1;
    assert!(metrics.contains("ferry_applied_offset_bytes"), "{metrics}");
}
