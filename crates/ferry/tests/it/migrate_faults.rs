//! Faults while streaming: the connection to the source cut by the test kit's fault proxy.
//! ferry reconnects by itself and ends equal.

use crate::support::migrate::{assert_same, simple_load, wait_applied, Ferry};
use ferry_testkit::snapshot::DiffOptions;
use ferry_testkit::{FaultProxy, Server, ServerKind};
use std::time::Duration;

#[test]
fn a_cut_connection_is_resumed_with_a_partial_resync() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let proxy = FaultProxy::start(source.port()).unwrap();
    redis::cmd("SET")
        .arg("before")
        .arg("start")
        .query::<()>(&mut source.client())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::start(&[
        "--source",
        &proxy.url(),
        "--target",
        &target.url(),
        "--state",
        &state.display().to_string(),
    ]);
    ferry.wait_in_sync();
    simple_load(&source, 1);
    proxy.cut();
    simple_load(&source, 2);
    ferry.wait_for("lost the source", Duration::from_secs(30));
    ferry.wait_for(
        "partial resync accepted (+CONTINUE)",
        Duration::from_secs(30),
    );
    simple_load(&source, 3);
    wait_applied(&source, &state, &ferry);
    assert_same(&source, &target, &DiffOptions::new());
}
