//! Applies the source's command stream to the target, in order.
//!
//! - SELECT is followed: forwarded, and remembered as the stream's database.
//! - With a marker ([`StreamApplier::with_marker`], what `migrate` does): each batch goes
//!   to the target as one MULTI … EXEC that ends with the write of ferry's marker
//!   ([`crate::state::marker`]): the replication ID, the offset after the batch,
//!   the stream's database. The target runs data and marker atomically, so whatever prefix
//!   of its writes it keeps after a restart, the marker says exactly where it ends and a
//!   resume applies nothing twice. The source's own MULTI/EXEC are left out (the batch is
//!   a transaction already) and a batch ends only outside the source's transactions.
//! - A shard of a cluster source writing to a standalone target
//!   ([`StreamApplier::with_shard_marker`]) does the same with its own field of the
//!   shards' marker. Into a cluster target the marker is written per slot by the cluster
//!   writer (`sinks::writer::cluster::markers`); there, after a restart, each unit (a
//!   command, or a source transaction) goes alone until the stream passes the highest
//!   marker ([`StreamApplier::replaying_until`]), so that the writer can leave out, slot
//!   by slot, the units the target already holds.
//! - Without a marker, MULTI … EXEC is forwarded as it comes on the one target connection,
//!   so the target queues the commands and runs them atomically at EXEC; if ferry stops in
//!   between, the target drops the open transaction.
//! - No offset inside a source transaction is ever reported as applied: marks advance only
//!   outside transactions.
//! - PING and REPLCONF are not forwarded; their bytes still count in the offset.
//! - Everything else goes through the [`CommandTransform`] seam.

use crate::error::Error;
use crate::sinks::writer::pipe::{Batch, Mark, Pipe, PipeError};
use crate::state::marker::{self, Applied, ShardApplied};
use crate::transforms::commands::transform::CommandTransform;
use crate::transforms::commands::Translated;
use bytes::Bytes;
use ferry_repl::ReplCommand;
use std::collections::BTreeMap;

/// Bytes of commands gathered before a batch goes to the pipe.
const BATCH_BYTES: usize = 64 << 10;
/// Commands gathered before a batch goes to the pipe: bounds what the target queues for
/// one EXEC (a source transaction longer than this still goes whole).
const BATCH_COMMANDS: u32 = 1_000;

/// Which of ferry's markers a batch ends with.
enum Marker {
    /// A standalone source's: the source's replication ID.
    Source { replid: String },
    /// A cluster source shard's field `stream`, with the shard's replication ID.
    Shard { stream: String, replid: String },
}

pub struct StreamApplier {
    pipe: Pipe,
    translator: Box<dyn CommandTransform>,
    /// The database the stream has selected (as of the last command taken).
    db: u64,
    in_multi: bool,
    /// The last point outside a transaction: what may be reported once its batch is
    /// acknowledged.
    safe: Mark,
    /// The mark last handed to the pipe.
    sent: Mark,
    batch: Batch,
    /// The marker each batch carries, if any.
    marker: Option<Marker>,
    /// Until the stream passes this offset, each unit goes as its own batch (a replay the
    /// cluster writer filters by its per-slot markers).
    replay_until: Option<i64>,
    /// The batch has opened its MULTI (marker mode).
    open: bool,
    /// Databases a SWAPDB in this batch exchanged with the marker's: an earlier marker may
    /// have moved there.
    swapped: Vec<u64>,
    /// Commands forwarded (after translation).
    pub forwarded: u64,
    skipped: BTreeMap<&'static str, u64>,
}

impl StreamApplier {
    /// Starts at `start` (the snapshot's offset or the resumed state). The target
    /// connection is switched to the stream's database first: after a partial resync the
    /// primary does not repeat its SELECT.
    pub fn new(pipe: Pipe, translator: Box<dyn CommandTransform>, start: Mark) -> Self {
        let mut batch = Batch::default();
        let db = translator.target_db(start.db).to_string();
        batch.push_framing(&["SELECT", db.as_str()]);
        Self {
            pipe,
            translator,
            db: start.db,
            in_multi: false,
            safe: start,
            sent: start,
            batch,
            marker: None,
            replay_until: None,
            open: false,
            swapped: Vec::new(),
            forwarded: 0,
            skipped: BTreeMap::new(),
        }
    }

    /// Every batch from now on is one transaction ending with ferry's marker for the
    /// stream `replid` (see the module comment).
    pub fn with_marker(mut self, replid: String) -> Self {
        self.marker = Some(Marker::Source { replid });
        self
    }

    /// Like [`StreamApplier::with_marker`], for one shard stream of a cluster source: its
    /// field `stream` of the shards' marker, recording `replid` and the offset.
    pub fn with_shard_marker(mut self, stream: String, replid: String) -> Self {
        self.marker = Some(Marker::Shard { stream, replid });
        self
    }

    /// Each unit up to `offset` goes as its own batch, marked with its own end (see the
    /// module comment).
    pub fn replaying_until(mut self, offset: i64) -> Self {
        self.replay_until = Some(offset);
        self
    }

    /// Takes one command into the current batch.
    pub fn apply(&mut self, command: ReplCommand) -> Result<(), Error> {
        let offset = command.offset_after;
        if !command.is_protocol_only() {
            self.forward(command.args)?;
        }
        if !self.in_multi {
            self.safe = Mark {
                offset,
                db: self.db,
            };
        }
        Ok(())
    }

    fn forward(&mut self, args: Vec<Bytes>) -> Result<(), Error> {
        let name = args.first().cloned().unwrap_or_default();
        if name.eq_ignore_ascii_case(b"SELECT") {
            self.db = args
                .get(1)
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| {
                    Error::Migration("the source sent SELECT without a database number".into())
                })?;
            // Where the database lands on the target (`--db-map`).
            let target_db = self.translator.target_db(self.db);
            self.push(&[args[0].clone(), Bytes::from(target_db.to_string())]);
        } else if name.eq_ignore_ascii_case(b"MULTI") {
            self.in_multi = true;
            if self.marker.is_none() {
                self.push(&args);
            }
        } else if name.eq_ignore_ascii_case(b"EXEC") {
            self.in_multi = false;
            if self.marker.is_none() {
                self.push(&args);
            }
        } else {
            match self.translator.translate(self.db, args)? {
                Translated::Apply(commands) => {
                    for command in commands {
                        // As sent: its databases are the target's.
                        if command
                            .first()
                            .is_some_and(|n| n.eq_ignore_ascii_case(b"SWAPDB"))
                        {
                            self.note_swap(&command);
                        }
                        self.push(&command);
                    }
                }
                Translated::Skip { reason } => *self.skipped.entry(reason).or_default() += 1,
            }
        }
        Ok(())
    }

    fn push(&mut self, args: &[Bytes]) {
        if self.marker.is_some() && !self.open {
            self.batch.push_framing(&["MULTI"]);
            self.open = true;
        }
        self.batch.push(args);
        self.forwarded += 1;
    }

    /// A SWAPDB that involves the marker's database moves the marker out of it.
    fn note_swap(&mut self, args: &[Bytes]) {
        let db = |i: usize| {
            args.get(i)
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse::<u64>().ok())
        };
        if let (Some(a), Some(b)) = (db(1), db(2)) {
            for (this, other) in [(a, b), (b, a)] {
                if this == marker::DB && other != marker::DB && !self.swapped.contains(&other) {
                    self.swapped.push(other);
                }
            }
        }
    }

    /// The batch should go now: big enough, and not inside a source transaction (in marker
    /// mode a batch cannot end there).
    pub fn batch_full(&self) -> bool {
        let replaying = self.replay_until.is_some_and(|end| self.safe.offset <= end)
            && !self.in_multi
            && self.batch.replies > self.batch.framing;
        let full = self.batch.bytes() >= BATCH_BYTES
            || self.batch.replies.saturating_sub(self.batch.framing) >= BATCH_COMMANDS;
        replaying || (full && !(self.marker.is_some() && self.in_multi))
    }

    /// Hands the batch to the pipe, with the last safe point as its mark. In marker mode
    /// inside a source transaction it waits for the transaction's end (which the source
    /// sends right behind it).
    pub async fn flush(&mut self) -> Result<(), PipeError> {
        if self.marker.is_some() && self.in_multi {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.batch);
        let moved = self.safe != self.sent;
        // Inside the transaction when there is one; alone (one HSET is atomic) when
        // nothing was forwarded (PINGs, skipped commands).
        match (&self.marker, moved) {
            (Some(Marker::Source { replid }), true) => {
                let applied = Applied {
                    replid: replid.clone(),
                    offset: self.safe.offset,
                    db: self.safe.db,
                };
                let selected = self.translator.target_db(self.db);
                marker::push_write(&mut batch, &applied, selected, &self.swapped);
                self.swapped.clear();
            }
            (Some(Marker::Shard { stream, replid }), true) => {
                let applied = ShardApplied {
                    replid: replid.clone(),
                    offset: self.safe.offset,
                };
                let selected = self.translator.target_db(self.db);
                marker::push_shard_write(&mut batch, stream, &applied, selected);
            }
            _ => {}
        }
        if std::mem::take(&mut self.open) {
            batch.push_framing(&["EXEC"]);
        }
        if moved {
            batch.mark = Some(self.safe);
            self.sent = self.safe;
        }
        self.pipe.send(batch).await
    }

    /// The offset of the last command taken (inside a transaction: before its MULTI).
    pub fn position(&self) -> Mark {
        self.safe
    }

    /// What the translator did, for the final report.
    pub fn report_lines(&self) -> Vec<String> {
        self.translator.report_lines()
    }

    /// Commands skipped, by reason.
    pub fn skipped(&self) -> &BTreeMap<&'static str, u64> {
        &self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::client::Client;
    use crate::url::ServerUrl;
    use ferry_testkit::{Server, ServerKind};
    use std::io::{BufRead, BufReader, Write};
    use std::time::{Duration, Instant};

    use crate::transforms::commands::transform::PassThrough;

    /// Every command the server runs from now on, as `MONITOR` shows it (a transaction's
    /// commands at EXEC, between MULTI and EXEC), words joined by spaces.
    struct Monitor(BufReader<std::net::TcpStream>);

    impl Monitor {
        fn start(server: &Server) -> Monitor {
            let mut socket = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            socket.write_all(b"MONITOR\r\n").unwrap();
            let mut reader = BufReader::new(socket);
            let mut ok = String::new();
            reader.read_line(&mut ok).unwrap();
            assert_eq!(ok.trim(), "+OK");
            Monitor(reader)
        }

        /// Commands up to and including `last`.
        fn until(&mut self, last: &str) -> Vec<String> {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut seen = Vec::new();
            while Instant::now() < deadline {
                let mut line = String::new();
                self.0.read_line(&mut line).unwrap();
                // +1795714228.624269 [0 127.0.0.1:59304] "SET" "a" "1"
                let Some((_, quoted)) = line.trim_end().split_once("] ") else {
                    continue;
                };
                let words: Vec<&str> = quoted.split('"').filter(|w| !w.trim().is_empty()).collect();
                seen.push(words.join(" "));
                if seen.last().is_some_and(|c| c == last) {
                    return seen;
                }
            }
            panic!("{last:?} never ran: {seen:?}");
        }
    }

    fn command(words: &str, offset_after: i64) -> ReplCommand {
        ReplCommand {
            args: words
                .split(' ')
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect(),
            offset_after,
        }
    }

    #[tokio::test]
    async fn a_batch_is_one_transaction_ending_with_the_marker() {
        let server = Server::start(ServerKind::Valkey81).unwrap();
        let mut monitor = Monitor::start(&server);
        let url = ServerUrl::parse(&server.url()).unwrap();
        let client = Client::connect(&url, Duration::from_secs(5)).await.unwrap();
        let (reader, writer) = client.into_split();
        let pipe = Pipe::start(reader, writer, 1 << 20);
        let start = Mark { offset: 100, db: 0 };
        let mut applier =
            StreamApplier::new(pipe.clone(), Box::new(PassThrough), start).with_marker("r1".into());
        applier.apply(command("SET a 1", 110)).unwrap();
        applier.apply(command("MULTI", 120)).unwrap();
        applier.apply(command("INCR b", 130)).unwrap();
        // Inside the source's transaction the batch cannot end.
        assert!(!applier.batch_full());
        applier.flush().await.unwrap();
        applier.apply(command("EXEC", 140)).unwrap();
        applier.apply(command("SELECT 3", 150)).unwrap();
        applier.apply(command("SWAPDB 0 3", 160)).unwrap();
        applier.flush().await.unwrap();
        // Nothing forwarded (a PING): the marker alone.
        applier.apply(command("PING", 170)).unwrap();
        applier.flush().await.unwrap();
        pipe.barrier().await.unwrap();

        let marker = |offset: u32, db: u32| {
            format!("HSET ferry:migrate:applied replid r1 offset {offset} db {db}")
        };
        let ran = monitor.until(&marker(170, 3));
        let first = ran
            .iter()
            .position(|c| c == "SELECT 0")
            .expect("SELECT 0 ran");
        assert_eq!(
            ran[first..],
            [
                "SELECT 0",
                "MULTI",
                "SET a 1",
                "INCR b",
                "SELECT 3",
                "SWAPDB 0 3",
                // The marker SWAPDB carried into database 3 goes, the new one is in 0.
                "DEL ferry:migrate:applied",
                "SELECT 0",
                &marker(160, 3),
                "SELECT 3",
                "EXEC",
                "SELECT 0",
                &marker(170, 3),
            ],
            "{ran:?}"
        );
        assert_eq!(pipe.applied(), Some(Mark { offset: 170, db: 3 }));
        // Data commands only: the transaction and the marker are framing.
        assert_eq!(
            pipe.counters()
                .replies
                .load(std::sync::atomic::Ordering::Relaxed),
            4
        );
        // What the server holds: the data swapped into database 3, one marker in 0.
        let mut con = server.client();
        let (a, b): (String, i64) = redis::pipe()
            .cmd("SELECT")
            .arg(3)
            .ignore()
            .cmd("GET")
            .arg("a")
            .cmd("GET")
            .arg("b")
            .query(&mut con)
            .unwrap();
        assert_eq!((a.as_str(), b), ("1", 1));
        let stale: bool = redis::cmd("EXISTS")
            .arg("ferry:migrate:applied")
            .query(&mut con)
            .unwrap();
        assert!(!stale, "the marker SWAPDB carried into db 3 is left");
        let offset: String = redis::pipe()
            .cmd("SELECT")
            .arg(0)
            .ignore()
            .cmd("HGET")
            .arg("ferry:migrate:applied")
            .arg("offset")
            .query::<(String,)>(&mut con)
            .unwrap()
            .0;
        assert_eq!(offset, "170");
    }
}
