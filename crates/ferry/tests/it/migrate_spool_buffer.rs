//! The endless full-sync loop and its way out: a source whose replicas get a small output
//! buffer (`client-output-buffer-limit replica 8mb 4mb 5`), a write load of 1.5 MB/s on
//! it, and a slow target (a link of 4 MB/s: it keeps up with the writes, not with them
//! and a load at once). Without a spool ferry loads at the target's pace while the source
//! buffers every write for it; the source drops ferry, its backlog no longer holds the
//! offset, and the next full sync starts over, again and again. With `--spool-dir` the
//! snapshot and the writes leave the source at network speed, the buffer stays small, and
//! the same migration ends equal after one full sync.

use crate::support::info_number;
use crate::support::migrate::{assert_same, wait_applied, Ferry};
use ferry_testkit::snapshot::DiffOptions;
use ferry_testkit::{FaultProxy, Server, ServerKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const KEYS: u64 = 600_000;
/// The loaded keys' database (the writes go to 0): compared by value in bulk, then
/// dropped, so that the key-by-key comparison of the rest takes seconds.
const BULK_DB: u64 = 9;
/// The target's link: above the write load, well below a load and the writes together.
const LINK_BYTES_PER_SEC: u64 = 4 << 20;

fn sync_full(source: &Server) -> u64 {
    info_number(source, "stats", "sync_full")
}

/// The test kit's heavy writes (about 1.5 MB/s): a load of some 14 s leaves 20 MB for the
/// source to buffer, over twice its limit.
fn heavy_writes(source: &Server, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    ferry_testkit::workload::spawn_heavy_writes(source.client(), stop)
}

fn source_with_small_replica_buffer() -> Server {
    let source = Server::start_with_args(
        ServerKind::Redis70,
        &["--client-output-buffer-limit", "replica 8mb 4mb 5"],
    )
    .unwrap();
    let mut con = source.client();
    let _: () = redis::cmd("SELECT").arg(BULK_DB).query(&mut con).unwrap();
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(KEYS)
        .arg("bulk")
        .arg(100)
        .query(&mut con)
        .unwrap();
    source
}

/// The loaded keys hold the same values on both sides, and there are as many.
fn assert_bulk_equal(source: &Server, target: &Server) {
    let mut from = source.client();
    let mut to = target.client();
    for con in [&mut from, &mut to] {
        let _: () = redis::cmd("SELECT").arg(BULK_DB).query(con).unwrap();
        let keys: u64 = redis::cmd("DBSIZE").query(con).unwrap();
        assert_eq!(keys, KEYS);
    }
    const CHUNK: u64 = 10_000;
    for first in (0..KEYS).step_by(CHUNK as usize) {
        let keys: Vec<String> = (first..first + CHUNK)
            .map(|n| format!("bulk:{n}"))
            .collect();
        let expected: Vec<Option<Vec<u8>>> =
            redis::cmd("MGET").arg(&keys).query(&mut from).unwrap();
        let actual: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&keys).query(&mut to).unwrap();
        assert!(expected.iter().all(Option::is_some));
        assert!(expected == actual, "bulk:{first}.. differ on the target");
    }
    let _: () = redis::cmd("FLUSHDB").query(&mut from).unwrap();
}

#[test]
fn a_small_replica_buffer_cuts_every_unspooled_full_sync_and_no_spooled_one() {
    let source = source_with_small_replica_buffer();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = heavy_writes(&source, stop.clone());

    // Without a spool: the source drops ferry during each load (while the snapshot still
    // arrives, or once it is loaded, before the stream caught up), and each reconnection
    // is a full sync again. ferry gives up after three such cuts in a row, with one line
    // pointing at --spool-dir, rather than loop for ever.
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let slow = FaultProxy::start(target.port()).unwrap();
    slow.set_rate(Some(LINK_BYTES_PER_SEC));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("unspooled.state");
    let before = sync_full(&source);
    let mut ferry = Ferry::migrate_between(&source.url(), &slow.url(), &state, &[]);
    let status = ferry.wait_exit(Duration::from_secs(300));
    let output = ferry.output();
    assert!(!status.success(), "{output}");
    assert!(output.matches("lost the source").count() >= 2, "{output}");
    assert!(!output.contains("in sync at offset"), "{output}");
    let line = ferry.wait_for("full syncs in a row were cut", Duration::from_secs(1));
    assert!(line.contains("--spool-dir"), "{line}");
    assert_eq!(sync_full(&source), before + 3, "{output}");
    let looped = sync_full(&source);

    // The same source, load and slow link, spooled.
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let slow = FaultProxy::start(target.port()).unwrap();
    slow.set_rate(Some(LINK_BYTES_PER_SEC));
    let state = dir.path().join("spooled.state");
    let spool = dir.path().join("spool");
    let mut ferry = Ferry::migrate_between(
        &source.url(),
        &slow.url(),
        &state,
        &["--spool-dir", spool.to_str().unwrap()],
    );
    ferry.wait_in_sync();
    assert_eq!(
        sync_full(&source),
        looped + 1,
        "the spooled run needed more than one full sync:\n{}",
        ferry.output()
    );
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 10_000, "{written} writes");
    slow.set_rate(None);
    wait_applied(&source, &state, &ferry);
    assert_bulk_equal(&source, &target);
    wait_applied(&source, &state, &ferry);
    assert_same(&source, &target, &DiffOptions::new());
}

/// The target's link in the cut-after-load test: below the heavy writes, so that the
/// stream never catches up and each cut comes before ferry is in sync, however fast the
/// load went.
const BELOW_WRITES_BYTES_PER_SEC: u64 = 512 << 10;

/// Full syncs cut once loaded but before the stream caught up (here by `CLIENT KILL TYPE
/// replica` right after each load, with a backlog too small to continue from) count as
/// cut too: each reconnection is a full sync again, so ferry stops after three with the
/// line that points at the cause, instead of reloading for ever.
#[test]
fn full_syncs_cut_after_loading_but_before_catching_up_stop_ferry_after_three() {
    let source = Server::start_with_args(
        ServerKind::Redis70,
        &[
            "--repl-backlog-size",
            "16kb",
            "--repl-diskless-sync-delay",
            "0",
        ],
    )
    .unwrap();
    {
        let mut con = source.client();
        let _: () = redis::cmd("SELECT").arg(BULK_DB).query(&mut con).unwrap();
        let _: () = redis::cmd("DEBUG")
            .arg("POPULATE")
            .arg(KEYS / 30)
            .arg("bulk")
            .arg(100)
            .query(&mut con)
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = heavy_writes(&source, stop.clone());
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let slow = FaultProxy::start(target.port()).unwrap();
    slow.set_rate(Some(BELOW_WRITES_BYTES_PER_SEC));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let before = sync_full(&source);
    let mut ferry = Ferry::migrate_between(&source.url(), &slow.url(), &state, &[]);
    for round in 1..=3 {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while ferry.output().matches("full sync done").count() < round {
            assert!(std::time::Instant::now() < deadline, "{}", ferry.output());
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !ferry.output().contains("in sync at offset"),
            "caught up before the cut: {}",
            ferry.output()
        );
        let _: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("replica")
            .query(&mut source.client())
            .unwrap();
    }
    let status = ferry.wait_exit(Duration::from_secs(120));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(!status.success(), "{}", ferry.output());
    let line = ferry.wait_for("full syncs in a row were cut", Duration::from_secs(1));
    assert!(line.contains("3 full syncs"), "{line}");
    assert_eq!(sync_full(&source), before + 3, "{}", ferry.output());
}
