//! `ferry fleet run PLAN.toml` against real servers: twenty standalone pairs (Redis 6.0,
//! 7.0 and 8.0 sources, some under a write load, Valkey 8.1 targets) in three waves at
//! concurrency 4 end with one report, every pair verified equal; a pair that fails stops
//! its wave (and the later ones), is named, and leaks no password; a rerun skips what is
//! done, also after the fleet was killed (which ends its migrations too); a bad plan is
//! one line and exit 2; the status page in a headless Chromium (screenshot
//! build/screenshots/fleet-cutover-dark.png).

use crate::support::http_get;
use crate::support::migrate::Ferry;
use ferry_testkit::workload::{Workload, WorkloadStats};
use ferry_testkit::{Server, ServerKind};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SOURCE_KINDS: [ServerKind; 3] = [
    ServerKind::Redis60,
    ServerKind::Redis70,
    ServerKind::Redis80,
];
const FLEET_TIMEOUT: Duration = Duration::from_secs(240);

/// Starts the servers on parallel threads (forty one after the other take a while).
fn start_servers(kinds: &[ServerKind]) -> Vec<Server> {
    std::thread::scope(|scope| {
        let started: Vec<_> = kinds
            .iter()
            .map(|kind| scope.spawn(move || Server::start(*kind).expect("start a server")))
            .collect();
        started.into_iter().map(|s| s.join().unwrap()).collect()
    })
}

/// A small dataset of every basic type, different per pair, with expiries and a second
/// database.
fn fill(server: &Server, pair: usize) {
    let mut con = server.client();
    let mut pipe = redis::pipe();
    for i in 0..(50 + pair * 10) {
        pipe.cmd("SET").arg(format!("s:{pair}:{i}")).arg(i).ignore();
    }
    for i in 0..20 {
        pipe.cmd("HSET")
            .arg("h")
            .arg(format!("f{i}"))
            .arg(i)
            .ignore();
        pipe.cmd("RPUSH").arg("l").arg(i).ignore();
        pipe.cmd("SADD").arg("set").arg(i).ignore();
        pipe.cmd("ZADD")
            .arg("z")
            .arg(i)
            .arg(format!("m{i}"))
            .ignore();
    }
    pipe.cmd("SET")
        .arg("ttl")
        .arg("v")
        .arg("EX")
        .arg(3600)
        .ignore();
    pipe.cmd("SELECT").arg(1).ignore();
    pipe.cmd("SET").arg("db1").arg(pair).ignore();
    pipe.cmd("SELECT").arg(0).ignore();
    pipe.query::<()>(&mut con).unwrap();
}

fn dbsize(server: &Server, db: u32) -> u64 {
    let mut con = server.client();
    redis::cmd("SELECT").arg(db).query::<()>(&mut con).unwrap();
    redis::cmd("DBSIZE").query(&mut con).unwrap()
}

/// Keys per database 0..16 on the target, ferry's own marker left out.
fn user_keys(server: &Server) -> Vec<u64> {
    let mut con = server.client();
    (0..16u32)
        .map(|db| {
            redis::cmd("SELECT").arg(db).query::<()>(&mut con).unwrap();
            let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
            keys.iter()
                .filter(|k| !ferry_testkit::snapshot::is_ferry_marker(k))
                .count() as u64
        })
        .collect()
}

/// A light write load that stops when its pair's cutover hook touches `moved`: the
/// clients have "moved" before the switch kills their connections to the old server.
struct MovingLoad {
    stop: Arc<AtomicBool>,
    load: JoinHandle<WorkloadStats>,
    watcher: JoinHandle<()>,
}

impl MovingLoad {
    fn start(server: &Server, moved: PathBuf, seed: u64) -> MovingLoad {
        let stop = Arc::new(AtomicBool::new(false));
        // Without the load's short expiries (200 ms to 2 s): a key that expires on the
        // target while the paused source keeps it fails the cutover's sample check, a
        // matter of cutover itself (tests/it/cutover_*), not of the fleet.
        let load = Workload::new(server.kind(), seed)
            .without(&["PEXPIRE", "EXPIREAT", "SET EX"])
            .with_rate(Some(200))
            .start(server.url(), stop.clone());
        let flag = stop.clone();
        let watcher = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                if moved.exists() {
                    flag.store(true, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        MovingLoad {
            stop,
            load,
            watcher,
        }
    }

    fn finish(self) -> WorkloadStats {
        self.stop.store(true, Ordering::SeqCst);
        self.watcher.join().unwrap();
        self.load.join().unwrap()
    }
}

/// A plan's `[[pair]]`.
fn pair_entry(name: &str, source: &Server, target: &Server, wave: u32, extra: &str) -> String {
    format!(
        "[[pair]]\nname = \"{name}\"\nsource = \"{}\"\ntarget = \"{}\"\nwave = {wave}\n{extra}\n",
        source.url(),
        target.url()
    )
}

fn write_plan(dir: &Path, concurrency: u32, pairs: &[String]) -> PathBuf {
    let plan = dir.join("fleet.toml");
    let text = format!(
        "state_dir = \"state\"\nconcurrency = {concurrency}\n\n{}",
        pairs.concat()
    );
    std::fs::write(&plan, text).unwrap();
    plan
}

fn run_fleet(
    plan: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Ferry, std::process::ExitStatus) {
    let plan = plan.display().to_string();
    let mut args = vec!["run", plan.as_str(), "--json"];
    args.extend_from_slice(extra);
    let mut fleet = Ferry::start_command_with_env("fleet", &args, env);
    let status = fleet.wait_exit(FLEET_TIMEOUT);
    (fleet, status)
}

/// The fleet's `/status`, or `None` once nothing listens.
fn status_now(addr: &str) -> Option<Value> {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET /status HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    socket.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    socket.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    Some(serde_json::from_str(body).expect("a JSON status"))
}

fn report_of(fleet: &Ferry) -> Value {
    let text = fleet.stdout_lines().join("\n");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}\n{}", fleet.output()))
}

fn pair<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no pair {name} in {report}"))
}

#[test]
fn twenty_pairs_in_three_waves_end_verified_equal_in_one_report() {
    let started = Instant::now();
    let kinds: Vec<ServerKind> = (0..20)
        .flat_map(|i| [SOURCE_KINDS[i % 3], ServerKind::Valkey81])
        .collect();
    let servers = start_servers(&kinds);
    let servers_up = started.elapsed();
    let dir = tempfile::tempdir().unwrap();
    let mut entries = Vec::new();
    let mut loads = Vec::new();
    for i in 0..20 {
        let (source, target) = (&servers[2 * i], &servers[2 * i + 1]);
        fill(source, i);
        let name = format!("p{i:02}");
        let wave = 1 + (i as u32 % 3);
        // Some Redis 7.0 sources are under a write load until their cutover; Redis 6.0
        // cannot pause writes (CLIENT PAUSE WRITE came with 6.2), so its pairs are
        // verified while streaming and not switched.
        let extra = if source.kind() == ServerKind::Redis60 {
            "switch = false".to_owned()
        } else if source.kind() == ServerKind::Redis70 && i % 2 == 1 {
            let moved = dir.path().join(format!("moved-{name}"));
            loads.push((i, MovingLoad::start(source, moved.clone(), i as u64)));
            // The load notices the file within 5 ms; the switch kills its connections
            // only after the hook returns.
            format!("exec = \"touch '{}' && sleep 0.2\"", moved.display())
        } else {
            String::new()
        };
        entries.push(pair_entry(&name, source, target, wave, &extra));
    }
    assert!(loads.len() >= 3, "some pairs under load");
    let plan = write_plan(dir.path(), 4, &entries);
    let report_file = dir.path().join("report.json");
    let report_arg = report_file.display().to_string();

    let fleet_started = Instant::now();
    let args = [
        "run",
        plan.to_str().unwrap(),
        "--json",
        "--metrics-addr",
        "127.0.0.1:0",
        "--report",
        &report_arg,
    ];
    let mut fleet = Ferry::start_command("fleet", &args);
    let line = fleet.wait_for("serving the fleet's page", Duration::from_secs(30));
    let addr = line.rsplit("http://").next().unwrap().trim().to_owned();
    // The status page while it runs: every pair listed; never more than four at work;
    // no pair of a wave at work before every earlier wave is done.
    let (code, page) = http_get(&addr, "/");
    assert_eq!(code, 200);
    assert!(page.contains("<title>ferry fleet</title>") && page.contains("fetch(\"/status\""));
    let mut most_active = 0;
    let mut seen_phases = std::collections::BTreeSet::new();
    while fleet.is_running() {
        // The fleet may end between the check and the request.
        let Some(status) = status_now(&addr) else {
            break;
        };
        let pairs = status["pairs"].as_array().unwrap();
        assert_eq!(pairs.len(), 20, "{status}");
        let active: Vec<&Value> = pairs
            .iter()
            .filter(|p| {
                ["full-sync", "streaming", "cutover", "verifying"]
                    .contains(&p["phase"].as_str().unwrap())
            })
            .collect();
        most_active = most_active.max(active.len());
        for p in pairs {
            seen_phases.insert(p["phase"].as_str().unwrap().to_owned());
        }
        for running in &active {
            let wave = running["wave"].as_u64().unwrap();
            for earlier in pairs.iter().filter(|p| p["wave"].as_u64().unwrap() < wave) {
                assert_eq!(
                    earlier["phase"], "done",
                    "{running} runs before {earlier} is done"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let exit = fleet.wait_exit(FLEET_TIMEOUT);
    let fleet_time = fleet_started.elapsed();
    assert!(exit.success(), "{exit}: {}", fleet.output());
    assert!(
        (2..=4).contains(&most_active),
        "at most 4 at once, saw {most_active}"
    );
    assert!(seen_phases.contains("waiting"), "{seen_phases:?}");

    let report = report_of(&fleet);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["pairs"].as_array().unwrap().len(), 20);
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    assert_eq!(written, report);
    for (i, load) in loads {
        let stats = load.finish();
        assert!(stats.total() > 0, "pair {i}'s load wrote nothing");
    }
    for i in 0..20 {
        let (source, target) = (&servers[2 * i], &servers[2 * i + 1]);
        let row = pair(&report, &format!("p{i:02}"));
        assert_eq!(row["phase"], "done", "{row}");
        assert_eq!(row["verify"]["differing"], 0, "{row}");
        assert_eq!(row["source"], format!("127.0.0.1:{}", source.port()));
        assert_eq!(row["switch"], source.kind() != ServerKind::Redis60, "{row}");
        // Checked here too, not only by the report: the same keys on both sides.
        let source_keys = user_keys(source);
        assert_eq!(user_keys(target), source_keys, "pair {i}");
        assert_eq!(
            row["keys"].as_u64().unwrap(),
            source_keys.iter().sum::<u64>(),
            "{row}"
        );
        assert!(dbsize(target, 1) >= 1);
    }
    eprintln!(
        "fleet of 20 pairs: servers up in {:.1} s, fleet {:.1} s, test {:.1} s",
        servers_up.as_secs_f64(),
        fleet_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_failing_pair_stops_its_wave_and_a_rerun_finishes_without_redoing_done_pairs() {
    const RIGHT: &str = "right-target-pass-7c1e";
    const WRONG: &str = "wrong-target-pass-93fa";
    // Wave 1: six pairs, the first of which cannot log in to its target; wave 2: two.
    let kinds: Vec<ServerKind> = (0..8)
        .flat_map(|i| [SOURCE_KINDS[i % 3], ServerKind::Valkey81])
        .collect();
    let servers = start_servers(&kinds);
    crate::support::require_password(&servers[1], RIGHT);
    let dir = tempfile::tempdir().unwrap();
    let mut entries = Vec::new();
    for i in 0..8 {
        let (source, target) = (&servers[2 * i], &servers[2 * i + 1]);
        fill(source, i);
        let mut extra = match i {
            0 => "target_password_env = \"FLEET_TEST_TARGET_PASS\"\n".to_owned(),
            _ => String::new(),
        };
        if source.kind() == ServerKind::Redis60 {
            extra.push_str("switch = false");
        }
        entries.push(pair_entry(
            &format!("q{i}"),
            source,
            target,
            1 + (i as u32 / 6),
            &extra,
        ));
    }
    let plan = write_plan(dir.path(), 4, &entries);
    let report_file = dir.path().join("report.json");
    let report_arg = report_file.display().to_string();

    let (fleet, exit) = run_fleet(
        &plan,
        &["--report", &report_arg],
        &[("FLEET_TEST_TARGET_PASS", WRONG)],
    );
    assert!(!exit.success(), "{}", fleet.output());
    let report = report_of(&fleet);
    assert_eq!(report["ok"], false);
    assert_eq!(report["failed"]["pair"], "q0", "{report}");
    let error = report["failed"]["error"].as_str().unwrap();
    assert!(
        error.contains("127.0.0.1:") && error.to_lowercase().contains("pass"),
        "{error}"
    );
    assert_eq!(pair(&report, "q0")["phase"], "failed");
    // The pairs already running when q0 failed finish; the rest of wave 1 and all of
    // wave 2 never start.
    for name in ["q1", "q2", "q3"] {
        assert_eq!(pair(&report, name)["phase"], "done", "{report}");
    }
    for (name, target) in [("q4", 9), ("q5", 11), ("q6", 13), ("q7", 15)] {
        assert_eq!(pair(&report, name)["phase"], "not-started", "{report}");
        assert_eq!(
            dbsize(&servers[target], 0),
            0,
            "{name}'s target was written"
        );
        assert!(!dir.path().join("state").join(name).exists());
    }
    let stderr = fleet.output();
    assert!(stderr.contains("pair q0 failed"), "{stderr}");
    let record = std::fs::read_to_string(dir.path().join("state/fleet.json")).unwrap();
    let written = std::fs::read_to_string(&report_file).unwrap();
    let stdout = fleet.stdout_lines().join("\n");
    let logs: String = (0..4)
        .filter_map(|i| {
            std::fs::read_to_string(dir.path().join(format!("state/q{i}/migrate.log"))).ok()
        })
        .collect();
    assert!(logs.contains("WRONGPASS"), "q0's log says why: {logs}");
    for text in [&stderr, &record, &written, &stdout, &logs] {
        assert!(
            !text.contains(WRONG) && !text.contains(RIGHT),
            "a password leaked: {text}"
        );
    }
    let done_state = dir.path().join("state/q1/migrate.state");
    let done_mtime = std::fs::metadata(&done_state).unwrap().modified().unwrap();

    // The password fixed, the same plan again: q0 and the pairs never started run, the
    // done ones are not redone.
    let (fleet, exit) = run_fleet(
        &plan,
        &["--report", &report_arg],
        &[("FLEET_TEST_TARGET_PASS", RIGHT)],
    );
    assert!(exit.success(), "{}", fleet.output());
    let report = report_of(&fleet);
    assert_eq!(report["ok"], true, "{report}");
    for i in 0..8 {
        let row = pair(&report, &format!("q{i}"));
        assert_eq!(row["phase"], "done", "{row}");
        assert_eq!(row["earlier_run"], (1..=3).contains(&i), "{row}");
        let (source, target) = (&servers[2 * i], &servers[2 * i + 1]);
        if i == 0 {
            let mut con = target.client();
            redis::cmd("AUTH").arg(RIGHT).query::<()>(&mut con).unwrap();
            let size: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
            assert_eq!(
                size,
                dbsize(source, 0) + 1,
                "q0: its keys and ferry's marker"
            );
        } else {
            assert_eq!(user_keys(target), user_keys(source), "q{i}");
        }
    }
    assert_eq!(
        std::fs::metadata(&done_state).unwrap().modified().unwrap(),
        done_mtime,
        "q1 was migrated again"
    );
    let output = fleet.output() + &fleet.stdout_lines().join("\n");
    assert!(!output.contains(RIGHT), "{output}");
}

#[test]
fn plan_errors_are_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = "state_dir = \"s\"\n[[pair]]\nname = \"a\"\nsource = \"redis://127.0.0.1:1\"\ntarget = \"redis://127.0.0.1:2\"\n[[pair]]\nname = \"b\"\nsource = \"redis://127.0.0.1:3\"\ntarget = \"redis://127.0.0.1:4\"\n";
    let cases = [
        (
            good.replace("name = \"b\"", "name = \"a\""),
            "pair a: the name is used by an earlier pair",
        ),
        (
            good.replace("127.0.0.1:3", "127.0.0.1:2"),
            "pair b: source 127.0.0.1:2 is pair a's target",
        ),
        (
            good.replace("name = \"b\"", "name = \"b\"\nwaves = 2"),
            "pair b: unknown field `waves`",
        ),
        (
            good.replace(
                "name = \"b\"",
                "name = \"b\"\ntarget_password_env = \"FLEET_TEST_UNSET_VAR\"",
            ),
            "pair b: target_password_env FLEET_TEST_UNSET_VAR: the variable is not set",
        ),
        (
            good.replace("state_dir", "state_folder"),
            "unknown field `state_folder`",
        ),
    ];
    for (text, expected) in cases {
        let plan = dir.path().join("plan.toml");
        std::fs::write(&plan, text).unwrap();
        let output = crate::support::ferry(&["fleet", "run", plan.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr} (wanted {expected})");
        assert!(output.stdout.is_empty());
        assert!(
            !dir.path().join("s").exists(),
            "nothing starts on a bad plan"
        );
    }
}

/// Waits until `check` holds, polling every 50 ms; panics with `what` after a minute.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The names `fleet.json` lists as done.
fn recorded_done(state: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(state.join("fleet.json")) else {
        return Vec::new();
    };
    let record: Value = serde_json::from_str(&text).unwrap();
    record["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["phase"] == "done")
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The `/status` address a pair's migration logged in its `migrate.log`, if it did.
fn migration_address(state: &Path, pair: &str) -> Option<String> {
    let log = std::fs::read_to_string(state.join(pair).join("migrate.log")).ok()?;
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("serving /metrics and /status on"))?;
    Some(line.rsplit("http://").next()?.trim().to_owned())
}

#[test]
fn a_killed_fleet_takes_its_migrations_with_it_and_a_rerun_finishes_the_rest() {
    let kinds: Vec<ServerKind> = (0..4)
        .flat_map(|_| [ServerKind::Redis70, ServerKind::Valkey81])
        .collect();
    let servers = start_servers(&kinds);
    let dir = tempfile::tempdir().unwrap();
    let mut entries = Vec::new();
    for i in 0..4 {
        fill(&servers[2 * i], i);
        // The hook holds each cutover a moment, so that the fleet is killed mid-way.
        let extra = "exec = \"sleep 0.5\"";
        entries.push(pair_entry(
            &format!("k{i}"),
            &servers[2 * i],
            &servers[2 * i + 1],
            1,
            extra,
        ));
    }
    let plan = write_plan(dir.path(), 1, &entries);
    let state = dir.path().join("state");
    let plan_arg = plan.display().to_string();
    let mut fleet = Ferry::start_command("fleet", &["run", &plan_arg]);
    // Killed once a pair is done and the next one's migration serves its /status.
    let mut running = None;
    wait_until("a pair done and the next one running", || {
        let done = recorded_done(&state);
        running = (0..4)
            .map(|i| format!("k{i}"))
            .filter(|name| !done.contains(name))
            .find_map(|name| migration_address(&state, &name).map(|addr| (name, addr)));
        !done.is_empty() && running.is_some()
    });
    assert!(
        fleet.is_running(),
        "the fleet ended before it could be killed"
    );
    fleet.kill();
    let done_before = recorded_done(&state);
    let (running, addr) = running.unwrap();
    // Its migration does not stream on with nobody to cut it over.
    wait_until("the killed fleet's migration ended", || {
        std::net::TcpStream::connect(&addr).is_err()
    });

    let (fleet, exit) = run_fleet(&plan, &[], &[]);
    assert!(exit.success(), "{}", fleet.output());
    let report = report_of(&fleet);
    assert_eq!(report["ok"], true, "{report}");
    for i in 0..4 {
        let name = format!("k{i}");
        let row = pair(&report, &name);
        assert_eq!(row["phase"], "done", "{row}");
        assert_eq!(row["earlier_run"], done_before.contains(&name), "{row}");
        assert_eq!(
            user_keys(&servers[2 * i + 1]),
            user_keys(&servers[2 * i]),
            "{name}"
        );
    }
    assert!(!done_before.contains(&running));
    eprintln!("killed after {done_before:?} with {running} running; the rerun did the rest");
}

#[test]
fn the_status_page_lists_every_pair_in_a_browser() {
    use crate::support::browser::{Browser, WIDE};
    let kinds = [
        ServerKind::Redis70,
        ServerKind::Valkey81,
        ServerKind::Redis80,
        ServerKind::Valkey81,
        ServerKind::Redis60,
        ServerKind::Valkey81,
    ];
    let servers = start_servers(&kinds);
    let dir = tempfile::tempdir().unwrap();
    let mut entries = Vec::new();
    for i in 0..3 {
        fill(&servers[2 * i], i);
        // The first pair's hook holds its cutover long enough to look at the page.
        let extra = match i {
            0 => "exec = \"sleep 4\"",
            2 => "switch = false",
            _ => "",
        };
        entries.push(pair_entry(
            &format!("page{i}"),
            &servers[2 * i],
            &servers[2 * i + 1],
            1 + i as u32 / 2,
            extra,
        ));
    }
    let plan = write_plan(dir.path(), 4, &entries);
    let plan_arg = plan.display().to_string();
    let mut fleet = Ferry::start_command(
        "fleet",
        &["run", &plan_arg, "--metrics-addr", "127.0.0.1:0"],
    );
    let line = fleet.wait_for("serving the fleet's page", Duration::from_secs(30));
    let addr = line.rsplit("http://").next().unwrap().trim().to_owned();
    wait_until("page0 in its cutover", || {
        status_now(&addr).is_some_and(|s| s["pairs"][0]["phase"] == "cutover")
    });
    let browser = Browser::start(WIDE);
    browser.goto(&format!("http://{addr}/?theme=dark"));
    let shown = |css: &str| browser.text_of(css);
    wait_until("the page shows the pairs", || {
        browser.execute("return document.querySelectorAll('#pairs tr').length") == 3
    });
    assert_eq!(
        browser.execute("return document.documentElement.dataset.theme"),
        "dark"
    );
    assert!(
        shown("tr[data-pair=\"page0\"]").contains("cutover"),
        "{}",
        shown("#pairs")
    );
    assert!(
        shown("tr[data-pair=\"page2\"]").contains("waiting"),
        "{}",
        shown("#pairs")
    );
    let route = format!(
        "127.0.0.1:{} → 127.0.0.1:{}",
        servers[0].port(),
        servers[1].port()
    );
    assert!(
        shown("tr[data-pair=\"page0\"]").contains(&route),
        "{}",
        shown("#pairs")
    );
    assert!(
        shown("#summary").contains("3 pairs"),
        "{}",
        shown("#summary")
    );
    browser.screenshot("fleet-cutover-dark");
    wait_until("page1 done on the page", || {
        shown("tr[data-pair=\"page1\"]").contains("verified equal")
    });
    let console = browser.console_errors();
    assert!(console.is_empty(), "console errors: {console:#?}");
    let exit = fleet.wait_exit(FLEET_TIMEOUT);
    assert!(exit.success(), "{}", fleet.output());
}

#[test]
fn an_interrupted_fleet_undoes_the_cutover_under_way_reports_and_a_rerun_finishes() {
    let kinds: Vec<ServerKind> = (0..3)
        .flat_map(|_| [ServerKind::Redis70, ServerKind::Valkey81])
        .collect();
    let servers = start_servers(&kinds);
    let dir = tempfile::tempdir().unwrap();
    let hooked = dir.path().join("hooked");
    let mut entries = Vec::new();
    for i in 0..3 {
        fill(&servers[2 * i], i);
        // The first pair's hook waits, the source paused, for the interrupt.
        let extra = match i {
            0 => format!("exec = \"touch '{}' && sleep 20\"", hooked.display()),
            _ => String::new(),
        };
        entries.push(pair_entry(
            &format!("i{i}"),
            &servers[2 * i],
            &servers[2 * i + 1],
            1,
            &extra,
        ));
    }
    let plan = write_plan(dir.path(), 1, &entries);
    let plan_arg = plan.display().to_string();
    let mut fleet = Ferry::start_command("fleet", &["run", &plan_arg, "--json"]);
    wait_until("the first pair's hook runs", || hooked.exists());
    fleet.signal("INT");
    let exit = fleet.wait_exit(Duration::from_secs(60));
    assert!(!exit.success(), "{}", fleet.output());
    assert!(
        fleet.output().contains("ferry: interrupted"),
        "{}",
        fleet.output()
    );
    let report = report_of(&fleet);
    let first = pair(&report, "i0");
    assert_eq!(first["phase"], "failed", "{first}");
    assert!(
        first["error"].as_str().unwrap().contains("interrupted"),
        "{first}"
    );
    assert!(
        report["failed"].is_null(),
        "an interrupt is no pair's failure: {report}"
    );
    for name in ["i1", "i2"] {
        assert_eq!(pair(&report, name)["phase"], "not-started", "{report}");
    }
    // The switch was undone: the source takes writes at once, its migration is gone.
    let started = Instant::now();
    redis::cmd("SET")
        .arg("after-interrupt")
        .arg(1)
        .query::<()>(&mut servers[0].client())
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the source stayed paused"
    );
    let addr = migration_address(&dir.path().join("state"), "i0").unwrap();
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "i0's migration still runs"
    );

    // The hook now moves on at once; the rerun does all three.
    std::fs::write(
        &plan,
        std::fs::read_to_string(&plan)
            .unwrap()
            .replace("sleep 20", "true"),
    )
    .unwrap();
    let (fleet, exit) = run_fleet(&plan, &[], &[]);
    assert!(exit.success(), "{}", fleet.output());
    let report = report_of(&fleet);
    for i in 0..3 {
        let row = pair(&report, &format!("i{i}"));
        assert_eq!(row["phase"], "done", "{row}");
        assert_eq!(
            user_keys(&servers[2 * i + 1]),
            user_keys(&servers[2 * i]),
            "i{i}"
        );
    }
}

#[test]
fn a_pair_cut_over_earlier_is_only_verified_again() {
    let servers = start_servers(&[ServerKind::Redis80, ServerKind::Valkey81]);
    let (source, target) = (&servers[0], &servers[1]);
    fill(source, 0);
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks");
    // A client moved by the hook writes to the target at once: verify then finds the
    // key the source lacks, and the pair fails after its switch.
    let hook = format!(
        "exec = '''echo ran >> '{}'; bash -c 'exec 3<>/dev/tcp/127.0.0.1/{}; printf \"SET moved-client 1\\r\\n\" >&3; read -r reply <&3' '''",
        hooks.display(),
        target.port()
    );
    let plan = write_plan(
        dir.path(),
        1,
        &[pair_entry("moved", source, target, 1, &hook)],
    );
    let (fleet, exit) = run_fleet(&plan, &[], &[]);
    assert!(!exit.success(), "{}", fleet.output());
    let report = report_of(&fleet);
    let row = pair(&report, "moved");
    assert_eq!(row["phase"], "failed", "{row}");
    assert_eq!(row["switched"], true, "{row}");
    assert!(
        row["error"].as_str().unwrap().contains("verify found 1 of"),
        "{row}"
    );

    // The operator looks, finds the stray key, removes it; the rerun neither migrates
    // nor switches again (the clients are on the target), it only compares.
    redis::cmd("DEL")
        .arg("moved-client")
        .query::<()>(&mut target.client())
        .unwrap();
    let (fleet, exit) = run_fleet(&plan, &[], &[]);
    assert!(exit.success(), "{}", fleet.output());
    assert_eq!(pair(&report_of(&fleet), "moved")["verify"]["differing"], 0);
    assert_eq!(
        std::fs::read_to_string(&hooks).unwrap(),
        "ran\n",
        "the hook ran once"
    );
    let log = std::fs::read_to_string(dir.path().join("state/moved/migrate.log")).unwrap();
    assert_eq!(
        log.matches("serving /metrics and /status on").count(),
        1,
        "{log}"
    );
}
