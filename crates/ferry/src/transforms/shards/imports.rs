//! Valkey 9's atomic slot migration (`CLUSTER MIGRATESLOTS`) as one shard's stream shows
//! it, seen on Valkey 9.1.2: the importing primary's stream carries `CLUSTER SYNCSLOTS
//! ESTABLISH SOURCE <id> NAME <job> SLOTSRANGE <first> <last> …`, then the slots' keys
//! rebuilt as an AOF rewrite writes them (`RPUSH`, `HMSET`, `SET`, `PEXPIREAT`, …) and
//! the writes made to them meanwhile, the job's control commands (`SNAPSHOT-EOF`,
//! `PAUSED`, `FAILOVER-GRANTED`) and `CLUSTER SYNCSLOTS FINISH STATE SUCCESS NAME <job>`.
//! The exporting primary's stream then `UNLINK`s every key of those slots.
//!
//! The target already holds those keys, written through the exporting shard, and the
//! rebuilding commands add to what is there (an `RPUSH` would append the list again): so
//! the first write of each key the job brings is preceded by a `DEL` of it, and the key
//! counts as restored by this shard ([`super::moves`]), which leaves out the exporting
//! shard's older writes and its final `UNLINK`. The control commands are not data and are
//! never sent. A job that fails has already deleted the keys it brought from the
//! importing primary (its stream says so with DELs) while the exporting primary keeps
//! them: ferry cannot tell those DELs from a client's, so it stops.

use crate::error::Error;
use crate::server::cluster::slot::key_slot;
use bytes::Bytes;
use std::collections::HashSet;

/// One running import: its name, its slots, the keys it brought so far.
#[derive(Debug)]
struct Import {
    job: Bytes,
    slots: Vec<[u16; 2]>,
    brought: HashSet<Bytes>,
}

/// The atomic slot imports of one shard's stream (kept by the shard across sessions).
#[derive(Debug, Default)]
pub struct SlotImports {
    running: Vec<Import>,
}

/// Whether `args` is one of the job's control commands (`CLUSTER SYNCSLOTS …`).
pub fn is_control(args: &[Bytes]) -> bool {
    args.len() > 1
        && args[0].eq_ignore_ascii_case(b"CLUSTER")
        && args[1].eq_ignore_ascii_case(b"SYNCSLOTS")
}

impl SlotImports {
    /// Takes a control command ([`is_control`]) into account: ESTABLISH starts an import,
    /// FINISH ends it (an error when it failed).
    pub fn control(&mut self, args: &[Bytes]) -> Result<(), Error> {
        let Some(subcommand) = args.get(2) else {
            return Ok(());
        };
        let named = |option: &[u8]| {
            args.iter()
                .position(|arg| arg.eq_ignore_ascii_case(option))
                .and_then(|at| args.get(at + 1))
                .cloned()
                .unwrap_or_default()
        };
        if subcommand.eq_ignore_ascii_case(b"ESTABLISH") {
            let slots = slot_ranges(args);
            self.running.push(Import {
                job: named(b"NAME"),
                slots,
                brought: HashSet::new(),
            });
        } else if subcommand.eq_ignore_ascii_case(b"FINISH") {
            let job = named(b"NAME");
            self.running.retain(|import| import.job != job);
            if !named(b"STATE").eq_ignore_ascii_case(b"SUCCESS") {
                return Err(Error::Migration(format!(
                    "an atomic slot migration on the source failed ({}{}): the importing \
                     primary deleted the keys it had brought, which the exporting primary \
                     still holds, and ferry cannot tell those deletions from clients'; \
                     rerun with --flush-target",
                    String::from_utf8_lossy(&job),
                    match named(b"MESSAGE") {
                        message if message.is_empty() => String::new(),
                        message => format!(": {}", String::from_utf8_lossy(&message)),
                    }
                )));
            }
        }
        Ok(())
    }

    /// Whether this write to `key` is the first a running import brings for it: the
    /// target's copy of the key must go first.
    pub fn first_write(&mut self, key: &Bytes) -> bool {
        if self.running.is_empty() {
            return false;
        }
        let slot = key_slot(key);
        self.running
            .iter_mut()
            .find(|import| import.slots.iter().any(|[a, b]| (*a..=*b).contains(&slot)))
            .is_some_and(|import| import.brought.insert(key.clone()))
    }
}

/// The slots an `ESTABLISH` control command ([`is_control`]) starts importing.
pub fn establishing(args: &[Bytes]) -> Option<Vec<[u16; 2]>> {
    args.get(2)
        .filter(|subcommand| subcommand.eq_ignore_ascii_case(b"ESTABLISH"))
        .map(|_| slot_ranges(args))
}

/// The `SLOTSRANGE first last …` pairs of an ESTABLISH.
fn slot_ranges(args: &[Bytes]) -> Vec<[u16; 2]> {
    let Some(at) = args
        .iter()
        .position(|arg| arg.eq_ignore_ascii_case(b"SLOTSRANGE"))
    else {
        return Vec::new();
    };
    let number = |arg: &Bytes| std::str::from_utf8(arg).ok()?.parse::<u16>().ok();
    args[at + 1..]
        .chunks(2)
        .map_while(|pair| match pair {
            [first, last] => Some([number(first)?, number(last)?]),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<Bytes> {
        text.split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn an_import_brings_each_key_of_its_slots_once_until_it_finishes() {
        let mut imports = SlotImports::default();
        let key = Bytes::from_static(b"{a}l");
        let slot = key_slot(&key);
        assert!(!imports.first_write(&key));
        let establish =
            format!("CLUSTER SYNCSLOTS ESTABLISH SOURCE x NAME job1 SLOTSRANGE 0 1 {slot} {slot}");
        assert!(is_control(&args(&establish)));
        imports.control(&args(&establish)).unwrap();
        assert!(imports.first_write(&key));
        assert!(!imports.first_write(&key));
        let elsewhere = Bytes::from_static(b"{b}l");
        assert_ne!(key_slot(&elsewhere), slot);
        assert!(!imports.first_write(&elsewhere));
        imports
            .control(&args(
                "CLUSTER SYNCSLOTS FINISH STATE SUCCESS NAME job1 MESSAGE ",
            ))
            .unwrap();
        assert!(!imports.first_write(&Bytes::from_static(b"{a}other")));
    }

    #[test]
    fn a_failed_import_stops_with_one_line() {
        let mut imports = SlotImports::default();
        imports
            .control(&args(
                "CLUSTER SYNCSLOTS ESTABLISH SOURCE x NAME job2 SLOTSRANGE 5 5",
            ))
            .unwrap();
        let error = imports
            .control(&args(
                "CLUSTER SYNCSLOTS FINISH STATE FAILED NAME job2 MESSAGE cancelled",
            ))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("job2: cancelled") && error.contains("--flush-target"),
            "{error}"
        );
        assert!(!error.contains('\n'));
    }
}
