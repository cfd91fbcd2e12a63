//! The relay's own replication stream, made from the source's: each command as the
//! replica can apply it, in RESP, ready for the backlog.
//!
//! - SELECT, MULTI, EXEC and PING pass as they are (PINGs keep the replica's link alive
//!   and count in its offset like any command).
//! - REPLCONF (GETACK) is not passed: ferry answers the source itself, and the relay's
//!   replicas are asked nothing they must answer.
//! - Everything else goes through the same [`CommandTranslator`] as `migrate`, without
//!   its expiry hold: a replica never expires keys by its own clock, it waits for the DEL;
//!   under a scope (`--match`, `--db`, `--db-map`) behind the same
//!   [`ScopedCommands`] as `migrate`'s, and SELECT names the mapped database.

use crate::error::Error;
use crate::filter::Scope;
use crate::transforms::commands::transform::CommandTransform;
use crate::transforms::commands::{CommandTranslator, Translated};
use crate::transforms::filter::ScopedCommands;
use bytes::Bytes;
use bytes::BytesMut;
use ferry_repl::resp::encode_command;
use ferry_repl::ReplCommand;
use std::collections::BTreeMap;

pub struct StreamTranslator {
    translator: Box<dyn CommandTransform>,
    db: u64,
    in_multi: bool,
    skipped: BTreeMap<&'static str, u64>,
}

impl StreamTranslator {
    pub fn new(translator: CommandTranslator, scope: &Scope) -> Self {
        let translator = Box::new(translator.with_exact_expiries());
        Self {
            translator: if scope.is_everything() {
                translator
            } else {
                Box::new(ScopedCommands::new(scope.clone(), translator))
            },
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
            let target_db = self.translator.target_db(self.db).to_string();
            encode_command(&[args[0].clone(), Bytes::from(target_db)], out);
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
        self.translator.report_lines()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{HashFieldTtlPolicy, Policies};
    use crate::target::Target;
    use bytes::Bytes;

    fn command(text: &str) -> ReplCommand {
        ReplCommand {
            args: text
                .split(' ')
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect(),
            offset_after: 0,
        }
    }

    fn stream(profile: &str, policies: &Policies) -> StreamTranslator {
        let target = Target::from_profile(profile).unwrap();
        StreamTranslator::new(CommandTranslator::new(policies, &target), &Scope::default())
    }

    #[test]
    fn protocol_commands_pass_or_stay_and_transactions_are_not_boundaries() {
        let mut relay = stream("valkey-9.1", &Policies::default());
        let mut out = BytesMut::new();
        assert!(relay.add(command("REPLCONF GETACK *"), &mut out).unwrap());
        assert!(out.is_empty(), "GETACK is ferry's to answer");
        assert!(relay.add(command("PING"), &mut out).unwrap());
        assert_eq!(&out[..], b"*1\r\n$4\r\nPING\r\n");
        out.clear();
        assert!(relay.add(command("SELECT 3"), &mut out).unwrap());
        assert!(!relay.add(command("MULTI"), &mut out).unwrap());
        assert!(!relay.add(command("SET k v"), &mut out).unwrap());
        assert!(relay.add(command("EXEC"), &mut out).unwrap());
        let expected = [
            &b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"[..],
            b"*1\r\n$5\r\nMULTI\r\n",
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
            b"*1\r\n$4\r\nEXEC\r\n",
        ]
        .concat();
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn a_replica_gets_expiries_unheld_and_the_policies_applied() {
        let policies = Policies {
            hash_field_ttl: HashFieldTtlPolicy::Persist,
            ..Policies::default()
        };
        let mut relay = stream("valkey-8.1", &policies);
        let mut out = BytesMut::new();
        // Already past: a replica keeps it until the source's DEL, as native replicas do.
        relay.add(command("PEXPIREAT k 1000"), &mut out).unwrap();
        relay
            .add(
                command("HSETEX h PXAT 1700000000000 FIELDS 1 a 1"),
                &mut out,
            )
            .unwrap();
        let expected = [
            &b"*3\r\n$9\r\nPEXPIREAT\r\n$1\r\nk\r\n$4\r\n1000\r\n"[..],
            b"*4\r\n$4\r\nHSET\r\n$1\r\nh\r\n$1\r\na\r\n$1\r\n1\r\n",
        ]
        .concat();
        assert_eq!(&out[..], &expected[..]);
    }
}
