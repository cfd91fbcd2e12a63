//! `ferry verify --source URL --target URL`: compare, print the report, and exit 0 only
//! when nothing differs (1: differences, 2: could not compare).

use crate::cli::VerifyArgs;
use crate::error::Error;
use crate::output_file::OutputFile;
use crate::policy::Policies;
use crate::verify::{self, VerifyError, VerifyOptions};
use std::io::Write;
use std::path::Path;

/// Writes the page whole or not at all.
fn write_page(path: &Path, page: &str) -> Result<(), Error> {
    let (guard, mut file) = OutputFile::create(path, true)?;
    file.write_all(page.as_bytes())
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })?;
    guard.commit(file)
}

pub fn run(args: VerifyArgs, out: &mut dyn Write) -> Result<(), Error> {
    // The flags are checked before anything connects.
    let scope = args
        .filters
        .scope()
        .map_err(|e| Error::Usage(e.to_string()))?;
    let (source, target) = super::primaries_now(
        (&args.source, &args.source_connection),
        (&args.target, &args.target_connection),
    )?;
    let options = VerifyOptions {
        sample: args.sample,
        rounds: args.rounds,
        ttl_tolerance_ms: args.ttl_tolerance_ms,
        max_ops_per_sec: args.max_ops_per_sec,
        policies: Policies::from(args.policies),
        scope,
        ..VerifyOptions::new(source, target)
    };
    let report = verify::run(&options)?;
    if let Some(path) = &args.report {
        let heading = verify::html::Heading {
            source: options.source.to_string(),
            target: options.target.to_string(),
            scope: match options.scope.is_everything() {
                true => "every key of every database".to_owned(),
                false => options.scope.describe(),
            },
            finished_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs()),
        };
        write_page(path, &verify::html::render(&report, &heading))?;
    }
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
