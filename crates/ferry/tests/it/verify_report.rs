//! `ferry verify --report FILE.html`: the page a change ticket gets says what the text and
//! JSON say (verdict, counts per database and type, each difference under its kind), holds
//! no password, and opens in a real Chromium without a console error.

use crate::support::browser::{Browser, WIDE};
use crate::support::{ferry, grouped, require_password};
use crate::verify_real_servers::identical_pair;
use ferry_testkit::ServerKind;
use serde_json::Value;
use std::path::Path;

const PASSWORD: &str = "report-s3cret";

/// Runs verify with `--json --report page`; its exit code, JSON and page.
fn verify_with_report(source_url: &str, target_url: &str, page: &Path) -> (i32, Value, String) {
    let page_arg = page.display().to_string();
    let out = ferry(&[
        "verify", "--source", source_url, "--target", target_url, "--json", "--report", &page_arg,
    ]);
    let code = out.status.code().expect("an exit code");
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    let html = std::fs::read_to_string(page)
        .unwrap_or_else(|e| panic!("no report at {} ({e})", page.display()));
    (code, json, html)
}

/// Every (database, type) count of the JSON is a row of the page's table.
fn assert_table_matches(html: &str, json: &Value) {
    let by_database = json["by_database"].as_object().expect("by_database");
    assert!(!by_database.is_empty(), "{json:#}");
    for (db, types) in by_database {
        for (type_name, tally) in types.as_object().unwrap() {
            let row = format!(
                "<tr><td>db{db}</td><td>{type_name}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
                grouped(tally["compared"].as_u64().unwrap()),
                grouped(tally["equal"].as_u64().unwrap()),
                grouped(tally["differing"].as_u64().unwrap()),
            );
            assert!(html.contains(&row), "no row {row} in the page:\n{html}");
        }
    }
}

#[test]
fn the_report_page_tells_an_equal_copy_from_one_with_differences() {
    let (source, target) = identical_pair(ServerKind::Redis70, |_| {});
    require_password(&source, PASSWORD);
    let source_url = format!("redis://:{PASSWORD}@127.0.0.1:{}", source.port());
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("verify.html");

    let (code, json, html) = verify_with_report(&source_url, &target.url(), &page);
    assert_eq!(code, 0, "{json:#}");
    assert!(html.contains("id=\"verdict\">equal</span>"), "{html}");
    assert!(html.contains(&format!(
        "<b id=\"compared\">{}</b>",
        grouped(json["summary"]["keys_compared"].as_u64().unwrap())
    )));
    assert_table_matches(&html, &json);
    assert!(
        !html.contains(PASSWORD),
        "the page holds the source's password"
    );
    assert!(html.contains("redis://:***@127.0.0.1"), "{html}");

    // Two differences of different kinds, in two databases.
    let mut con = target.client();
    let missing: String = redis::cmd("RANDOMKEY").query(&mut con).unwrap();
    redis::cmd("DEL")
        .arg(&missing)
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("SELECT").arg(1).query::<()>(&mut con).unwrap();
    redis::cmd("SET")
        .arg("only-on-target <&>")
        .arg("x")
        .query::<()>(&mut con)
        .unwrap();

    let (code, json, html) = verify_with_report(&source_url, &target.url(), &page);
    assert_eq!(code, 1, "{json:#}");
    assert!(
        html.contains("id=\"verdict\">2 keys differ</span>"),
        "{html}"
    );
    assert_table_matches(&html, &json);
    let missing_table = html
        .split("data-kind=\"missing\"")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap_or_else(|| panic!("no table of missing keys:\n{html}"));
    assert!(
        missing_table.contains(&format!("<code>{missing}</code>")),
        "{missing_table}"
    );
    let extra_table = html
        .split("data-kind=\"extra\"")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap_or_else(|| panic!("no table of extra keys:\n{html}"));
    assert!(
        extra_table.contains("<td>db1</td><td><code>only-on-target &lt;&amp;&gt;</code></td>"),
        "{extra_table}"
    );

    let browser = Browser::start(WIDE);
    browser.goto(&format!("file://{}", page.display()));
    assert_eq!(browser.text_of("#verdict"), "2 keys differ");
    assert_eq!(
        browser.execute("return document.querySelectorAll('table.differences').length"),
        2
    );
    browser.screenshot("verify-report");
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
