//! `MOVED` and `ASK` replies of a cluster node: which commands of a batch they sent
//! elsewhere, as units to send again (a whole transaction when one of its commands was
//! redirected: the node then aborts it with `EXECABORT`).

use super::pipe::{describe_command, Batch, PipeError};
use super::walk::{self, WalkError};
use crate::server::client::ClientError;
use bytes::Bytes;
use ferry_repl::resp::Frame;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Commands a cluster node sent elsewhere: `MOVED` (the slot is served there now) or
/// `ASK` (the key is being imported there: send `ASKING` first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirected {
    pub ask: bool,
    /// The slot the reply names (of the unit's commands: a transaction has one slot).
    pub slot: u16,
    /// `host:port`, as the reply names it.
    pub address: String,
    /// One command, or the commands of a transaction (without MULTI and EXEC).
    pub commands: Vec<Vec<Bytes>>,
    pub transaction: bool,
    /// The database the unit starts in: the batch's last SELECT before it (0 without
    /// one). A transaction's own SELECTs are among its commands.
    pub db: u64,
}

impl Redirected {
    /// Appends the unit to `batch` for the node the redirect names; returns the commands
    /// sent again (ferry's SELECT and ASKING aside).
    pub fn push_into(&self, batch: &mut Batch) -> u64 {
        // The node's connection may have any database selected (SELECT 0 is allowed on
        // every cluster).
        let db = self.db.to_string();
        batch.push_framing(&["SELECT", db.as_str()]);
        // ASKING holds for the next command only: a transaction refused with ASK (its
        // slot half moved) runs command by command there, each after its own ASKING.
        let whole = self.transaction && !self.ask;
        if whole {
            batch.push(&["MULTI"]);
        }
        let mut count = 0;
        for command in &self.commands {
            let is_select = command
                .first()
                .is_some_and(|name| name.eq_ignore_ascii_case(b"SELECT"));
            if is_select {
                batch.push_framing(command);
                continue;
            }
            if self.ask {
                batch.push_framing(&["ASKING"]);
            }
            batch.push(command);
            count += 1;
        }
        if whole {
            batch.push(&["EXEC"]);
        }
        count
    }
}

/// Why redirected commands could not be sent where they belong. Cloned with the pipe's
/// failure, so the connection error is shared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedirectError {
    #[error("internal: a transaction with a redirected command ran")]
    TransactionRan,
    /// An EXECABORT with no redirected command in its transaction to explain it.
    #[error("the target aborted a transaction (EXECABORT)")]
    Aborted,
    /// A transaction whose keys a resharding of the target has left on two nodes (some
    /// moved, some not yet: `ASK` for part of it, or `TRYAGAIN`). It can run on neither
    /// node as one; sent command by command it would write keys the resharding has not
    /// moved yet onto the importing node, where the move would then overwrite them.
    #[error(
        "the target is resharding the slot of {command}, half moved: its transaction's \
         keys are on two nodes"
    )]
    HalfMoved { command: String },
    /// The node a redirect names could not be connected to.
    #[error("the target sent {command} to {address}, which ferry cannot reach: {source}")]
    Unreachable {
        /// The first redirected command, `NAME "key"`.
        command: String,
        address: String,
        #[source]
        source: Arc<ClientError>,
    },
    #[error(transparent)]
    Walk(#[from] WalkError),
}

/// Takes the commands a node redirected (in the order it refused them) and resolves once
/// they are applied where they belong, or with the reason they cannot be.
pub trait Redirect: Send + Sync + std::fmt::Debug {
    fn follow(
        &self,
        commands: Vec<Redirected>,
    ) -> Pin<Box<dyn Future<Output = Result<(), PipeError>> + Send + '_>>;
}

/// One `MOVED <slot> <host:port>` or `ASK <slot> <host:port>` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirection {
    pub ask: bool,
    pub slot: u16,
    pub address: String,
}

/// The redirection a reply is, if it is one.
pub fn redirection(reply: &Frame) -> Option<Redirection> {
    let Frame::Error(message) = reply else {
        return None;
    };
    let text = std::str::from_utf8(message).ok()?;
    let mut words = text.split(' ');
    let ask = match words.next()? {
        "MOVED" => false,
        "ASK" => true,
        _ => return None,
    };
    let slot = words.next()?.parse().ok()?;
    Some(Redirection {
        ask,
        slot,
        address: words.next()?.to_string(),
    })
}

/// `TRYAGAIN`: a command (EXEC, for ferry's transactions) whose keys are in a slot being
/// moved, some of them moved already and some not.
pub fn is_try_again(reply: &Frame) -> bool {
    matches!(reply, Frame::Error(message) if message.starts_with(b"TRYAGAIN"))
}

/// The failure for a transaction the node refused with `TRYAGAIN` at its EXEC (`exec`,
/// the command index), named by its first command.
pub fn half_moved(payload: &[u8], exec: u32) -> RedirectError {
    let commands = match decode_all(payload) {
        Ok(commands) => commands,
        Err(error) => return error.into(),
    };
    let before = commands.get(..exec as usize).unwrap_or_default();
    let start = before
        .iter()
        .rposition(|c| c.first().is_some_and(|n| n.eq_ignore_ascii_case(b"MULTI")))
        .map_or(0, |at| at + 1);
    let command = before[start..]
        .iter()
        .find(|c| !is_select(c))
        .map(|c| describe_command(c))
        .unwrap_or_else(|| "a transaction".into());
    RedirectError::HalfMoved { command }
}

pub fn is_exec_abort(reply: &Frame) -> bool {
    matches!(reply, Frame::Error(message) if message.starts_with(b"EXECABORT"))
}

/// The units to send again: `redirected` holds (command index, redirection) for each
/// redirected reply, `aborted` the index of each EXEC the node aborted after one.
pub fn collect(
    payload: &[u8],
    redirected: &[(u32, Redirection)],
    aborted: &[u32],
) -> Result<Vec<Redirected>, RedirectError> {
    let commands = decode_all(payload)?;
    let mut out: Vec<Redirected> = Vec::new();
    // The open transaction: MULTI's index and the redirect seen in it, if any.
    let mut open: Option<(usize, Option<Redirection>, u64)> = None;
    // Its commands with keys, and how many of them were redirected.
    let (mut keyed, mut moved) = (0usize, 0usize);
    let mut db = 0;
    let mut hits = redirected.iter().peekable();
    for (index, args) in commands.iter().enumerate() {
        let name = args
            .first()
            .map(|n| n.to_ascii_uppercase())
            .unwrap_or_default();
        let hit = match hits.peek() {
            Some((at, redirection)) if *at as usize == index => {
                hits.next();
                Some(redirection.clone())
            }
            _ => None,
        };
        if name == b"SELECT" {
            db = args
                .get(1)
                .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok())
                .unwrap_or(db);
        }
        if name == b"MULTI" {
            open = Some((index, None, db));
            (keyed, moved) = (0, 0);
            continue;
        }
        if name == b"EXEC" {
            let Some((start, seen, started_in)) = open.take() else {
                continue;
            };
            // EXEC itself redirected: the slot moved (or its keys left) between the
            // queueing and EXEC, which then discarded the whole transaction.
            if let Some(at_exec) = hit {
                if seen.is_some() {
                    return Err(RedirectError::TransactionRan);
                }
                out.push(Redirected {
                    ask: at_exec.ask,
                    slot: at_exec.slot,
                    address: at_exec.address,
                    commands: commands[start + 1..index].to_vec(),
                    transaction: true,
                    db: started_in,
                });
                continue;
            }
            if !aborted.contains(&(index as u32)) {
                if seen.is_some() {
                    return Err(RedirectError::TransactionRan);
                }
                continue;
            }
            let Some(Redirection { ask, slot, address }) = seen else {
                return Err(RedirectError::Aborted);
            };
            // Part of it sent elsewhere, part queued here: the keys are on two nodes.
            if ask && moved < keyed {
                let first = commands[start + 1..index]
                    .iter()
                    .find(|c| !is_select(c))
                    .map(|c| describe_command(c))
                    .unwrap_or_default();
                return Err(RedirectError::HalfMoved { command: first });
            }
            out.push(Redirected {
                ask,
                slot,
                address,
                commands: commands[start + 1..index].to_vec(),
                transaction: true,
                db: started_in,
            });
            continue;
        }
        if open.is_some() && !is_select(args) {
            keyed += 1;
            moved += usize::from(hit.is_some());
        }
        match (&mut open, hit) {
            (Some((_, seen, _)), Some(hit)) => {
                seen.get_or_insert(hit);
            }
            (None, Some(Redirection { ask, slot, address })) => out.push(Redirected {
                ask,
                slot,
                address,
                commands: vec![args.clone()],
                transaction: false,
                db,
            }),
            _ => {}
        }
    }
    Ok(out)
}

fn is_select(args: &[Bytes]) -> bool {
    args.first()
        .is_some_and(|name| name.eq_ignore_ascii_case(b"SELECT"))
}

fn decode_all(payload: &[u8]) -> Result<Vec<Vec<Bytes>>, WalkError> {
    let payload = Bytes::copy_from_slice(payload);
    walk::commands(&payload)
        .map(|command| command.map(|c| c.args))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(commands: &[&str]) -> Vec<u8> {
        let mut batch = Batch::default();
        for command in commands {
            batch.push(&command.split(' ').collect::<Vec<_>>());
        }
        batch.payload.to_vec()
    }

    fn args(words: &str) -> Vec<Bytes> {
        words
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn to(ask: bool, slot: u16, address: &str) -> Redirection {
        Redirection {
            ask,
            slot,
            address: address.into(),
        }
    }

    #[test]
    fn replies_name_where_to_go() {
        let moved = Frame::Error(Bytes::from_static(b"MOVED 3999 127.0.0.1:6381"));
        assert_eq!(redirection(&moved), Some(to(false, 3999, "127.0.0.1:6381")));
        let ask = Frame::Error(Bytes::from_static(b"ASK 12 h:1"));
        assert_eq!(redirection(&ask), Some(to(true, 12, "h:1")));
        assert_eq!(
            redirection(&Frame::Error(Bytes::from_static(b"ERR no"))),
            None
        );
    }

    #[test]
    fn single_commands_and_aborted_transactions_are_sent_again_whole() {
        let sent = payload(&[
            "SET a 1",   // 0: redirected
            "SET b 1",   // 1
            "MULTI",     // 2
            "DEL c",     // 3: redirected
            "INCR c",    // 4
            "EXEC",      // 5: aborted
            "MULTI",     // 6
            "SET d 1",   // 7
            "EXEC",      // 8: ran
            "SELECT 3",  // 9
            "LPUSH e x", // 10: redirected
        ]);
        let redirected = [
            (0, to(false, 7, "n:1")),
            (3, to(false, 8, "n:2")),
            (10, to(true, 9, "n:2")),
        ];
        let units = collect(&sent, &redirected, &[5]).unwrap();
        assert_eq!(
            units,
            [
                Redirected {
                    ask: false,
                    slot: 7,
                    address: "n:1".into(),
                    commands: vec![args("SET a 1")],
                    transaction: false,
                    db: 0,
                },
                Redirected {
                    ask: false,
                    slot: 8,
                    address: "n:2".into(),
                    commands: vec![args("DEL c"), args("INCR c")],
                    transaction: true,
                    db: 0,
                },
                Redirected {
                    ask: true,
                    slot: 9,
                    address: "n:2".into(),
                    commands: vec![args("LPUSH e x")],
                    transaction: false,
                    db: 3,
                },
            ]
        );
    }

    #[test]
    fn a_transaction_half_asked_or_redirected_at_exec_is_told_apart() {
        // ASK for the marker only: the data key is still on this node.
        let sent = payload(&["MULTI", "SET {t}:a 2", "HSET {t}:m s 9", "EXEC"]);
        let err = collect(&sent, &[(2, to(true, 5, "n:2"))], &[3]).unwrap_err();
        assert!(matches!(err, RedirectError::HalfMoved { .. }), "{err}");
        assert!(err.to_string().contains(r#"SET "{t}:a""#), "{err}");
        // ASK for both: all moved, each goes there after its ASKING.
        let both = [(1, to(true, 5, "n:2")), (2, to(true, 5, "n:2"))];
        let units = collect(&sent, &both, &[3]).unwrap();
        assert_eq!(units.len(), 1);
        assert!(units[0].ask && units[0].transaction);
        // EXEC itself answered MOVED (the slot moved after the commands were queued):
        // the whole transaction goes to the new owner.
        let units = collect(&sent, &[(3, to(false, 5, "n:3"))], &[]).unwrap();
        assert_eq!(
            units,
            [Redirected {
                ask: false,
                slot: 5,
                address: "n:3".into(),
                commands: vec![args("SET {t}:a 2"), args("HSET {t}:m s 9")],
                transaction: true,
                db: 0,
            }]
        );
        // TRYAGAIN at EXEC names the transaction's first command.
        let err = half_moved(&sent, 3);
        assert!(err.to_string().contains(r#"SET "{t}:a""#), "{err}");
        assert!(is_try_again(&Frame::Error(Bytes::from_static(
            b"TRYAGAIN Multiple keys request during rehashing of slot"
        ))));
    }

    fn sent(batch: &Batch) -> Vec<String> {
        decode_all(&batch.payload)
            .unwrap()
            .iter()
            .map(|args| {
                args.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn a_unit_goes_again_in_its_own_database() {
        let one = Redirected {
            ask: false,
            slot: 1,
            address: "n:1".into(),
            commands: vec![args("RESTORE k 0 payload")],
            transaction: false,
            db: 3,
        };
        let mut batch = Batch::default();
        assert_eq!(one.push_into(&mut batch), 1);
        assert_eq!(sent(&batch), ["SELECT 3", "RESTORE k 0 payload"]);
        assert_eq!(batch.replies - batch.framing, 1);

        // A transaction refused with ASK: ASKING before each command but its SELECTs.
        let asked = Redirected {
            ask: true,
            slot: 1,
            address: "n:1".into(),
            commands: vec![
                args("SELECT 2"),
                args("INCR k"),
                args("SELECT 0"),
                args("HSET m f 1"),
            ],
            transaction: true,
            db: 0,
        };
        let mut batch = Batch::default();
        assert_eq!(asked.push_into(&mut batch), 2);
        assert_eq!(
            sent(&batch),
            [
                "SELECT 0",
                "SELECT 2",
                "ASKING",
                "INCR k",
                "SELECT 0",
                "ASKING",
                "HSET m f 1"
            ]
        );
    }
}
