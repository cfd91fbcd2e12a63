//! `cargo xtask demo`: the problem and ferry's answer, end to end on real servers.
//!
//! Act 1, the file: Redis 8.0 saves a realistic mixed dataset; Valkey 8.1 refuses that
//! file; ferry inspects and converts it, and Valkey 8.1 loads the conversion. Act 2, live:
//! with a write load running on that Redis 8.0, `ferry migrate` brings an empty Valkey 8.1
//! in sync; the writes stop, ferry applies the source's last offset and stops, and both
//! servers are compared key by key, where the only differences allowed are exactly what
//! the chosen policies promise. Exits non-zero if anything differs.

mod live;
mod vectors;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ferry_testkit::expect::Expected;
use ferry_testkit::snapshot::Snapshot;
use ferry_testkit::{dataset, Server, ServerKind};

use crate::bench::datasets::thousands;
use crate::bench::table::Table;
use crate::bench::tools;

/// Differences listed before the rest are only counted.
const SHOWN_DIFFERENCES: usize = 20;
/// Keys the write load writes (its vector sets change while ferry streams).
const LOAD_PREFIX: &[u8] = b"wl:";

pub fn run(root: &Path, manifest: &Path) -> Result<ExitCode> {
    std::env::set_var(ferry_testkit::MANIFEST_ENV, manifest);
    let ferry = tools::ferry(root)?;
    let dir = root.join("build").join("demo");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let original = dir.join("redis-8.0.rdb");
    let converted = dir.join("valkey-8.1.rdb");
    let started = Instant::now();
    // Shown and run relative to the repository root, as a person would type them.
    let rel = |path: &Path| relative(root, path);

    println!("\n##### Act 1: a Redis 8.0 file, and a Valkey 8.1 that cannot load it #####");
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
    run_shown(
        root,
        Command::new(&ferry)
            .current_dir(root)
            .arg("inspect")
            .arg(rel(&original)),
    )?;

    step("ferry convert to valkey-8.1, and Valkey 8.1 loads the result");
    run_shown(
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
                "skip",
                "--force",
            ]),
    )?;
    {
        let loaded = Server::start_with_rdb(ServerKind::Valkey81, &converted)
            .context("Valkey 8.1 refused ferry's conversion")?;
        let keys = crate::bench::datasets::count_keys(&mut loaded.try_client()?)?;
        println!(
            "{} ({}) started from {} with {} keys",
            loaded.kind(),
            loaded.entry().version,
            rel(&converted).display(),
            thousands(keys)
        );
    }

    println!("\n##### Act 2: live, with zero downtime: ferry migrate under writes #####");
    let valkey = Server::start(ServerKind::Valkey81)?;
    println!(
        "source {} ({}) at {}, target: an empty {} ({}) at {}",
        redis.kind(),
        redis.entry().version,
        redis.url(),
        valkey.kind(),
        valkey.entry().version,
        valkey.url()
    );
    let paths = live::Paths {
        root,
        ferry: &ferry,
        state: dir.join("ferry.state"),
        exported: dir.join("vectors.jsonl"),
    };
    let migrated = live::run(&paths, &redis, &valkey)?;

    step("compare both sides, key by key");
    let expected = &migrated.expected;
    print!(
        "{}",
        key_count_table(&migrated.source, &migrated.target, expected)
    );
    let differences = expected
        .snapshot
        .diff(&migrated.target, &live::diff_options());
    for difference in differences.iter().take(SHOWN_DIFFERENCES) {
        println!("difference: {difference}");
    }
    if differences.len() > SHOWN_DIFFERENCES {
        println!("... and {} more", differences.len() - SHOWN_DIFFERENCES);
    }
    let export = vectors::check(&paths.exported, &expected.removed_vector_sets)?;
    for problem in &export.problems {
        println!("export: {problem}");
    }

    let changed = expected
        .removed_vector_sets
        .keys()
        .filter(|(_, key)| key.starts_with(LOAD_PREFIX))
        .count();
    let elements: u64 = expected
        .removed_vector_sets
        .values()
        .map(|set| set.card)
        .sum();
    let functions = expected.snapshot.functions.as_ref().map_or(0, |f| f.len());
    let export_verdict = if export.problems.is_empty() {
        "every element matches VEMB/VGETATTR".to_string()
    } else {
        format!("{} export problems", export.problems.len())
    };
    println!(
        "\n{} keys and {functions} function libraries compared, {} {}; {} vector sets \
         exported ({} elements; {} lines read back, {export_verdict}) to {}, written again \
         when ferry stopped, so the {} sets the load changed after the snapshot are current; \
         {} field TTLs persisted (in {} \
         hashes). {:.0} s after the build.",
        thousands(expected.snapshot.key_count() as u64),
        differences.len(),
        if differences.len() == 1 {
            "difference"
        } else {
            "differences"
        },
        expected.removed_vector_sets.len(),
        thousands(elements),
        thousands(export.elements),
        rel(&paths.exported).display(),
        changed,
        thousands(expected.changed_fields),
        expected.changed_hashes,
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

/// Prints a command as a person would type it.
fn show(root: &Path, command: &Command) -> String {
    let program = relative(root, Path::new(command.get_program()));
    let shown: Vec<String> = std::iter::once(program.as_os_str())
        .chain(command.get_args())
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let shown = shown.join(" ");
    println!("$ {shown}");
    shown
}

/// Runs a ferry command with its output shown as is; its failure ends the demo.
fn run_shown(root: &Path, command: &mut Command) -> Result<()> {
    let shown = show(root, command);
    let status = command
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
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

fn key_count_table(source: &Snapshot, target: &Snapshot, expected: &Expected) -> String {
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
    // ferry's marker (its record of what it applied) is not data.
    let count = |snapshot: &Snapshot, db: u32| {
        snapshot.databases.get(&db).map_or(0, |keys| {
            keys.keys()
                .filter(|key| !ferry_testkit::snapshot::is_ferry_marker(key))
                .count()
        })
    };
    for db in dbs {
        let left_out = expected
            .removed_vector_sets
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
