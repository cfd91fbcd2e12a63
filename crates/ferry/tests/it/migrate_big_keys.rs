//! Keys far bigger than the RESTORE limit `--max-memory-mb` implies are written with
//! plain commands in bounded chunks, and ferry's memory stays bounded.

use crate::support::migrate::{assert_same, wait_applied, Ferry};
use crate::support::proc_status_kb;
use ferry_testkit::snapshot::DiffOptions;
use ferry_testkit::{Server, ServerKind};

/// Each big value holds about 12 MB; `--max-memory-mb 16` allows 2 MB per RESTORE.
const ELEMENTS: usize = 100_000;

fn element(i: usize) -> String {
    format!("{i:08}-{}", "x".repeat(110))
}

fn fill_big_keys(server: &Server, field_ttls: bool) {
    let mut con = server.client();
    for chunk in (0..ELEMENTS).collect::<Vec<_>>().chunks(5_000) {
        let mut pipe = redis::pipe();
        let mut list = redis::cmd("RPUSH");
        let mut set = redis::cmd("SADD");
        let mut zset = redis::cmd("ZADD");
        let mut hash = redis::cmd("HSET");
        list.arg("big:list");
        set.arg("big:set");
        zset.arg("big:zset");
        hash.arg("big:hash");
        for &i in chunk {
            list.arg(element(i));
            set.arg(element(i));
            zset.arg(i as f64 / 3.0).arg(element(i));
            hash.arg(element(i)).arg(i);
        }
        pipe.add_command(list)
            .ignore()
            .add_command(set)
            .ignore()
            .add_command(zset)
            .ignore()
            .add_command(hash)
            .ignore();
        pipe.query::<()>(&mut con).unwrap();
    }
    redis::cmd("SET")
        .arg("big:string")
        .arg("s".repeat(5 << 20))
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("PEXPIREAT")
        .arg("big:list")
        .arg(4_102_444_800_123i64)
        .query::<()>(&mut con)
        .unwrap();
    if field_ttls {
        // Every tenth field of the big hash gets its own expiry time.
        let mut pipe = redis::pipe();
        for i in (0..ELEMENTS).step_by(10) {
            pipe.cmd("HPEXPIREAT")
                .arg("big:hash")
                .arg(4_102_444_800_000i64 + i as i64)
                .arg("FIELDS")
                .arg(1)
                .arg(element(i))
                .ignore();
        }
        pipe.query::<()>(&mut con).unwrap();
    }
}

fn migrate_big_keys(source_kind: ServerKind, target_kind: ServerKind, field_ttls: bool) {
    let source = Server::start(source_kind).unwrap();
    let target = Server::start(target_kind).unwrap();
    fill_big_keys(&source, field_ttls);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate(&source, &target, &state, &["--max-memory-mb", "16"]);
    ferry.wait_in_sync();
    let done = ferry.wait_for("full sync done", std::time::Duration::from_secs(1));
    assert!(done.contains("5 with plain commands"), "{done}");
    wait_applied(&source, &state, &ferry);
    assert_same(&source, &target, &DiffOptions::new());
    // Five values of 5-14 MB each went through; the buffers stay within the budget.
    let peak = proc_status_kb(ferry.pid(), "VmHWM").expect("VmHWM");
    eprintln!("ferry peak memory: {peak} kB");
    assert!(peak < 48 * 1024, "peak memory {peak} kB");
}

#[test]
fn big_collections_are_written_in_chunks() {
    migrate_big_keys(ServerKind::Redis70, ServerKind::Valkey81, false);
}

#[test]
fn a_big_hash_keeps_its_field_ttls() {
    migrate_big_keys(ServerKind::Redis80, ServerKind::Valkey91, true);
}
