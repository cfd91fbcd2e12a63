//! A write load for tests of migrate, relay and verify: every data type, transactions,
//! scripts, expiries, deletes, database moves and swaps, stream consumer groups, and on
//! servers that have them hash field TTLs and vector sets.
//!
//! ```no_run
//! use std::sync::{atomic::{AtomicBool, Ordering}, Arc};
//! use ferry_testkit::{workload::Workload, Server, ServerKind};
//! let source = Server::start(ServerKind::Redis80)?;
//! let stop = Arc::new(AtomicBool::new(false));
//! let load = Workload::spawn(source.url(), source.kind(), stop.clone());
//! // … migrate while the load runs …
//! stop.store(true, Ordering::Relaxed);
//! let stats = load.join().expect("the load thread ends");
//! assert!(stats.total() > 0);
//! # anyhow::Ok(())
//! ```
//!
//! The sequence of operations and their keys is fixed by the seed. Arguments that name
//! stream entries (XACK, XCLAIM, XDEL) come from the server's replies. Keys are
//! `wl:<type>:<n>` in a bounded key space in databases 0, 1 and 2 (SWAPDB swaps 2 with 3,
//! FLUSHDB empties 2 only), so [`crate::dataset`] keys are never touched. Some expiries
//! are short, so keys and hash fields keep expiring while the load runs and for up to
//! [`SHORT_TTL_MAX`] after it stops; wait [`SHORT_TTLS_PASSED`] before comparing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Every short expiry the load sets (`EX`, `PX`, `EXAT` rounded up to a second, field
/// TTLs alike) ends within this of the command that set it.
pub const SHORT_TTL_MAX: Duration = Duration::from_secs(3);

/// How long after the load stops every short expiry has passed, with a margin for the
/// server's clock granularity.
pub const SHORT_TTLS_PASSED: Duration = Duration::from_millis(3_500);

use anyhow::{Context, Result};
use redis::{Connection, ErrorKind, RedisError, Value};
use serde::Serialize;

use crate::rng::Rng;
use crate::snapshot::{Snapshot, Value as SnapshotValue};
use crate::ServerKind;

/// The seed [`Workload::spawn`] uses.
pub const DEFAULT_SEED: u64 = 0x00fe_7272_10ad_5eed;
/// The databases the load writes to; 3 only ever receives database 2 through SWAPDB.
pub const DATABASES: [i64; 3] = [0, 1, 2];
/// Keys per type and database (fewer streams, so that their consumer groups get used).
const KEYS_PER_TYPE: u64 = 24;
const STREAMS: u64 = 6;
/// Fields per hash, elements per vector set.
const MEMBERS: u64 = 16;
/// Stream entry IDs remembered for XACK, XCLAIM and XDEL.
const REMEMBERED_IDS: usize = 64;
/// Operations between two checks of the stop flag (and two pacing sleeps).
const BATCH: usize = 25;

/// Writes a script makes: two keys, so that its effects arrive as a transaction.
const SCRIPT: &str = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Set,
    Append,
    Incr,
    SetEx,
    LPush,
    RPop,
    LSet,
    LTrim,
    SAdd,
    SRem,
    SPop,
    ZAdd,
    ZIncrBy,
    ZRem,
    HSet,
    HDel,
    HIncrBy,
    XAdd,
    XDel,
    XTrim,
    XGroupCreate,
    XReadGroup,
    XAck,
    XClaim,
    MultiExec,
    Eval,
    PExpire,
    ExpireAt,
    Persist,
    Del,
    Unlink,
    FlushDb,
    SwapDb,
    Move,
    Copy,
    Rename,
    RenameNx,
    HExpire,
    HSetEx,
    HPersist,
    VAdd,
    VRem,
    VSetAttr,
}

impl Op {
    /// The name stats are kept under.
    fn name(self) -> &'static str {
        match self {
            Op::Set => "SET",
            Op::Append => "APPEND",
            Op::Incr => "INCR",
            Op::SetEx => "SET EX",
            Op::LPush => "LPUSH",
            Op::RPop => "RPOP",
            Op::LSet => "LSET",
            Op::LTrim => "LTRIM",
            Op::SAdd => "SADD",
            Op::SRem => "SREM",
            Op::SPop => "SPOP",
            Op::ZAdd => "ZADD",
            Op::ZIncrBy => "ZINCRBY",
            Op::ZRem => "ZREM",
            Op::HSet => "HSET",
            Op::HDel => "HDEL",
            Op::HIncrBy => "HINCRBY",
            Op::XAdd => "XADD",
            Op::XDel => "XDEL",
            Op::XTrim => "XTRIM",
            Op::XGroupCreate => "XGROUP CREATE",
            Op::XReadGroup => "XREADGROUP",
            Op::XAck => "XACK",
            Op::XClaim => "XCLAIM",
            Op::MultiExec => "MULTI/EXEC",
            Op::Eval => "EVAL",
            Op::PExpire => "PEXPIRE",
            Op::ExpireAt => "EXPIREAT",
            Op::Persist => "PERSIST",
            Op::Del => "DEL",
            Op::Unlink => "UNLINK",
            Op::FlushDb => "FLUSHDB",
            Op::SwapDb => "SWAPDB",
            Op::Move => "MOVE",
            Op::Copy => "COPY",
            Op::Rename => "RENAME",
            Op::RenameNx => "RENAMENX",
            Op::HExpire => "HEXPIRE",
            Op::HSetEx => "HSETEX",
            Op::HPersist => "HPERSIST",
            Op::VAdd => "VADD",
            Op::VRem => "VREM",
            Op::VSetAttr => "VSETATTR",
        }
    }
}

/// Relative frequencies: FLUSHDB about once per 3,000 operations, SWAPDB once per 600.
fn weighted_ops(kind: ServerKind) -> Vec<(Op, u32)> {
    use Op::*;
    let mut ops = vec![
        (Set, 100),
        (Append, 40),
        (Incr, 60),
        (SetEx, 40),
        (LPush, 80),
        (RPop, 40),
        (LSet, 30),
        (LTrim, 20),
        (SAdd, 80),
        (SRem, 40),
        (SPop, 20),
        (ZAdd, 80),
        (ZIncrBy, 40),
        (ZRem, 30),
        (HSet, 80),
        (HDel, 30),
        (HIncrBy, 40),
        (XAdd, 80),
        (XDel, 15),
        (XTrim, 10),
        (XGroupCreate, 20),
        (XReadGroup, 40),
        (XAck, 30),
        (XClaim, 15),
        (MultiExec, 40),
        (Eval, 40),
        (PExpire, 40),
        (ExpireAt, 20),
        (Persist, 20),
        (Del, 25),
        (Unlink, 25),
        (FlushDb, 1),
        (SwapDb, 5),
        (Move, 20),
        (Rename, 20),
        (RenameNx, 15),
    ];
    // COPY came with Redis 6.2.
    if kind != ServerKind::Redis60 {
        ops.push((Copy, 20));
    }
    if kind.has_hash_field_ttl() {
        ops.extend([(HExpire, 40), (HSetEx, 40), (HPersist, 15)]);
    }
    if kind.has_vector_sets() {
        ops.extend([(VAdd, 60), (VRem, 20), (VSetAttr, 20)]);
    }
    ops
}

/// The kinds of keys; a key's name says its type, and no operation changes that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Str,
    Counter,
    List,
    Set,
    ZSet,
    Hash,
    Stream,
    VectorSet,
}

impl KeyType {
    fn prefix(self) -> &'static str {
        match self {
            KeyType::Str => "wl:str:",
            KeyType::Counter => "wl:counter:",
            KeyType::List => "wl:list:",
            KeyType::Set => "wl:set:",
            KeyType::ZSet => "wl:zset:",
            KeyType::Hash => "wl:hash:",
            KeyType::Stream => "wl:stream:",
            KeyType::VectorSet => "wl:vset:",
        }
    }
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkloadStats {
    /// Operations sent, by command (`MULTI/EXEC` and `EVAL` count once each).
    pub ops: BTreeMap<&'static str, u64>,
    /// Of those, the ones the server answered with an error, which change nothing: LSET
    /// on a list that is gone, XGROUP CREATE of a group that exists, …
    pub rejected: BTreeMap<&'static str, u64>,
    /// The first error reply per command, to tell an expected refusal from a command the
    /// server does not know.
    pub first_rejection: BTreeMap<&'static str, String>,
    /// Lost connections of a spawned load (it reconnects); the operation under way may or
    /// may not have been applied.
    pub connection_errors: u64,
    pub last_connection_error: Option<String>,
}

impl WorkloadStats {
    pub fn total(&self) -> u64 {
        self.ops.values().sum()
    }

    /// Operations the server applied (sent and not answered with an error).
    pub fn applied(&self, op: &str) -> u64 {
        self.ops.get(op).copied().unwrap_or(0) - self.rejected.get(op).copied().unwrap_or(0)
    }
}

/// A stream entry delivered to a consumer, for XACK/XCLAIM/XDEL.
#[derive(Debug, Clone)]
struct EntryRef {
    db: i64,
    key: String,
    id: String,
}

pub struct Workload {
    kind: ServerKind,
    rng: Rng,
    ops: Vec<(Op, u32)>,
    total_weight: u64,
    /// The database the connection has selected, once known.
    selected: Option<i64>,
    /// Entries read through XREADGROUP (maybe still pending) and added by XADD.
    delivered: VecDeque<EntryRef>,
    added: VecDeque<EntryRef>,
    /// The stream the last XADD went to.
    stream_key: String,
    /// Operations per second for a spawned load; `None` runs flat out.
    rate: Option<u32>,
    stats: WorkloadStats,
    /// Every operation in database 0 (see [`Workload::for_cluster`]).
    db0_only: bool,
    /// A hash tag in every key name (see [`Workload::with_key_tag`]).
    key_tag: Option<String>,
}

impl Workload {
    /// A load for a server of `kind`: it only sends commands that kind has.
    pub fn new(kind: ServerKind, seed: u64) -> Workload {
        let ops = weighted_ops(kind);
        let total_weight = ops.iter().map(|(_, w)| u64::from(*w)).sum();
        Workload {
            kind,
            rng: Rng::new(seed),
            ops,
            total_weight,
            selected: None,
            delivered: VecDeque::new(),
            added: VecDeque::new(),
            stream_key: String::new(),
            rate: Some(2_000),
            stats: WorkloadStats::default(),
            db0_only: false,
            key_tag: None,
        }
    }

    /// Puts `{tag}` in front of every key name: all keys then share one cluster slot, so
    /// the load can run against the one primary serving it (a cluster source's shard).
    pub fn with_key_tag(mut self, tag: &str) -> Workload {
        self.key_tag = Some(format!("{{{tag}}}"));
        self
    }

    /// Paces a spawned load to about `ops_per_second` (default 2,000; `None`: no limit).
    pub fn with_rate(mut self, ops_per_second: Option<u32>) -> Workload {
        self.rate = ops_per_second;
        self
    }

    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// Leaves out the operations named (as in [`WorkloadStats`], e.g. `"FLUSHDB"`): for a
    /// reader that documents it cannot follow them.
    pub fn without(mut self, names: &[&str]) -> Workload {
        self.ops
            .retain(|(op, _)| !names.iter().any(|n| n.eq_ignore_ascii_case(op.name())));
        self.total_weight = self.ops.iter().map(|(_, w)| u64::from(*w)).sum();
        self
    }

    /// The operations a cluster can take, in database 0 only: without those that touch
    /// other databases (FLUSHDB of db 2, SWAPDB, MOVE, COPY … DB) or keys of several slots
    /// at once (MULTI/EXEC, EVAL, RENAME). Multi-key DEL and UNLINK stay: their keys may
    /// be in different slots, which a cluster writer splits per key.
    pub fn for_cluster(self) -> Workload {
        let mut load = self.without(&[
            "FLUSHDB",
            "SWAPDB",
            "MOVE",
            "COPY",
            "MULTI/EXEC",
            "EVAL",
            "RENAME",
            "RENAMENX",
        ]);
        load.db0_only = true;
        load
    }

    /// The operations a cluster with several databases (Valkey 9 `cluster-databases`)
    /// can take: like [`Workload::for_cluster`], but over databases 0 to 2 with FLUSHDB
    /// and MOVE; SWAPDB stays out (refused in cluster mode), as do COPY (its two keys may
    /// be in different slots) and MULTI/EXEC.
    pub fn for_cluster_databases(self) -> Workload {
        let mut load = self.for_cluster();
        load.db0_only = false;
        let flushdb_and_move = Workload::new(load.kind, 0)
            .ops
            .into_iter()
            .filter(|(op, _)| matches!(op.name(), "FLUSHDB" | "MOVE"));
        load.ops.extend(flushdb_and_move);
        load.total_weight = load.ops.iter().map(|(_, w)| u64::from(*w)).sum();
        load
    }

    pub fn stats(&self) -> &WorkloadStats {
        &self.stats
    }

    /// Sends `ops` operations on `con`. Error replies are counted in
    /// [`WorkloadStats::rejected`]; a broken connection ends the run with an error.
    pub fn run_for(&mut self, con: &mut Connection, ops: usize) -> Result<()> {
        for _ in 0..ops {
            self.step(con)?;
        }
        Ok(())
    }

    /// Runs a load with [`DEFAULT_SEED`] on its own thread against `url` until `stop` is
    /// set; reconnects when the connection breaks (a restarted server, a cut link).
    pub fn spawn(
        url: impl Into<String>,
        kind: ServerKind,
        stop: Arc<AtomicBool>,
    ) -> JoinHandle<WorkloadStats> {
        Workload::new(kind, DEFAULT_SEED).start(url, stop)
    }

    /// Runs this load on its own thread, as [`Workload::spawn`] does.
    pub fn start(
        mut self,
        url: impl Into<String>,
        stop: Arc<AtomicBool>,
    ) -> JoinHandle<WorkloadStats> {
        let url = url.into();
        std::thread::spawn(move || {
            let mut con = None;
            let started = Instant::now();
            let mut done: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let connection = match con.as_mut() {
                    Some(connection) => connection,
                    None => match connect(&url) {
                        Ok(connection) => {
                            self.selected = None;
                            con.insert(connection)
                        }
                        Err(err) => {
                            self.connection_failed(&err);
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    },
                };
                if let Err(err) = self.run_for(connection, BATCH) {
                    self.connection_failed(&err);
                    con = None;
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                done += BATCH as u64;
                self.pace(started, done);
            }
            self.stats
        })
    }

    fn connection_failed(&mut self, err: &anyhow::Error) {
        self.stats.connection_errors += 1;
        self.stats.last_connection_error = Some(format!("{err:#}"));
    }

    fn pace(&self, started: Instant, done: u64) {
        if let Some(rate) = self.rate.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64(done as f64 / f64::from(rate));
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }

    fn pick_op(&mut self) -> Op {
        let mut ticket = self.rng.below(self.total_weight);
        for (op, weight) in &self.ops {
            let weight = u64::from(*weight);
            if ticket < weight {
                return *op;
            }
            ticket -= weight;
        }
        Op::Set
    }

    /// Database 0 half the time, 1 and 2 the rest.
    fn pick_db(&mut self) -> i64 {
        let drawn = self.rng.below(10);
        if self.db0_only {
            return 0;
        }
        match drawn {
            0..=4 => 0,
            5..=7 => 1,
            _ => 2,
        }
    }

    fn key(&mut self, key_type: KeyType) -> String {
        let count = match key_type {
            KeyType::Stream => STREAMS,
            _ => KEYS_PER_TYPE,
        };
        let tag = self.key_tag.as_deref().unwrap_or("");
        format!("{tag}{}{}", key_type.prefix(), self.rng.below(count))
    }

    fn member(&mut self, prefix: &str) -> String {
        format!("{prefix}{}", self.rng.below(MEMBERS))
    }

    fn value(&mut self) -> String {
        let len = 1 + self.rng.below(24) as usize;
        String::from_utf8_lossy(&self.rng.text(len, b"abcdefghij0123456789")).into_owned()
    }

    /// A key type for the generic key operations (DEL, RENAME, MOVE, expiries, …).
    fn any_key_type(&mut self) -> KeyType {
        let mut types = vec![
            KeyType::Str,
            KeyType::Counter,
            KeyType::List,
            KeyType::Set,
            KeyType::ZSet,
            KeyType::Hash,
            KeyType::Stream,
        ];
        if self.kind.has_vector_sets() {
            types.push(KeyType::VectorSet);
        }
        types[self.rng.below(types.len() as u64) as usize]
    }

    /// An expiry in milliseconds: a quarter of them short enough to pass during a test.
    /// A TTL in ms: a quarter short (under 2 s, so that even whole seconds rounded up
    /// end within [`SHORT_TTL_MAX`]), the rest a minute or more.
    fn ttl_ms(&mut self) -> u64 {
        if self.rng.below(4) == 0 {
            200 + self.rng.below(1_800)
        } else {
            60_000 + self.rng.below(540_000)
        }
    }

    fn select(&mut self, con: &mut Connection, db: i64) -> redis::RedisResult<()> {
        if self.selected != Some(db) {
            redis::cmd("SELECT").arg(db).query::<()>(con)?;
            self.selected = Some(db);
        }
        Ok(())
    }

    /// One operation: picks it and its keys (always drawing the same numbers from the
    /// generator, so the sequence does not depend on replies), then sends it.
    fn step(&mut self, con: &mut Connection) -> Result<()> {
        let op = self.pick_op();
        let db = self.pick_db();
        let result = self.send(con, op, db);
        *self.stats.ops.entry(op.name()).or_default() += 1;
        match result {
            Ok(()) => Ok(()),
            Err(err) if is_refusal(&err) => {
                *self.stats.rejected.entry(op.name()).or_default() += 1;
                self.stats
                    .first_rejection
                    .entry(op.name())
                    .or_insert_with(|| err.to_string());
                Ok(())
            }
            Err(err) => Err(anyhow::Error::new(err).context(format!("{} failed", op.name()))),
        }
    }

    fn send(&mut self, con: &mut Connection, op: Op, db: i64) -> redis::RedisResult<()> {
        self.select(con, db)?;
        let mut cmd = self.command(op, db);
        let reply: Value = match &mut cmd {
            Command::One(cmd) => cmd.query(con)?,
            Command::Pipe(pipe) => pipe.query(con)?,
        };
        match op {
            Op::XAdd => {
                if let Value::BulkString(id) = &reply {
                    let key = self.stream_key.clone();
                    remember(
                        &mut self.added,
                        EntryRef {
                            db,
                            key,
                            id: String::from_utf8_lossy(id).into_owned(),
                        },
                    );
                }
            }
            Op::XReadGroup => {
                for (key, id) in delivered_ids(&reply) {
                    remember(&mut self.delivered, EntryRef { db, key, id });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Builds the command for `op`. Draws from the generator in a fixed pattern per op.
    fn command(&mut self, op: Op, db: i64) -> Command {
        let c = |name: &str| redis::cmd(name);
        let one = Command::One;
        match op {
            Op::Set => {
                let (key, value) = (self.key(KeyType::Str), self.value());
                one(c("SET").arg(key).arg(value).to_owned())
            }
            Op::Append => {
                let (key, value) = (self.key(KeyType::Str), self.value());
                one(c("APPEND").arg(key).arg(value).to_owned())
            }
            Op::Incr => one(c("INCR").arg(self.key(KeyType::Counter)).to_owned()),
            Op::SetEx => {
                let (key, value) = (self.key(KeyType::Str), self.value());
                let secs = 1 + self.ttl_ms() / 1000;
                one(c("SET").arg(key).arg(value).arg("EX").arg(secs).to_owned())
            }
            Op::LPush => {
                let (key, a, b) = (self.key(KeyType::List), self.value(), self.value());
                one(c("LPUSH").arg(key).arg(a).arg(b).to_owned())
            }
            Op::RPop => one(c("RPOP").arg(self.key(KeyType::List)).to_owned()),
            Op::LSet => {
                let (key, index, value) =
                    (self.key(KeyType::List), self.rng.below(4), self.value());
                one(c("LSET").arg(key).arg(index).arg(value).to_owned())
            }
            Op::LTrim => {
                let (key, keep) = (self.key(KeyType::List), 5 + self.rng.below(20));
                one(c("LTRIM").arg(key).arg(0).arg(keep).to_owned())
            }
            Op::SAdd => {
                let (key, a, b) = (self.key(KeyType::Set), self.member("m"), self.member("m"));
                one(c("SADD").arg(key).arg(a).arg(b).to_owned())
            }
            Op::SRem => {
                let (key, m) = (self.key(KeyType::Set), self.member("m"));
                one(c("SREM").arg(key).arg(m).to_owned())
            }
            Op::SPop => one(c("SPOP").arg(self.key(KeyType::Set)).to_owned()),
            Op::ZAdd => {
                let (key, m) = (self.key(KeyType::ZSet), self.member("m"));
                let score = self.rng.unit() * 1000.0;
                one(c("ZADD").arg(key).arg(score).arg(m).to_owned())
            }
            Op::ZIncrBy => {
                let (key, m, by) = (self.key(KeyType::ZSet), self.member("m"), self.rng.unit());
                one(c("ZINCRBY").arg(key).arg(by).arg(m).to_owned())
            }
            Op::ZRem => {
                let (key, m) = (self.key(KeyType::ZSet), self.member("m"));
                one(c("ZREM").arg(key).arg(m).to_owned())
            }
            Op::HSet => {
                let (key, f, v) = (self.key(KeyType::Hash), self.member("f"), self.value());
                one(c("HSET").arg(key).arg(f).arg(v).to_owned())
            }
            Op::HDel => {
                let (key, f) = (self.key(KeyType::Hash), self.member("f"));
                one(c("HDEL").arg(key).arg(f).to_owned())
            }
            Op::HIncrBy => {
                let (key, f) = (self.key(KeyType::Hash), self.member("n"));
                let by = self.rng.below(100) as i64 - 50;
                one(c("HINCRBY").arg(key).arg(f).arg(by).to_owned())
            }
            Op::XAdd => {
                let (key, v) = (self.key(KeyType::Stream), self.value());
                self.stream_key.clone_from(&key);
                let capped = self.rng.below(4) == 0;
                let mut cmd = c("XADD");
                cmd.arg(key);
                if capped {
                    cmd.arg("MAXLEN").arg("~").arg(100);
                }
                one(cmd.arg("*").arg("v").arg(v).to_owned())
            }
            Op::XDel => {
                let key = self.key(KeyType::Stream);
                let (key, id) = take_or(&mut self.added, db, key);
                one(c("XDEL").arg(key).arg(id).to_owned())
            }
            Op::XTrim => {
                let (key, len) = (self.key(KeyType::Stream), 20 + self.rng.below(30));
                one(c("XTRIM").arg(key).arg("MAXLEN").arg(len).to_owned())
            }
            Op::XGroupCreate => {
                let key = self.key(KeyType::Stream);
                one(c("XGROUP")
                    .arg("CREATE")
                    .arg(key)
                    .arg("g")
                    .arg("0")
                    .arg("MKSTREAM")
                    .to_owned())
            }
            Op::XReadGroup => {
                let (key, consumer) = (self.key(KeyType::Stream), self.member("c"));
                one(c("XREADGROUP")
                    .arg("GROUP")
                    .arg("g")
                    .arg(consumer)
                    .arg("COUNT")
                    .arg(3)
                    .arg("STREAMS")
                    .arg(key)
                    .arg(">")
                    .to_owned())
            }
            Op::XAck => {
                let key = self.key(KeyType::Stream);
                let (key, id) = take_or(&mut self.delivered, db, key);
                one(c("XACK").arg(key).arg("g").arg(id).to_owned())
            }
            Op::XClaim => {
                let (key, consumer) = (self.key(KeyType::Stream), self.member("c"));
                let (key, id) = take_or(&mut self.delivered, db, key);
                one(c("XCLAIM")
                    .arg(key)
                    .arg("g")
                    .arg(consumer)
                    .arg(0)
                    .arg(id)
                    .to_owned())
            }
            Op::MultiExec => {
                let (counter, list, hash) = (
                    self.key(KeyType::Counter),
                    self.key(KeyType::List),
                    self.key(KeyType::Hash),
                );
                let (v, f) = (self.value(), self.member("n"));
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .cmd("INCRBY")
                    .arg(counter)
                    .arg(3)
                    .cmd("RPUSH")
                    .arg(list)
                    .arg(v)
                    .cmd("HINCRBY")
                    .arg(hash)
                    .arg(f)
                    .arg(1);
                Command::Pipe(pipe)
            }
            Op::Eval => {
                let (text, counter, v) = (
                    self.key(KeyType::Str),
                    self.key(KeyType::Counter),
                    self.value(),
                );
                one(c("EVAL")
                    .arg(SCRIPT)
                    .arg(2)
                    .arg(text)
                    .arg(counter)
                    .arg(v)
                    .to_owned())
            }
            Op::PExpire => {
                let key_type = self.any_key_type();
                let (key, ms) = (self.key(key_type), self.ttl_ms());
                one(c("PEXPIRE").arg(key).arg(ms).to_owned())
            }
            Op::ExpireAt => {
                let key_type = self.any_key_type();
                let (key, ms) = (self.key(key_type), self.ttl_ms());
                let at = now_ms().saturating_add(ms) / 1000 + 1;
                one(c("EXPIREAT").arg(key).arg(at).to_owned())
            }
            Op::Persist => {
                let key_type = self.any_key_type();
                one(c("PERSIST").arg(self.key(key_type)).to_owned())
            }
            Op::Del | Op::Unlink => {
                let key_type = self.any_key_type();
                let (a, b) = (self.key(key_type), self.key(key_type));
                one(c(if op == Op::Del { "DEL" } else { "UNLINK" })
                    .arg(a)
                    .arg(b)
                    .to_owned())
            }
            Op::FlushDb => {
                // Only database 2 is ever emptied; the pipeline selects it and comes back.
                let mut pipe = redis::pipe();
                pipe.cmd("SELECT")
                    .arg(2)
                    .cmd("FLUSHDB")
                    .cmd("SELECT")
                    .arg(db);
                Command::Pipe(pipe)
            }
            Op::SwapDb => one(c("SWAPDB").arg(2).arg(3).to_owned()),
            Op::Move => {
                let key_type = self.any_key_type();
                let key = self.key(key_type);
                // One of the two other databases: MOVE refuses the current one.
                let to = DATABASES[(db as usize + 1 + self.rng.below(2) as usize) % 3];
                one(c("MOVE").arg(key).arg(to).to_owned())
            }
            Op::Copy => {
                let key_type = self.any_key_type();
                let (from, to) = (self.key(key_type), self.key(key_type));
                let to_db = DATABASES[self.rng.below(DATABASES.len() as u64) as usize];
                let replace = self.rng.below(2) == 0;
                let mut cmd = c("COPY");
                cmd.arg(from).arg(to).arg("DB").arg(to_db);
                if replace {
                    cmd.arg("REPLACE");
                }
                one(cmd)
            }
            Op::Rename | Op::RenameNx => {
                let key_type = self.any_key_type();
                let (from, to) = (self.key(key_type), self.key(key_type));
                let name = if op == Op::Rename {
                    "RENAME"
                } else {
                    "RENAMENX"
                };
                one(c(name).arg(from).arg(to).to_owned())
            }
            Op::HExpire => {
                let (key, f) = (self.key(KeyType::Hash), self.member("f"));
                let secs = 1 + self.ttl_ms() / 1000;
                one(c("HEXPIRE")
                    .arg(key)
                    .arg(secs)
                    .arg("FIELDS")
                    .arg(1)
                    .arg(f)
                    .to_owned())
            }
            Op::HSetEx => {
                let key = self.key(KeyType::Hash);
                let (fa, va, fb, vb) = (
                    self.member("f"),
                    self.value(),
                    self.member("f"),
                    self.value(),
                );
                let ms = self.ttl_ms();
                let mut cmd = c("HSETEX");
                cmd.arg(key);
                match self.rng.below(6) {
                    0 => cmd.arg("EX").arg(ms / 1000 + 1),
                    1 => cmd.arg("PX").arg(ms),
                    2 => cmd.arg("EXAT").arg(now_ms().saturating_add(ms) / 1000 + 1),
                    3 => cmd.arg("PXAT").arg(now_ms().saturating_add(ms)),
                    4 => cmd.arg("KEEPTTL"),
                    _ => &mut cmd,
                };
                // Two distinct fields: HSETEX refuses none, but the same one twice is odd.
                let fb = if fb == fa { format!("{fb}x") } else { fb };
                one(cmd
                    .arg("FIELDS")
                    .arg(2)
                    .arg(fa)
                    .arg(va)
                    .arg(fb)
                    .arg(vb)
                    .to_owned())
            }
            Op::HPersist => {
                let (key, f) = (self.key(KeyType::Hash), self.member("f"));
                one(c("HPERSIST")
                    .arg(key)
                    .arg("FIELDS")
                    .arg(1)
                    .arg(f)
                    .to_owned())
            }
            Op::VAdd => {
                let key = self.key(KeyType::VectorSet);
                let vector = [self.rng.unit(), self.rng.unit(), self.rng.unit()];
                let element = self.member("e");
                let attributes = self.rng.below(3) == 0;
                let mut cmd = c("VADD");
                cmd.arg(key)
                    .arg("VALUES")
                    .arg(3)
                    .arg(&vector[..])
                    .arg(&element);
                if attributes {
                    cmd.arg("SETATTR").arg(format!(r#"{{"e":"{element}"}}"#));
                }
                one(cmd)
            }
            Op::VRem => {
                let (key, e) = (self.key(KeyType::VectorSet), self.member("e"));
                one(c("VREM").arg(key).arg(e).to_owned())
            }
            Op::VSetAttr => {
                let (key, e, n) = (
                    self.key(KeyType::VectorSet),
                    self.member("e"),
                    self.rng.below(1000),
                );
                one(c("VSETATTR")
                    .arg(key)
                    .arg(e)
                    .arg(format!(r#"{{"n":{n}}}"#))
                    .to_owned())
            }
        }
    }
}

enum Command {
    One(redis::Cmd),
    Pipe(redis::Pipeline),
}

fn connect(url: &str) -> Result<Connection> {
    let client = redis::Client::open(url).with_context(|| format!("bad URL {url}"))?;
    let con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .with_context(|| format!("cannot connect to {url}"))?;
    con.set_read_timeout(Some(Duration::from_secs(10)))?;
    con.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(con)
}

/// An error reply (the server refused this command) rather than a broken connection.
fn is_refusal(err: &RedisError) -> bool {
    matches!(err.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
        && !err.is_connection_dropped()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn remember(list: &mut VecDeque<EntryRef>, entry: EntryRef) {
    if list.len() == REMEMBERED_IDS {
        list.pop_front();
    }
    list.push_back(entry);
}

/// The oldest remembered entry of database `db`, or `key` with an ID that matches nothing
/// (the command is still sent, so the sequence stays the same).
fn take_or(list: &mut VecDeque<EntryRef>, db: i64, key: String) -> (String, String) {
    match list.iter().position(|e| e.db == db) {
        Some(at) => {
            let entry = list.remove(at).expect("position is in range");
            (entry.key, entry.id)
        }
        None => (key, "0-1".to_owned()),
    }
}

/// (stream, entry ID) pairs of an XREADGROUP reply: `[[stream, [[id, fields], …]], …]`.
fn delivered_ids(reply: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let mut ids = Vec::new();
    let Value::Array(streams) = reply else {
        return ids;
    };
    for stream in streams {
        let Value::Array(parts) = stream else {
            continue;
        };
        let (Some(key), Some(Value::Array(entries))) = (parts.first().and_then(text), parts.get(1))
        else {
            continue;
        };
        for entry in entries {
            if let Value::Array(fields) = entry {
                if let Some(id) = fields.first().and_then(text) {
                    ids.push((key.clone(), id));
                }
            }
        }
    }
    ids
}

/// Leaves out of `snapshot` the consumer-group state that Redis does not replicate, so
/// that a primary and anything that follows its replication stream (a native replica,
/// ferry) compare equal. Apply it to both sides. Seen with this load on real servers:
/// - Redis 7.0 propagates XREADGROUP as `XCLAIM … LASTID` without the group's
///   entries-read, so a replica reports it unknown (nil) where the primary counts it.
/// - Redis 8.0 creates a consumer for an XREADGROUP that delivers nothing without
///   propagating anything, so a replica lacks that consumer.
///
/// Entries-read is dropped, and consumers that own no pending entry.
pub fn forget_unreplicated_group_state(snapshot: &mut Snapshot) {
    let streams = snapshot
        .databases
        .values_mut()
        .flat_map(|keys| keys.values_mut())
        .filter_map(|entry| match &mut entry.value {
            SnapshotValue::Stream(stream) => Some(stream),
            _ => None,
        });
    for stream in streams {
        for group in stream.groups.values_mut() {
            group.entries_read = None;
            group.consumers.retain(|_, pending| *pending > 0);
        }
    }
}

/// Writes of [`spawn_heavy_writes`] per round, and the pause between rounds.
const HEAVY_PER_ROUND: u64 = 150;
const HEAVY_PAUSE: Duration = Duration::from_millis(100);

/// A load heavy in bytes rather than in kinds: about 1.5 MB/s of 1 KiB values (each
/// different) over 4,000 keys `heavy:N`, on `con` until `stop` is set or the connection
/// fails. What fills a replica's output buffer during a long full sync. Returns the writes
/// made.
pub fn spawn_heavy_writes(mut con: Connection, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let value = "x".repeat(1024);
        let mut written = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let mut pipe = redis::pipe();
            for _ in 0..HEAVY_PER_ROUND {
                pipe.cmd("SET")
                    .arg(format!("heavy:{}", written % 4000))
                    .arg(format!("{written}:{value}"))
                    .ignore();
                written += 1;
            }
            if pipe.query::<()>(&mut con).is_err() {
                break;
            }
            std::thread::sleep(HEAVY_PAUSE);
        }
        written
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_leaves_the_named_operations_out() {
        let load = Workload::new(ServerKind::Redis80, DEFAULT_SEED).without(&["flushdb", "SWAPDB"]);
        assert!(load
            .ops
            .iter()
            .all(|(op, _)| !matches!(op, Op::FlushDb | Op::SwapDb)));
        let all = Workload::new(ServerKind::Redis80, DEFAULT_SEED);
        assert_eq!(load.ops.len() + 2, all.ops.len());
        let removed = 1 + 5;
        assert_eq!(load.total_weight + removed, all.total_weight);
    }
}
