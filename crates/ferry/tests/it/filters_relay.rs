//! `relay` with a scope: a Valkey 8.1 replica of ferry gets exactly the kept keys of a
//! real Redis 7.0 source in their mapped databases, by full sync and then by the stream,
//! multi-key commands across the boundary reduced to their kept part.

use crate::filters_migrate::{assert_target_holds_the_scope, run, seed, SCOPE};
use crate::support::relay::{start_replica, wait_link_up, Relay};
use ferry_testkit::{Server, ServerKind};
use std::time::Duration;

#[test]
fn a_replica_of_the_relay_holds_exactly_the_scope() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    seed(&source);
    let mut relay = Relay::start(&source, 0, &SCOPE);
    let replica = start_replica(ServerKind::Valkey81, &relay, &[]);
    wait_link_up(&replica, &relay);
    relay.wait_for("full sync sent", Duration::from_secs(5));
    relay.wait_acked(&source);
    assert_target_holds_the_scope(&source, &replica, &relay.output());

    let mut con = source.client();
    let cases: &[(u32, &[&str])] = &[
        (0, &["MSET", "app:m1", "1", "other:m1", "2"]),
        (0, &["DEL", "app:1", "other:1"]),
        (0, &["RENAME", "app:r", "other:r"]),
        (0, &["SMOVE", "other:set", "app:set2", "m"]),
        (0, &["MOVE", "app:mv", "3"]),
        (0, &["MOVE", "app:mv2", "5"]),
        (3, &["SET", "app:3b", "new"]),
        (5, &["SET", "app:5b", "left out"]),
        (0, &["SWAPDB", "0", "3"]),
    ];
    for (db, words) in cases {
        run(&mut con, *db, words);
    }
    relay.wait_acked(&source);
    assert_target_holds_the_scope(&source, &replica, &relay.output());
}
