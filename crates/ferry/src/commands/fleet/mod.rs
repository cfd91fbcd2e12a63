//! `ferry fleet run PLAN.toml`: many standalone source → target pairs from one plan.
//! Each pair is a `ferry migrate` child process, cut over once in sync and verified
//! ([`pair`]); pairs run in waves with a concurrency limit ([`schedule`]); the fleet's
//! record ([`record`]) makes a rerun skip what is done; one report at the end
//! ([`report`]) and one status page while it runs ([`page`]).

pub mod board;
pub mod child;
pub mod page;
pub mod pair;
pub mod plan;
pub mod record;
pub mod report;
pub mod schedule;
pub mod signals;

use crate::control::ControlToken;
use crate::error::Error;
use crate::output_file::OutputFile;
use board::{Board, Row};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct FleetArgs {
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Migrate every pair of the plan: wave by wave, at most --concurrency at once; each
    /// pair is copied, cut over once in sync (its `exec` hook moves the clients) and
    /// verified. The first pair that fails stops its wave and the later ones. A rerun
    /// skips the pairs already done. See docs/fleet.md.
    Run(FleetRunArgs),
}

#[derive(Debug, Args)]
pub struct FleetRunArgs {
    // `[defaults]` is TOML in --help, not a link (a `\[` would show there).
    #[allow(rustdoc::broken_intra_doc_links)]
    /// The plan (TOML): state_dir, concurrency, [defaults] and one [[pair]] per
    /// source → target.
    pub plan: PathBuf,
    /// Pairs migrating at once (overrides the plan's `concurrency`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,
    /// Serve the fleet's status page (GET /) and its JSON (GET /status) on this address,
    /// e.g. 127.0.0.1:9120 (port 0 picks a free port; the address is logged).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Print the report as one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the report (JSON) to FILE. Replaces FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// How a fleet run ended badly.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("pair {pair} failed: {error}")]
    PairFailed { pair: String, error: String },
    #[error("cannot create the state folder {}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("interrupted: the pairs not done stopped; rerun the plan to go on")]
    Interrupted,
    #[error("cannot make a control token for the migrations")]
    Token(#[source] std::io::Error),
}

impl From<FleetError> for Error {
    fn from(error: FleetError) -> Self {
        Error::Run(Box::new(error))
    }
}

pub fn run(args: FleetArgs, out: &mut dyn Write) -> Result<(), Error> {
    match args.command {
        FleetCommand::Run(args) => run_plan(args, out),
    }
}

fn run_plan(args: FleetRunArgs, out: &mut dyn Write) -> Result<(), Error> {
    let plan = plan::load(&args.plan, &|var| std::env::var(var).ok())
        .map_err(|e| Error::Usage(e.to_string()))?;
    let concurrency = args.concurrency.unwrap_or(plan.concurrency);
    std::fs::create_dir_all(&plan.state_dir).map_err(|source| FleetError::StateDir {
        path: plan.state_dir.clone(),
        source,
    })?;
    let record_path = record::path(&plan.state_dir);
    let earlier = record::load(&record_path).map_err(|e| Error::Run(Box::new(e)))?;
    let board = Arc::new(Board::new(
        plan.pairs
            .iter()
            .map(|pair| {
                let mut row = Row::new(
                    &pair.name,
                    pair.wave,
                    pair.source.address(),
                    pair.target.address(),
                );
                row.switch = pair.switch;
                if let Some(done) = record::done_before(&earlier, &row) {
                    row = done.clone();
                    row.earlier_run = true;
                    row.wave = pair.wave;
                    row.switch = pair.switch;
                } else if record::switched_before(&earlier, &row).is_some() {
                    row.switched = true;
                }
                row
            })
            .collect(),
    ));
    let token = ControlToken::generate().map_err(FleetError::Token)?;
    let started = Instant::now();
    // The listener's runtime lives as long as the run: dropping it stops the page.
    let _listener = match args.metrics_addr {
        Some(addr) => Some(serve(addr, &board, concurrency, started)?),
        None => None,
    };
    let ended = {
        let signals = signals::listen();
        schedule::Fleet {
            plan: &plan,
            concurrency,
            pairs: pair::Context {
                state_dir: &plan.state_dir,
                token: &token,
                board: &board,
                interrupt: signals.interrupt(),
                recorder: &record::Recorder::new(record_path),
            },
        }
        .run()
    };
    let report = report::FleetReport::new(
        board.rows(),
        concurrency,
        started.elapsed().as_secs_f64(),
        ended.failure.clone(),
    );
    if let Some(path) = &args.report {
        write_report(path, &report.to_json())?;
    }
    if args.json {
        writeln!(out, "{}", report.to_json()).map_err(Error::Stdout)?;
    } else {
        report.write_text(out).map_err(Error::Stdout)?;
    }
    out.flush().map_err(Error::Stdout)?;
    if let Some(error) = ended.record_error {
        return Err(error);
    }
    match ended.failure {
        Some(failure) => Err(FleetError::PairFailed {
            pair: failure.pair,
            error: failure.error,
        }
        .into()),
        None if ended.interrupted => Err(FleetError::Interrupted.into()),
        None => Ok(()),
    }
}

/// Starts the page's listener on a runtime of its own and logs its address.
fn serve(
    addr: std::net::SocketAddr,
    board: &Arc<Board>,
    concurrency: u32,
    started: Instant,
) -> Result<tokio::runtime::Runtime, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::Migration(format!("cannot start the async runtime: {e}")))?;
    let site = Arc::new(page::FleetSite {
        board: board.clone(),
        concurrency,
        started,
    });
    let bound = runtime
        .block_on(crate::observe::http::serve_site(addr, site))
        .map_err(|e| Error::Usage(format!("--metrics-addr {addr}: cannot listen: {e}")))?;
    let _ = writeln!(
        std::io::stderr(),
        "ferry: serving the fleet's page and /status on http://{bound}"
    );
    Ok(runtime)
}

fn write_report(path: &std::path::Path, text: &str) -> Result<(), Error> {
    let (guard, mut file) = OutputFile::create(path, true)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })?;
    guard.commit(file)
}
