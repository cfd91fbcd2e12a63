//! Turns one batch of commands for "the target" into one batch per cluster primary, in
//! order: each command goes to the primary serving its key's slot, so the commands on one
//! key keep their order. A source transaction (MULTI … EXEC) runs as one transaction on
//! the primary of its keys' slot; one over several slots runs as one transaction per slot
//! (atomic per slot, not across: a cluster cannot do more). Anything for a database the
//! cluster lacks is refused: all but 0, unless it has more (`cluster-databases`, Valkey
//! 9.0+). With more, each batch selects the database of its commands itself (a batch
//! starts on a connection in an unknown database, and a SELECT inside an aborted
//! transaction never ran), and ferry's markers stay in database 0.
//!
//! With a stream's markers ([`Splitter::write_markers`]), each batch that carries a mark
//! reaches each slot it touches as one transaction ending with that slot's marker
//! ([`crate::state::slot_markers`]), source transactions included; a slot whose marker already holds
//! the batch's mark (a replay after a crash) gets nothing. Commands for every node split
//! the batch: the slots' transactions before one go before it.

use super::route::{route, Route, RouteRefusal};
use crate::server::cluster::databases_held;
use crate::server::cluster::topology::SlotMap;
use crate::sinks::writer::pipe::{describe_command, Batch, Mark};
use crate::sinks::writer::walk::{self, WalkError};
use crate::state::slot_markers as markers;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;

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
        "SELECT {db}: the target is a cluster, which has {}; the source writes to \
         database {db}",
        databases_held(*databases)
    )]
    OtherDatabase { db: u64, databases: u64 },
    #[error(
        "FLUSHDB of database {db} is in the part of the stream ferry replays after a \
         restart, and ferry's markers (in database 0) cannot tell what of database {db} \
         the target held after it; run again with --flush-target to copy everything anew"
    )]
    FlushDbInReplay { db: u64 },
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
    /// The cluster's databases: 1, or `cluster-databases`.
    databases: u64,
    /// The database the commands being placed are for (the source's last SELECT).
    db: u64,
    /// The commands of an open source transaction, with their slot and database;
    /// `Some` between MULTI and EXEC (which may arrive in different batches).
    transaction: Option<Vec<Queued>>,
    /// Source transactions over several slots, run as one transaction per slot.
    pub split_transactions: u64,
    markers: Option<StreamMarkers>,
    /// Commands left out because their slot's marker showed the target held them.
    pub already_held: u64,
}

/// A command of an open source transaction.
struct Queued {
    slot: u16,
    db: u64,
    args: Vec<Bytes>,
}

/// One batch's commands by slot, in the order the slots first appear.
struct SlotGroups {
    offset: i64,
    groups: Vec<(u16, usize, Batch)>,
    /// Each slot's place in `groups`: a batch of 1,000 commands may touch as many slots,
    /// and every command looks its slot up.
    at: HashMap<u16, usize>,
}

impl SlotGroups {
    fn new(offset: i64) -> Self {
        Self {
            offset,
            groups: Vec::new(),
            at: HashMap::new(),
        }
    }

    fn batch(&mut self, slot: u16, node: usize) -> &mut Batch {
        let groups = &mut self.groups;
        let at = *self.at.entry(slot).or_insert_with(|| {
            groups.push((slot, node, Batch::default()));
            groups.len() - 1
        });
        &mut self.groups[at].2
    }

    /// Every group, in order, leaving none.
    fn take(&mut self) -> Vec<(u16, usize, Batch)> {
        self.at.clear();
        std::mem::take(&mut self.groups)
    }
}

impl Splitter {
    /// A splitter for a cluster of `databases` databases (1: database 0 only).
    pub fn new(map: SlotMap, databases: u64) -> Self {
        Self {
            map,
            databases: databases.max(1),
            db: 0,
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
            (Some(_), Some(mark)) => Some(SlotGroups::new(mark.offset)),
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
        for (slot, node, group) in groups.take() {
            if markers.held.holds(slot, groups.offset) {
                self.already_held += u64::from(group.replies);
                continue;
            }
            let batch = out.get_mut(node).ok_or(SplitError::NoSuchNode)?;
            batch.push_framing(&["MULTI"]);
            batch.append(&group);
            if self.databases > 1 {
                batch.select(markers::DB);
            }
            markers::push_write(batch, slot, &markers.stream, groups.offset);
            batch.push_framing(&["EXEC"]);
            batch.forget_db();
        }
        Ok(())
    }

    /// A FLUSHDB of a database without markers, replayed while some slot's marker shows
    /// later units applied, would empty what those units wrote there: refused.
    fn check_replayed_flush(
        &self,
        args: &[Bytes],
        groups: Option<&SlotGroups>,
    ) -> Result<(), SplitError> {
        let flushes_unmarked = self.db != markers::DB
            && args
                .first()
                .is_some_and(|name| name.eq_ignore_ascii_case(b"FLUSHDB"));
        let (Some(markers), Some(groups)) = (&self.markers, groups) else {
            return Ok(());
        };
        let later_applied = markers
            .held
            .highest()
            .is_some_and(|highest| highest >= groups.offset);
        match flushes_unmarked && later_applied {
            true => Err(SplitError::FlushDbInReplay { db: self.db }),
            false => Ok(()),
        }
    }

    /// Before a command for the current database goes into `batch`: its SELECT, when
    /// the cluster has several.
    fn select_in(&self, batch: &mut Batch, db: u64) {
        if self.databases > 1 {
            batch.select(db);
        }
    }

    /// Places one command; `wire` is its encoding, passed on as it is where it goes whole.
    fn place(
        &mut self,
        args: Vec<Bytes>,
        wire: &[u8],
        out: &mut [Batch],
        mut groups: Option<&mut SlotGroups>,
    ) -> Result<(), SplitError> {
        match route(&args, self.databases) {
            Route::Select(db) if db < self.databases => {
                self.db = db;
                Ok(())
            }
            Route::Select(db) => Err(SplitError::OtherDatabase {
                db,
                databases: self.databases,
            }),
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
                for queued in &queued {
                    if !slots.contains(&queued.slot) {
                        slots.push(queued.slot);
                    }
                }
                if slots.len() > 1 {
                    self.split_transactions += 1;
                }
                for slot in slots {
                    let part: Vec<&Queued> = queued.iter().filter(|q| q.slot == slot).collect();
                    let Some(first) = part.first() else {
                        continue;
                    };
                    // The owner now: the slot map may have changed since MULTI.
                    let node = self.owner(slot, &first.args)?;
                    if let Some(groups) = groups.as_deref_mut() {
                        // The slot's transaction holds it, with the marker.
                        let batch = groups.batch(slot, node);
                        for command in &part {
                            self.select_in(batch, command.db);
                            batch.push(&command.args);
                        }
                        continue;
                    }
                    let batch = out.get_mut(node).ok_or(SplitError::NoSuchNode)?;
                    batch.push(&["MULTI"]);
                    for command in &part {
                        self.select_in(batch, command.db);
                        batch.push(&command.args);
                    }
                    batch.push(&["EXEC"]);
                    batch.forget_db();
                }
                Ok(())
            }
            Route::AllNodes => {
                if self.transaction.is_some() {
                    return Err(SplitError::EveryNodeInTransaction {
                        command: describe_command(&args),
                    });
                }
                self.check_replayed_flush(&args, groups.as_deref())?;
                // What came before it goes first.
                if let Some(groups) = groups {
                    self.close(groups, out)?;
                }
                for batch in out.iter_mut() {
                    self.select_in(batch, self.db);
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
        let db = self.db;
        if let Some(queued) = self.transaction.as_mut() {
            queued.push(Queued { slot, db, args });
            return Ok(());
        }
        let batch = match groups {
            Some(groups) => groups.batch(slot, node),
            None => out.get_mut(node).ok_or(SplitError::NoSuchNode)?,
        };
        self.select_in(batch, db);
        match wire {
            Some(wire) => batch.push_wire(wire),
            None => batch.push(&args),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
