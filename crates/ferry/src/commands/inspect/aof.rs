//! `ferry inspect` on an AOF: an `appendonlydir` (or its manifest), a single AOF of
//! commands, or an RDB followed by commands (a preamble). The base's RDB part is
//! reported as an RDB file is; then the files in load order with the commands each
//! holds, by name, and the totals.

use super::{build_report, take_census, InspectReport};
use crate::display::size;
use crate::error::Error;
use crate::progress::InputProgress;
use crate::sources::aof::{self, AofError, AofLayout, CommandReader};
use crate::sources::file::RdbFileSource;
use crate::sources::Source;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

/// The document `ferry inspect --json` prints for an AOF. Stable: later releases only
/// add fields.
///
/// ```json
/// {
///   "aof": "appendonlydir", "manifest": "appendonlydir/appendonly.aof.manifest",
///   "files": [{"file": "…/appendonly.aof.2.base.rdb", "kind": "base", "size": 1234,
///              "rdb_bytes": 1234, "commands": {}, "total_commands": 0},
///             {"file": "…/appendonly.aof.2.incr.aof", "kind": "incremental", "size": 99,
///              "rdb_bytes": 0, "commands": {"SELECT": 1, "SET": 3}, "total_commands": 4}],
///   "base": { …the RDB report of the base's RDB part, or null… },
///   "commands": {"SELECT": 1, "SET": 3}, "total_commands": 4
/// }
/// ```
///
/// Command names are upper-cased; `manifest` is null for a single file; `rdb_bytes` is
/// the length of a file's RDB part (0 without one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AofReport {
    pub aof: String,
    pub manifest: Option<String>,
    pub files: Vec<AofFileReport>,
    pub base: Option<InspectReport>,
    pub commands: BTreeMap<String, u64>,
    pub total_commands: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AofFileReport {
    pub file: String,
    pub kind: &'static str,
    pub size: u64,
    pub rdb_bytes: u64,
    pub commands: BTreeMap<String, u64>,
    pub total_commands: u64,
}

/// Whether `path` is an AOF that begins without an RDB: a directory, a manifest, or a
/// file whose first byte starts a command or an annotation. (An RDB followed by
/// commands is found after its census: [`report_after_rdb`].)
pub fn is_aof(path: &Path) -> bool {
    if path.is_dir() || path.extension().is_some_and(|e| e == "manifest") {
        return true;
    }
    let mut first = [0u8; 1];
    std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut first))
        .is_ok_and(|n| n == 1 && (first[0] == b'*' || first[0] == b'#'))
}

fn aof_error(error: AofError) -> Error {
    Error::Run(Box::new(error))
}

/// The report of the AOF at `path`.
pub fn report(path: &Path) -> Result<AofReport, Error> {
    let layout = aof::open(path).map_err(aof_error)?;
    let progress = InputProgress::new(Some(layout.total_bytes()));
    let result = read_layout(path, &layout, &progress);
    progress.finish();
    result
}

fn read_layout(
    path: &Path,
    layout: &AofLayout,
    progress: &InputProgress,
) -> Result<AofReport, Error> {
    let mut report = AofReport {
        aof: path.display().to_string(),
        manifest: layout.manifest.as_ref().map(|m| m.display().to_string()),
        files: Vec::new(),
        base: None,
        commands: BTreeMap::new(),
        total_commands: 0,
    };
    let mut done = 0;
    for file in &layout.files {
        let mut start = 0;
        if file.rdb {
            let mut source = RdbFileSource::open(&file.path)?;
            let census = take_census(&mut source, progress)?;
            start = source.bytes_read();
            if file.base {
                report.base = Some(build_report(
                    file.path.display().to_string(),
                    start,
                    &census,
                ));
            }
        }
        let file_report = count_commands(&file.path, file.base, start, file.size, |at| {
            progress.set(done + at)
        })?;
        done += file.size;
        add_file(&mut report, file_report);
    }
    Ok(report)
}

/// The report of a file that turned out to be an RDB followed by commands (`end`: where
/// the RDB ended), given the RDB's own report.
pub fn report_after_rdb(path: &Path, end: u64, base: InspectReport) -> Result<AofReport, Error> {
    let size = base.size;
    let mut report = AofReport {
        aof: path.display().to_string(),
        manifest: None,
        files: Vec::new(),
        base: Some(InspectReport { size: end, ..base }),
        commands: BTreeMap::new(),
        total_commands: 0,
    };
    let file = count_commands(path, true, end, size, |_| {})?;
    add_file(&mut report, file);
    Ok(report)
}

fn add_file(report: &mut AofReport, file: AofFileReport) {
    for (name, n) in &file.commands {
        *report.commands.entry(name.clone()).or_default() += n;
    }
    report.total_commands += file.total_commands;
    report.files.push(file);
}

fn count_commands(
    path: &Path,
    base: bool,
    start: u64,
    size: u64,
    mut progress: impl FnMut(u64),
) -> Result<AofFileReport, Error> {
    let mut reader = CommandReader::open(path, start).map_err(aof_error)?;
    let mut commands: BTreeMap<String, u64> = BTreeMap::new();
    let mut total = 0u64;
    while let Some(command) = reader.next_command().map_err(aof_error)? {
        let name = String::from_utf8_lossy(&command.args[0]).to_ascii_uppercase();
        *commands.entry(name).or_default() += 1;
        total += 1;
        if total & 1023 == 0 {
            progress(command.end);
        }
    }
    Ok(AofFileReport {
        file: path.display().to_string(),
        kind: if base { "base" } else { "incremental" },
        size,
        rdb_bytes: start,
        commands,
        total_commands: total,
    })
}

pub fn render(report: &AofReport) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, report);
    out
}

fn write_report(out: &mut String, r: &AofReport) -> std::fmt::Result {
    let files = r.files.len();
    write!(
        out,
        "{}: AOF of {files} file{}",
        r.aof,
        if files == 1 { "" } else { "s" }
    )?;
    match &r.manifest {
        Some(manifest) => writeln!(out, " (manifest {manifest})")?,
        None => writeln!(out)?,
    }
    for file in &r.files {
        let rdb = match file.rdb_bytes {
            0 => String::new(),
            n => format!(", RDB part {}", size(n)),
        };
        writeln!(
            out,
            "  {} ({}, {}{rdb}): {} commands",
            file.file,
            file.kind,
            size(file.size),
            file.total_commands
        )?;
    }
    writeln!(out, "commands: {}", r.total_commands)?;
    for (name, n) in &r.commands {
        writeln!(out, "  {name:<24} {n}")?;
    }
    if let Some(base) = &r.base {
        writeln!(out)?;
        writeln!(out, "the base's RDB part:")?;
        out.push_str(&super::text::render(base));
    }
    Ok(())
}
