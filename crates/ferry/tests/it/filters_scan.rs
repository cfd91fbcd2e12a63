//! `migrate --mode scan` with a scope: only kept keys are read and written, into their
//! mapped databases; followed changes and the rescan after a SWAPDB keep to the scope,
//! and the rescan of the target never deletes a target key outside it.

use crate::filters_migrate::{run, scoped, seed, SCOPE};
use crate::support::migrate::Ferry;
use ferry_testkit::snapshot::{is_ferry_marker, DiffOptions, Snapshot};
use ferry_testkit::{Server, ServerKind};
use std::time::{Duration, Instant};

fn kept(db: u32, key: &[u8]) -> bool {
    (db == 0 || db == 3) && key.starts_with(b"app:") && !key.starts_with(b"app:tmp:")
}

fn mapped(db: u32) -> u32 {
    if db == 3 {
        1
    } else {
        db
    }
}

/// Waits until the target holds the source's kept keys (and, in db 0, `unrelated`).
fn converge(source: &Server, target: &Server, ferry: &Ferry) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let options = DiffOptions::new().exclude_keys(|_, key| is_ferry_marker(key));
    loop {
        let mut expected = scoped(&Snapshot::capture(source).unwrap(), kept, mapped);
        let actual = Snapshot::capture(target).unwrap();
        if let Some(unrelated) = actual.get(0, b"unrelated") {
            expected
                .databases
                .entry(0)
                .or_default()
                .insert(b"unrelated".to_vec(), unrelated.clone());
        }
        let differences = expected.diff(&actual, &options);
        if differences.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{:#?}\n{}",
            differences
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>(),
            ferry.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn scan_mode_keeps_to_the_scope() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    seed(&source);
    let (source_url, target_url) = (source.url(), target.url());
    let mut args = vec![
        "--source",
        &source_url,
        "--target",
        &target_url,
        "--mode",
        "scan",
    ];
    args.extend_from_slice(&SCOPE);
    let mut ferry = Ferry::start(&args);
    ferry.wait_for("ferry: in sync", Duration::from_secs(60));
    converge(&source, &target, &ferry);

    // The target's own key, outside the scope: a rescan must leave it.
    run(&mut target.client(), 0, &["SET", "unrelated", "mine"]);
    let mut con = source.client();
    for (db, words) in [
        (0, &["SET", "app:new", "1"][..]),
        (0, &["SET", "other:new", "1"]),
        (0, &["DEL", "app:1"]),
        (0, &["RENAME", "app:r", "other:r"]),
        (3, &["SET", "app:3c", "3"]),
        (5, &["SET", "app:5c", "5"]),
    ] {
        run(&mut con, db, words);
    }
    converge(&source, &target, &ferry);
    run(&mut con, 0, &["SWAPDB", "0", "3"]);
    ferry.wait_for("scanning everything again", Duration::from_secs(30));
    converge(&source, &target, &ferry);
    let unrelated: String = redis::cmd("GET")
        .arg("unrelated")
        .query(&mut target.client())
        .unwrap();
    assert_eq!(unrelated, "mine");
}
