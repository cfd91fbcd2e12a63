//! `cargo xtask bench [--quick] [--only PART] [--runs N]`: performance, measured here and
//! never in timed tests. Each part (one module each) measures ferry beside a peer on the
//! same data in the same run and returns a markdown section; all sections go to
//! build/bench/results.md (results-quick.md for `--quick`).

mod cluster;
mod codec;
mod cutover;
pub mod datasets;
mod fleet;
pub mod measure;
pub mod migrate;
mod page;
pub mod relay;
mod scan;
mod sizing;
mod spool;
pub mod table;
pub mod tools;
mod writer;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

pub const USAGE: &str = "usage: cargo xtask bench [--quick] [--only PART] [--runs N]

  --quick      smaller files (100k keys, a 200 MB big file) for a smoke test; results
               go to build/bench/results-quick.md
  --only PART  run one part: codec, migrate, relay, cutover, cluster, writer, page, scan,
               spool, sizing, fleet
  --runs N     runs per measurement; the fastest counts (default 3)

FERRY_BIN=PATH measures that ferry binary instead of building target/release/ferry.";

/// What every part gets.
pub struct Context {
    pub root: PathBuf,
    /// build/bench: datasets, scratch output, results.md.
    pub dir: PathBuf,
    pub quick: bool,
    pub runs: usize,
    pub ferry: PathBuf,
    /// The 1-minute load average before measuring: other work on the machine shows here.
    pub load_at_start: String,
}

/// One part's results.
pub struct Section {
    pub title: String,
    pub markdown: String,
}

struct Part {
    name: &'static str,
    run: fn(&Context) -> Result<Section>,
}

/// In the order they run.
const PARTS: &[Part] = &[
    Part {
        name: "codec",
        run: codec::run,
    },
    Part {
        name: "migrate",
        run: migrate::run,
    },
    Part {
        name: "relay",
        run: relay::run,
    },
    Part {
        name: "cutover",
        run: cutover::run,
    },
    Part {
        name: "cluster",
        run: cluster::run,
    },
    Part {
        name: "writer",
        run: writer::run,
    },
    Part {
        name: "page",
        run: page::run,
    },
    Part {
        name: "scan",
        run: scan::run,
    },
    Part {
        name: "spool",
        run: spool::run,
    },
    Part {
        name: "sizing",
        run: sizing::run,
    },
    Part {
        name: "fleet",
        run: fleet::run,
    },
];

struct Options {
    quick: bool,
    only: Option<String>,
    runs: usize,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        quick: false,
        only: None,
        runs: 3,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--only" => {
                let part = args.next().context("--only needs a part name")?;
                if !PARTS.iter().any(|p| p.name == part) {
                    let names: Vec<&str> = PARTS.iter().map(|p| p.name).collect();
                    bail!("no bench part {part:?}; parts: {}", names.join(", "));
                }
                options.only = Some(part.clone());
            }
            "--runs" => {
                let n = args.next().context("--runs needs a number")?;
                options.runs = n
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("--runs {n:?}: expected a positive number"))?;
            }
            other => bail!("unknown bench option {other:?}\n\n{USAGE}"),
        }
    }
    Ok(options)
}

pub fn run(root: &Path, manifest: &Path, args: &[String]) -> Result<()> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let options = parse(args)?;
    // The testkit finds the servers through this variable.
    std::env::set_var(ferry_testkit::MANIFEST_ENV, manifest);
    let dir = root.join("build").join("bench");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ctx = Context {
        root: root.to_path_buf(),
        dir,
        quick: options.quick,
        runs: options.runs,
        ferry: tools::ferry(root)?,
        load_at_start: load_average(),
    };
    let mut sections = Vec::new();
    for part in PARTS {
        if options
            .only
            .as_deref()
            .is_some_and(|only| only != part.name)
        {
            continue;
        }
        println!("\n== bench {} ==", part.name);
        sections.push((part.run)(&ctx).with_context(|| format!("bench part {}", part.name))?);
    }
    // A smoke test never overwrites the real numbers.
    let path = ctx.dir.join(if ctx.quick {
        "results-quick.md"
    } else {
        "results.md"
    });
    // With --only, the other parts' sections of the last run stay (after this one's).
    if options.only.is_some() {
        let previous = fs::read_to_string(&path).unwrap_or_default();
        for (title, markdown) in previous_sections(&previous) {
            if !sections.iter().any(|s| s.title == title) {
                sections.push(Section { title, markdown });
            }
        }
    }
    let report = render(&ctx, &sections)?;
    fs::write(&path, report).with_context(|| format!("cannot write {}", path.display()))?;
    println!("\nresults written to {}", path.display());
    Ok(())
}

fn render(ctx: &Context, sections: &[Section]) -> Result<String> {
    let mut out = String::from("# ferry benchmarks\n\n");
    writeln!(
        out,
        "Machine: {}, {} cores, load average {} at the start; {}measured by \
         `cargo xtask bench`.\n",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        ctx.load_at_start,
        if ctx.quick { "quick run, " } else { "" },
    )?;
    for section in sections {
        writeln!(out, "## {}\n\n{}", section.title, section.markdown)?;
    }
    Ok(out)
}

/// The "## title" sections of a results file written by [`render`].
fn previous_sections(text: &str) -> Vec<(String, String)> {
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            sections.push((title.to_string(), String::new()));
        } else if let Some((_, markdown)) = sections.last_mut() {
            markdown.push_str(line);
            markdown.push('\n');
        }
    }
    for (_, markdown) in &mut sections {
        // render adds the blank line after the title and keeps the section's own ending.
        *markdown = format!("{}\n", markdown.trim_matches('\n'));
    }
    sections
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name")?.split(':').nth(1))
                .map(|name| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

#[cfg(test)]
mod tests {
    use super::previous_sections;

    #[test]
    fn sections_of_an_earlier_run_read_back_as_written() {
        let text = "# ferry benchmarks\n\nMachine: x\n\n## RDB codec\n\n| a |\n\n- note\n\n\
                    ## Live migration (ferry migrate)\n\ntext\n\n";
        let sections = previous_sections(text);
        assert_eq!(
            sections,
            vec![
                ("RDB codec".to_string(), "| a |\n\n- note\n".to_string()),
                (
                    "Live migration (ferry migrate)".to_string(),
                    "text\n".to_string()
                ),
            ]
        );
    }
}
