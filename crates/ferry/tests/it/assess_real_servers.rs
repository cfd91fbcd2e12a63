//! `ferry assess` against real servers: Redis 6.0, 7.0 and 8.0 sources holding the codec
//! dataset and having served a workload, assessed for Valkey 8.1 and 9.1 both live
//! (`--target URL`) and from the built-in profiles (`--to`), and from their saved files.

use crate::support::{command_calls, ferry};
use std::thread::sleep;

use ferry_testkit::workload::{Workload, DEFAULT_SEED};
use ferry_testkit::{dataset, Server, ServerKind};
use serde_json::Value;

const TARGETS: [ServerKind; 2] = [ServerKind::Valkey81, ServerKind::Valkey91];

fn assess(args: &[&str]) -> Value {
    let mut all = vec!["assess", "--format", "json", "--max-ops-per-sec", "100000"];
    all.extend_from_slice(args);
    let out = ferry(&all);
    assert!(
        out.status.success(),
        "ferry {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the report is JSON")
}

fn finding<'a>(report: &'a Value, id: &str) -> Option<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
}

fn ids_with(report: &Value, severity: &str) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == severity)
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

fn count(report: &Value, id: &str) -> u64 {
    finding(report, id).unwrap_or_else(|| panic!("no finding {id} in {report:#}"))["count"]
        .as_u64()
        .unwrap()
}

fn severity(report: &Value, id: &str) -> String {
    finding(report, id).unwrap_or_else(|| panic!("no finding {id}"))["severity"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A source with the dataset, a finished workload, and (where the server has them) a
/// function library and an ACL user that name a field-TTL command.
fn prepared_source(kind: ServerKind) -> Server {
    let source = Server::start(kind).expect("start source");
    dataset::populate(&source).expect("populate");
    let mut con = source.client();
    let mut load = Workload::new(kind, DEFAULT_SEED).with_rate(None);
    load.run_for(&mut con, 3000).expect("workload");
    if kind.has_hash_field_ttl() {
        redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("#!lua name=ttllib\nredis.register_function('touch', function(keys, args) return redis.call('HEXPIRE', keys[1], 60, 'FIELDS', 1, args[1]) end)")
            .query::<()>(&mut con)
            .expect("function load");
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg("vectors")
            .arg("on")
            .arg(">pw")
            .arg("~*")
            .arg("+get")
            .arg("+vadd")
            .arg("+vsim")
            .query::<()>(&mut con)
            .expect("acl setuser");
    }
    // The workload's short expiries pass before anything is counted.
    sleep(ferry_testkit::workload::SHORT_TTLS_PASSED);
    source
}

/// What the server itself says, by means other than ferry's: keys per type through
/// `SCAN … TYPE`, and calls per command from INFO commandstats.
fn keys_of_type(server: &Server, type_name: &str) -> u64 {
    let mut con = server.client();
    let mut total = 0;
    for db in 0..16 {
        redis::cmd("SELECT").arg(db).query::<()>(&mut con).unwrap();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .arg("TYPE")
                .arg(type_name)
                .query(&mut con)
                .unwrap();
            total += keys.len() as u64;
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    total
}

fn inspect(file: &std::path::Path) -> Value {
    let out = ferry(&["inspect", "--json", file.to_str().unwrap()]);
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every way of naming a target: live and by profile.
fn reports_for(source: &Server, extra: &[&str]) -> Vec<(ServerKind, &'static str, Value)> {
    let url = source.url();
    let mut reports = Vec::new();
    for kind in TARGETS {
        let target = Server::start(kind).expect("start target");
        let target_url = target.url();
        let mut live = vec!["--source", url.as_str(), "--target", target_url.as_str()];
        live.extend_from_slice(extra);
        reports.push((kind, "live", assess(&live)));
        let mut profile = vec!["--source", url.as_str(), "--to", kind.name()];
        profile.extend_from_slice(extra);
        reports.push((kind, "profile", assess(&profile)));
    }
    reports
}

fn older_redis_moves_without_blockers(kind: ServerKind) {
    let source = prepared_source(kind);
    for (target, how, report) in reports_for(&source, &[]) {
        let context = format!("{kind} → {target} ({how})");
        assert_eq!(
            ids_with(&report, "blocker"),
            Vec::<String>::new(),
            "{context}: {report:#}"
        );
        let verdict = report["verdict"].as_str().unwrap();
        assert!(
            verdict == "migrate" || verdict == "migrate-with-changes",
            "{context}: {verdict}"
        );
        assert_eq!(
            report["source"]["keys"],
            report["source"]["databases"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum::<u64>()
        );
        assert!(
            report["unchecked"].as_array().unwrap().is_empty(),
            "{context}: {report:#}"
        );
    }
}

#[test]
fn redis_6_0_has_no_blockers() {
    older_redis_moves_without_blockers(ServerKind::Redis60);
}

#[test]
fn redis_7_0_has_no_blockers() {
    older_redis_moves_without_blockers(ServerKind::Redis70);
}

#[test]
fn redis_8_0_splits_with_field_ttls_blocking_only_valkey_8() {
    let source = prepared_source(ServerKind::Redis80);
    let vector_sets = keys_of_type(&source, "vectorset");
    // INFO's subexpiry is off by a few after the workload's HPERSIST and expiries; the saved
    // file, read by `ferry inspect`, holds exactly the hashes that keep a field TTL.
    let saved = source.save().expect("save");
    let inspected = inspect(&saved);
    let ttl_hashes = inspected["hash_field_ttl"]["keys"].as_u64().unwrap();
    let ttl_fields = inspected["hash_field_ttl"]["fields"].as_u64().unwrap();
    let vadd_calls = command_calls(&source, "vadd");
    let hexpire_calls = command_calls(&source, "hexpire");
    // A setting Valkey dropped, changed from its default; and an application connection
    // that names its client library.
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("dynamic-hz")
        .arg("no")
        .query::<()>(&mut source.client())
        .unwrap();
    let mut app = source.client();
    for (field, value) in [("LIB-NAME", "shop-app"), ("LIB-VER", "4.2")] {
        redis::cmd("CLIENT")
            .arg("SETINFO")
            .arg(field)
            .arg(value)
            .query::<()>(&mut app)
            .unwrap();
    }
    assert!(
        vector_sets > 0 && ttl_hashes >= 3 && vadd_calls > 0 && hexpire_calls > 0,
        "{vector_sets} {ttl_hashes} {vadd_calls} {hexpire_calls}"
    );

    for (target, how, report) in reports_for(&source, &[]) {
        let context = format!("redis-8.0 → {target} ({how})");
        assert_eq!(report["verdict"], "split", "{context}: {report:#}");
        assert_eq!(count(&report, "vector-set"), vector_sets, "{context}");
        assert_eq!(severity(&report, "vector-set"), "blocker", "{context}");
        assert_eq!(count(&report, "command:vadd"), vadd_calls, "{context}");
        assert_eq!(count(&report, "hash-field-ttl"), ttl_hashes, "{context}");
        let summary = finding(&report, "hash-field-ttl").unwrap()["summary"].to_string();
        assert!(
            summary.contains(&format!("({ttl_fields} fields)")),
            "{summary}"
        );
        assert_eq!(count(&report, "acl-uses:vadd"), 1, "{context}");
        assert_eq!(severity(&report, "acl-uses:vadd"), "warning", "{context}");
        assert_eq!(
            severity(&report, "config:dynamic-hz"),
            "warning",
            "{context}"
        );
        assert!(
            finding(&report, "config:sanitize-dump-payload").is_none(),
            "{context}"
        );
        let libs = finding(&report, "client-lib").unwrap()["examples"].to_string();
        assert!(libs.contains("shop-app 4.2"), "{context}: {libs}");
        let examples = &finding(&report, "hash-field-ttl").unwrap()["examples"];
        assert!(examples.as_array().unwrap().len() <= 5);
        if target == ServerKind::Valkey81 {
            assert_eq!(severity(&report, "hash-field-ttl"), "blocker", "{context}");
            assert_eq!(
                count(&report, "command:hexpire"),
                hexpire_calls,
                "{context}"
            );
            assert_eq!(count(&report, "function-uses:hexpire"), 1, "{context}");
            assert_eq!(severity(&report, "rdb-version"), "warning", "{context}");
        } else {
            assert_eq!(severity(&report, "hash-field-ttl"), "info", "{context}");
            assert!(finding(&report, "command:hexpire").is_none(), "{context}");
            assert!(
                finding(&report, "function-uses:hexpire").is_none(),
                "{context}"
            );
        }
    }

    // The saved file gives the same data findings, and none of the live-only ones.
    let file = saved.to_str().unwrap();
    let live = assess(&["--source", &source.url(), "--to", "valkey-8.1"]);
    let offline = assess(&["--rdb", file, "--to", "valkey-8.1"]);
    for id in ["hash-field-ttl", "vector-set", "function-uses:hexpire"] {
        // Examples differ: SCAN order is not file order.
        let without_examples = |report: &Value| {
            let mut f = finding(report, id)
                .unwrap_or_else(|| panic!("no {id}"))
                .clone();
            f.as_object_mut().unwrap().remove("examples");
            f
        };
        assert_eq!(without_examples(&offline), without_examples(&live), "{id}");
    }
    assert_eq!(offline["source"]["keys"], live["source"]["keys"]);
    assert_eq!(offline["source"]["types"], live["source"]["types"]);
    assert_eq!(offline["verdict"], "split");
    let live_only = ["command:", "acl-uses:", "client-lib", "config:"];
    for f in offline["findings"].as_array().unwrap() {
        let id = f["id"].as_str().unwrap();
        assert!(
            !live_only.iter().any(|p| id.starts_with(p)),
            "{id} from a file"
        );
    }
    let hash_field_ttl = &finding(&offline, "hash-field-ttl").unwrap();
    assert!(hash_field_ttl["advice"]
        .as_str()
        .unwrap()
        .contains("--hash-field-ttl"));
}

#[test]
fn markdown_goes_to_the_out_file() {
    let source = Server::start(ServerKind::Redis80).expect("start source");
    redis::cmd("VADD")
        .arg("embeddings")
        .arg("VALUES")
        .arg(2)
        .arg(0.5)
        .arg(0.25)
        .arg("doc:1")
        .query::<()>(&mut source.client())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ticket.md");
    let out = ferry(&[
        "assess",
        "--source",
        &source.url(),
        "--to",
        "valkey-9.1",
        "--format",
        "markdown",
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let markdown = std::fs::read_to_string(&path).unwrap();
    assert!(
        markdown.starts_with("## Migration assessment: stay"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| blocker | `vector-set`: 1 vector set | 1 keys | `embeddings` |"),
        "{markdown}"
    );
}

#[test]
fn refused_checks_make_a_partial_report() {
    let source = Server::start(ServerKind::Redis70).expect("start source");
    dataset::populate(&source).expect("populate");
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("limited")
        .arg("on")
        .arg(">secret")
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .arg("-config")
        .arg("-acl")
        .query::<()>(&mut source.client())
        .unwrap();
    // A target whose COMMAND is renamed away.
    let target =
        Server::start_with_args(ServerKind::Valkey81, &["--rename-command", "COMMAND", ""])
            .expect("start target");
    let url = format!("redis://limited:secret@127.0.0.1:{}", source.port());
    let report = assess(&["--source", &url, "--target", &target.url()]);
    let unchecked: Vec<String> = report["unchecked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            format!(
                "{} {}",
                u["side"].as_str().unwrap(),
                u["check"].as_str().unwrap()
            )
        })
        .collect();
    for expected in ["source CONFIG GET", "source ACL LIST", "target COMMAND"] {
        assert!(unchecked.iter().any(|u| u == expected), "{unchecked:?}");
    }
    assert!(report["source"]["keys"].as_u64().unwrap() > 0);
    assert!(!report.to_string().contains("secret"));
    // The release's profile stands in for the refused command table.
    assert_eq!(
        report["target"]["commands"],
        assess(&[
            "--rdb",
            source.save().unwrap().to_str().unwrap(),
            "--to",
            "valkey-8.1"
        ])["target"]["commands"]
    );

    // The scan stays under --max-ops-per-sec: at least one command per key.
    let keys = report["source"]["keys"].as_u64().unwrap();
    let started = std::time::Instant::now();
    let text = ferry(&[
        "assess",
        "--source",
        &url,
        "--target",
        &target.url(),
        "--max-ops-per-sec",
        "400",
    ]);
    assert!(started.elapsed().as_secs_f64() >= keys as f64 / 400.0);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("partial report"), "{text}");
}

#[test]
fn unreachable_or_refused_logins_end_in_one_line() {
    let source = Server::start(ServerKind::Redis70).expect("start source");
    let port = source.port();
    let wrong = format!("redis://default:wrong@127.0.0.1:{port}");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("right")
        .query::<()>(&mut source.client())
        .unwrap();
    for url in [wrong.as_str(), "redis://127.0.0.1:1"] {
        let out = ferry(&["assess", "--source", url, "--to", "valkey-8.1"]);
        assert_eq!(out.status.code(), Some(1), "{url}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("ferry: cannot connect to"), "{stderr}");
        assert!(!stderr.contains("wrong"), "{stderr}");
    }
}

/// A cluster source is assessed whole: every primary is read, so keys, field TTLs and
/// vector sets on other shards than the URL's node are all counted.
#[test]
fn a_cluster_source_is_read_on_every_primary() {
    let cluster = ferry_testkit::Cluster::start(ServerKind::Redis80, 3).unwrap();
    let mut total = 0;
    for (index, node) in cluster.nodes().iter().enumerate() {
        let tag = cluster.tag_for(index).unwrap();
        let mut con = node.client();
        for i in 0..20 {
            redis::cmd("SET")
                .arg(format!("{{{tag}}}:s:{i}"))
                .arg(i)
                .query::<()>(&mut con)
                .unwrap();
        }
        total += 20;
        if index == 1 {
            let hash = format!("{{{tag}}}:h");
            redis::cmd("HSET")
                .arg(&hash)
                .arg(&["f", "v", "g", "w"])
                .query::<()>(&mut con)
                .unwrap();
            redis::cmd("HEXPIRE")
                .arg(&hash)
                .arg(600)
                .arg(&["FIELDS", "1", "f"])
                .query::<()>(&mut con)
                .unwrap();
            total += 1;
        }
        if index == 2 {
            redis::cmd("VADD")
                .arg(format!("{{{tag}}}:v"))
                .arg(&["VALUES", "2", "0.5", "0.25", "item"])
                .query::<()>(&mut con)
                .unwrap();
            total += 1;
        }
    }
    let report = assess(&["--source", &cluster.url(), "--to", "valkey-8.1"]);
    assert_eq!(report["source"]["keys"], total, "{report:#}");
    assert_eq!(report["source"]["cluster_primaries"], 3, "{report:#}");
    assert_eq!(count(&report, "hash-field-ttl"), 1);
    assert_eq!(count(&report, "vector-set"), 1);
    let cluster_finding = finding(&report, "cluster").expect("a cluster finding");
    assert!(
        cluster_finding["summary"]
            .as_str()
            .unwrap()
            .contains("cluster of 3 primaries"),
        "{cluster_finding}"
    );
}

/// Secret settings as a server reports them in `CONFIG GET *`, each with its own value so
/// that a leak names the setting. `primaryauth` and `primaryuser` are Valkey's names of
/// `masterauth` and `masteruser` (one value under both names).
const SECRET_SETTINGS: [(&str, &str); 5] = [
    ("requirepass", "canary-requirepass-81f2"),
    ("primaryauth", "canary-primaryauth-3c9d"),
    ("primaryuser", "canary-primaryuser-6a0e"),
    ("tls-key-file-pass", "canary-tls-key-file-pass-d41b"),
    (
        "tls-client-key-file-pass",
        "canary-tls-client-key-pass-7e55",
    ),
];

/// Sets every secret setting on `server` (the password last: the connection is already
/// authenticated as `default`).
fn set_secrets(server: &Server) {
    let mut con = server.client();
    for (name, value) in SECRET_SETTINGS {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query::<()>(&mut con)
            .unwrap_or_else(|e| panic!("CONFIG SET {name} on {}: {e}", server.kind()));
    }
}

/// Every format of `ferry assess <args>`, to stdout and to `--out`: the texts printed and
/// written.
fn every_format(args: &[&str], dir: &std::path::Path) -> Vec<(String, String)> {
    let mut outputs = Vec::new();
    for format in ["text", "markdown", "json"] {
        let mut all = vec!["assess", "--format", format, "--max-ops-per-sec", "100000"];
        all.extend_from_slice(args);
        let out = ferry(&all);
        assert!(
            out.status.success(),
            "ferry {all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push((
            format!("{format} stdout"),
            String::from_utf8(out.stdout).unwrap(),
        ));
        outputs.push((
            format!("{format} stderr"),
            String::from_utf8(out.stderr).unwrap(),
        ));
        let file = dir.join(format!("report.{format}"));
        all.extend(["--out", file.to_str().unwrap()]);
        let out = ferry(&all);
        assert!(out.status.success());
        outputs.push((
            format!("{format} --out file"),
            std::fs::read_to_string(&file).unwrap(),
        ));
    }
    outputs
}

#[test]
fn secret_settings_show_in_no_format() {
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, SECRET_SETTINGS[0].1).unwrap();
    let password_file = password_file.to_str().unwrap();
    // A Valkey with every secret setting: the target of one assessment (its whole
    // CONFIG GET * is in the JSON report), the source of another, against Redis 7.0,
    // which lacks `primaryauth`: a finding names the setting with its value.
    let valkey = Server::start(ServerKind::Valkey81).expect("start valkey");
    let source = Server::start(ServerKind::Redis70).expect("start source");
    dataset::populate(&source).expect("populate");
    set_secrets(&valkey);
    let url = valkey.url();

    let as_target = every_format(
        &[
            "--source",
            &source.url(),
            "--target",
            &url,
            "--target-password-file",
            password_file,
        ],
        dir.path(),
    );
    let as_source = every_format(
        &[
            "--source",
            &url,
            "--source-password-file",
            password_file,
            "--to",
            "redis-7.0",
        ],
        dir.path(),
    );
    for (what, text) in as_target.iter().chain(&as_source) {
        for (name, value) in SECRET_SETTINGS {
            assert!(!text.contains(value), "{what} shows {name}:\n{text}");
        }
    }

    // Hidden by redaction, not by leaving the settings out: the names are there.
    let json = &as_target
        .iter()
        .find(|(w, _)| w == "json stdout")
        .unwrap()
        .1;
    let report: Value = serde_json::from_str(json).unwrap();
    for name in [
        "requirepass",
        "masterauth",
        "primaryauth",
        "tls-key-file-pass",
    ] {
        assert_eq!(report["target"]["config"][name], "(redacted)", "{name}");
    }
    assert_eq!(report["target"]["config"]["maxmemory-policy"], "noeviction");
    let json = &as_source
        .iter()
        .find(|(w, _)| w == "json stdout")
        .unwrap()
        .1;
    let report: Value = serde_json::from_str(json).unwrap();
    let unknown = finding(&report, "config:primaryauth")
        .unwrap_or_else(|| panic!("no config:primaryauth finding in {report:#}"));
    assert!(
        unknown["summary"].as_str().unwrap().contains("(redacted)"),
        "{unknown}"
    );
}
