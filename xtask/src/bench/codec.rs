//! Part "codec": how fast ferry reads (inspect) and rewrites (convert) RDB files, beside a
//! peer parser on the same files in the same run, and how much memory a 2 GB conversion
//! takes.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result};
use ferry_testkit::{Server, ServerKind};

use super::datasets::{self, thousands, Dataset, Recipe};
use super::measure::{self, Measurement, Refusal};
use super::table::Table;
use super::{tools, Context, Section};

/// The 2 GB conversion must stay under this peak RSS...
const TARGET_RSS: u64 = 64 << 20;
/// ...and run at least this fast (input MB/s).
const TARGET_MB_PER_S: f64 = 200.0;

const CONVERT_FLAGS: [&str; 7] = [
    "--to",
    "valkey-8.1",
    "--hash-field-ttl",
    "persist",
    "--vector-set",
    "skip",
    "--force",
];

/// The files of a full or a quick run.
struct Files {
    mixed: Dataset,
    plain: Dataset,
    big: Dataset,
}

fn datasets(ctx: &Context) -> Result<Files> {
    let (scale, tag) = if ctx.quick { (10, "100k") } else { (1, "1m") };
    let keys = 1_000_000 / scale;
    let big_tag = if ctx.quick { "200m" } else { "2g" };
    Ok(Files {
        mixed: datasets::ensure(
            &ctx.dir,
            &format!("redis8-{tag}"),
            Recipe::Mixed {
                keys,
                value_size: 100,
            },
        )?,
        plain: datasets::ensure(
            &ctx.dir,
            &format!("redis8-{tag}-plain"),
            Recipe::Plain {
                keys,
                value_size: 100,
            },
        )?,
        big: datasets::ensure(
            &ctx.dir,
            &format!("redis8-{big_tag}"),
            Recipe::Big {
                keys: 2_000_000 / scale,
                value_size: 1000,
                list_len: 5_000_000 / scale,
                hash_fields: 1_000_000 / scale,
                zset_members: 500_000 / scale,
                set_members: 500_000 / scale,
            },
        )?,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Peer,
    Inspect,
    Convert,
}

impl Tool {
    fn label(self) -> String {
        match self {
            Tool::Peer => format!(
                "{} {} `--format nil` (decode)",
                tools::PEER_CRATE,
                tools::PEER_VERSION
            ),
            Tool::Inspect => "ferry inspect (decode)".to_string(),
            Tool::Convert => "ferry convert (decode+encode)".to_string(),
        }
    }
}

struct Row {
    tool: Tool,
    file: Dataset,
    result: std::result::Result<Measurement, Refusal>,
}

pub fn run(ctx: &Context) -> Result<Section> {
    let files = datasets(ctx)?;
    let mut sizes = Table::new(&["file", ">size MB", ">keys", "what"]);
    for file in [&files.mixed, &files.plain, &files.big] {
        match file.generated_in {
            Some(took) => println!("{}.rdb generated in {:.0} s", file.name, took.as_secs_f64()),
            None => println!("{}.rdb cached", file.name),
        }
        sizes.row(vec![
            format!("{}.rdb", file.name),
            format!("{:.1}", mb(file.bytes)),
            thousands(file.keys),
            file.recipe.describe(),
        ]);
    }
    println!("\n{}", sizes.render());

    let peer = tools::peer(&ctx.root)?;
    let out_dir = ctx.dir.join("out");
    fs::create_dir_all(&out_dir)?;
    let scratch = out_dir.join("stderr.txt");

    let mut rows = Vec::new();
    let mut checks = Vec::new();
    for file in [&files.mixed, &files.plain, &files.big] {
        let output = out_dir.join(format!("{}.valkey-8.1.rdb", file.name));
        for tool in [Tool::Peer, Tool::Inspect, Tool::Convert] {
            print!("{} on {}.rdb: ", tool.label(), file.name);
            // Shows what is being measured while it runs.
            let _ = std::io::stdout().flush();
            let result = measure::best_of(ctx.runs, &scratch, || match tool {
                Tool::Peer => {
                    let mut command = Command::new(&peer);
                    command.args(["--format", "nil"]).arg(&file.path);
                    command
                }
                Tool::Inspect => {
                    let mut command = Command::new(&ctx.ferry);
                    command.arg("inspect").arg(&file.path);
                    command
                }
                Tool::Convert => {
                    let mut command = Command::new(&ctx.ferry);
                    command
                        .arg("convert")
                        .arg(&file.path)
                        .arg(&output)
                        .args(CONVERT_FLAGS);
                    command
                }
            })?;
            match &result {
                Ok(m) => println!(
                    "{:.2} s, {:.0} MB/s, peak RSS {:.1} MB",
                    m.best_wall.as_secs_f64(),
                    mb(file.bytes) / m.best_wall.as_secs_f64(),
                    mb(m.peak_rss)
                ),
                Err(refusal) => println!("refused: {}", refusal.reason()),
            }
            if tool == Tool::Convert && result.is_ok() {
                let written = fs::metadata(&output).map_or(0, |m| m.len());
                checks.push(format!(
                    "ferry convert turned {}.rdb ({:.1} MB) into {:.1} MB for Valkey 8.1 \
                     (strings LZF-compressed, as servers save by default).",
                    file.name,
                    mb(file.bytes),
                    mb(written)
                ));
                // Loading a 2 GB file takes Valkey longer than the testkit's start limit.
                if file.bytes < 1 << 30 {
                    checks.push(check_loads(file, &output)?);
                }
            }
            rows.push(Row {
                tool,
                file: file.clone(),
                result,
            });
        }
        // The converted copies are large and only needed for the check above.
        let _ = fs::remove_file(&output);
    }

    let results = results_table(&rows);
    println!("\n{results}");
    let mut text = String::new();
    writeln!(
        text,
        "Datasets (made by Redis 8.0, cached under build/bench/):\n"
    )?;
    writeln!(text, "{}", sizes.render())?;
    if let Recipe::Plain { keys, value_size } = files.plain.recipe {
        writeln!(
            text,
            "DEBUG POPULATE values are \"value:N\" padded with zero bytes, which LZF \
             compresses well: {}.rdb holds {:.0} MB of values in {:.0} MB, so for the \
             DEBUG POPULATE files keys/s is the telling figure. The big file is stored \
             uncompressed.\n",
            files.plain.name,
            mb(keys * value_size),
            mb(files.plain.bytes)
        )?;
    }
    writeln!(
        text,
        "Each command ran {} on files already in the page cache; the table shows the \
         fastest run and the largest peak RSS (ru_maxrss of the process). MB = 10^6 bytes of \
         input file. `vs peer` compares ferry with the peer on the same file: speed as a \
         multiple of the peer's, memory as ferry's peak over the peer's. The convert \
         command is `ferry convert FILE OUT {}`.\n",
        if ctx.runs == 1 {
            "once".to_string()
        } else {
            format!("{} times", ctx.runs)
        },
        CONVERT_FLAGS.join(" ")
    )?;
    writeln!(text, "{results}")?;
    let notes = peer_notes(&rows, &files);
    let targets = target_lines(&rows, &files.big, ctx.quick);
    for line in checks.iter().chain(&notes).chain(&targets) {
        println!("{line}");
        writeln!(text, "- {line}")?;
    }
    Ok(Section {
        title: "RDB codec".to_string(),
        markdown: text,
    })
}

fn results_table(rows: &[Row]) -> String {
    let mut table = Table::new(&[
        "tool",
        "file",
        ">time s",
        ">MB/s",
        ">keys/s",
        ">peak RSS MB",
        ">speed vs peer",
        ">RSS vs peer",
    ]);
    for row in rows {
        let peer = rows
            .iter()
            .find(|other| other.tool == Tool::Peer && other.file.name == row.file.name)
            .and_then(|other| other.result.as_ref().ok());
        let mut cells = vec![row.tool.label(), format!("{}.rdb", row.file.name)];
        match &row.result {
            Ok(m) => {
                let seconds = m.best_wall.as_secs_f64();
                cells.push(format!("{seconds:.2}"));
                cells.push(format!("{:.0}", mb(row.file.bytes) / seconds));
                cells.push(thousands((row.file.keys as f64 / seconds) as u64));
                cells.push(format!("{:.1}", mb(m.peak_rss)));
                match (row.tool, peer) {
                    (Tool::Peer, _) => cells.extend(["1.00×".into(), "1.00×".into()]),
                    (_, Some(p)) => {
                        cells.push(format!("{:.2}×", p.best_wall.as_secs_f64() / seconds));
                        cells.push(format!("{:.2}×", m.peak_rss as f64 / p.peak_rss as f64));
                    }
                    (_, None) => cells.extend(["n/a".into(), "n/a".into()]),
                }
            }
            Err(_) => {
                cells.push("refused".into());
                cells.extend(std::iter::repeat_n("-".to_string(), 5));
            }
        }
        table.row(cells);
    }
    table.render()
}

/// What the peer refused, in its own words, and what it does not decode.
fn peer_notes(rows: &[Row], files: &Files) -> Vec<String> {
    let mut notes = Vec::new();
    let peer_rows: Vec<&Row> = rows.iter().filter(|row| row.tool == Tool::Peer).collect();
    for row in &peer_rows {
        if let Err(refusal) = &row.result {
            notes.push(format!(
                "The peer refused {}.rdb: {}",
                row.file.name,
                refusal.reason()
            ));
        }
    }
    if peer_rows.iter().all(|row| row.result.is_ok()) {
        notes.push(format!(
            "The peer read every file, Redis 8 types included (hash field TTL encodings, \
             module type 2), without error ({} {}).",
            tools::PEER_CRATE,
            tools::PEER_VERSION
        ));
    }
    let mixed_ok = rows.iter().any(|row| {
        row.tool == Tool::Peer && row.file.name == files.mixed.name && row.result.is_ok()
    });
    if mixed_ok {
        notes.push(format!(
            "What each decode does: the peer builds every value except streams and module \
             (vector set) values, which its `read_type` skips. `ferry inspect` reads and \
             checksums every byte and checks each compressed string's LZF data, but builds \
             only what its report needs (hashes, for field TTLs); other values are walked \
             without being expanded. `ferry convert` builds every value. So on {}.rdb \
             inspect does less work per value than the peer, and convert more.",
            files.mixed.name
        ));
    }
    notes
}

fn target_lines(rows: &[Row], big: &Dataset, quick: bool) -> Vec<String> {
    let Some(row) = rows
        .iter()
        .find(|row| row.tool == Tool::Convert && row.file.name == big.name)
    else {
        return Vec::new();
    };
    let Ok(m) = &row.result else {
        return vec![format!("ferry convert could not convert {}.rdb", big.name)];
    };
    let rate = mb(big.bytes) / m.best_wall.as_secs_f64();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let scope = if quick {
        " (quick run: a smaller file than the 2 GB the targets are set for)"
    } else {
        ""
    };
    vec![format!(
        "Converting {}.rdb ({:.0} MB){scope}: peak RSS {:.1} MB (target < {} MB: {}), \
         {rate:.0} MB/s (target ≥ {TARGET_MB_PER_S:.0} MB/s: {}).",
        big.name,
        mb(big.bytes),
        mb(m.peak_rss),
        TARGET_RSS >> 20,
        verdict(m.peak_rss < TARGET_RSS),
        verdict(rate >= TARGET_MB_PER_S)
    )]
}

/// Loads a converted file into Valkey 8.1: the measured conversion produced a file the
/// target accepts, holding every key but the vector sets `--vector-set skip` left out.
fn check_loads(file: &Dataset, output: &Path) -> Result<String> {
    let server = Server::start_with_rdb(ServerKind::Valkey81, output)
        .with_context(|| format!("Valkey 8.1 refused ferry's conversion of {}", file.name))?;
    let mut con = server.try_client()?;
    let info: String = redis::cmd("INFO").arg("keyspace").query(&mut con)?;
    let loaded: u64 = info
        .lines()
        .filter_map(|line| {
            line.split([':', ','])
                .find_map(|part| part.strip_prefix("keys="))?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let expected = file.keys - file.vector_sets;
    anyhow::ensure!(
        loaded == expected,
        "Valkey 8.1 loaded {loaded} keys from ferry's conversion of {}.rdb; expected {expected}",
        file.name
    );
    Ok(format!(
        "Valkey 8.1 loaded ferry's conversion of {}.rdb: {} keys ({} vector sets left out by \
         --vector-set skip).",
        file.name,
        thousands(loaded),
        file.vector_sets
    ))
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}
