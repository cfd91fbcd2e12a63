//! The tooling the status-page tests stand on, proven able to fail: a real headless
//! Chromium (support/browser.rs) reports a page's console errors and uncaught exceptions,
//! and promtool (support/promtool.rs) rejects badly named metrics.

use crate::support::browser::{Browser, ConsoleEntry, NARROW, WIDE};
use crate::support::promtool::check_metrics;
use std::path::Path;

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
