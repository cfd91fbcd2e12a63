//! The relay's own replication stream, made from the source's: each command as the
//! replica can apply it, in RESP, ready for the backlog.
//!
//! - SELECT, MULTI, EXEC and PING pass as they are (PINGs keep the replica's link alive
//!   and count in its offset like any command).
//! - REPLCONF (GETACK) is not passed: ferry answers the source itself, and the relay's
//!   replicas are asked nothing they must answer.
//! - Everything else goes through the same [`CommandTranslator`] as `migrate`, without
//!   its expiry hold: a replica never expires keys by its own clock, it waits for the DEL.

use crate::error::Error;
use crate::transforms::commands::{CommandTranslator, Translated};
use bytes::BytesMut;
use ferry_repl::resp::encode_command;
use ferry_repl::ReplCommand;
use std::collections::BTreeMap;

pub struct StreamTranslator {
    translator: CommandTranslator,
    db: u64,
    in_multi: bool,
    skipped: BTreeMap<&'static str, u64>,
}

impl StreamTranslator {
    pub fn new(translator: CommandTranslator) -> Self {
        Self {
            translator: translator.without_expiry_hold(),
            db: 0,
            in_multi: false,
            skipped: BTreeMap::new(),
        }
    }

    /// Appends what `command` becomes to `out`. Returns whether the stream is at a
    /// boundary afterwards (outside a transaction), where offsets may be paired.
    pub fn add(&mut self, command: ReplCommand, out: &mut BytesMut) -> Result<bool, Error> {
        let args = command.args;
        let name = args.first().map(|a| &a[..]).unwrap_or_default();
        if name.eq_ignore_ascii_case(b"REPLCONF") {
            // Not forwarded.
        } else if name.eq_ignore_ascii_case(b"PING") {
            encode_command(&args, out);
        } else if name.eq_ignore_ascii_case(b"SELECT") {
            self.db = args
                .get(1)
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| {
                    Error::Migration("the source sent SELECT without a database number".into())
                })?;
            encode_command(&args, out);
        } else if name.eq_ignore_ascii_case(b"MULTI") {
            self.in_multi = true;
            encode_command(&args, out);
        } else if name.eq_ignore_ascii_case(b"EXEC") {
            self.in_multi = false;
            encode_command(&args, out);
        } else {
            match self.translator.translate(self.db, args)? {
                Translated::Apply(commands) => {
                    for command in commands {
                        encode_command(&command, out);
                    }
                }
                Translated::Skip { reason } => *self.skipped.entry(reason).or_default() += 1,
            }
        }
        Ok(!self.in_multi)
    }

    pub fn report_lines(&self) -> Vec<String> {
        self.translator.report().lines()
    }
}
