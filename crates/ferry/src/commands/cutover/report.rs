//! What a cutover (or rollback) did: each step with its time, the write-pause window it
//! caused, and on failure the step that failed. Text for people, one JSON line for
//! automation.

use serde::Serialize;
use std::io::Write;

#[derive(Debug, Clone, Serialize)]
pub struct StepTime {
    pub step: &'static str,
    pub ms: f64,
    /// What the step found or did, e.g. "applied offset 1234".
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SwitchReport {
    /// `cutover` or `rollback`.
    pub command: &'static str,
    /// host:port of the server clients leave, and of the one they move to.
    pub from: String,
    pub to: String,
    pub ok: bool,
    pub failed_step: Option<&'static str>,
    /// The failure, one line, with what state it left.
    pub error: Option<String>,
    /// From CLIENT PAUSE sent to CLIENT UNPAUSE answered; `None` if never paused.
    pub pause_window_ms: Option<f64>,
    /// The source's replication offset once paused: every write it accepted before.
    pub paused_offset: Option<i64>,
    /// The same for each primary of a cluster source (then `paused_offset` is unset).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub paused_offsets: std::collections::BTreeMap<String, i64>,
    pub steps: Vec<StepTime>,
}

impl SwitchReport {
    pub fn new(command: &'static str, from: String, to: String) -> Self {
        Self {
            command,
            from,
            to,
            ok: false,
            failed_step: None,
            error: None,
            pause_window_ms: None,
            paused_offset: None,
            paused_offsets: Default::default(),
            steps: Vec::new(),
        }
    }

    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "{} {} -> {}", self.command, self.from, self.to)?;
        for step in &self.steps {
            writeln!(
                out,
                "  {:<10} {:>9.1} ms  {}",
                step.step, step.ms, step.detail
            )?;
        }
        match (self.ok, self.pause_window_ms) {
            (true, Some(ms)) => {
                writeln!(out, "done: writes paused on {} for {ms:.1} ms", self.from)
            }
            (false, Some(ms)) => writeln!(
                out,
                "failed at step {}: writes paused on {} for {ms:.1} ms, now unpaused",
                self.failed_step.unwrap_or("?"),
                self.from
            ),
            (false, None) => writeln!(
                out,
                "failed at step {}: writes were never paused",
                self.failed_step.unwrap_or("?")
            ),
            (true, None) => Ok(()),
        }
    }

    pub fn write_json(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let text = serde_json::to_string(self).map_err(std::io::Error::other)?;
        writeln!(out, "{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_names_the_failed_step_and_the_pause() {
        let mut report = SwitchReport::new("cutover", "a:1".into(), "b:2".into());
        report.steps.push(StepTime {
            step: "drain",
            ms: 12.0,
            detail: "applied offset 5".into(),
        });
        report.failed_step = Some("hook");
        report.pause_window_ms = Some(40.5);
        let mut text = Vec::new();
        report.write_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("drain") && text.contains("applied offset 5"),
            "{text}"
        );
        assert!(
            text.contains("failed at step hook") && text.contains("40.5 ms"),
            "{text}"
        );

        let mut json = Vec::new();
        report.write_json(&mut json).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["failed_step"], "hook");
        assert_eq!(value["steps"][0]["step"], "drain");
        assert_eq!(json.iter().filter(|b| **b == b'\n').count(), 1);
    }
}
