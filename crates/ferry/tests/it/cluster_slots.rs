//! ferry's slot function agrees with the server's `CLUSTER KEYSLOT`, hash tags included.

use ferry::server::cluster::slot::key_slot;
use ferry_testkit::{Cluster, ServerKind};

#[test]
fn key_slots_match_what_the_server_computes() {
    let cluster = Cluster::start(ServerKind::Valkey81, 1).unwrap();
    let mut keys: Vec<Vec<u8>> = (0..500).map(|i| format!("key:{i}").into_bytes()).collect();
    for odd in [
        "",
        "{",
        "}",
        "{}",
        "{}x",
        "x{}y{z}",
        "{user1000}.following",
        "foo{{bar}}zap",
        "foo{bar}{zap}",
        "a{b",
        "{a}{b}",
        "ünïcödé{ß}",
    ] {
        keys.push(odd.as_bytes().to_vec());
    }
    keys.push(vec![0, 0xff, b'{', 0x80, b'}', 7]);
    keys.push((0..=255u8).collect());
    for key in &keys {
        let expected = cluster.keyslot(key).unwrap();
        assert_eq!(
            key_slot(key),
            expected,
            "key {:?}",
            key.escape_ascii().to_string()
        );
    }
}
