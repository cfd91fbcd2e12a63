//! The splitter on batches as the stream applier hands them over: routing, transactions,
//! markers.

use super::*;
use crate::server::cluster::slot::key_slot;
use crate::server::cluster::topology::parse_cluster_slots;
use ferry_repl::resp::Frame;

/// Two primaries: slots 0-8191 on node 0, the rest on node 1.
fn two_nodes() -> SlotMap {
    let node = |port| {
        Frame::Array(vec![
            Frame::Bulk(Bytes::from_static(b"h")),
            Frame::Integer(port),
        ])
    };
    let range = |first, last, port| {
        Frame::Array(vec![
            Frame::Integer(first),
            Frame::Integer(last),
            node(port),
        ])
    };
    parse_cluster_slots(
        &Frame::Array(vec![range(0, 8191, 1), range(8192, 16383, 2)]),
        "h",
    )
    .unwrap()
}

fn node_of(key: &str) -> usize {
    usize::from(key_slot(key.as_bytes()) >= 8192)
}

/// Two keys on different nodes.
fn keys_apart() -> (String, String) {
    let first = "k0".to_string();
    let other = (1..)
        .map(|i| format!("k{i}"))
        .find(|k| node_of(k) != node_of(&first))
        .unwrap();
    (first, other)
}

fn payload(commands: &[&str]) -> BytesMut {
    let mut batch = Batch::default();
    for command in commands {
        batch.push(&command.split(' ').collect::<Vec<_>>());
    }
    batch.payload
}

fn commands(batch: &Batch) -> Vec<String> {
    let payload = batch.payload.clone().freeze();
    walk::commands(&payload)
        .map(|command| {
            let words: Vec<String> = command
                .unwrap()
                .args
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            words.join(" ")
        })
        .collect()
}

impl Splitter {
    fn split_plain(&mut self, payload: BytesMut) -> Result<Vec<Batch>, SplitError> {
        self.split(payload, None)
    }
}

fn with_markers(held: &[(u16, i64)]) -> Splitter {
    with_markers_in(held, 1)
}

fn with_markers_in(held: &[(u16, i64)], databases: u64) -> Splitter {
    let mut splitter = Splitter::new(two_nodes(), databases);
    splitter.write_markers(Some(StreamMarkers {
        stream: "r1".into(),
        held: markers::Applied {
            by_slot: held.iter().copied().collect(),
        },
    }));
    splitter
}

fn marker(key: &str, offset: i64) -> String {
    let slot = key_slot(key.as_bytes());
    format!("HSET {} r1 {offset}", markers::key(slot))
}

fn mark(offset: i64) -> Option<Mark> {
    Some(Mark { offset, db: 0 })
}

#[test]
fn with_markers_each_slot_runs_one_transaction_ending_with_its_marker() {
    let (a, b) = keys_apart();
    let mut splitter = with_markers(&[]);
    let batches = splitter
        .split(
            payload(&[
                &format!("SET {a} 1"),
                &format!("SET {b} 2"),
                "MULTI",
                &format!("INCR {a}"),
                &format!("INCR {b}"),
                "EXEC",
            ]),
            mark(100),
        )
        .unwrap();
    assert_eq!(
        commands(&batches[node_of(&a)]),
        [
            "MULTI".to_string(),
            format!("SET {a} 1"),
            format!("INCR {a}"),
            marker(&a, 100),
            "EXEC".into()
        ]
    );
    assert_eq!(
        commands(&batches[node_of(&b)]),
        [
            "MULTI".to_string(),
            format!("SET {b} 2"),
            format!("INCR {b}"),
            marker(&b, 100),
            "EXEC".into()
        ]
    );
    // MULTI, EXEC and the marker are ferry's, not commands applied.
    assert_eq!(
        batches[node_of(&a)].replies - batches[node_of(&a)].framing,
        2
    );
    // A batch without a mark (no stream position) goes as before.
    let plain = splitter
        .split(payload(&[&format!("SET {a} 1")]), None)
        .unwrap();
    assert_eq!(commands(&plain[node_of(&a)]), [format!("SET {a} 1")]);
}

#[test]
fn a_slot_whose_marker_holds_the_mark_gets_nothing_again() {
    let (a, b) = keys_apart();
    let slot_a = key_slot(a.as_bytes());
    let mut splitter = with_markers(&[(slot_a, 100)]);
    let replayed = splitter
        .split(
            payload(&[&format!("INCR {a}"), &format!("INCR {b}")]),
            mark(100),
        )
        .unwrap();
    assert!(commands(&replayed[node_of(&a)]).is_empty());
    assert_eq!(
        commands(&replayed[node_of(&b)]),
        [
            "MULTI".to_string(),
            format!("INCR {b}"),
            marker(&b, 100),
            "EXEC".into()
        ]
    );
    assert_eq!(splitter.already_held, 1);
    // Past the marker, the slot gets its commands again.
    let next = splitter
        .split(payload(&[&format!("INCR {a}")]), mark(101))
        .unwrap();
    assert_eq!(commands(&next[node_of(&a)]).len(), 4);
}

#[test]
fn a_command_for_every_node_splits_the_slots_transactions() {
    let (a, _) = keys_apart();
    let mut splitter = with_markers(&[]);
    let batches = splitter
        .split(
            payload(&[&format!("SET {a} 1"), "FLUSHALL", &format!("SET {a} 2")]),
            mark(7),
        )
        .unwrap();
    assert_eq!(
        commands(&batches[node_of(&a)]),
        [
            "MULTI".to_string(),
            format!("SET {a} 1"),
            marker(&a, 7),
            "EXEC".into(),
            "FLUSHALL".into(),
            "MULTI".into(),
            format!("SET {a} 2"),
            marker(&a, 7),
            "EXEC".into()
        ]
    );
}

#[test]
fn commands_go_to_their_keys_node_in_order() {
    let (a, b) = keys_apart();
    let mut splitter = Splitter::new(two_nodes(), 1);
    let sent = payload(&[
        "SELECT 0",
        &format!("SET {a} 1"),
        &format!("SET {b} 2"),
        &format!("DEL {a} {b}"),
        &format!("INCR {a}"),
        "FLUSHALL",
    ]);
    let batches = splitter.split_plain(sent).unwrap();
    let (na, nb) = (node_of(&a), node_of(&b));
    assert_eq!(
        commands(&batches[na]),
        [
            format!("SET {a} 1"),
            format!("DEL {a}"),
            format!("INCR {a}"),
            "FLUSHALL".into()
        ]
    );
    assert_eq!(
        commands(&batches[nb]),
        [format!("SET {b} 2"), format!("DEL {b}"), "FLUSHALL".into()]
    );
    assert_eq!(batches[na].replies, 4);
}

#[test]
fn a_transaction_goes_whole_to_one_node_even_across_batches() {
    let (a, _) = keys_apart();
    let mut splitter = Splitter::new(two_nodes(), 1);
    let first = splitter
        .split_plain(payload(&["MULTI", &format!("SET {a} 1")]))
        .unwrap();
    assert!(first.iter().all(|b| b.replies == 0));
    let second = splitter
        .split_plain(payload(&[&format!("SET {{{a}}}x 2"), "EXEC"]))
        .unwrap();
    assert_eq!(
        commands(&second[node_of(&a)]),
        [
            "MULTI".to_string(),
            format!("SET {a} 1"),
            format!("SET {{{a}}}x 2"),
            "EXEC".into()
        ]
    );
}

#[test]
fn a_transaction_over_several_slots_runs_as_one_per_slot() {
    let (a, b) = keys_apart();
    // Another key on a's node, in another slot: one node, two transactions.
    let near = (1..)
        .map(|i| format!("j{i}"))
        .find(|k| node_of(k) == node_of(&a) && key_slot(k.as_bytes()) != key_slot(a.as_bytes()))
        .unwrap();
    let mut splitter = Splitter::new(two_nodes(), 1);
    let batches = splitter
        .split_plain(payload(&[
            "MULTI",
            &format!("DEL {a}"),
            &format!("SET {b} 1"),
            &format!("SET {near} 1"),
            &format!("INCR {a}"),
            "EXEC",
        ]))
        .unwrap();
    assert_eq!(
        commands(&batches[node_of(&a)]),
        [
            "MULTI".to_string(),
            format!("DEL {a}"),
            format!("INCR {a}"),
            "EXEC".into(),
            "MULTI".into(),
            format!("SET {near} 1"),
            "EXEC".into(),
        ]
    );
    assert_eq!(
        commands(&batches[node_of(&b)]),
        ["MULTI".to_string(), format!("SET {b} 1"), "EXEC".into()]
    );
    assert_eq!(splitter.split_transactions, 1);
}

#[test]
fn a_transaction_cut_by_a_reconnect_is_dropped_for_its_resent_copy() {
    let (a, _) = keys_apart();
    let mut splitter = Splitter::new(two_nodes(), 1);
    splitter
        .split_plain(payload(&["MULTI", &format!("SET {a} 1")]))
        .unwrap();
    let again = splitter
        .split_plain(payload(&[
            "SELECT 0",
            "MULTI",
            &format!("SET {a} 1"),
            &format!("INCR {a}"),
            "EXEC",
        ]))
        .unwrap();
    assert_eq!(
        commands(&again[node_of(&a)]),
        [
            "MULTI".to_string(),
            format!("SET {a} 1"),
            format!("INCR {a}"),
            "EXEC".into()
        ]
    );
}

#[test]
fn what_a_cluster_cannot_run_is_refused_with_one_line() {
    let (a, b) = keys_apart();
    let error = Splitter::new(two_nodes(), 1)
        .split_plain(payload(&["SELECT 2", "SET x 1"]))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "SELECT 2: the target is a cluster, which has database 0 only; the source writes \
         to database 2"
    );
    let error = Splitter::new(two_nodes(), 1)
        .split_plain(payload(&[&format!("RENAME {a} {b}")]))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("RENAME over keys in different"),
        "{error}"
    );
}

#[test]
fn with_several_databases_each_batch_selects_its_own() {
    let (a, b) = keys_apart();
    let mut splitter = Splitter::new(two_nodes(), 16);
    let batches = splitter
        .split_plain(payload(&[
            "SELECT 3",
            &format!("SET {a} 1"),
            &format!("SET {b} 1"),
            "SELECT 0",
            &format!("SET {a} 2"),
            "FLUSHDB",
        ]))
        .unwrap();
    assert_eq!(
        commands(&batches[node_of(&a)]),
        [
            "SELECT 3".to_string(),
            format!("SET {a} 1"),
            "SELECT 0".into(),
            format!("SET {a} 2"),
            "FLUSHDB".into()
        ]
    );
    assert_eq!(
        commands(&batches[node_of(&b)]),
        [
            "SELECT 3".to_string(),
            format!("SET {b} 1"),
            "SELECT 0".into(),
            "FLUSHDB".into()
        ]
    );
    // The stream stays in database 0; the next batch says so again: its connection may
    // be anywhere.
    let next = splitter
        .split_plain(payload(&[&format!("SET {b} 2")]))
        .unwrap();
    assert_eq!(
        commands(&next[node_of(&b)]),
        ["SELECT 0".to_string(), format!("SET {b} 2")]
    );
    // The SELECTs are ferry's, not commands applied.
    assert_eq!(next[node_of(&b)].replies - next[node_of(&b)].framing, 1);
}

#[test]
fn with_several_databases_the_marker_stays_in_database_0() {
    let (a, _) = keys_apart();
    let mut splitter = with_markers_in(&[], 16);
    let batches = splitter
        .split(
            payload(&[
                "SELECT 5",
                "MULTI",
                &format!("INCR {a}"),
                "EXEC",
                &format!("SET {a} 1"),
            ]),
            mark(40),
        )
        .unwrap();
    assert_eq!(
        commands(&batches[node_of(&a)]),
        [
            "MULTI".to_string(),
            "SELECT 5".into(),
            format!("INCR {a}"),
            format!("SET {a} 1"),
            "SELECT 0".into(),
            marker(&a, 40),
            "EXEC".into()
        ]
    );
    // After the EXEC the database is unknown (had the transaction aborted, its SELECTs
    // did not run): the next command selects again.
    let next = splitter
        .split(payload(&[&format!("SET {a} 2")]), mark(41))
        .unwrap();
    assert_eq!(commands(&next[node_of(&a)])[1], "SELECT 5");
}

#[test]
fn with_several_databases_a_source_transaction_keeps_each_commands_database() {
    let (a, _) = keys_apart();
    let mut splitter = Splitter::new(two_nodes(), 16);
    let batches = splitter
        .split_plain(payload(&[
            "SELECT 1",
            "MULTI",
            &format!("SET {a} 1"),
            "SELECT 2",
            &format!("SET {a} 2"),
            "EXEC",
            &format!("SET {a} 3"),
        ]))
        .unwrap();
    assert_eq!(
        commands(&batches[node_of(&a)]),
        [
            "MULTI".to_string(),
            "SELECT 1".into(),
            format!("SET {a} 1"),
            "SELECT 2".into(),
            format!("SET {a} 2"),
            "EXEC".into(),
            "SELECT 2".into(),
            format!("SET {a} 3")
        ]
    );
}

#[test]
fn a_database_the_cluster_lacks_is_refused_naming_what_it_has() {
    let error = Splitter::new(two_nodes(), 16)
        .split_plain(payload(&["SELECT 16", "SET x 1"]))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "SELECT 16: the target is a cluster, which has databases 0 to 15; the source writes \
         to database 16"
    );
}

#[test]
fn a_replayed_flushdb_of_an_unmarked_database_stops_the_run() {
    let (a, _) = keys_apart();
    let slot_a = key_slot(a.as_bytes());
    let mut splitter = with_markers_in(&[(slot_a, 100)], 16);
    let error = splitter
        .split(payload(&["SELECT 2", "FLUSHDB"]), mark(90))
        .unwrap_err();
    assert!(
        matches!(error, SplitError::FlushDbInReplay { db: 2 }),
        "{error}"
    );
    // Past every marker it is an ordinary FLUSHDB.
    let mut splitter = with_markers_in(&[(slot_a, 100)], 16);
    let batches = splitter
        .split(payload(&["SELECT 2", "FLUSHDB"]), mark(101))
        .unwrap();
    assert_eq!(commands(&batches[0]), ["SELECT 2", "FLUSHDB"]);
}
