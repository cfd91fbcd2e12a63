//! `ferry verify --source URL --target URL`: compare, print the report, and exit 0 only
//! when nothing differs (1: differences, 2: could not compare).

use crate::cli::VerifyArgs;
use crate::error::Error;
use crate::policy::Policies;
use crate::verify::{self, VerifyError, VerifyOptions};
use std::io::Write;

pub fn run(args: VerifyArgs, out: &mut dyn Write) -> Result<(), Error> {
    let options = VerifyOptions {
        sample: args.sample,
        rounds: args.rounds,
        ttl_tolerance_ms: args.ttl_tolerance_ms,
        max_ops_per_sec: args.max_ops_per_sec,
        policies: Policies::from(args.policies),
        scope: args
            .filters
            .scope()
            .map_err(|e| Error::Usage(e.to_string()))?,
        ..VerifyOptions::new(
            super::primary_now(
                args.source_connection
                    .settings()
                    .resolve(&args.source, "--source")?,
            )?,
            super::primary_now(
                args.target_connection
                    .settings()
                    .resolve(&args.target, "--target")?,
            )?,
        )
    };
    let report = verify::run(&options)?;
    if args.json {
        let text = serde_json::to_string_pretty(&report.to_json()).unwrap_or_default();
        writeln!(out, "{text}").map_err(Error::Stdout)?;
    } else {
        report.write_text(out).map_err(Error::Stdout)?;
    }
    if report.is_clean() {
        Ok(())
    } else {
        out.flush().map_err(Error::Stdout)?;
        Err(VerifyError::Differences {
            count: report.summary.differing,
        }
        .into())
    }
}
