//! The fleet's status page on `--metrics-addr`: `/` is one self-contained HTML table of
//! every pair (polling `/status` every second, light and dark like the run's own page)
//! and `/status` is the board as JSON. Served by the observe layer's listener.

use super::board::{Board, Phase, Row};
use crate::observe::http::Site;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

const PAGE: &str = include_str!("page.html");

/// The board, served.
pub struct FleetSite {
    pub board: Arc<Board>,
    pub concurrency: u32,
    pub started: Instant,
}

/// `/status`.
#[derive(Debug, Serialize)]
struct FleetStatus {
    mode: &'static str,
    concurrency: u32,
    seconds: f64,
    /// Pairs per phase name.
    done: usize,
    failed: usize,
    pairs: Vec<Row>,
}

impl Site for FleetSite {
    fn page(&self) -> &'static str {
        PAGE
    }

    fn status_json(&self) -> String {
        let pairs = self.board.rows();
        let count = |phase: Phase| pairs.iter().filter(|row| row.phase == phase).count();
        let status = FleetStatus {
            mode: "fleet",
            concurrency: self.concurrency,
            seconds: self.started.elapsed().as_secs_f64(),
            done: count(Phase::Done),
            failed: count(Phase::Failed),
            pairs,
        };
        serde_json::to_string_pretty(&status).unwrap_or_default()
    }
}
