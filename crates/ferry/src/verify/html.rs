//! `ferry verify --report FILE.html`: the result as one static page to attach to a change
//! ticket. Self-contained (styles inline, no script, nothing fetched), so it reads the
//! same from a mail, a ticket system or a disk years later; it prints cleanly.

use super::report::{DiffKind, VerifyReport};
use std::fmt::Write as _;

/// What the page says about the run besides the report: which servers, which scope.
#[derive(Debug, Clone)]
pub struct Heading {
    /// The URLs as shown (passwords masked by [`crate::url::ServerUrl`]'s Display).
    pub source: String,
    pub target: String,
    /// The scope flags, or "every key of every database".
    pub scope: String,
    /// Unix time the comparison ended, seconds.
    pub finished_at: u64,
}

const STYLE: &str = "
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #59636e; --bg: #fff; --line: #d1d9e0;
  --ok: #1a7f37; --bad: #cf222e; --card: #f6f8fa; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9198a1; --bg: #0d1117;
  --line: #30363d; --ok: #3fb950; --bad: #f85149; --card: #161b22; } }
body { font: 15px/1.5 system-ui, -apple-system, 'Segoe UI', sans-serif; color: var(--fg);
  background: var(--bg); max-width: 70rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.verdict { font-weight: 700; } .verdict.equal { color: var(--ok); } .verdict.differ { color: var(--bad); }
.muted { color: var(--muted); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
td.num, th.num { text-align: right; }
code { font: 13px/1.4 ui-monospace, 'SFMono-Regular', Menlo, monospace; overflow-wrap: anywhere; }
.cards { display: flex; flex-wrap: wrap; gap: .75rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .6rem 1rem; min-width: 8rem; }
.card b { display: block; font-size: 1.4rem; }
@media print { body { margin: 0; } .card { border-color: #999; } }
";

/// The page.
pub fn render(report: &VerifyReport, heading: &Heading) -> String {
    let mut page = String::with_capacity(16 * 1024);
    let s = &report.summary;
    let equal = report.is_clean();
    let verdict = if equal {
        "equal".to_owned()
    } else {
        format!("{} keys differ", s.differing)
    };
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>ferry verify: {}</title><style>{STYLE}</style></head><body>\n",
        escape(&verdict)
    );
    let _ = write!(
        page,
        "<h1>ferry verify: <span class=\"verdict {}\" id=\"verdict\">{}</span></h1>\n\
         <p class=\"muted\">{} · ferry {}</p>\n<dl>\
         <dt>source</dt><dd><code>{}</code></dd><dt>target</dt><dd><code>{}</code></dd>\
         <dt>scope</dt><dd>{}</dd><dt>compared</dt><dd>{}</dd></dl>\n",
        if equal { "equal" } else { "differ" },
        escape(&verdict),
        utc(heading.finished_at),
        env!("CARGO_PKG_VERSION"),
        escape(&heading.source),
        escape(&heading.target),
        escape(&heading.scope),
        escape(&coverage(report)),
    );
    for side in &report.sides {
        let _ = writeln!(page, "<p class=\"muted\">{}</p>", escape(side));
    }
    summary_cards(&mut page, report);
    by_database(&mut page, report);
    excused(&mut page, report);
    differences(&mut page, report);
    page.push_str("</body></html>\n");
    page
}

fn coverage(report: &VerifyReport) -> String {
    let keys = match report.sampled {
        Some(n) => format!("a sample of about {n} keys"),
        None => "every key".to_owned(),
    };
    let rounds = report.rounds;
    let plural = if rounds == 1 { "" } else { "s" };
    format!("{keys}, by type, TTL and value, in {rounds} round{plural}")
}

fn summary_cards(page: &mut String, report: &VerifyReport) {
    let s = &report.summary;
    page.push_str("<h2>Summary</h2>\n<div class=\"cards\">");
    for (id, label, value) in [
        ("compared", "compared", s.keys_compared),
        ("equal", "equal", s.equal),
        ("differing", "differing", s.differing),
        ("excused", "policy-excused", s.policy_excused),
        ("settled", "settled on re-check", report.settled),
    ] {
        let _ = write!(
            page,
            "<div class=\"card\"><b id=\"{id}\">{}</b>{label}</div>",
            grouped(value)
        );
    }
    page.push_str("</div>\n");
    if s.differing > 0 {
        let _ = writeln!(
            page,
            "<p>By kind (a key can differ in several ways): {} missing on the target, {} extra \
             on the target, {} of another type, {} with another TTL, {} with another value.</p>",
            s.missing, s.extra, s.type_, s.ttl, s.value
        );
    }
}

fn by_database(page: &mut String, report: &VerifyReport) {
    page.push_str(
        "<h2>Keys per database and type</h2>\n<table id=\"by-database\"><thead><tr><th>database</th>\
         <th>type</th><th class=\"num\">compared</th><th class=\"num\">equal</th>\
         <th class=\"num\">differing</th><th class=\"num\">policy-excused</th></tr></thead><tbody>",
    );
    for (db, types) in &report.by_database {
        for (type_name, tally) in types {
            let _ = write!(
                page,
                "<tr><td>db{db}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(type_name),
                grouped(tally.compared),
                grouped(tally.equal),
                grouped(tally.differing),
                grouped(tally.policy_excused)
            );
        }
    }
    if report.by_database.is_empty() {
        page.push_str("<tr><td colspan=\"6\" class=\"muted\">no key on either side</td></tr>");
    }
    page.push_str("</tbody></table>\n");
}

fn excused(page: &mut String, report: &VerifyReport) {
    if report.excused.is_empty() && report.notes.is_empty() && report.summary.type_only == 0 {
        return;
    }
    page.push_str("<h2>What policies excused, and notes</h2>\n<ul id=\"excused\">");
    for (reason, count) in &report.excused {
        let _ = write!(
            page,
            "<li>{} keys: {}</li>",
            grouped(*count),
            escape(reason)
        );
    }
    for (note, count) in &report.notes {
        let _ = write!(
            page,
            "<li>{} keys equal; {}</li>",
            grouped(*count),
            escape(note)
        );
    }
    if report.summary.type_only > 0 {
        let _ = write!(
            page,
            "<li>{} module values compared by type only</li>",
            grouped(report.summary.type_only)
        );
    }
    page.push_str("</ul>\n");
}

fn differences(page: &mut String, report: &VerifyReport) {
    if report.differences.is_empty() {
        return;
    }
    page.push_str("<h2>Differences</h2>\n");
    for kind in [
        DiffKind::Missing,
        DiffKind::Extra,
        DiffKind::Type,
        DiffKind::Ttl,
        DiffKind::Value,
    ] {
        let listed: Vec<_> = report
            .differences
            .iter()
            .filter(|difference| difference.kinds().contains(&kind))
            .collect();
        if listed.is_empty() {
            continue;
        }
        let _ = write!(
            page,
            "<h3>{} ({})</h3>\n<table class=\"differences\" data-kind=\"{}\"><thead><tr>\
             <th>database</th><th>key</th><th>type</th><th>what differs</th></tr></thead><tbody>",
            kind_title(kind),
            listed.len(),
            kind.name()
        );
        for difference in listed {
            let details: Vec<String> = difference
                .findings
                .iter()
                .filter(|finding| finding.kind == kind)
                .map(|finding| escape(&finding.detail))
                .collect();
            let _ = write!(
                page,
                "<tr><td>db{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                difference.db,
                escape(&difference.key),
                escape(&difference.type_name),
                details.join("<br>")
            );
        }
        page.push_str("</tbody></table>\n");
    }
    if report.unlisted_differences > 0 {
        let _ = writeln!(
            page,
            "<p>… and {} more differing keys, counted above but not listed.</p>",
            grouped(report.unlisted_differences)
        );
    }
}

fn kind_title(kind: DiffKind) -> &'static str {
    match kind {
        DiffKind::Missing => "Missing on the target",
        DiffKind::Extra => "Only on the target",
        DiffKind::Type => "Another type",
        DiffKind::Ttl => "Another TTL",
        DiffKind::Value => "Another value",
    }
}

/// Text safe inside HTML elements and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A count with thousands separators, as the status page writes them.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `2026-12-07 12:34:56 UTC` from Unix seconds (the civil calendar from days since
/// 1970-01-01, after Howard Hinnant's well-known derivation).
fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let seconds = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::report::KeyOutcome;
    use crate::verify::Finding;

    fn heading() -> Heading {
        Heading {
            source: "redis://app:***@10.0.0.1:6379".into(),
            target: "valkey://10.0.0.2:6379".into(),
            scope: "--match 'app:*'".into(),
            finished_at: 1_796_647_696,
        }
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_647_696), "2026-12-07 12:48:16 UTC");
    }

    #[test]
    fn keys_are_escaped_and_differences_grouped_by_kind() {
        let mut report = VerifyReport {
            rounds: 2,
            ..VerifyReport::default()
        };
        report.record(0, "string", b"plain", KeyOutcome::Equal);
        report.record(
            3,
            "hash",
            b"<script>alert(1)</script>",
            KeyOutcome::Differs(vec![Finding::new(
                DiffKind::Missing,
                "not on the target (hash)",
            )]),
        );
        report.record(0, "hash", b"h", KeyOutcome::Excused("field TTLs removed"));
        let page = render(&report, &heading());
        assert!(!page.contains("<script>"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(page.contains("data-kind=\"missing\""), "{page}");
        assert!(!page.contains("data-kind=\"value\""), "{page}");
        assert!(page.contains("1 keys differ"), "{page}");
        assert!(
            page.contains("<li>1 keys: field TTLs removed</li>"),
            "{page}"
        );
        assert!(page.contains("<td>db3</td><td>hash</td>"), "{page}");
        assert!(page.contains("--match &#39;app:*&#39;"), "{page}");
    }

    #[test]
    fn an_equal_result_says_so_and_lists_no_difference() {
        let mut report = VerifyReport {
            rounds: 1,
            ..VerifyReport::default()
        };
        report.record(0, "list", b"l", KeyOutcome::Equal);
        let page = render(&report, &heading());
        assert!(page.contains("<span class=\"verdict equal\" id=\"verdict\">equal</span>"));
        assert!(!page.contains("<h2>Differences</h2>"));
        assert!(page.contains("2026-12-07 12:48:16 UTC"));
    }
}
