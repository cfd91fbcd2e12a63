//! The tooling the status-page tests stand on, proven on its own: a real headless Chromium
//! (support/browser.rs) sees what a page shows and what its console reports, it loads a
//! live `ferry migrate`'s `/status`, and promtool (support/promtool.rs) judges Prometheus
//! text.

use crate::support::browser::{Browser, ConsoleEntry, NARROW, WIDE};
use crate::support::http_get;
use crate::support::migrate::Ferry;
use crate::support::promtool::check_metrics;
use ferry_testkit::{dataset, Server, ServerKind};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Width and height from a PNG's header (the IHDR chunk comes first).
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let number = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (number(16), number(20))
}

fn describe(entries: &[ConsoleEntry]) -> String {
    entries
        .iter()
        .map(|e| format!("{} {}: {}", e.level, e.source, e.message))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_console_error_and_an_uncaught_exception_reach_the_harness() {
    let browser = Browser::start(WIDE);
    browser.goto(
        "data:text/html,<p id=said>hello</p><script>console.log('calm-marker');\
         console.error('boom-marker');missingFunction();</script>",
    );
    assert_eq!(browser.text_of("#said"), "hello");

    let errors = browser.console_errors();
    let all = describe(&errors);
    assert!(
        errors
            .iter()
            .any(|e| e.source == "console-api" && e.message.contains("boom-marker")),
        "console.error is not among the errors:\n{all}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.source == "javascript" && e.message.contains("missingFunction")),
        "the uncaught ReferenceError is not among the errors:\n{all}"
    );
    assert!(
        !errors.iter().any(|e| e.message.contains("calm-marker")),
        "console.log counted as an error:\n{all}"
    );
    // Each entry is handed out once: a second read starts from there.
    assert!(browser.console_errors().is_empty());
}

#[test]
fn a_clean_page_yields_no_console_errors_and_the_window_takes_the_asked_sizes() {
    let browser = Browser::start(WIDE);
    browser.goto(
        "data:text/html,<title>clean</title><p id=said data-state=calm>all quiet</p>\
         <script>console.log('just information')</script>",
    );
    assert_eq!(browser.text_of("#said"), "all quiet");
    assert_eq!(
        browser.attribute("#said", "data-state").as_deref(),
        Some("calm")
    );
    assert_eq!(browser.execute("return document.title"), "clean");
    assert_eq!(browser.execute("return window.innerWidth"), WIDE.0);

    browser.set_window_size(NARROW);
    assert_eq!(browser.execute("return window.innerWidth"), NARROW.0);
    let shot = browser.screenshot("tooling-clean-narrow");
    assert_eq!(png_size(&shot).0, NARROW.0, "{}", shot.display());

    let console = browser.console();
    assert!(
        console
            .iter()
            .any(|e| e.message.contains("just information")),
        "the log endpoint returned nothing at all:\n{}",
        describe(&console)
    );
    assert!(
        console.iter().all(|e| e.level != "SEVERE"),
        "{}",
        describe(&console)
    );
}

#[test]
fn chromium_shows_the_status_of_a_live_migration_as_served() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    dataset::populate(&source).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate(&source, &target, &state, &["--metrics-addr", "127.0.0.1:0"]);
    let addr = ferry.status_address(Duration::from_secs(30));
    ferry.wait_in_sync();

    let browser = Browser::start(WIDE);
    browser.goto(&format!("http://{addr}/status"));
    // Chromium shows a JSON response as its text in a <pre>.
    let shown = browser.text_of("pre");
    let shown: Value = serde_json::from_str(&shown)
        .unwrap_or_else(|e| panic!("the page does not show JSON ({e}):\n{shown}"));
    let (code, body) = http_get(&addr, "/status");
    assert_eq!(code, 200, "{body}");
    let fetched: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(shown["phase"], "in-sync", "{shown:#}");
    assert_eq!(shown["phase"], fetched["phase"], "{shown:#}\n{fetched:#}");
    let shot = browser.screenshot("tooling-status-json-wide");
    assert_eq!(png_size(&shot), WIDE, "{}", shot.display());
    eprintln!("screenshot: {}", shot.display());
    eprintln!(
        "console on /status: {}",
        describe(&browser.console_errors())
    );

    // Today's metric names are being reworked: shown here, judged by the status-page tests.
    let (code, metrics) = http_get(&addr, "/metrics");
    assert_eq!(code, 200, "{metrics}");
    match check_metrics(&metrics) {
        Ok(()) => eprintln!("promtool check metrics on /metrics: clean"),
        Err(complaints) => eprintln!("promtool check metrics on /metrics:\n{complaints}"),
    }

    drop(browser);
    ferry.signal("TERM");
    assert!(ferry.wait_exit(Duration::from_secs(20)).success());
}

#[test]
fn promtool_flags_a_gauge_named_like_a_counter_and_passes_clean_text() {
    let bad = "# HELP x_total A gauge with a counter's suffix.\n# TYPE x_total gauge\nx_total 1\n";
    let complaints = check_metrics(bad).expect_err("promtool accepted a gauge named x_total");
    assert!(complaints.contains("x_total"), "{complaints}");

    let good = "# HELP ferry_tooling_keys Keys seen by the tooling test.\n\
                # TYPE ferry_tooling_keys gauge\nferry_tooling_keys 3\n\
                # HELP ferry_tooling_writes_total Writes seen by the tooling test.\n\
                # TYPE ferry_tooling_writes_total counter\nferry_tooling_writes_total 7\n";
    assert_eq!(check_metrics(good), Ok(()));
}
