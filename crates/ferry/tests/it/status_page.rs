//! The status page at `/` of `--metrics-addr`, in a real headless Chromium while real
//! migrations run under load: it loads without a console error, shows what `/status`
//! says, plots as time passes, shows a cluster shard's failover and a relay's replicas,
//! and reads at a phone's width; `/metrics` passes `promtool check metrics`. Screenshots
//! (light, dark, narrow; mid-full-sync, streaming, a 3-shard cluster, a relay) go to
//! build/screenshots/ for review.

use crate::migrate_cluster_source::{load_on, loads, source_cluster, stop_loads};
use crate::support::browser::{Browser, NARROW, WIDE};
use crate::support::migrate::{master_repl_offset, Ferry, Load};
use crate::support::promtool::check_metrics;
use crate::support::relay::{start_replica, wait_link_up, Relay};
use crate::support::{grouped, http_get};
use ferry_testkit::{dataset, Server, ServerKind};
use serde_json::Value;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(60);

fn status(addr: &str) -> Value {
    let (code, body) = http_get(addr, "/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}):\n{body}"))
}

/// The text the page shows in `[data-field=field]`.
fn shown(browser: &Browser, field: &str) -> String {
    browser.text_of(&format!("[data-field=\"{field}\"]"))
}

/// Waits until `check` holds for what the page shows, polling every 200 ms.
fn wait_page(browser: &Browser, what: &str, mut check: impl FnMut(&Browser) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check(browser) {
        assert!(
            Instant::now() < deadline,
            "the page never showed {what}; it shows phase {:?}, applied offset {:?}",
            shown(browser, "phase"),
            shown(browser, "applied-offset")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How many elements match `css` (double quotes only inside it).
fn matching(browser: &Browser, css: &str) -> u64 {
    let count = browser.execute(&format!("return document.querySelectorAll('{css}').length"));
    count.as_u64().unwrap_or(0)
}

/// No console error in the browser and none the page's own handlers caught.
fn assert_no_page_errors(browser: &Browser) {
    let console = browser.console_errors();
    assert!(console.is_empty(), "console errors: {console:#?}");
    let caught = browser.execute("return window.ferryErrors");
    assert_eq!(caught, serde_json::json!([]), "errors the page caught");
}

/// Whether the page fits the window's width (no sideways scrolling).
fn fits_width(browser: &Browser) -> bool {
    browser.execute("return document.documentElement.scrollWidth <= window.innerWidth")
        == Value::Bool(true)
}

fn lag_plot_points(browser: &Browser) -> u64 {
    browser
        .attribute("[data-field=\"lag-plot\"]", "data-points")
        .and_then(|points| points.parse().ok())
        .unwrap_or(0)
}

fn assert_promtool_passes(addr: &str, what: &str) -> String {
    let (code, metrics) = http_get(addr, "/metrics");
    assert_eq!(code, 200, "{metrics}");
    if let Err(complaints) = check_metrics(&metrics) {
        panic!("promtool check metrics fails on {what}'s /metrics:\n{complaints}\n{metrics}");
    }
    metrics
}

#[test]
fn the_page_follows_a_migration_under_load_from_full_sync_to_in_sync() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    let target = Server::start(ServerKind::Valkey81).unwrap();
    dataset::populate(&source).unwrap();
    // Enough keys that the full sync lasts seconds: the page is seen in the middle of it.
    let mut con = source.client();
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(250_000)
        .arg("bulk")
        .arg(64)
        .query::<()>(&mut con)
        .unwrap();
    let load = Load::start(&source);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate(&source, &target, &state, &["--metrics-addr", "127.0.0.1:0"]);
    let addr = ferry.status_address(Duration::from_secs(30));

    let browser = Browser::start(WIDE);
    browser.goto(&format!("http://{addr}/?theme=light"));
    wait_page(&browser, "a full sync in progress", |b| {
        shown(b, "phase") == "full-sync" && shown(b, "full-sync-percent").ends_with(" %")
    });
    browser.screenshot("status-full-sync-light");
    // Redis 7.0 sends diskless: progress counts keys against what the source held.
    let progress = status(&addr)["full_sync"].clone();
    assert!(
        progress["expected_keys"].as_u64().unwrap_or(0) > 200_000,
        "{progress}"
    );

    ferry.wait_in_sync();
    wait_page(&browser, "the in-sync phase", |b| {
        shown(b, "phase") == "in-sync"
    });
    // The timeline keeps when each phase began.
    let full_sync_step = browser.text_of("[data-field=\"timeline\"] li[data-phase=\"full-sync\"]");
    assert!(
        full_sync_step.contains(':'),
        "no time on the full-sync step: {full_sync_step:?}"
    );
    assert_eq!(
        browser
            .attribute(
                "[data-field=\"timeline\"] li[data-phase=\"full-sync\"]",
                "class"
            )
            .as_deref(),
        Some("done")
    );

    // The lag plot gains a point a second while the load goes on.
    let before = lag_plot_points(&browser);
    std::thread::sleep(Duration::from_secs(4));
    let after = lag_plot_points(&browser);
    assert!(
        after >= before + 2,
        "the lag plot went from {before} to {after} points in 4 s"
    );
    browser.screenshot("status-streaming-light");

    // With the load stopped and everything applied, the page shows /status's numbers.
    load.stop();
    let wanted = master_repl_offset(&source);
    let deadline = Instant::now() + PATIENCE;
    while status(&addr)["applied_offset"].as_i64().unwrap_or(0) < wanted {
        assert!(
            Instant::now() < deadline,
            "ferry never applied offset {wanted}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The source still moves (its pings, keys expiring): the page is compared with
    // /status read just before and just after it, once the two agree.
    let mut now = Value::Null;
    wait_page(&browser, "the applied offset and lag /status gives", |b| {
        let before = status(&addr);
        let page = (shown(b, "applied-offset"), shown(b, "lag-bytes"));
        now = status(&addr);
        let steady = before["applied_offset"] == now["applied_offset"] && now["lag_bytes"] == 0;
        steady
            && page
                == (
                    grouped(now["applied_offset"].as_u64().unwrap()),
                    "0 B".to_owned(),
                )
    });
    assert_eq!(shown(&browser, "phase"), now["phase"].as_str().unwrap());
    assert_eq!(
        shown(&browser, "full-syncs"),
        now["full_sync"]["runs"].to_string()
    );
    assert_eq!(shown(&browser, "reconnects"), now["reconnects"].to_string());
    assert!(shown(&browser, "source").starts_with(now["source"].as_str().unwrap()));
    assert_eq!(
        shown(&browser, "next-verify"),
        now["next_steps"]["verify"].as_str().unwrap()
    );
    assert_eq!(
        shown(&browser, "next-cutover"),
        now["next_steps"]["cutover"].as_str().unwrap()
    );
    assert!(shown(&browser, "next-verify").starts_with("ferry verify --source redis://"));

    browser.goto(&format!("http://{addr}/?theme=dark"));
    wait_page(&browser, "the in-sync phase (dark)", |b| {
        shown(b, "phase") == "in-sync"
    });
    assert_eq!(
        browser.execute("return document.documentElement.dataset.theme"),
        "dark"
    );
    // The progress bar grows over 0.4 s after a load.
    std::thread::sleep(Duration::from_millis(600));
    browser.screenshot("status-in-sync-dark");
    browser.set_window_size(NARROW);
    std::thread::sleep(Duration::from_millis(500));
    browser.screenshot("status-in-sync-narrow");
    assert!(
        fits_width(&browser),
        "the page scrolls sideways at {NARROW:?}; too wide: {}",
        browser.execute(
            "return [...document.querySelectorAll('body *')]\
             .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)\
             .slice(0, 8).map((e) => e.tagName + '.' + e.className + '[' + \
             (e.dataset.field || '') + '] ' + Math.round(e.getBoundingClientRect().right))"
        )
    );
    assert_no_page_errors(&browser);

    assert_promtool_passes(&addr, "migrate");
    drop(browser);
    ferry.signal("TERM");
    assert!(
        ferry.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        ferry.output()
    );
}

#[test]
fn the_page_shows_each_shard_of_a_cluster_source_and_the_failover_it_followed() {
    let mut source = source_cluster(ServerKind::Redis70, 3, 1);
    let target = Server::start(ServerKind::Valkey81).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = loads(&source, 61, &stop);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ferry.state");
    let mut ferry = Ferry::migrate_between(
        &source.url(),
        &target.url(),
        &state,
        &["--metrics-addr", "127.0.0.1:0"],
    );
    let addr = ferry.status_address(Duration::from_secs(30));
    ferry.wait_all_shards_in_sync();

    let browser = Browser::start(WIDE);
    browser.goto(&format!("http://{addr}/"));
    wait_page(&browser, "three shard rows", |b| {
        matching(b, "[data-field=\"shards\"] tr") == 3
    });

    let shard_stop = Arc::new(AtomicBool::new(false));
    let shard_load = load_on(&source, 1, 71, &shard_stop);
    std::thread::sleep(Duration::from_secs(1));
    stop_loads(&shard_stop, vec![shard_load]);
    let old_port = source.nodes()[1].port();
    source.failover(1).unwrap();
    let new_primary = format!("127.0.0.1:{}", source.nodes()[1].port());
    running.push(load_on(&source, 1, 81, &stop));
    ferry.wait_for(
        &format!("failover followed from 127.0.0.1:{old_port}"),
        PATIENCE,
    );
    let row = "[data-field=\"shards\"] tr[data-failovers=\"1\"]";
    wait_page(&browser, "a shard row with one failover", |b| {
        matching(b, row) == 1
    });
    let shown_row = browser.text_of(row);
    assert!(
        shown_row.contains(&new_primary),
        "the shard row does not name the promoted primary {new_primary}: {shown_row:?}"
    );
    let shards = status(&addr)["shards"].clone();
    let followed = shards
        .as_array()
        .unwrap()
        .iter()
        .find(|shard| shard["failovers"] == 1)
        .unwrap_or_else(|| panic!("no shard with a failover in /status: {shards:#}"));
    assert_eq!(followed["node"], new_primary.as_str(), "{shards:#}");
    assert!(
        shown_row.contains(followed["slots"].as_str().unwrap()),
        "{shown_row:?}"
    );
    // Once the shard caught up on the promoted primary the run is in sync again.
    wait_page(&browser, "in sync after the failover", |b| {
        shown(b, "phase") == "in-sync"
    });
    assert!(
        fits_width(&browser),
        "the page scrolls sideways at {WIDE:?}"
    );
    browser.execute(
        "document.querySelector('[data-field=\"shards-section\"]').scrollIntoView(); return 0",
    );
    browser.screenshot("status-cluster-3-shards");
    assert_no_page_errors(&browser);

    let metrics = assert_promtool_passes(&addr, "migrate (cluster source)");
    assert!(
        metrics.contains(&format!(
            "ferry_shard_failovers_total{{shard=\"{}\",node=\"{new_primary}\"}} 1",
            followed["slots"].as_str().unwrap()
        )),
        "{metrics}"
    );
    stop_loads(&stop, running);
    drop(browser);
    ferry.signal("TERM");
    assert!(
        ferry.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        ferry.output()
    );
}

#[test]
fn the_page_of_a_relay_lists_its_replicas_with_what_each_was_sent() {
    let source = Server::start(ServerKind::Redis70).unwrap();
    dataset::populate(&source).unwrap();
    let mut relay = Relay::start(&source, 0, &["--metrics-addr", "127.0.0.1:0"]);
    let addr = relay.status_address(Duration::from_secs(30));
    let replica = start_replica(ServerKind::Valkey81, &relay, &[]);
    wait_link_up(&replica, &relay);

    let browser = Browser::start(WIDE);
    browser.goto(&format!("http://{addr}/"));
    let row = "[data-field=\"replicas\"] tr";
    wait_page(&browser, "a replica row", |b| {
        matching(b, row) == 1 && !b.text_of(row).contains("no replica attached")
    });
    let replicas = status(&addr)["replicas"].clone();
    let listed = &replicas[0];
    let shown_row = browser.text_of(row);
    let port = replica.port().to_string();
    assert_eq!(
        listed["address"],
        format!("127.0.0.1:{port}"),
        "{replicas:#}"
    );
    assert!(
        listed["version"].as_str().unwrap_or("").starts_with("8.1"),
        "{replicas:#}"
    );
    for field in ["address", "version", "rdb"] {
        let value = listed[field].as_str().unwrap();
        assert!(
            shown_row.contains(value),
            "{field} {value:?} is not in the row {shown_row:?}"
        );
    }
    browser.execute(
        "document.querySelector('[data-field=\"replicas-section\"]').scrollIntoView(); return 0",
    );
    browser.screenshot("status-relay");
    assert_no_page_errors(&browser);

    let metrics = assert_promtool_passes(&addr, "relay");
    assert!(
        metrics.contains(&format!(
            "ferry_replica_lag_bytes{{replica=\"127.0.0.1:{port}\"}}"
        )),
        "{metrics}"
    );
    drop(browser);
    relay.signal("TERM");
    assert!(relay.wait_exit(Duration::from_secs(30)).success());
}
