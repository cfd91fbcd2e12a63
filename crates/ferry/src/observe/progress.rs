//! Progress bars on stderr, only when stderr is a terminal: bytes, keys and ETA during the
//! full sync; applied offset, lag and commands/s while streaming. Off a terminal there
//! are no bars and the periodic plain lines take their place.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug)]
pub struct Bars {
    on_terminal: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    pub fn new() -> Self {
        Self {
            on_terminal: std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }

    /// Whether bars are drawn (and the periodic plain lines left out).
    pub fn active(&self) -> bool {
        self.on_terminal
    }

    fn replace(&self, bar: Option<ProgressBar>) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(old) = slot.take() {
                old.finish_and_clear();
            }
            *slot = bar;
        }
    }

    fn new_bar(total: Option<u64>, template: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        // The templates are fixed and valid; should indicatif disagree, its default style
        // still shows progress.
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    pub fn start_full_sync(&self, total_bytes: Option<u64>) {
        if !self.on_terminal {
            return;
        }
        let template = match total_bytes {
            Some(_) => "full sync {bar:30} {decimal_bytes}/{decimal_total_bytes} {msg} eta {eta}",
            None => "full sync {spinner} {decimal_bytes} {msg}",
        };
        self.replace(Some(Self::new_bar(total_bytes, template)));
    }

    pub fn full_sync(&self, keys: u64, bytes: u64, keys_per_sec: f64) {
        self.with_bar(|bar| {
            bar.set_position(bytes);
            bar.set_message(format!("{keys} keys ({keys_per_sec:.0}/s)"));
        });
    }

    pub fn start_streaming(&self) {
        if self.on_terminal {
            self.replace(Some(Self::new_bar(None, "{prefix} {spinner} {msg}")));
        }
    }

    pub fn streaming(&self, phase: &str, applied: i64, lag: i64, ops_per_sec: f64) {
        self.with_bar(|bar| {
            bar.set_prefix(phase.to_owned());
            bar.set_message(format!(
                "applied offset {applied}, lag {lag} bytes, {ops_per_sec:.0} commands/s"
            ));
        });
    }

    pub fn clear(&self) {
        self.replace(None);
    }

    /// Prints a line above the bar (or plainly when there is none).
    pub fn println(&self, line: &str) -> bool {
        let mut printed = false;
        self.with_bar(|bar| {
            bar.println(line);
            printed = true;
        });
        printed
    }

    fn with_bar(&self, action: impl FnOnce(&ProgressBar)) {
        if let Ok(slot) = self.bar.lock() {
            if let Some(bar) = slot.as_ref() {
                action(bar);
            }
        }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}
