//! `promtool check metrics`: Prometheus's own linter of the text exposition format.

use std::io::Write;
use std::process::{Command, Stdio};

use super::tools::tools;

/// Runs `promtool check metrics` on `text`: `Err` holds its complaints, one per line.
pub fn check_metrics(text: &str) -> Result<(), String> {
    let promtool = tools().promtool;
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {} ({err})", promtool.display()));
    // promtool reads all of stdin before it answers; closing it ends the input.
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("write the metrics to promtool");
    let output = child.wait_with_output().expect("wait for promtool");
    let complaints = [output.stdout, output.stderr]
        .iter()
        .map(|bytes| String::from_utf8_lossy(bytes).trim().to_string())
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    if output.status.success() && complaints.is_empty() {
        Ok(())
    } else {
        Err(complaints)
    }
}
