//! `ferry cutover`: moves clients from a migration's source to its target while the
//! migration runs, without losing a write the source acknowledged. The steps are in
//! [`procedure`]; `--keep-rollback` then keeps the old source up to date ([`reverse`]).

pub mod hook;
pub mod procedure;
pub mod report;
pub mod reverse;
pub mod server;
pub mod status;

use crate::cli::{CutoverArgs, SwitchArgs};
use crate::error::Error;
use crate::policy::Policies;
use crate::url::ServerUrl;
use procedure::Plan;
use status::StatusEndpoint;
use std::io::Write;
use std::time::Duration;

pub fn run(args: CutoverArgs, out: &mut dyn Write) -> Result<(), Error> {
    let source = parse_url(&args.source, "--source")?;
    let target = parse_url(&args.target, "--target")?;
    if let Some(path) = &args.rollback_state {
        reverse::check_state_path(path)?;
    }
    let plan = plan("cutover", source.clone(), target.clone(), &args.switch)?;
    switch(&plan, args.switch.json, out)?;
    if args.keep_rollback {
        if let Some(state) = &args.rollback_state {
            out.flush().map_err(Error::Stdout)?;
            return reverse::run(&source, &target, state, &args, out);
        }
    }
    Ok(())
}

/// The plan for either direction, from the shared flags.
pub fn plan(
    command: &'static str,
    source: ServerUrl,
    target: ServerUrl,
    args: &SwitchArgs,
) -> Result<Plan, Error> {
    let status =
        StatusEndpoint::parse(&args.status).map_err(|e| Error::Usage(format!("--status: {e}")))?;
    Ok(Plan {
        command,
        source,
        target,
        status,
        exec: args.exec.clone(),
        exec_undo: args.exec_undo.clone(),
        exec_timeout: Duration::from_millis(args.exec_timeout_ms),
        max_lag_bytes: args.max_lag_bytes,
        pause_timeout: Duration::from_millis(args.pause_timeout_ms),
        drain_timeout: Duration::from_millis(args.drain_timeout_ms),
        verify_sample: args.verify_sample,
        promote: args.promote,
        kill_clients: !args.keep_clients,
        policies: Policies::from(args.policies.clone()),
    })
}

/// Runs the switch and prints its report; a failure is an error (the report says where).
pub fn switch(plan: &Plan, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let report = procedure::run(plan);
    if json {
        report.write_json(out)
    } else {
        report.write_text(out)
    }
    .map_err(Error::Stdout)?;
    out.flush().map_err(Error::Stdout)?;
    match report.error {
        None => Ok(()),
        Some(error) => Err(Error::Migration(error)),
    }
}

pub fn parse_url(text: &str, flag: &str) -> Result<ServerUrl, Error> {
    ServerUrl::parse(text).map_err(|e| Error::Usage(format!("{flag}: {e}")))
}
