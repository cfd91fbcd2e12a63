//! What `ferry migrate` tells the outside, against real servers: `--json` events,
//! `/metrics` and `/status` on `--metrics-addr`, no progress bars off a terminal, and no
//! password anywhere.

use crate::support::migrate::{
    master_repl_offset, refused_stops, simple_load, wait_applied, Ferry, CONTROL_FLAGS,
    CONTROL_TOKEN,
};
use crate::support::{http_get, http_post};
use ferry_testkit::{dataset, Server, ServerKind};
use serde_json::Value;
use std::io::Read;
use std::time::{Duration, Instant};

/// One sample's value from Prometheus text.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

fn status(addr: &str) -> Value {
    let (code, body) = http_get(addr, "/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}):\n{body}"))
}

fn wait_until(what: &str, ferry: &Ferry, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} within 30 s:\n{}",
            ferry.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn json_events_show_full_sync_then_streaming_then_in_sync_and_no_bars_off_a_terminal() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    dataset::populate(&source).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");

    let mut ferry = Ferry::migrate(&source, &target, &state, &["--json"]);
    ferry.wait_in_sync();
    simple_load(&source, 1);
    wait_applied(&source, &state, &ferry);
    ferry.signal("TERM");
    assert!(ferry.wait_exit(Duration::from_secs(20)).success());

    let events: Vec<Value> = ferry
        .stdout_lines()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let phases: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "phase")
        .map(|e| e["phase"].as_str().expect("a phase name"))
        .collect();
    assert_eq!(
        phases,
        ["full-sync", "streaming", "in-sync", "stopped"],
        "{events:#?}"
    );
    let started = events
        .iter()
        .find(|e| e["event"] == "started")
        .expect("a started event");
    assert_eq!(started["target"], format!("127.0.0.1:{}", target.port()));
    let in_sync = events
        .iter()
        .find(|e| e["event"] == "phase" && e["phase"] == "in-sync")
        .unwrap();
    // A source with no replica before is at offset 0 for the full sync: any number will do.
    assert!(in_sync["offset"].as_i64().is_some(), "{in_sync}");
    // Every stderr line is also a log event.
    let logged: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "log")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        logged.iter().any(|m| m.starts_with("in sync at offset")),
        "{logged:?}"
    );

    // Stderr is a pipe here: plain lines only, no bar drawing (carriage returns, escapes).
    let output = ferry.output();
    assert!(
        !output.contains('\r') && !output.contains('\u{1b}'),
        "{output:?}"
    );
    assert!(output.lines().all(|l| l.starts_with("ferry: ")), "{output}");
}

#[test]
fn metrics_and_status_answer_during_a_run_with_consistent_offsets() {
    let source = Server::start(ServerKind::Valkey80).unwrap();
    let target = Server::start(ServerKind::Valkey91).unwrap();
    dataset::populate(&source).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");

    let mut ferry = Ferry::migrate(&source, &target, &state, &["--metrics-addr", "127.0.0.1:0"]);
    let addr = ferry.status_address(Duration::from_secs(10));
    ferry.wait_in_sync();
    simple_load(&source, 1);
    wait_applied(&source, &state, &ferry);
    let wanted = master_repl_offset(&source);

    // The periodic tick publishes what the state file already says.
    wait_until("/status reaches the source's offset", &ferry, || {
        status(&addr)["applied_offset"].as_i64() >= Some(wanted)
    });
    let now = status(&addr);
    assert_eq!(now["phase"], "in-sync", "{now:#}");
    let applied = now["applied_offset"].as_i64().unwrap();
    let received = now["source_offset"].as_i64().unwrap();
    assert!(applied <= received, "{now:#}");
    assert_eq!(now["lag_bytes"].as_i64(), Some(received - applied));
    assert_eq!(now["target"], format!("127.0.0.1:{}", target.port()));
    assert!(now["full_sync"]["keys"].as_u64().unwrap() > 0, "{now:#}");
    let mut con = source.client();
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut con)
        .unwrap();
    let replid = info
        .lines()
        .find_map(|l| l.strip_prefix("master_replid:"))
        .unwrap()
        .trim();
    assert_eq!(now["source_replid"], replid, "{now:#}");

    let (code, metrics) = http_get(&addr, "/metrics");
    assert_eq!(code, 200);
    let applied_metric = sample(&metrics, "ferry_applied_offset_bytes");
    let source_metric = sample(&metrics, "ferry_source_offset_bytes");
    assert!(applied_metric >= wanted as f64, "{metrics}");
    assert!(applied_metric <= source_metric, "{metrics}");
    assert_eq!(
        sample(&metrics, "ferry_lag_bytes"),
        source_metric - applied_metric
    );
    assert_eq!(sample(&metrics, "ferry_phase{phase=\"in-sync\"}"), 1.0);
    assert!(sample(&metrics, "ferry_commands_applied_total") > 0.0);

    assert_eq!(http_get(&addr, "/elsewhere").0, 404);
}

const PASSWORD: &str = "s3cret-pw";

/// A server that requires `PASSWORD` (set after start: the testkit's readiness PING
/// carries no password).
fn server_with_password(kind: ServerKind) -> Server {
    let server = Server::start(kind).unwrap();
    let mut con = server.client();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASSWORD)
        .query::<()>(&mut con)
        .unwrap();
    server
}

fn url_with_password(server: &Server) -> String {
    format!("redis://default:{PASSWORD}@127.0.0.1:{}", server.port())
}

#[test]
fn passwords_appear_in_no_event_metric_status_or_log() {
    let source = server_with_password(ServerKind::Redis80);
    let target = server_with_password(ServerKind::Valkey81);
    let mut con = redis::Client::open(url_with_password(&source))
        .unwrap()
        .get_connection()
        .unwrap();
    for i in 0..100 {
        redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(i)
            .query::<()>(&mut con)
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let state_arg = state.display().to_string();
    let source_url = url_with_password(&source);
    let target_url = url_with_password(&target);
    let mut ferry = Ferry::start(&[
        "--source",
        &source_url,
        "--target",
        &target_url,
        "--state",
        &state_arg,
        "--json",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let addr = ferry.status_address(Duration::from_secs(10));
    ferry.wait_in_sync();
    redis::cmd("SET")
        .arg("after")
        .arg("sync")
        .query::<()>(&mut con)
        .unwrap();
    let (_, metrics) = http_get(&addr, "/metrics");
    let (_, status_text) = http_get(&addr, "/status");
    ferry.signal("TERM");
    assert!(ferry.wait_exit(Duration::from_secs(20)).success());

    let stdout = ferry.stdout_lines().join("\n");
    let stderr = ferry.output();
    let state_text = std::fs::read_to_string(&state).unwrap();
    assert!(stdout.contains("in sync at offset"), "{stdout}");
    // The URLs are printed, masked: a leak would show here.
    assert!(stderr.contains("default:***@127.0.0.1"), "{stderr}");
    assert!(status_text.contains("\"phase\""), "{status_text}");
    for (place, text) in [
        ("stdout", &stdout),
        ("stderr", &stderr),
        ("/metrics", &metrics),
        ("/status", &status_text),
        ("the state file", &state_text),
    ] {
        assert!(
            !text.contains(PASSWORD),
            "the password is in {place}:\n{text}"
        );
    }
}

#[test]
fn bars_are_drawn_when_stderr_is_a_terminal() {
    use std::process::{Command, Stdio};
    // util-linux `script` gives ferry a terminal; without it there is nothing to check.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to provide a terminal");
        return;
    }
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    dataset::populate(&source).unwrap();
    // The pseudo-terminal starts with no size (0x0) when script's stdin is not a
    // terminal; give it a real one, as a terminal window has.
    let command = format!(
        "stty rows 40 cols 160; exec {} migrate --source {} --target {}",
        env!("CARGO_BIN_EXE_ferry"),
        source.url(),
        target.url()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start script");
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        // Raw reads: a bar redraws its line in place, without newlines.
        let mut stdout = stdout;
        let mut buffer = [0u8; 4096];
        loop {
            match stdout.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    if sender.send(buffer[..read].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut in_sync_at = None;
    while Instant::now() < deadline {
        if let Ok(chunk) = receiver.recv_timeout(Duration::from_millis(100)) {
            seen.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&seen);
        if in_sync_at.is_none() && text.contains("in sync at offset") {
            in_sync_at = Some(Instant::now());
        }
        // A second of streaming: the bar ticks every 200 ms.
        if in_sync_at.is_some_and(|t| t.elapsed() > Duration::from_secs(1)) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(in_sync_at.is_some(), "{text:?}");
    // The streaming bar: redrawn in place (escape sequences), showing the offsets.
    assert!(text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("in-sync"), "{text:?}");
    assert!(text.contains("lag 0 bytes"), "{text:?}");
}

#[test]
fn a_failed_run_ends_with_an_error_event_matching_stderr() {
    let source = Server::start(ServerKind::Valkey81).unwrap();
    // A port nothing listens on.
    let closed = ferry_testkit::ClosedPort::reserve().unwrap();
    let target = format!("redis://127.0.0.1:{}", closed.port());
    let source_url = source.url();
    let mut ferry = Ferry::start(&["--source", &source_url, "--target", &target, "--json"]);
    let status = ferry.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{}", ferry.output());
    let events: Vec<Value> = ferry
        .stdout_lines()
        .iter()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let last = events.last().expect("events");
    assert_eq!(last["event"], "error", "{events:#?}");
    let stderr = ferry.output();
    let printed = stderr.lines().last().unwrap();
    assert_eq!(
        Some(printed),
        last["message"]
            .as_str()
            .map(|m| format!("ferry: {m}"))
            .as_deref()
    );
}

/// Asserts the run goes on after `what`: the process lives and `/status` is not stopped.
fn assert_still_running(ferry: &mut Ferry, addr: &str, what: &str) {
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        ferry.is_running(),
        "{what} stopped the run:\n{}",
        ferry.output()
    );
    let phase = status(addr)["phase"].clone();
    assert_ne!(phase, "stopped", "{what} stopped the run");
    assert!(!ferry.output().contains("asked to by POST /stop"), "{what}");
}

#[test]
fn post_stop_needs_the_control_token_and_the_listeners_own_origin() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    simple_load(&source, 1);
    let dir = tempfile::tempdir().unwrap();

    // Without a token the run cannot be stopped over HTTP at all.
    let state = dir.path().join("open.state");
    let mut ferry = Ferry::migrate(&source, &target, &state, &["--metrics-addr", "127.0.0.1:0"]);
    let addr = ferry.status_address(Duration::from_secs(10));
    ferry.wait_in_sync();
    let bearer = format!("Bearer {CONTROL_TOKEN}");
    let (code, body) = http_post(&addr, "/stop", &[("Authorization", &bearer)]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("--control-token-file"), "{body}");
    assert_still_running(&mut ferry, &addr, "a POST /stop to a run without a token");
    let (code, _) = http_get(&addr, "/metrics");
    assert_eq!(code, 200, "reads stay open");
    ferry.kill();

    let target = Server::start(ServerKind::Valkey81).unwrap();
    let state = dir.path().join("guarded.state");
    let mut args = vec!["--metrics-addr", "127.0.0.1:0"];
    args.extend_from_slice(&CONTROL_FLAGS);
    let mut ferry = Ferry::migrate(&source, &target, &state, &args);
    let addr = ferry.status_address(Duration::from_secs(10));
    ferry.wait_in_sync();
    for (what, code, body) in refused_stops(&addr) {
        assert!(code == 401 || code == 403, "{what}: {code} {body}");
        assert!(!body.contains(CONTROL_TOKEN), "{what}: {body}");
        assert_still_running(&mut ferry, &addr, what);
    }
    // The right token, with or without the listener's own origin, stops it.
    let own_origin = format!("http://{addr}");
    let (code, body) = http_post(
        &addr,
        "/stop",
        &[("Authorization", &bearer), ("Origin", &own_origin)],
    );
    assert_eq!(code, 202, "{body}");
    assert!(ferry.wait_exit(Duration::from_secs(20)).success());
    assert!(ferry.output().contains("asked to by POST /stop"));
    assert!(!ferry.output().contains(CONTROL_TOKEN));
}
