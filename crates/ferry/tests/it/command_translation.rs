//! The command translator against real servers: every write command Redis 8.0 has and a
//! Valkey target lacks is translated into commands the target accepts, and a Redis 8.0
//! replication stream, translated and applied to Valkey 8.1 and 9.1, leaves the data the
//! policies promise.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::support::observer::Observer;
use bytes::Bytes;
use ferry::policy::{HashFieldTtlPolicy, Policies, VectorSetPolicy};
use ferry::target::Target;
use ferry::transforms::commands::{CommandTranslator, Translated};
use ferry_testkit::{Server, ServerKind};

const TARGETS: [ServerKind; 3] = [
    ServerKind::Valkey80,
    ServerKind::Valkey81,
    ServerKind::Valkey91,
];
const HASH_POLICIES: [HashFieldTtlPolicy; 3] = [
    HashFieldTtlPolicy::Fail,
    HashFieldTtlPolicy::Persist,
    HashFieldTtlPolicy::DropField,
];

fn vector_policies() -> [VectorSetPolicy; 3] {
    [
        VectorSetPolicy::Fail,
        VectorSetPolicy::Skip,
        VectorSetPolicy::Export("vectors.jsonl".into()),
    ]
}

/// Each command's name and flags, from `COMMAND`.
fn command_table(server: &Server) -> HashMap<String, Vec<String>> {
    let reply: redis::Value = redis::cmd("COMMAND")
        .query(&mut server.client())
        .expect("COMMAND");
    let redis::Value::Array(entries) = reply else {
        panic!("COMMAND replied {reply:?}");
    };
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).to_lowercase(),
        redis::Value::SimpleString(s) => s.to_lowercase(),
        other => panic!("unexpected {other:?} in COMMAND"),
    };
    entries
        .iter()
        .map(|entry| {
            let redis::Value::Array(fields) = entry else {
                panic!("COMMAND entry {entry:?}");
            };
            let flags = match &fields[2] {
                redis::Value::Array(flags) => flags.iter().map(text).collect(),
                redis::Value::Set(flags) => flags.iter().map(text).collect(),
                other => panic!("flags {other:?}"),
            };
            (text(&fields[0]), flags)
        })
        .collect()
}

fn bytes_args(args: &[&str]) -> Vec<Bytes> {
    args.iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect()
}

fn run_on(con: &mut redis::Connection, args: &[Bytes]) -> redis::RedisResult<redis::Value> {
    let mut cmd = redis::cmd(std::str::from_utf8(&args[0]).expect("command name"));
    for arg in &args[1..] {
        cmd.arg(arg.as_ref());
    }
    cmd.query(con)
}

/// A propagated form of each Redis 8.0 write command some Valkey lacks (forms from
/// `propagation`; the module commands verbatim).
const SAMPLES: &[(&str, &[&str])] = &[
    (
        "hsetex",
        &[
            "HSETEX",
            "h",
            "PXAT",
            "9999999999000",
            "FIELDS",
            "1",
            "a",
            "1",
        ],
    ),
    (
        "hpexpireat",
        &["HPEXPIREAT", "h", "9999999999000", "FIELDS", "1", "a"],
    ),
    ("hexpire", &["HEXPIRE", "h", "100", "FIELDS", "1", "a"]),
    ("hpexpire", &["HPEXPIRE", "h", "100000", "FIELDS", "1", "a"]),
    (
        "hexpireat",
        &["HEXPIREAT", "h", "9999999999", "FIELDS", "1", "a"],
    ),
    ("hpersist", &["HPERSIST", "h", "FIELDS", "1", "a"]),
    (
        "hgetex",
        &["HGETEX", "h", "PX", "100000", "FIELDS", "1", "a"],
    ),
    ("hgetdel", &["HGETDEL", "h", "FIELDS", "1", "b"]),
    ("vadd", &["VADD", "v", "VALUES", "2", "1", "0", "e1"]),
    ("vrem", &["VREM", "v", "e1"]),
    ("vsetattr", &["VSETATTR", "v", "e1", "{}"]),
];

#[test]
fn every_redis8_write_command_a_valkey_lacks_is_translated_into_ones_it_accepts() {
    let source = Server::start(ServerKind::Redis80).expect("redis 8.0");
    let source_commands = command_table(&source);
    let samples: BTreeMap<_, _> = SAMPLES.iter().copied().collect();
    for kind in TARGETS {
        let target = Server::start(kind).expect("target");
        let target_commands = command_table(&target);
        let missing: Vec<&String> = source_commands
            .iter()
            .filter(|(name, flags)| {
                flags.iter().any(|f| f == "write") && !target_commands.contains_key(*name)
            })
            .map(|(name, _)| name)
            .collect();
        assert!(
            !missing.is_empty(),
            "{kind} has every Redis 8.0 write command"
        );
        for name in &missing {
            assert!(
                samples.contains_key(name.as_str()),
                "Redis 8.0 writes with {name}, which {kind} lacks, and no rule covers it"
            );
        }
        let profile = Target::from_profile(kind.name()).expect("a profile per target");
        let mut con = target.client();
        for hash_field_ttl in HASH_POLICIES {
            for vector_set in vector_policies() {
                let policies = Policies {
                    hash_field_ttl,
                    vector_set: vector_set.clone(),
                    ..Policies::default()
                };
                let mut translator = CommandTranslator::new(&policies, &profile)
                    .with_target_commands(target_commands.keys());
                for name in &missing {
                    let sample = bytes_args(samples[name.as_str()]);
                    let context = format!("{name} on {kind} under {policies:?}");
                    redis::cmd("HSET")
                        .arg("h")
                        .arg(&["a", "1", "b", "2"])
                        .query::<()>(&mut con)
                        .unwrap();
                    match translator.translate(0, sample) {
                        Ok(Translated::Apply(commands)) => {
                            for command in commands {
                                run_on(&mut con, &command)
                                    .unwrap_or_else(|e| panic!("{context}: {command:?}: {e}"));
                            }
                        }
                        Ok(Translated::Skip { .. }) => {}
                        Err(err) => {
                            let is_vector = name.starts_with('v');
                            let chose_fail = if is_vector {
                                vector_set == VectorSetPolicy::Fail
                            } else {
                                hash_field_ttl == HashFieldTtlPolicy::Fail
                            };
                            assert!(chose_fail, "{context}: {err}");
                        }
                    }
                }
            }
        }
    }
}

/// A hash as the source holds it: each field's value and absolute TTL (-1: none).
type HashState = BTreeMap<String, (String, i64)>;

fn hash_state(con: &mut redis::Connection, db: i64, key: &str, with_ttls: bool) -> HashState {
    redis::cmd("SELECT").arg(db).query::<()>(con).unwrap();
    let fields: BTreeMap<String, String> = redis::cmd("HGETALL").arg(key).query(con).unwrap();
    fields
        .into_iter()
        .map(|(field, value)| {
            let ttl = if with_ttls {
                let ttls: Vec<i64> = redis::cmd("HPEXPIRETIME")
                    .arg(key)
                    .arg("FIELDS")
                    .arg(1)
                    .arg(&field)
                    .query(con)
                    .unwrap();
                ttls[0]
            } else {
                -1
            };
            (field, (value, ttl))
        })
        .collect()
}

/// The writes of the end-to-end test, as (db, command).
const WRITES: &[(i64, &[&str])] = &[
    (
        0,
        &[
            "HSET", "h1", "a", "1", "b", "2", "c", "3", "d", "4", "p", "9",
        ],
    ),
    (0, &["HSETEX", "h1", "EX", "1000", "FIELDS", "1", "a", "10"]),
    (
        0,
        &[
            "HSETEX", "h1", "FNX", "PX", "900000", "FIELDS", "1", "e", "5",
        ],
    ),
    (0, &["HEXPIRE", "h1", "1000", "FIELDS", "2", "b", "nosuch"]),
    (0, &["HPERSIST", "h1", "FIELDS", "1", "b"]),
    (0, &["HSETEX", "h1", "KEEPTTL", "FIELDS", "1", "c", "30"]),
    (0, &["HGETDEL", "h1", "FIELDS", "1", "d"]),
    (0, &["HINCRBYFLOAT", "h1", "c", "1.5"]),
    (
        0,
        &["HGETEX", "h1", "EXAT", "9999999999", "FIELDS", "1", "p"],
    ),
    (0, &["HGETEX", "h1", "PERSIST", "FIELDS", "1", "p"]),
    // Every field gets a TTL: under drop-field the whole hash stays off the target.
    (
        1,
        &[
            "HSETEX", "h2", "PX", "800000", "FIELDS", "2", "x", "1", "y", "2",
        ],
    ),
    (1, &["HSET", "h3", "keep", "1", "gone", "2"]),
    (1, &["HSETEX", "h3", "PX", "60", "FIELDS", "1", "gone", "3"]),
    (0, &["SET", "plain", "v"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis8_stream_applied_to_valkey_leaves_what_the_policy_promises() {
    let mut source = Observer::start(ServerKind::Redis80).await;
    for (db, args) in WRITES {
        source.run(&["SELECT", &db.to_string()]);
        source.run(args);
    }
    let mut stream = source.read_raw_to_offset().await;
    // h3's short-lived field expires on the source: HDEL follows.
    let is_expiry = |c: &Vec<Bytes>| c[0].eq_ignore_ascii_case(b"HDEL") && c[1] == "h3";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !stream.iter().any(is_expiry) {
        assert!(
            std::time::Instant::now() < deadline,
            "no HDEL for the expired field"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        stream.extend(source.read_raw_to_offset().await);
    }
    let keys = [(0, "h1"), (1, "h2"), (1, "h3")];
    let source_state: Vec<HashState> = keys
        .iter()
        .map(|(db, key)| hash_state(&mut source.client, *db, key, true))
        .collect();
    assert!(source_state[0]["a"].1 > 0 && source_state[0]["b"].1 == -1);

    for kind in [ServerKind::Valkey81, ServerKind::Valkey91] {
        let target = Server::start(kind).expect("target");
        let profile = Target::from_profile(kind.name()).unwrap();
        for policy in HASH_POLICIES {
            let mut con = target.client();
            redis::cmd("FLUSHALL").query::<()>(&mut con).unwrap();
            let policies = Policies {
                hash_field_ttl: policy,
                ..Policies::default()
            };
            let mut translator = CommandTranslator::new(&policies, &profile);
            let mut db = 0;
            let mut failure = None;
            for args in &stream {
                if args[0].eq_ignore_ascii_case(b"SELECT") {
                    db = std::str::from_utf8(&args[1]).unwrap().parse().unwrap();
                }
                match translator.translate(db, args.clone()) {
                    Ok(Translated::Apply(commands)) => {
                        for command in commands {
                            run_on(&mut con, &command)
                                .unwrap_or_else(|e| panic!("{kind} {policy}: {command:?}: {e}"));
                        }
                    }
                    Ok(Translated::Skip { .. }) => {}
                    Err(err) => {
                        failure = Some(err.to_string());
                        break;
                    }
                }
            }
            let context = format!("{kind} under --hash-field-ttl {policy}");
            let has_ttls = kind.has_hash_field_ttl();
            if !has_ttls && policy == HashFieldTtlPolicy::Fail {
                let message = failure.unwrap_or_else(|| panic!("{context}: no error"));
                assert!(
                    message.starts_with("source sent HSETEX for hash \"h1\" in db 0"),
                    "{context}: {message}"
                );
                continue;
            }
            assert_eq!(failure, None, "{context}");
            for ((db, key), source_hash) in keys.iter().zip(&source_state) {
                let got = hash_state(&mut con, *db, key, has_ttls);
                let expected: HashState = if has_ttls {
                    source_hash.clone()
                } else if policy == HashFieldTtlPolicy::Persist {
                    source_hash
                        .iter()
                        .map(|(f, (v, _))| (f.clone(), (v.clone(), -1)))
                        .collect()
                } else {
                    // drop-field: what has no TTL on the source, except the field that
                    // HPERSIST made persistent after it had been dropped: its value is
                    // not in the stream.
                    source_hash
                        .iter()
                        .filter(|(f, (_, ttl))| *ttl == -1 && *f != "b" && *f != "p")
                        .map(|(f, v)| (f.clone(), v.clone()))
                        .collect()
                };
                assert_eq!(got, expected, "{context}: {key} in db {db}");
            }
            let report = translator.report().to_string();
            eprintln!("{context}: {report}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_set_writes_stop_or_are_skipped_on_valkey() {
    let mut source = Observer::start(ServerKind::Redis80).await;
    for args in [
        &["VADD", "v", "VALUES", "2", "1", "0", "e1"][..],
        &[
            "VADD",
            "v",
            "VALUES",
            "2",
            "0",
            "1",
            "e2",
            "SETATTR",
            r#"{"n":2}"#,
        ][..],
        &["VSETATTR", "v", "e1", r#"{"n":1}"#][..],
        &["VREM", "v", "e2"][..],
        &["SET", "after", "1"][..],
    ] {
        source.run(args);
    }
    let stream = source.read_raw_to_offset().await;
    let target = Server::start(ServerKind::Valkey91).expect("target");
    let profile = Target::from_profile("valkey-9.1").unwrap();
    for vector_set in vector_policies() {
        let mut con = target.client();
        redis::cmd("FLUSHALL").query::<()>(&mut con).unwrap();
        let policies = Policies {
            vector_set: vector_set.clone(),
            ..Policies::default()
        };
        let mut translator = CommandTranslator::new(&policies, &profile);
        let mut outcome = Ok(());
        for args in &stream {
            match translator.translate(0, args.clone()) {
                Ok(Translated::Apply(commands)) => {
                    for command in commands {
                        run_on(&mut con, &command).unwrap();
                    }
                }
                Ok(Translated::Skip { .. }) => {}
                Err(err) => {
                    outcome = Err(err.to_string());
                    break;
                }
            }
        }
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
        if vector_set == VectorSetPolicy::Fail {
            let message = outcome.expect_err("fail stops");
            assert!(
                message.starts_with("source sent VADD for vector set \"v\""),
                "{message}"
            );
            assert!(keys.is_empty(), "{keys:?}");
        } else {
            assert_eq!(outcome, Ok(()));
            assert_eq!(keys, ["after"]);
            assert_eq!(
                translator.report().vector_sets.commands_skipped,
                BTreeMap::from([
                    ("VADD".to_string(), 2),
                    ("VREM".to_string(), 1),
                    ("VSETATTR".to_string(), 1)
                ])
            );
        }
    }
}

fn pttl(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(con).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis6_relative_ttls_expire_on_the_target_when_they_do_on_the_source() {
    let mut source = Observer::start(ServerKind::Redis60).await;
    source.run(&["SET", "k", "v"]);
    source.run(&["SET", "restored-from", "v"]);
    for args in [
        &["SET", "a", "v", "EX", "100"][..],
        &["SET", "b", "v", "PX", "100000", "NX"][..],
        &["SETEX", "c", "100", "v"][..],
        &["PSETEX", "d", "100000", "v"][..],
        &["EXPIRE", "k", "100"][..],
    ] {
        source.run(args);
    }
    let payload: Vec<u8> = redis::cmd("DUMP")
        .arg("restored-from")
        .query(&mut source.client)
        .unwrap();
    redis::cmd("RESTORE")
        .arg("r")
        .arg(100_000)
        .arg(payload)
        .query::<()>(&mut source.client)
        .unwrap();
    let stream = source.read_raw_to_offset().await;
    // Translated as the commands arrive…
    let policies = Policies::default();
    let mut translator =
        CommandTranslator::new(&policies, &Target::from_profile("valkey-8.1").unwrap());
    let translated: Vec<Translated> = stream
        .into_iter()
        .map(|args| translator.translate(0, args).unwrap())
        .collect();
    // …and applied two seconds later, as a lagging migration would.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let target = Server::start(ServerKind::Valkey81).expect("target");
    let mut con = target.client();
    for t in translated {
        if let Translated::Apply(commands) = t {
            for command in commands {
                run_on(&mut con, &command).unwrap();
            }
        }
    }
    for key in ["a", "b", "c", "d", "k", "r"] {
        let (on_source, on_target) = (pttl(&mut source.client, key), pttl(&mut con, key));
        assert!(on_source > 90_000, "{key}: {on_source}");
        assert!(
            (on_source - on_target).abs() < 500,
            "{key}: {on_source} ms left on the source, {on_target} on the target"
        );
    }
}

/// Applies translated commands to `con`; returns the target's error replies.
fn apply_all(
    translator: &mut CommandTranslator,
    stream: Vec<Vec<Bytes>>,
    con: &mut redis::Connection,
) -> Vec<String> {
    let mut db = 0;
    let mut errors = Vec::new();
    for args in stream {
        if args[0].eq_ignore_ascii_case(b"SELECT") {
            db = std::str::from_utf8(&args[1]).unwrap().parse().unwrap();
        }
        let shown = format!("{:?}", String::from_utf8_lossy(&args.concat()));
        match translator.translate(db, args) {
            Ok(Translated::Apply(commands)) => {
                for command in commands {
                    if let Err(e) = run_on(con, &command) {
                        errors.push(format!("{shown}: {e}"));
                    }
                }
            }
            Ok(Translated::Skip { .. }) => {}
            Err(e) => panic!("{shown}: {e}"),
        }
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_load_from_every_source_leaves_valkey_equal_to_it() {
    use ferry_testkit::snapshot::{DiffOptions, Snapshot, Value};
    use ferry_testkit::workload::{forget_unreplicated_group_state, Workload};

    let policies = Policies {
        hash_field_ttl: HashFieldTtlPolicy::Persist,
        vector_set: VectorSetPolicy::Skip,
        ..Policies::default()
    };
    for source_kind in ServerKind::redis_sources() {
        let mut source = Observer::start(source_kind).await;
        let mut targets: Vec<(Server, CommandTranslator, redis::Connection)> =
            [ServerKind::Valkey81, ServerKind::Valkey91]
                .into_iter()
                .map(|kind| {
                    let server = Server::start(kind).expect("target");
                    let profile = Target::from_profile(kind.name()).unwrap();
                    let con = server.client();
                    (server, CommandTranslator::new(&policies, &profile), con)
                })
                .collect();
        let mut errors = Vec::new();
        let mut follow = |stream: Vec<Vec<Bytes>>| {
            for (server, translator, con) in &mut targets {
                for error in apply_all(translator, stream.clone(), con) {
                    errors.push(format!("{} → {}: {error}", source_kind, server.kind()));
                }
            }
        };
        // The targets follow closely, as a migration does: a target applying a key's
        // absolute expiry long after the source set it would expire the key itself
        // before applying the commands the source ran on it in the meantime.
        let mut load = Workload::new(source_kind, 21);
        for _ in 0..80 {
            load.run_for(&mut source.client, 50).expect("load");
            follow(source.read_raw_to_offset().await);
        }
        // Short TTLs pass on both sides before the comparison; the source's deletions
        // follow.
        tokio::time::sleep(ferry_testkit::workload::SHORT_TTLS_PASSED).await;
        follow(source.read_raw_to_offset().await);
        // Reading the source expires due keys lazily and replicates their DELs; the
        // targets (whose expiries the translator holds for those DELs) apply them before
        // they are read.
        let captured = Snapshot::capture(&source.server).unwrap();
        follow(source.read_raw_to_offset().await);
        assert!(errors.is_empty(), "{}", errors.join("\n"));

        for (target, translator, _) in &targets {
            let target_kind = target.kind();
            let context = format!("{source_kind} → {target_kind}");
            let mut expected = captured.clone();
            if !target_kind.has_hash_field_ttl() {
                // --hash-field-ttl persist: the fields, without their TTLs.
                for entry in expected
                    .databases
                    .values_mut()
                    .flat_map(|db| db.values_mut())
                {
                    if let Value::Hash(fields) = &mut entry.value {
                        fields.iter_mut().for_each(|f| f.expire_at_ms = None);
                    }
                }
            }
            let mut got = Snapshot::capture(target).unwrap();
            forget_unreplicated_group_state(&mut expected);
            forget_unreplicated_group_state(&mut got);
            assert!(
                expected.key_count() > 100,
                "{context}: {}",
                expected.key_count()
            );
            // Redis 6.0's relative TTLs are made absolute when translated, a little after
            // the source set them.
            let tolerance = if source_kind == ServerKind::Redis60 {
                500
            } else {
                0
            };
            let options = DiffOptions::new()
                .ttl_tolerance_ms(tolerance)
                .exclude_keys(|_, key| key.starts_with(b"wl:vset:"));
            let differences = expected.diff(&got, &options);
            let listing: Vec<String> = differences.iter().map(ToString::to_string).collect();
            assert!(listing.is_empty(), "{context}:\n{}", listing.join("\n"));
            eprintln!(
                "{context}: {} keys equal; {}",
                got.key_count(),
                translator.report()
            );
        }
    }
}
