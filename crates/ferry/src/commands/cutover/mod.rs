//! `ferry cutover`: moves clients from a migration's source to its target while the
//! migration runs, without losing a write the source acknowledged. The steps are in
//! [`procedure`]; `--keep-rollback` then keeps the old source up to date ([`reverse`]).

pub mod hook;
pub mod interrupt;
pub mod primaries;
pub mod procedure;
pub mod report;
pub mod reverse;
pub mod server;
pub mod status;

use crate::cli::{CutoverArgs, SwitchArgs};
use crate::control::{ControlToken, ControlTokenArgs};
use crate::error::Error;
use crate::policy::Policies;
use crate::url::ServerUrl;
use procedure::Plan;
use status::StatusEndpoint;
use std::io::Write;
use std::time::Duration;

pub fn run(args: CutoverArgs, out: &mut dyn Write) -> Result<(), Error> {
    let (source, target) = super::primaries_now(
        (&args.source, &args.source_connection),
        (&args.target, &args.target_connection),
    )?;
    if let Some(path) = &args.rollback_state {
        reverse::check_state_path(path)?;
    }
    let token = control_token(&args.control)?;
    let plan = plan(
        "cutover",
        source.clone(),
        target.clone(),
        &args.switch,
        token,
    )?;
    switch(&plan, args.switch.json, out)?;
    if args.keep_rollback {
        if let Some(state) = &args.rollback_state {
            out.flush().map_err(Error::Stdout)?;
            return reverse::run(&source, &target, state, &args, out);
        }
    }
    Ok(())
}

/// The run's control token, which the switch needs to stop it: asked for before anything
/// is paused, so that a switch cannot fail at its last step for want of it.
pub fn control_token(args: &ControlTokenArgs) -> Result<ControlToken, Error> {
    args.token()?.ok_or_else(|| {
        Error::Usage(
            "give the run's control token with --control-token-file or --control-token-env: \
             the switch stops the run with it (POST /stop)"
                .into(),
        )
    })
}

/// The plan for either direction, from the shared flags.
pub fn plan(
    command: &'static str,
    source: ServerUrl,
    target: ServerUrl,
    args: &SwitchArgs,
    token: ControlToken,
) -> Result<Plan, Error> {
    let mut runs = Vec::with_capacity(args.status.len());
    for text in &args.status {
        let mut endpoint =
            StatusEndpoint::parse(text).map_err(|e| Error::Usage(format!("--status: {e}")))?;
        if runs
            .iter()
            .any(|run: &StatusEndpoint| run.addr == endpoint.addr)
        {
            return Err(Error::Usage(format!("--status {text} is given twice")));
        }
        endpoint.token = Some(token.clone());
        runs.push(endpoint);
    }
    Ok(Plan {
        command,
        source,
        target,
        runs,
        exec: args.exec.clone(),
        exec_undo: args.exec_undo.clone(),
        exec_timeout: Duration::from_millis(args.exec_timeout_ms),
        max_lag_bytes: args.max_lag_bytes,
        pause_timeout: Duration::from_millis(args.pause_timeout_ms),
        drain_timeout: Duration::from_millis(args.drain_timeout_ms),
        verify_sample: args.verify_sample,
        verify_timeout: Duration::from_millis(args.verify_timeout_ms),
        promote: args.promote,
        kill_clients: !args.keep_clients,
        policies: Policies::from(args.policies.clone()),
    })
}

/// Runs the switch and prints its report; a failure is an error (the report says where).
pub fn switch(plan: &Plan, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let report = {
        let signals = interrupt::Listener::start(plan.pause_timeout);
        procedure::run(plan, signals.interrupt())
    };
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

#[cfg(test)]
mod tests {
    use crate::cli::{parse, Command};

    const BASE: [&str; 8] = [
        "ferry",
        "cutover",
        "--source",
        "redis://a:1",
        "--target",
        "redis://b:2",
        "--status",
        "127.0.0.1:9121",
    ];

    fn cutover(extra: &[&str]) -> Result<crate::cli::CutoverArgs, clap::Error> {
        let args: Vec<&str> = BASE.iter().chain(extra).copied().collect();
        match parse(args)?.command {
            Command::Cutover(args) => Ok(args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rollback_flags_go_together() {
        assert!(cutover(&["--keep-rollback"]).is_err());
        assert!(cutover(&["--rollback-state", "r.state"]).is_err());
        let args = cutover(&["--keep-rollback", "--rollback-state", "r.state"]).unwrap();
        assert!(args.keep_rollback);
        assert!(
            cutover(&["--exec-undo", "true"]).is_err(),
            "--exec-undo needs --exec"
        );
    }

    #[test]
    fn a_switch_without_the_control_token_is_a_usage_error() {
        let args = cutover(&[]).unwrap();
        let err = super::control_token(&args.control).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--control-token-file"), "{err}");
    }

    #[test]
    fn defaults_kill_clients_and_verify_a_sample() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "a-long-enough-control-token").unwrap();
        let args = cutover(&["--control-token-file", token_file.to_str().unwrap()]).unwrap();
        let token = super::control_token(&args.control).unwrap();
        let plan = super::plan(
            "cutover",
            super::parse_url("redis://a:1", "--source").unwrap(),
            super::parse_url("redis://b:2", "--target").unwrap(),
            &args.switch,
            token,
        )
        .unwrap();
        assert!(plan.kill_clients && !plan.promote);
        assert_eq!(plan.verify_sample, 100);
        assert!(plan.pause_timeout > plan.drain_timeout + plan.exec_timeout);
    }
}
