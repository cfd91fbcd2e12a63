//! Where a command goes on a cluster target: the slot of its keys, every primary, split
//! into one command per key, or nowhere (refused with a reason).
//!
//! Key positions follow the commands' documented syntax for what a source replicates;
//! a command not listed has its key first (or no key when it has no argument).

use crate::server::cluster::slot::key_slot;
use bytes::Bytes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To the primary serving this slot.
    Slot(u16),
    /// To every primary (FLUSHALL, FUNCTION LOAD, …).
    AllNodes,
    /// Each command to its own key's slot (a multi-key DEL or MSET over several slots).
    Split(Vec<(u16, Vec<Bytes>)>),
    /// `SELECT n`: whether database n exists is the cluster's to say (`cluster-databases`).
    Select(u64),
    Multi,
    Exec,
    /// Cannot be run on a cluster.
    Refuse(RouteRefusal),
}

/// Why a command cannot run on a cluster target; each names the command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteRefusal {
    #[error("an empty command")]
    Empty,
    #[error("SELECT without a database number")]
    SelectWithoutNumber,
    /// SWAPDB, MOVE: about other databases, which a cluster does not have.
    #[error("{command}: a cluster has database 0 only, so {command} cannot be applied")]
    OtherDatabases { command: String },
    /// A cluster with several databases still refuses SWAPDB (Valkey 9).
    #[error("SWAPDB: a cluster cannot swap databases, so the swap cannot be applied")]
    SwapDb,
    /// A script or multi-key command whose key count is 0.
    #[error("{command} without keys: a cluster target cannot tell which node it is for")]
    NoKeys { command: String },
    #[error("{command}: a command without a key, which a cluster target cannot route")]
    Keyless { command: String },
    #[error("{command} without a key")]
    WithoutKey { command: String },
    #[error(
        "{command} over keys in different cluster slots ({keys}): a cluster target cannot \
         run it as one command"
    )]
    CrossSlot {
        command: String,
        /// The first few keys, shown.
        keys: String,
    },
}

/// The route of one command on a cluster of `databases` databases (1: database 0 only).
pub fn route(args: &[Bytes], databases: u64) -> Route {
    let Some(name) = args.first() else {
        return Route::Refuse(RouteRefusal::Empty);
    };
    let mut buffer = [0u8; NAME_BUFFER];
    let name = upper_name(name, &mut buffer);
    let name: &str = &name;
    let keys: Vec<&Bytes> = match name {
        "SELECT" => {
            return match args
                .get(1)
                .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok())
            {
                Some(db) => Route::Select(db),
                None => Route::Refuse(RouteRefusal::SelectWithoutNumber),
            }
        }
        "MULTI" => return Route::Multi,
        "EXEC" => return Route::Exec,
        "FLUSHALL" | "FLUSHDB" | "FUNCTION" | "SCRIPT" => return Route::AllNodes,
        "SWAPDB" if databases > 1 => return Route::Refuse(RouteRefusal::SwapDb),
        "SWAPDB" | "MOVE" if databases == 1 => {
            return Route::Refuse(RouteRefusal::OtherDatabases {
                command: name.to_owned(),
            })
        }
        "DEL" | "UNLINK" => {
            let keys = &args[1..];
            return same_slot_or(name, keys.iter().collect(), || {
                Some(
                    keys.iter()
                        .map(|key| (key_slot(key), vec![args[0].clone(), key.clone()]))
                        .collect(),
                )
            });
        }
        "MSET" => {
            let pairs: Vec<&[Bytes]> = args[1..].chunks(2).collect();
            let keys = pairs.iter().map(|pair| &pair[0]).collect();
            return same_slot_or(name, keys, || {
                let set = Bytes::from_static(b"SET");
                Some(
                    pairs
                        .iter()
                        .map(|pair| {
                            let mut command = vec![set.clone()];
                            command.extend(pair.iter().cloned());
                            (key_slot(&pair[0]), command)
                        })
                        .collect(),
                )
            });
        }
        "MSETNX" => args[1..].iter().step_by(2).collect(),
        "TOUCH" | "EXISTS" | "SINTERSTORE" | "SUNIONSTORE" | "SDIFFSTORE" | "PFMERGE"
        | "PFCOUNT" => args[1..].iter().collect(),
        "RENAME" | "RENAMENX" | "SMOVE" | "LMOVE" | "BLMOVE" | "RPOPLPUSH" | "BRPOPLPUSH"
        | "COPY" | "GEOSEARCHSTORE" | "ZRANGESTORE" => args.iter().skip(1).take(2).collect(),
        "BITOP" => args.iter().skip(2).collect(),
        // destination numkeys key…
        "ZUNIONSTORE" | "ZINTERSTORE" | "ZDIFFSTORE" => {
            let mut keys = vec![];
            keys.extend(args.get(1));
            keys.extend(counted_keys(args, 2));
            keys
        }
        // script numkeys key…
        "EVAL" | "EVALSHA" | "EVAL_RO" | "EVALSHA_RO" | "FCALL" | "FCALL_RO" | "LMPOP"
        | "ZMPOP" | "SINTERCARD" | "ZUNION" | "ZINTER" | "ZDIFF" => {
            let offset = if name.starts_with("EVAL") || name.starts_with("FCALL") {
                2
            } else {
                1
            };
            let keys = counted_keys(args, offset);
            if keys.is_empty() {
                return Route::Refuse(RouteRefusal::NoKeys {
                    command: name.to_owned(),
                });
            }
            keys
        }
        // XGROUP subcommand key …
        "XGROUP" => args.iter().skip(2).take(1).collect(),
        "PUBLISH" => return Route::Slot(0),
        _ => match args.get(1) {
            Some(key) => vec![key],
            None => {
                return Route::Refuse(RouteRefusal::Keyless {
                    command: name.to_owned(),
                })
            }
        },
    };
    same_slot_or(name, keys, || None)
}

/// Longer than any command name routed here: names fit without an allocation.
const NAME_BUFFER: usize = 32;

/// `name` in capitals, in `buffer` when it fits (every command of a stream, once per
/// command: no allocation on that path).
fn upper_name<'a>(name: &[u8], buffer: &'a mut [u8; NAME_BUFFER]) -> std::borrow::Cow<'a, str> {
    if let Some(room) = buffer.get_mut(..name.len()) {
        room.copy_from_slice(name);
        room.make_ascii_uppercase();
        if let Ok(text) = std::str::from_utf8(room) {
            return std::borrow::Cow::Borrowed(text);
        }
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(name).to_ascii_uppercase())
}

/// `Slot` when all `keys` share one; otherwise the split `split` offers, or a refusal.
fn same_slot_or(
    name: &str,
    keys: Vec<&Bytes>,
    split: impl FnOnce() -> Option<Vec<(u16, Vec<Bytes>)>>,
) -> Route {
    let Some(first) = keys.first() else {
        return Route::Refuse(RouteRefusal::WithoutKey {
            command: name.to_owned(),
        });
    };
    let slot = key_slot(first);
    if keys.iter().all(|key| key_slot(key) == slot) {
        return Route::Slot(slot);
    }
    match split() {
        Some(commands) => Route::Split(commands),
        None => Route::Refuse(RouteRefusal::CrossSlot {
            command: name.to_owned(),
            keys: keys
                .iter()
                .take(4)
                .map(|key| crate::sinks::writer::pipe::show_key(key))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The keys after a count at `args[at]` (`numkeys key…`).
fn counted_keys(args: &[Bytes], at: usize) -> Vec<&Bytes> {
    let count = args
        .get(at)
        .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok())
        .unwrap_or(0);
    args.iter().skip(at + 1).take(count).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &str) -> Vec<Bytes> {
        words
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn single_key_commands_go_to_their_slot() {
        assert_eq!(route(&args("SET a 1"), 1), Route::Slot(key_slot(b"a")));
        assert_eq!(
            route(&args("XGROUP SETID s g 0-1"), 1),
            Route::Slot(key_slot(b"s"))
        );
        assert_eq!(
            route(&args("restore {t}x 0 payload"), 1),
            Route::Slot(key_slot(b"t"))
        );
    }

    #[test]
    fn del_and_mset_over_slots_are_split_per_key() {
        // "a" and "b" are in different slots; "{a}b" shares "a"'s.
        assert_ne!(key_slot(b"a"), key_slot(b"b"));
        assert_eq!(route(&args("DEL a {a}b"), 1), Route::Slot(key_slot(b"a")));
        assert_eq!(
            route(&args("UNLINK a b"), 1),
            Route::Split(vec![
                (key_slot(b"a"), args("UNLINK a")),
                (key_slot(b"b"), args("UNLINK b")),
            ])
        );
        assert_eq!(
            route(&args("MSET a 1 b 2"), 1),
            Route::Split(vec![
                (key_slot(b"a"), args("SET a 1")),
                (key_slot(b"b"), args("SET b 2")),
            ])
        );
    }

    #[test]
    fn commands_that_cannot_be_split_are_refused_by_name() {
        for command in [
            "RENAME a b",
            "MSETNX a 1 b 2",
            "ZUNIONSTORE d 2 a b",
            "EVAL s 0",
        ] {
            let Route::Refuse(reason) = route(&args(command), 1) else {
                panic!("{command} was not refused");
            };
            let name = command.split(' ').next().unwrap();
            assert!(reason.to_string().starts_with(name), "{reason}");
        }
        assert_eq!(
            route(&args("RENAME {a}x {a}y"), 1),
            Route::Slot(key_slot(b"a"))
        );
        assert!(matches!(route(&args("SWAPDB 0 1"), 1), Route::Refuse(_)));
    }

    #[test]
    fn framing_and_broadcasts() {
        assert_eq!(route(&args("SELECT 3"), 1), Route::Select(3));
        assert_eq!(route(&args("MULTI"), 1), Route::Multi);
        assert_eq!(route(&args("exec"), 1), Route::Exec);
        assert_eq!(route(&args("FLUSHALL"), 1), Route::AllNodes);
        assert_eq!(
            route(&args("FUNCTION LOAD REPLACE code"), 1),
            Route::AllNodes
        );
    }

    #[test]
    fn a_cluster_with_databases_takes_move_but_not_swapdb() {
        assert_eq!(route(&args("MOVE k 3"), 16), Route::Slot(key_slot(b"k")));
        assert_eq!(
            route(&args("SWAPDB 0 1"), 16),
            Route::Refuse(RouteRefusal::SwapDb)
        );
        assert!(matches!(route(&args("MOVE k 3"), 1), Route::Refuse(_)));
    }
}
