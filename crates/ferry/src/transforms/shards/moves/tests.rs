//! The MIGRATE rule on two shards' streams as resharding interleaves them.

use super::*;

use crate::transforms::commands::transform::PassThrough;

fn args(text: &str) -> Vec<Bytes> {
    text.split(' ')
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

fn apply(texts: &[&str]) -> Translated {
    Translated::Apply(texts.iter().map(|t| args(t)).collect())
}

fn shard(moved: &Arc<MovedKeys>, index: usize) -> ShardTransform {
    ShardTransform::new(Box::new(PassThrough), moved.clone(), index)
}

#[test]
fn the_origins_del_of_a_key_restored_by_another_shard_is_left_out() {
    let moved = Arc::new(MovedKeys::default());
    let (mut origin, mut destination) = (shard(&moved, 0), shard(&moved, 1));
    let restore = destination
        .translate(0, args("RESTORE-ASKING a 0 payload"))
        .unwrap();
    assert_eq!(
        restore,
        Translated::Apply(vec![args("RESTORE-ASKING a 0 payload")])
    );
    destination
        .translate(0, args("RESTORE-ASKING b 0 p"))
        .unwrap();
    // MIGRATE of a and b propagated as one DEL, with c deleted by a client.
    assert_eq!(
        origin.translate(0, args("DEL a c b")).unwrap(),
        Translated::Apply(vec![args("DEL c")])
    );
    // Still before the move in the origin's history (the slot has not come back).
    assert!(matches!(
        origin.translate(0, args("DEL a")).unwrap(),
        Translated::Skip { .. }
    ));
    // Moved back by MIGRATE: the origin's writes are its own again.
    origin.translate(0, args("RESTORE-ASKING a 0 p")).unwrap();
    assert_eq!(
        origin.translate(0, args("DEL a")).unwrap(),
        Translated::Apply(vec![args("DEL a")])
    );
    destination
        .translate(0, args("RESTORE-ASKING d 0 p"))
        .unwrap();
    assert!(matches!(
        origin.translate(0, args("unlink d")).unwrap(),
        Translated::Skip { .. }
    ));
}

#[test]
fn the_origins_writes_to_a_restored_key_are_left_out_until_it_is_the_origins_again() {
    let moved = Arc::new(MovedKeys::default());
    let (mut origin, mut destination) = (shard(&moved, 0), shard(&moved, 1));
    destination
        .translate(0, args("RESTORE-ASKING s 0 p"))
        .unwrap();
    for text in ["XADD s 5-1 f v", "XGROUP CREATE s g $", "EXPIRE s 10"] {
        assert!(
            matches!(
                origin.translate(0, args(text)).unwrap(),
                Translated::Skip { .. }
            ),
            "{text}"
        );
    }
    // Another key, and the destination's own writes, go on.
    for (from, text) in [
        (&mut origin, "XADD t 5-1 f v"),
        (&mut destination, "XADD s 6-1 f v"),
    ] {
        assert_eq!(
            from.translate(0, args(text)).unwrap(),
            Translated::Apply(vec![args(text)])
        );
    }
    assert!(matches!(
        origin.translate(0, args("DEL s")).unwrap(),
        Translated::Skip { .. }
    ));
    // Deleted where it lives now: the origin's writes are still older than the move.
    assert_eq!(
        destination.translate(0, args("DEL s")).unwrap(),
        Translated::Apply(vec![args("DEL s")])
    );
    assert!(matches!(
        origin.translate(0, args("SET s 1")).unwrap(),
        Translated::Skip { .. }
    ));
    // The slot came back to the origin (another key of it restored there) without the
    // key: its writes to the key are new, on a key started afresh.
    origin
        .translate(0, args("RESTORE-ASKING {s}other 0 p"))
        .unwrap();
    assert_eq!(
        origin.translate(0, args("SET s 1")).unwrap(),
        apply(&["DEL s", "SET s 1"])
    );
    assert_eq!(
        origin.translate(0, args("SET s 2")).unwrap(),
        apply(&["SET s 2"])
    );
}

#[test]
fn a_lagging_origins_deletes_and_rewrites_before_the_move_are_left_out() {
    // The origin's stream is read far behind the destination's (a resume catching up):
    // a client deleted and re-created the key on the origin before MIGRATE moved it.
    let moved = Arc::new(MovedKeys::default());
    let (mut origin, mut destination) = (shard(&moved, 0), shard(&moved, 1));
    destination
        .translate(0, args("RESTORE-ASKING s 0 p"))
        .unwrap();
    for text in ["DEL s", "XADD s 1-1 f v", "XGROUP CREATE s g $", "DEL s"] {
        assert!(
            matches!(
                origin.translate(0, args(text)).unwrap(),
                Translated::Skip { .. }
            ),
            "{text}"
        );
    }
}

#[test]
fn keys_an_atomic_slot_import_rebuilds_replace_the_targets_copy() {
    // As Valkey 9.1 propagates `CLUSTER MIGRATESLOTS` of the slot of {a} from 0 to 1.
    let moved = Arc::new(MovedKeys::default());
    let (mut origin, mut destination) = (shard(&moved, 0), shard(&moved, 1));
    let slot = key_slot(b"{a}l");
    let restoring = destination.restoring();
    let establish = format!("CLUSTER SYNCSLOTS ESTABLISH SOURCE x NAME j SLOTSRANGE {slot} {slot}");
    for control in [&establish[..], "CLUSTER SYNCSLOTS ACK"] {
        assert!(matches!(
            destination.translate(0, args(control)).unwrap(),
            Translated::Skip { .. }
        ));
    }
    assert_eq!(
        destination.translate(0, args("RPUSH {a}l x y")).unwrap(),
        apply(&["DEL {a}l", "RPUSH {a}l x y"])
    );
    assert!(ShardTransform::take_restoring(&restoring));
    // Its next writes, and keys of other slots, are ordinary.
    for text in ["PEXPIREAT {a}l 99999999999999", "SET b 1", "SELECT 0"] {
        assert_eq!(
            destination.translate(0, args(text)).unwrap(),
            apply(&[text])
        );
    }
    // The exporting shard's older writes and its final UNLINK are left out.
    for text in ["RPUSH {a}l z", "UNLINK {a}l"] {
        assert!(matches!(
            origin.translate(0, args(text)).unwrap(),
            Translated::Skip { .. }
        ));
    }
    destination
        .translate(
            0,
            args("CLUSTER SYNCSLOTS FINISH STATE SUCCESS NAME j MESSAGE x"),
        )
        .unwrap();
    // A key created since in the slot starts afresh (any copy on the target is the
    // origin's, from before the import).
    assert_eq!(
        destination.translate(0, args("RPUSH {a}new x")).unwrap(),
        apply(&["DEL {a}new", "RPUSH {a}new x"])
    );
}

#[test]
fn moves_remembered_by_a_stopped_run_still_leave_older_writes_out() {
    let before = Arc::new(MovedKeys::default());
    shard(&before, 1)
        .translate(0, args("RESTORE-ASKING a 0 p"))
        .unwrap();
    let saved = before.remembered();
    assert_eq!(saved, vec![(Bytes::from("a"), 1)]);

    let after = Arc::new(MovedKeys::default());
    after.recall(saved);
    for text in ["SET a 1", "DEL a"] {
        assert!(matches!(
            shard(&after, 0).translate(0, args(text)).unwrap(),
            Translated::Skip { .. }
        ));
    }
}

#[test]
fn a_key_created_where_its_slot_moved_is_not_deleted_by_the_lagging_origin() {
    // The slot of {s} moved from 0 to 1 (another key of it restored there); `{s}new`
    // did not exist then (the origin had deleted it) and is created on shard 1. The
    // origin's stream, read late, brings its older writes and DEL of `{s}new`.
    let moved = Arc::new(MovedKeys::default());
    let (mut origin, mut destination) = (shard(&moved, 0), shard(&moved, 1));
    let restoring = destination.restoring();
    destination
        .translate(0, args("RESTORE-ASKING {s}old 0 p"))
        .unwrap();
    ShardTransform::take_restoring(&restoring);
    // The target's copy is the origin's, from before its DEL: it goes first.
    assert_eq!(
        destination.translate(0, args("INCR {s}new")).unwrap(),
        apply(&["DEL {s}new", "INCR {s}new"])
    );
    // Its first write in the moved slot waits for what the origin read before it.
    assert!(ShardTransform::take_restoring(&restoring));
    assert_eq!(
        destination.translate(0, args("INCR {s}new")).unwrap(),
        apply(&["INCR {s}new"])
    );
    for text in ["INCR {s}new", "DEL {s}new"] {
        assert!(
            matches!(
                origin.translate(0, args(text)).unwrap(),
                Translated::Skip { .. }
            ),
            "{text}"
        );
    }
    // Keys of other slots are the origin's.
    assert_eq!(
        origin.translate(0, args("DEL other")).unwrap(),
        apply(&["DEL other"])
    );
}

#[test]
fn a_batch_with_a_restore_asks_for_the_other_shards_writes_first() {
    let moved = Arc::new(MovedKeys::default());
    let (mut origin, mut destination) = (shard(&moved, 0), shard(&moved, 1));
    let restoring = destination.restoring();
    origin.translate(0, args("DEL a")).unwrap();
    destination.translate(0, args("SET b 1")).unwrap();
    assert!(!ShardTransform::take_restoring(&restoring));
    destination
        .translate(0, args("RESTORE-ASKING a 0 p"))
        .unwrap();
    assert!(ShardTransform::take_restoring(&restoring));
    assert!(!ShardTransform::take_restoring(&restoring));
}

#[test]
fn the_restoring_shard_deleting_the_key_itself_is_applied() {
    let moved = Arc::new(MovedKeys::default());
    let (mut origin, mut destination) = (shard(&moved, 0), shard(&moved, 1));
    destination
        .translate(0, args("RESTORE-ASKING a 0 p"))
        .unwrap();
    assert_eq!(
        destination.translate(0, args("DEL a")).unwrap(),
        Translated::Apply(vec![args("DEL a")])
    );
    // The origin's DEL is MIGRATE's (or older): the key is gone either way.
    assert!(matches!(
        origin.translate(0, args("DEL a")).unwrap(),
        Translated::Skip { .. }
    ));
}
