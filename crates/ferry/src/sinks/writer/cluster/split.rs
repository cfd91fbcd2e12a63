//! Turns one batch of commands for "the target" into one batch per cluster primary, in
//! order: each command goes to the primary serving its key's slot, so the commands on one
//! key keep their order. A source transaction (MULTI … EXEC) runs as one transaction on
//! the primary of its keys' slot; one over several slots runs as one transaction per slot
//! (atomic per slot, not across: a cluster cannot do more). Anything for a database other
//! than 0 is refused.
//!
//! With a stream's markers ([`Splitter::write_markers`]), each batch that carries a mark
//! reaches each slot it touches as one transaction ending with that slot's marker
//! ([`crate::state::slot_markers`]), source transactions included; a slot whose marker already holds
//! the batch's mark (a replay after a crash) gets nothing. Commands for every node split
//! the batch: the slots' transactions before one go before it.

use super::route::{route, Route, RouteRefusal};
use crate::server::cluster::topology::SlotMap;
use crate::sinks::writer::pipe::{describe_command, Batch, Mark};
use crate::sinks::writer::walk::{self, WalkError};
use crate::state::slot_markers as markers;
use bytes::{Bytes, BytesMut};

/// The stream whose markers each slot's transaction writes, and what the target held of
/// it when this run started.
#[derive(Debug, Clone, Default)]
pub struct StreamMarkers {
    /// The marker field: the stream's name.
    pub stream: String,
    pub held: markers::Applied,
}

/// A command a cluster target cannot apply, on one line naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error(
        "SELECT {0}: the target is a cluster, which has database 0 only; the source writes \
         to database {0}"
    )]
    OtherDatabase(u64),
    #[error("the source sent EXEC outside a transaction")]
    ExecOutsideTransaction,
    /// FLUSHALL and the like run on every primary; a transaction is on one.
    #[error(
        "{command} inside a MULTI/EXEC transaction: on a cluster it runs on every node, \
         which no transaction spans"
    )]
    EveryNodeInTransaction { command: String },
    #[error("{command}: slot {slot} is served by no primary of the target cluster")]
    Unserved { command: String, slot: u16 },
    #[error("internal: no such node")]
    NoSuchNode,
    #[error(transparent)]
    Refused(#[from] RouteRefusal),
    #[error(transparent)]
    Walk(#[from] WalkError),
}

pub struct Splitter {
    map: SlotMap,
    /// The commands of an open source transaction, with their slot; `Some` between
    /// MULTI and EXEC (which may arrive in different batches).
    transaction: Option<Vec<(u16, Vec<Bytes>)>>,
    /// Source transactions over several slots, run as one transaction per slot.
    pub split_transactions: u64,
    markers: Option<StreamMarkers>,
    /// Commands left out because their slot's marker showed the target held them.
    pub already_held: u64,
}

/// One batch's commands by slot, in the order the slots first appear.
struct SlotGroups {
    offset: i64,
    groups: Vec<(u16, usize, Batch)>,
}

impl SlotGroups {
    fn batch(&mut self, slot: u16, node: usize) -> &mut Batch {
        let at = match self.groups.iter().position(|(s, _, _)| *s == slot) {
            Some(at) => at,
            None => {
                self.groups.push((slot, node, Batch::default()));
                self.groups.len() - 1
            }
        };
        &mut self.groups[at].2
    }
}

impl Splitter {
    pub fn new(map: SlotMap) -> Self {
        Self {
            map,
            transaction: None,
            split_transactions: 0,
            markers: None,
            already_held: 0,
        }
    }

    /// From now on each batch with a mark writes `markers.stream`'s marker in every slot
    /// it touches, and leaves out what `markers.held` says the target holds; `None` ends
    /// it (a full sync is loading).
    pub fn write_markers(&mut self, markers: Option<StreamMarkers>) {
        self.markers = markers;
    }

    pub fn nodes(&self) -> usize {
        self.map.nodes.len()
    }

    pub fn map(&self) -> &SlotMap {
        &self.map
    }

    /// The slot map, to change as the target's topology does.
    pub fn map_mut(&mut self) -> &mut SlotMap {
        &mut self.map
    }

    /// One batch per primary (index as in the slot map), possibly empty.
    pub fn split(
        &mut self,
        payload: BytesMut,
        mark: Option<Mark>,
    ) -> Result<Vec<Batch>, SplitError> {
        let mut out: Vec<Batch> = (0..self.nodes()).map(|_| Batch::default()).collect();
        let payload = payload.freeze();
        let mut groups = match (&self.markers, mark) {
            (Some(_), Some(mark)) => Some(SlotGroups {
                offset: mark.offset,
                groups: Vec::new(),
            }),
            _ => None,
        };
        for command in walk::commands(&payload) {
            let command = command?;
            self.place(
                command.args,
                &payload[command.wire],
                &mut out,
                groups.as_mut(),
            )?;
        }
        if let Some(groups) = groups.as_mut() {
            self.close(groups, &mut out)?;
        }
        Ok(out)
    }

    /// Each slot's commands gathered so far go out as one transaction with the slot's
    /// marker, unless the marker shows the target holds them.
    fn close(&mut self, groups: &mut SlotGroups, out: &mut [Batch]) -> Result<(), SplitError> {
        let Some(markers) = &self.markers else {
            return Ok(());
        };
        for (slot, node, group) in groups.groups.drain(..) {
            if markers.held.holds(slot, groups.offset) {
                self.already_held += u64::from(group.replies);
                continue;
            }
            let batch = out.get_mut(node).ok_or(SplitError::NoSuchNode)?;
            batch.push_framing(&["MULTI"]);
            batch.append(&group);
            markers::push_write(batch, slot, &markers.stream, groups.offset);
            batch.push_framing(&["EXEC"]);
        }
        Ok(())
    }

    /// Places one command; `wire` is its encoding, passed on as it is where it goes whole.
    fn place(
        &mut self,
        args: Vec<Bytes>,
        wire: &[u8],
        out: &mut [Batch],
        mut groups: Option<&mut SlotGroups>,
    ) -> Result<(), SplitError> {
        match route(&args) {
            Route::Select(0) => Ok(()),
            Route::Select(db) => Err(SplitError::OtherDatabase(db)),
            Route::Multi => {
                // A transaction still open was cut by a lost source connection: nothing
                // of it was sent, and the source sends it again whole after the partial
                // resync (which resumes before its MULTI).
                self.transaction = Some(Vec::new());
                Ok(())
            }
            Route::Exec => {
                let queued = self
                    .transaction
                    .take()
                    .ok_or(SplitError::ExecOutsideTransaction)?;
                // A cluster runs a transaction only when all its keys share one slot. One
                // over several slots (Redis wraps a command and the deletions of keys it
                // found expired in one, for instance) runs as one transaction per slot.
                let mut slots: Vec<u16> = Vec::new();
                for (slot, _) in &queued {
                    if !slots.contains(slot) {
                        slots.push(*slot);
                    }
                }
                if slots.len() > 1 {
                    self.split_transactions += 1;
                }
                for slot in slots {
                    let part: Vec<&(u16, Vec<Bytes>)> =
                        queued.iter().filter(|(s, _)| *s == slot).collect();
                    let Some((_, first)) = part.first() else {
                        continue;
                    };
                    // The owner now: the slot map may have changed since MULTI.
                    let node = self.owner(slot, first)?;
                    if let Some(groups) = groups.as_deref_mut() {
                        // The slot's transaction holds it, with the marker.
                        let batch = groups.batch(slot, node);
                        for (_, command) in &part {
                            batch.push(command);
                        }
                        continue;
                    }
                    let batch = out.get_mut(node).ok_or(SplitError::NoSuchNode)?;
                    batch.push(&["MULTI"]);
                    for (_, command) in &part {
                        batch.push(command);
                    }
                    batch.push(&["EXEC"]);
                }
                Ok(())
            }
            Route::AllNodes => {
                if self.transaction.is_some() {
                    return Err(SplitError::EveryNodeInTransaction {
                        command: describe_command(&args),
                    });
                }
                // What came before it goes first.
                if let Some(groups) = groups {
                    self.close(groups, out)?;
                }
                for batch in out.iter_mut() {
                    batch.push_wire(wire);
                }
                Ok(())
            }
            Route::Slot(slot) => self.send_to(slot, args, Some(wire), out, groups),
            Route::Split(commands) => {
                for (slot, command) in commands {
                    self.send_to(slot, command, None, out, groups.as_deref_mut())?;
                }
                Ok(())
            }
            Route::Refuse(reason) => Err(reason.into()),
        }
    }

    fn owner(&self, slot: u16, args: &[Bytes]) -> Result<usize, SplitError> {
        self.map.owner(slot).ok_or_else(|| SplitError::Unserved {
            command: describe_command(args),
            slot,
        })
    }

    /// Sends `args` (encoded as `wire` when given) to the owner of `slot` (into the slot's
    /// group when there are groups), or queues it in the open transaction.
    fn send_to(
        &mut self,
        slot: u16,
        args: Vec<Bytes>,
        wire: Option<&[u8]>,
        out: &mut [Batch],
        groups: Option<&mut SlotGroups>,
    ) -> Result<(), SplitError> {
        let node = self.owner(slot, &args)?;
        if let Some(queued) = self.transaction.as_mut() {
            queued.push((slot, args));
            return Ok(());
        }
        let batch = match groups {
            Some(groups) => groups.batch(slot, node),
            None => out.get_mut(node).ok_or(SplitError::NoSuchNode)?,
        };
        match wire {
            Some(wire) => batch.push_wire(wire),
            None => batch.push(&args),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
        let mut splitter = Splitter::new(two_nodes());
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
        let mut splitter = Splitter::new(two_nodes());
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
        let mut splitter = Splitter::new(two_nodes());
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
        let mut splitter = Splitter::new(two_nodes());
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
        let mut splitter = Splitter::new(two_nodes());
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
        let error = Splitter::new(two_nodes())
            .split_plain(payload(&["SELECT 2", "SET x 1"]))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "SELECT 2: the target is a cluster, which has database 0 only; the source writes \
             to database 2"
        );
        let error = Splitter::new(two_nodes())
            .split_plain(payload(&[&format!("RENAME {a} {b}")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("RENAME over keys in different"),
            "{error}"
        );
    }
}
