//! `ferry migrate --source-aof`: append-only files written by real Redis servers (7.0
//! and 8.0 `appendonlydir`s with the base as RDB or as AOF, after BGREWRITEAOF and with
//! an incremental file; Redis 6.0 single files) copied into Valkey 8.1, which must end
//! holding what the server that wrote them holds (as the policies promise). Broken
//! AOFs end with one line naming the file and the byte.

use crate::support::migrate::{assert_as_policies_promise, simple_load};
use crate::support::{ferry, path};
use ferry_testkit::expect::{FieldTtl, VectorSets};
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::workload::{Workload, SHORT_TTLS_PASSED};
use ferry_testkit::{dataset, Server, ServerKind};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// A server that writes every command to its AOF before answering.
/// On 7.0+ the AOF also carries `#TS:` annotations, which the loader skips.
fn aof_server(kind: ServerKind, preamble: bool) -> Server {
    let preamble = if preamble { "yes" } else { "no" };
    let mut args = vec![
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--aof-use-rdb-preamble",
        preamble,
    ];
    if kind != ServerKind::Redis60 {
        args.extend(["--aof-timestamp-enabled", "yes"]);
    }
    Server::start_with_args(kind, &args).unwrap()
}

fn info_field(server: &Server, name: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(&mut server.client())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// BGREWRITEAOF, and its end: the data so far is the new base.
fn rewrite(server: &Server) {
    // A rewrite the server scheduled itself at startup may still run.
    wait_no_rewrite(server);
    redis::cmd("BGREWRITEAOF")
        .query::<String>(&mut server.client())
        .unwrap();
    wait_no_rewrite(server);
    assert_eq!(
        info_field(server, "aof_last_bgrewrite_status"),
        "ok",
        "{}",
        server.log_tail(200)
    );
}

fn wait_no_rewrite(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while info_field(server, "aof_rewrite_in_progress") != "0"
        || info_field(server, "aof_rewrite_scheduled") != "0"
    {
        assert!(Instant::now() < deadline, "the AOF rewrite never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every type, a rewrite, then writes after it (the incremental part): the write load of
/// every type, the transactions, scripts, moves and swaps of `simple_load`. Returns what
/// the server holds once every short TTL has passed (reading it expires them there, and
/// the server appends their DELs).
fn write_history(server: &Server, preamble: bool) -> Snapshot {
    dataset::populate(server).unwrap();
    if server.kind() == ServerKind::Redis80 && !preamble {
        // Redis 8.0.2 crashes rewriting a vector set as commands (its module has no AOF
        // rewrite: the child dies in rewriteModuleObject with signal 11), so such a base
        // holds none; the writes after the rewrite add vector sets again.
        delete_vector_sets(server);
    }
    rewrite(server);
    let mut con = server.client();
    Workload::new(server.kind(), 7)
        .run_for(&mut con, 3_000)
        .unwrap();
    simple_load(server, 1);
    std::thread::sleep(SHORT_TTLS_PASSED);
    Snapshot::capture(server).unwrap()
}

fn delete_vector_sets(server: &Server) {
    let mut con = server.client();
    for db in 0..16 {
        redis::cmd("SELECT").arg(db).query::<()>(&mut con).unwrap();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("TYPE")
                .arg("vectorset")
                .arg("COUNT")
                .arg(1000)
                .query(&mut con)
                .unwrap();
            for key in keys {
                redis::cmd("DEL").arg(key).query::<()>(&mut con).unwrap();
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
}

/// A copy of the server's AOF (`name`: the dir or file in its data folder), taken while
/// it runs: with `appendfsync always` every answered write is in it.
fn copy_aof(server: &Server, name: &str, into: &Path) -> PathBuf {
    let from = server.dir().join(name);
    let to = into.join(name);
    if from.is_dir() {
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    } else {
        std::fs::copy(&from, &to).unwrap();
    }
    to
}

fn policies(kind: ServerKind) -> (Vec<&'static str>, (FieldTtl, VectorSets)) {
    match kind {
        ServerKind::Redis80 => (
            vec!["--vector-set", "skip", "--hash-field-ttl", "persist"],
            (FieldTtl::Persist, VectorSets::Remove),
        ),
        _ => (Vec::new(), (FieldTtl::Keep, VectorSets::Remove)),
    }
}

fn migrate_aof(aof: &Path, target: &Server, extra: &[&str]) -> Output {
    let mut args = vec![
        "migrate".to_owned(),
        "--source-aof".to_owned(),
        path(aof),
        "--target".to_owned(),
        target.url(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    ferry(&args)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The whole case: history on `kind`, its AOF copied, loaded into Valkey 8.1, compared.
/// Returns ferry's log.
fn aof_reaches_valkey(kind: ServerKind, preamble: bool, name: &str) -> String {
    let source = aof_server(kind, preamble);
    let before = write_history(&source, preamble);
    let dir = tempfile::tempdir().unwrap();
    let aof = copy_aof(&source, name, dir.path());
    assert_inspect_shows_the_history(&aof, kind, preamble);
    if kind != ServerKind::Redis60 {
        let incr = std::fs::read(incr_file(&aof)).unwrap();
        assert!(
            incr.windows(5).any(|w| w == b"\n#TS:"),
            "no annotation to skip"
        );
    }
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let (flags, promised) = policies(kind);
    let output = migrate_aof(&aof, &target, &flags);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    let actual = Snapshot::capture(&target).unwrap();
    let between = format!("{kind} AOF (preamble {preamble}) -> valkey-8.1");
    assert_as_policies_promise(
        &before,
        actual,
        promised,
        &DiffOptions::new(),
        &between,
        &log,
    );
    log
}

/// `ferry inspect --json` on the copy: the base as its server wrote it (an RDB of the
/// server's version, or commands), then the writes after the rewrite.
fn assert_inspect_shows_the_history(aof: &Path, kind: ServerKind, preamble: bool) {
    let output = ferry(&["inspect", "--json", &path(aof)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let files = report["files"].as_array().unwrap();
    let rdb_version = match kind {
        ServerKind::Redis60 => 9,
        ServerKind::Redis70 => 10,
        _ => 12,
    };
    match preamble {
        true => {
            assert_eq!(report["base"]["rdb_version"], rdb_version, "{report:#}");
            assert!(report["base"]["keys"].as_u64().unwrap() > 100, "{report:#}");
        }
        false => {
            assert!(report["base"].is_null(), "{report:#}");
            assert_eq!(files[0]["rdb_bytes"], 0, "{report:#}");
            // The rewrite wrote the dataset as commands.
            assert!(
                files[0]["total_commands"].as_u64().unwrap() > 100,
                "{report:#}"
            );
        }
    }
    assert_eq!(files[0]["kind"], "base", "{report:#}");
    // The writes after the rewrite: an incremental file, or the single file's tail.
    let after = files.last().unwrap();
    for name in ["MULTI", "EXEC", "SELECT", "SWAPDB", "FLUSHDB"] {
        assert!(
            after["commands"][name].as_u64().unwrap_or(0) > 0,
            "{name}: {report:#}"
        );
    }
    if kind != ServerKind::Redis60 {
        assert_eq!(files.len(), 2, "{report:#}");
        assert_eq!(after["kind"], "incremental", "{report:#}");
    }
    let total: u64 = files
        .iter()
        .map(|f| f["total_commands"].as_u64().unwrap())
        .sum();
    assert_eq!(report["total_commands"], total, "{report:#}");
    assert!(total > 3000, "{report:#}");
}

fn assert_read_rdb_base(log: &str, yes: bool) {
    assert_eq!(log.contains("RDB part done"), yes, "{log}");
}

#[test]
fn redis_7_0_dir_with_rdb_base_and_increments() {
    let log = aof_reaches_valkey(ServerKind::Redis70, true, "appendonlydir");
    assert_read_rdb_base(&log, true);
    assert!(log.contains(".incr.aof: "), "{log}");
}

#[test]
fn redis_7_0_dir_with_aof_base() {
    let log = aof_reaches_valkey(ServerKind::Redis70, false, "appendonlydir");
    assert_read_rdb_base(&log, false);
    assert!(log.contains(".base.aof: "), "{log}");
}

/// The base is RDB 12, which no Valkey loads.
#[test]
fn redis_8_0_dir_with_rdb_12_base_and_increments() {
    let log = aof_reaches_valkey(ServerKind::Redis80, true, "appendonlydir");
    assert_read_rdb_base(&log, true);
}

#[test]
fn redis_8_0_dir_with_aof_base() {
    let log = aof_reaches_valkey(ServerKind::Redis80, false, "appendonlydir");
    assert_read_rdb_base(&log, false);
}

/// Before 7.0: one file, an RDB and the commands after it.
#[test]
fn redis_6_0_single_file_with_rdb_preamble() {
    let log = aof_reaches_valkey(ServerKind::Redis60, true, "appendonly.aof");
    assert_read_rdb_base(&log, true);
}

#[test]
fn redis_6_0_single_file_of_commands() {
    let log = aof_reaches_valkey(ServerKind::Redis60, false, "appendonly.aof");
    assert_read_rdb_base(&log, false);
}

/// A small Redis 7.0 AOF dir (rewritten, then a few writes in the incremental file).
fn small_dir(into: &Path) -> PathBuf {
    let source = aof_server(ServerKind::Redis70, true);
    let mut con = source.client();
    redis::cmd("SET")
        .arg("a")
        .arg("1")
        .query::<()>(&mut con)
        .unwrap();
    rewrite(&source);
    for i in 0..10 {
        redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query::<()>(&mut con)
            .unwrap();
    }
    copy_aof(&source, "appendonlydir", into)
}

fn incr_file(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .max()
        .unwrap()
}

fn failure_line(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    let log = stderr(output);
    log.lines().last().unwrap_or_default().to_owned()
}

#[test]
fn broken_aofs_end_with_one_line_naming_file_and_byte() {
    let work = tempfile::tempdir().unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();

    // A file the manifest names is missing.
    let dir = small_dir(&work.path().join("missing"));
    let incr = incr_file(&dir);
    std::fs::remove_file(&incr).unwrap();
    let line = failure_line(&migrate_aof(&dir, &target, &[]));
    assert!(
        line.contains(&format!("names {}, which is missing", incr.display())),
        "{line}"
    );

    // A corrupt manifest.
    let dir = small_dir(&work.path().join("manifest"));
    let manifest = dir.join("appendonly.aof.manifest");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("file x seq 9\n");
    std::fs::write(&manifest, text.as_bytes()).unwrap();
    let line = failure_line(&migrate_aof(&dir, &target, &[]));
    let lines = text.lines().count();
    assert!(
        line.contains(&format!(
            "{} line {lines}: expected `file <name>",
            manifest.display()
        )),
        "{line}"
    );

    // A tail cut inside a command.
    let dir = small_dir(&work.path().join("cut"));
    let incr = incr_file(&dir);
    let bytes = std::fs::read(&incr).unwrap();
    std::fs::write(&incr, &bytes[..bytes.len() - 3]).unwrap();
    let last = bytes.windows(2).rposition(|w| w == b"*3").unwrap();
    let expected = format!("{} ends inside a command at byte {last}", incr.display());
    let line = failure_line(&migrate_aof(&dir, &target, &["--flush-target"]));
    assert!(line.contains(&expected), "{line}");
    // inspect says the same.
    let line = failure_line(&ferry(&["inspect", &path(&dir)]));
    assert!(line.contains(&expected), "{line}");

    // A byte that starts no command.
    let dir = small_dir(&work.path().join("garbage"));
    let incr = incr_file(&dir);
    let mut bytes = std::fs::read(&incr).unwrap();
    let at = bytes.len();
    bytes.extend_from_slice(b"?junk\r\n");
    std::fs::write(&incr, &bytes).unwrap();
    let line = failure_line(&migrate_aof(&dir, &target, &["--flush-target"]));
    assert!(
        line.contains(&format!(
            "{} at byte {at}: expected a command array ('*'), found byte 0x3f",
            incr.display()
        )),
        "{line}"
    );
    assert!(!line.contains("panicked"), "{line}");
}

/// The target's emptiness is checked as for a server source.
#[test]
fn a_non_empty_target_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let dir = small_dir(work.path());
    let target = Server::start(ServerKind::Valkey81).unwrap();
    redis::cmd("SET")
        .arg("there")
        .arg("1")
        .query::<()>(&mut target.client())
        .unwrap();
    let line = failure_line(&migrate_aof(&dir, &target, &[]));
    assert!(line.contains("is not empty (1 keys: db0 1)"), "{line}");
    // The manifest stands for its directory.
    let manifest = dir.join("appendonly.aof.manifest");
    let output = migrate_aof(&manifest, &target, &["--flush-target"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut target.client())
        .unwrap();
    assert_eq!(keys.len(), 11, "{keys:?}");
}
