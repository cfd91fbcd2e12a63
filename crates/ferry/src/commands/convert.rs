//! `ferry convert IN OUT --to PROFILE`: rewrite an RDB file for another release.

use crate::cli::ConvertArgs;
use crate::codec::EncodeOptions;
use crate::display::{count, size};
use crate::error::Error;
use crate::pipeline::{self, RunStats};
use crate::policy::Policies;
use crate::progress::InputProgress;
use crate::sinks::rdb_file::RdbFileSink;
use crate::sources::file::RdbFileSource;
use crate::sources::Source;
use crate::target::Target;
use crate::transforms::compat::{CompatTransform, PolicyReport};
use crate::transforms::filter::ScopeTransform;
use std::io::Write;

pub fn run(args: ConvertArgs, out: &mut dyn Write) -> Result<(), Error> {
    let target = Target::from_args(args.to.as_deref(), args.rdb_version)?;
    let policies = Policies::from(args.policies);
    let mut source = RdbFileSource::open(&args.input)?;
    let mut compat = CompatTransform::new(target.clone(), policies, args.force)?;
    let options = EncodeOptions {
        compress: !args.no_compress,
        databases: Some(args.databases),
        ..EncodeOptions::default()
    };
    let scope = args
        .filters
        .scope()
        .map_err(|e| Error::Usage(e.to_string()))?;
    let mut sink = RdbFileSink::create(&args.output, target.format, options, args.force)?;

    let progress = InputProgress::new(source.total_bytes());
    let mut scoped = ScopeTransform::for_scope(scope);
    let result = pipeline::run_scoped(
        &mut source,
        scoped.as_mut(),
        &mut compat,
        &mut sink,
        &mut |bytes| progress.set(bytes),
    );
    progress.finish();
    let stats = result?;
    let report = compat.complete()?;

    let summary = summary_line(&args.output.display().to_string(), &target, &stats);
    writeln!(out, "{summary}").map_err(Error::Stdout)?;
    if let Some(scoped) = &scoped {
        writeln!(out, "{}", scoped.report_line()).map_err(Error::Stdout)?;
    }
    write_report(out, &report)
}

/// `wrote out.rdb for valkey-8.1 (RDB 11): 1204 keys (db0 1200, db3 4); read 12.3 MB,
/// wrote 11.0 MB in 2.1 s (5.9 MB/s)`
fn summary_line(output: &str, target: &Target, stats: &RunStats) -> String {
    let per_db: Vec<String> = stats
        .sink
        .keys_per_db
        .iter()
        .map(|(db, keys)| format!("db{db} {keys}"))
        .collect();
    let keys = count(stats.sink.total_keys(), "key", "keys");
    let keys = if per_db.is_empty() {
        keys
    } else {
        format!("{keys} ({})", per_db.join(", "))
    };
    let seconds = stats.elapsed.as_secs_f64();
    let rate = stats.bytes_read as f64 / seconds.max(1e-3) / 1e6;
    let version = target.format.version;
    let format = if target.name == version.to_string() {
        target.name.clone()
    } else {
        format!("{} ({version})", target.name)
    };
    format!(
        "wrote {output} for {format}: {keys}; read {}, wrote {} in {seconds:.1} s ({rate:.1} MB/s)",
        size(stats.bytes_read),
        size(stats.sink.bytes_written),
    )
}

fn write_report(out: &mut dyn Write, report: &PolicyReport) -> Result<(), Error> {
    for line in report.lines() {
        writeln!(out, "{line}").map_err(Error::Stdout)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::SinkStats;
    use std::time::Duration;

    #[test]
    fn summary_names_keys_per_db_sizes_and_rate() {
        let stats = RunStats {
            bytes_read: 12_000_000,
            sink: SinkStats {
                keys_per_db: [(0, 1200), (3, 4)].into(),
                bytes_written: 11_000_000,
            },
            elapsed: Duration::from_secs(2),
        };
        let target = Target::from_profile("valkey-8.1").unwrap();
        assert_eq!(
            summary_line("out.rdb", &target, &stats),
            "wrote out.rdb for valkey-8.1 (RDB 11): 1204 keys (db0 1200, db3 4); \
             read 12.0 MB, wrote 11.0 MB in 2.0 s (6.0 MB/s)"
        );
        let target = Target::from_rdb_version(9).unwrap();
        assert!(summary_line("o", &target, &stats).starts_with("wrote o for RDB 9: "));
    }
}
