//! The report as text (one screen for a person), JSON (stable, docs/assess.md) or
//! markdown (for a change ticket).

use super::findings::Finding;
use super::Report;
use crate::display::size;
use std::fmt::Write;

pub fn json(report: &Report) -> String {
    // A report is plain data; serializing it cannot fail.
    let mut text = serde_json::to_string_pretty(report).unwrap_or_default();
    text.push('\n');
    text
}

fn source_line(report: &Report) -> String {
    let s = &report.source;
    let mut line = s.origin.clone();
    let mut about = Vec::new();
    if let Some(server) = &s.server {
        about.push(server.clone());
    }
    if let Some(v) = s.rdb_version {
        about.push(format!("RDB {v}"));
    }
    if !about.is_empty() {
        let _ = write!(line, " ({})", about.join(", "));
    }
    line
}

fn target_line(report: &Report) -> String {
    let t = &report.target;
    let mut line = format!("{} ({} {}", t.name, t.product, t.version);
    if let Some(v) = t.rdb_version {
        let _ = write!(line, ", RDB {v}");
    }
    line.push(')');
    line
}

fn contents_line(report: &Report) -> String {
    let s = &report.source;
    let mut line = format!("{} keys in {} database(s)", s.keys, s.databases.len());
    if let Some(bytes) = s.used_memory {
        let _ = write!(line, ", {} used", size(bytes));
    }
    if !s.types.is_empty() {
        let types: Vec<String> = s.types.iter().map(|(t, n)| format!("{t} {n}")).collect();
        let _ = write!(line, "; {}", types.join(", "));
    }
    if !s.command_calls.is_empty() {
        let calls: u64 = s.command_calls.values().sum();
        let _ = write!(
            line,
            "; {} commands called {calls} times",
            s.command_calls.len()
        );
    }
    line
}

/// Role, cluster mode and persistence of a live source.
fn setup_line(report: &Report) -> Option<String> {
    let s = &report.source;
    let mut parts = Vec::new();
    if let Some(role) = &s.role {
        parts.push(format!("role {role}"));
    }
    if let Some(cluster) = s.cluster_enabled {
        parts.push(format!("cluster {}", if cluster { "on" } else { "off" }));
    }
    if let Some(aof) = s.aof_enabled {
        parts.push(format!("AOF {}", if aof { "on" } else { "off" }));
    }
    if let Some(save) = &s.rdb_save {
        parts.push(format!("save '{save}'"));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "source:  {}", source_line(report));
    let _ = writeln!(out, "         {}", contents_line(report));
    if let Some(line) = setup_line(report) {
        let _ = writeln!(out, "         {line}");
    }
    let _ = writeln!(out, "target:  {}", target_line(report));
    let _ = writeln!(
        out,
        "\nverdict: {} ({})\n",
        report.verdict.as_str().to_uppercase(),
        report.verdict_reason
    );
    if report.findings.is_empty() {
        let _ = writeln!(out, "no findings");
    }
    let mut previous_advice = None;
    for finding in &report.findings {
        text_finding(&mut out, finding, previous_advice);
        previous_advice = Some(finding.advice.as_str());
    }
    if !report.unchecked.is_empty() {
        let _ = writeln!(out, "\npartial report; not checked:");
        for gap in &report.unchecked {
            let _ = writeln!(out, "  {}: {}: {}", gap.side, gap.check, gap.reason);
        }
    }
    out
}

/// One finding; its advice only when it differs from the one above, to fit one screen.
fn text_finding(out: &mut String, finding: &Finding, previous_advice: Option<&str>) {
    let _ = writeln!(
        out,
        "{:<8} {}: {}",
        finding.severity.as_str(),
        finding.id,
        finding.summary
    );
    if !finding.examples.is_empty() {
        let _ = writeln!(out, "         e.g. {}", finding.examples.join(", "));
    }
    if previous_advice != Some(finding.advice.as_str()) {
        let _ = writeln!(out, "         -> {}", finding.advice);
    }
}

pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Migration assessment: {}\n",
        report.verdict.as_str()
    );
    let _ = writeln!(out, "- **Source:** {}", source_line(report));
    let _ = writeln!(out, "- **Contents:** {}", contents_line(report));
    let _ = writeln!(out, "- **Target:** {}", target_line(report));
    let _ = writeln!(
        out,
        "- **Verdict:** `{}`: {}\n",
        report.verdict.as_str(),
        report.verdict_reason
    );
    if report.findings.is_empty() {
        let _ = writeln!(out, "No findings.");
    } else {
        let _ = writeln!(out, "| Severity | Finding | Count | Examples | Advice |");
        let _ = writeln!(out, "|---|---|---:|---|---|");
        for f in &report.findings {
            let examples: Vec<String> = f
                .examples
                .iter()
                .map(|e| format!("`{}`", cell(e)))
                .collect();
            let _ = writeln!(
                out,
                "| {} | `{}`: {} | {} {} | {} | {} |",
                f.severity.as_str(),
                f.id,
                cell(&f.summary),
                f.count,
                f.unit,
                examples.join(", "),
                cell(&f.advice)
            );
        }
    }
    if !report.unchecked.is_empty() {
        let _ = writeln!(out, "\n**Partial report.** Not checked:\n");
        for gap in &report.unchecked {
            let _ = writeln!(out, "- {}: {}: {}", gap.side, gap.check, cell(&gap.reason));
        }
    }
    out
}

/// Text safe inside a markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('\n', " ")
        .replace('`', "'")
}
