//! `cargo xtask demo`: the problem and ferry's answer, end to end on real servers.
//!
//! Redis 8.0 saves a realistic mixed dataset; Valkey 8.1 refuses that file; ferry inspects
//! and converts it; Valkey 8.1 loads the conversion; then both servers are compared key by
//! key, where the only differences allowed are exactly what the chosen policies promise.

mod expect;
mod vectors;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ferry_testkit::snapshot::{DiffOptions, Snapshot};
use ferry_testkit::{dataset, Server, ServerKind};

use crate::bench::datasets::thousands;
use crate::bench::table::Table;
use crate::bench::tools;

/// Differences listed before the rest are only counted.
const SHOWN_DIFFERENCES: usize = 20;

pub fn run(root: &Path, manifest: &Path) -> Result<ExitCode> {
    std::env::set_var(ferry_testkit::MANIFEST_ENV, manifest);
    let ferry = tools::ferry(root)?;
    let dir = root.join("build").join("demo");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let original = dir.join("redis-8.0.rdb");
    let converted = dir.join("valkey-8.1.rdb");
    let exported = dir.join("vectors.jsonl");
    let started = Instant::now();
    // Shown and run relative to the repository root, as a person would type them.
    let rel = |path: &Path| relative(root, path);

    step("Redis 8.0 saves a mixed dataset (every type and encoding, field TTLs, vector sets)");
    let redis = Server::start(ServerKind::Redis80)?;
    dataset::populate(&redis)?;
    let saved = redis.save()?;
    fs::copy(&saved, &original)
        .with_context(|| format!("cannot copy the dump to {}", original.display()))?;
    println!(
        "{} ({}) saved {} ({:.1} MB)",
        redis.kind(),
        redis.entry().version,
        rel(&original).display(),
        fs::metadata(&original)?.len() as f64 / 1e6
    );

    step("Valkey 8.1 cannot load it");
    match Server::start_with_rdb(ServerKind::Valkey81, &original) {
        Ok(_) => bail!("Valkey 8.1 loaded the Redis 8.0 file unchanged: nothing to demonstrate"),
        Err(err) => {
            println!("Valkey 8.1 refused {}:", rel(&original).display());
            for line in refusal_lines(&format!("{err:#}")) {
                println!("    {line}");
            }
        }
    }

    step("ferry inspect");
    show_command(
        root,
        Command::new(&ferry)
            .current_dir(root)
            .arg("inspect")
            .arg(rel(&original)),
    )?;

    step("ferry convert to valkey-8.1");
    show_command(
        root,
        Command::new(&ferry)
            .current_dir(root)
            .arg("convert")
            .arg(rel(&original))
            .arg(rel(&converted))
            .args([
                "--to",
                "valkey-8.1",
                "--hash-field-ttl",
                "persist",
                "--vector-set",
            ])
            .arg(format!("export={}", rel(&exported).display()))
            .arg("--force"),
    )?;

    step("Valkey 8.1 loads the converted file");
    let valkey = Server::start_with_rdb(ServerKind::Valkey81, &converted)
        .context("Valkey 8.1 refused ferry's conversion")?;
    println!(
        "{} ({}) started from {}",
        valkey.kind(),
        valkey.entry().version,
        rel(&converted).display()
    );

    step("compare both sides, key by key");
    let source = Snapshot::capture(&redis)?;
    let target = Snapshot::capture(&valkey)?;
    let expected = expect::after_policies(&source);
    print!("{}", key_count_table(&source, &target, &expected));

    let differences = expected.snapshot.diff(&target, &DiffOptions::new());
    for difference in differences.iter().take(SHOWN_DIFFERENCES) {
        println!("difference: {difference}");
    }
    if differences.len() > SHOWN_DIFFERENCES {
        println!("... and {} more", differences.len() - SHOWN_DIFFERENCES);
    }
    let export = vectors::check(&exported, &expected.vector_sets)?;
    for problem in &export.problems {
        println!("export: {problem}");
    }

    let elements: u64 = expected.vector_sets.values().map(|set| set.card).sum();
    let functions = expected.snapshot.functions.as_ref().map_or(0, |f| f.len());
    let export_verdict = if export.problems.is_empty() {
        "every element matches VEMB/VGETATTR".to_string()
    } else {
        format!("{} export problems", export.problems.len())
    };
    println!(
        "\n{} keys and {functions} function libraries compared, {} {}; {} vector sets \
         exported ({} elements; {} lines written, {export_verdict}) to {}; {} field TTLs \
         persisted (in {} hashes). {:.0} s after the build.",
        thousands(expected.snapshot.key_count() as u64),
        differences.len(),
        if differences.len() == 1 {
            "difference"
        } else {
            "differences"
        },
        expected.vector_sets.len(),
        thousands(elements),
        thousands(export.elements),
        rel(&exported).display(),
        thousands(expected.persisted_fields),
        expected.persisted_hashes,
        started.elapsed().as_secs_f64()
    );
    if differences.is_empty() && export.problems.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "demo FAILED: Valkey 8.1's data is not what --hash-field-ttl persist and --vector-set \
         export promise (see above)"
    );
    Ok(ExitCode::FAILURE)
}

fn step(title: &str) {
    println!("\n== {title} ==");
}

/// Runs a ferry command with its output shown as is; its failure ends the demo.
fn show_command(root: &Path, command: &mut Command) -> Result<()> {
    let program = relative(root, Path::new(command.get_program()));
    let shown: Vec<String> = std::iter::once(program.as_os_str())
        .chain(command.get_args())
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    println!("$ {}", shown.join(" "));
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", shown.join(" ")))?;
    if !status.success() {
        bail!("`{}` failed ({status})", shown.join(" "));
    }
    Ok(())
}

/// The server's own words on why it stopped: its warning lines (`#`), without the
/// generic start-up advice (`# WARNING …`), or else its last lines.
fn refusal_lines(error: &str) -> Vec<String> {
    let log: Vec<&str> = error.lines().skip(1).collect();
    let mut lines: Vec<String> = log
        .iter()
        .filter(|line| line.contains(" # ") && !line.contains(" # WARNING"))
        .map(|line| line.trim().to_string())
        .collect();
    if lines.is_empty() {
        lines = log
            .iter()
            .rev()
            .take(3)
            .rev()
            .map(|l| l.trim().to_string())
            .collect();
    }
    lines
}

fn key_count_table(source: &Snapshot, target: &Snapshot, expected: &expect::Expected) -> String {
    let dbs: BTreeSet<u32> = source
        .databases
        .keys()
        .chain(target.databases.keys())
        .copied()
        .collect();
    let mut table = Table::new(&[
        "db",
        ">Redis 8.0",
        ">Valkey 8.1",
        ">expected on Valkey",
        "why different",
    ]);
    let count = |snapshot: &Snapshot, db: u32| snapshot.databases.get(&db).map_or(0, |k| k.len());
    for db in dbs {
        let left_out = expected
            .vector_sets
            .keys()
            .filter(|(d, _)| *d == db)
            .count();
        table.row(vec![
            format!("db{db}"),
            thousands(count(source, db) as u64),
            thousands(count(target, db) as u64),
            thousands(count(&expected.snapshot, db) as u64),
            if left_out > 0 {
                format!("{left_out} vector sets exported, not loaded")
            } else {
                String::new()
            },
        ]);
    }
    table.render()
}

fn relative(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root)
        .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::refusal_lines;

    #[test]
    fn the_refusal_shows_the_servers_warning_lines() {
        let error = "valkey-8.1 exited during startup; last log lines:\n\
                     1:M 01 Jan 00:00:00.000 * Ready to accept connections\n\
                     1:M 01 Jan 00:00:00.000 # WARNING Memory overcommit must be enabled!\n\
                     1:M 01 Jan 00:00:00.001 # Can't handle RDB format version 12\n\
                     1:M 01 Jan 00:00:00.002 # Fatal error loading the DB, check server logs. Exiting.";
        assert_eq!(
            refusal_lines(error),
            vec![
                "1:M 01 Jan 00:00:00.001 # Can't handle RDB format version 12",
                "1:M 01 Jan 00:00:00.002 # Fatal error loading the DB, check server logs. Exiting."
            ]
        );
    }
}
