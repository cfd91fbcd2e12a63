//! `cargo xtask layers`: holds the product crate's imports against the dependency table in
//! `docs/architecture.md`, so the map and the code cannot drift apart.
//!
//! The table lists every top-level module of `crates/ferry/src` (a folder or a file), its
//! role and the top-level modules it may use. The check reads each file's code (comments
//! and `#[cfg(test)] mod tests` left out: tests may reach anywhere) for `crate::NAME`
//! paths. It fails on a use the table does not allow, on a module the table does not
//! list, and on an allowance nothing uses any more (the table must say what is, not what
//! was).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

const TABLE_START: &str = "<!-- layers: start -->";
const TABLE_END: &str = "<!-- layers: end -->";

/// Module → the modules it may use, as the doc's table says.
type Table = BTreeMap<String, BTreeSet<String>>;

pub fn run(root: &Path) -> Result<()> {
    let problems = check(root)?;
    if problems.is_empty() {
        println!("layers: the imports of crates/ferry/src match docs/architecture.md");
        return Ok(());
    }
    for problem in &problems {
        eprintln!("layers: {problem}");
    }
    bail!(
        "{} difference(s) between crates/ferry/src's imports and the table in \
         docs/architecture.md",
        problems.len()
    )
}

/// Every difference between the table and the code, one line each.
pub fn check(root: &Path) -> Result<Vec<String>> {
    let doc = root.join("docs/architecture.md");
    let text =
        fs::read_to_string(&doc).with_context(|| format!("cannot read {}", doc.display()))?;
    let table = parse_table(&text)?;
    let used = imports(&root.join("crates/ferry/src"))?;
    let mut problems = Vec::new();
    for (module, uses) in &used {
        let Some(allowed) = table.get(module) else {
            problems.push(format!("module `{module}` is not in the table"));
            continue;
        };
        for (target, files) in uses {
            if !allowed.contains(target) {
                problems.push(format!(
                    "`{module}` uses `{target}` ({}), which the table does not allow",
                    files.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    for (module, allowed) in &table {
        let Some(uses) = used.get(module) else {
            problems.push(format!("the table lists `{module}`, which is no module"));
            continue;
        };
        for target in allowed {
            if !uses.contains_key(target) {
                problems.push(format!(
                    "the table lets `{module}` use `{target}`, and nothing in it does"
                ));
            }
        }
    }
    Ok(problems)
}

/// The table between the markers: `| `name` or `name/` | role | `a`, `b` or — |`.
fn parse_table(text: &str) -> Result<Table> {
    let start = text
        .find(TABLE_START)
        .context("docs/architecture.md has no layers table (its start marker)")?;
    let end = text[start..]
        .find(TABLE_END)
        .context("docs/architecture.md: the layers table has no end marker")?;
    let mut table = Table::new();
    for line in text[start..start + end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | module | role | may use |  → ["", module, role, uses, ""]
        if cells.len() < 5 || !cells[1].starts_with('`') {
            continue;
        }
        let module = names(cells[1])
            .into_iter()
            .next()
            .context("a row without a module")?;
        table.insert(module, names(cells[3]).into_iter().collect());
    }
    if table.is_empty() {
        bail!("docs/architecture.md: the layers table has no rows");
    }
    Ok(table)
}

/// The module names in a cell: each `` `name` `` or `` `name/` `` (`.rs` dropped).
fn names(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(|name| {
            name.trim_end_matches('/')
                .trim_end_matches(".rs")
                .to_string()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// Module → used module → the files using it.
type Uses = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn imports(src: &Path) -> Result<Uses> {
    let mut uses = Uses::new();
    for file in rust_files(src)? {
        let relative = file.strip_prefix(src).unwrap_or(&file);
        let module = relative
            .components()
            .next()
            .map(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_string()
            })
            .unwrap_or_default();
        let entry = uses.entry(module.clone()).or_default();
        let text = fs::read_to_string(&file)?;
        for target in crate_paths(&text) {
            if target != module {
                entry
                    .entry(target)
                    .or_default()
                    .insert(relative.display().to_string());
            }
        }
    }
    Ok(uses)
}

/// The first segment of every `crate::…` path in the code (not in comments, not in the
/// test module).
fn crate_paths(text: &str) -> BTreeSet<String> {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut found = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `ferry_crate::x` or `$crate::` are not this crate's paths.
            let before = rest[..at].chars().last();
            if !name.is_empty()
                && !matches!(before, Some(c) if c.is_alphanumeric() || c == '_' || c == '$')
            {
                found.insert(name);
            }
            rest = after;
        }
    }
    found
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_code_count_and_comments_and_tests_do_not() {
        let text = "use crate::server::client;\n// crate::sinks in a comment\n\
                    let x = crate::state::load(p); /// crate::verify\n\
                    #[cfg(test)]\nmod tests {\n    use crate::relay;\n}\n";
        let found: Vec<String> = crate_paths(text).into_iter().collect();
        assert_eq!(found, ["server", "state"]);
    }

    #[test]
    fn the_table_reads_modules_and_their_allowances() {
        let text = format!(
            "{TABLE_START}\n| module | role | may use |\n|---|---|---|\n\
             | `server/` | talking to servers | `tls`, `url.rs` |\n| `display.rs` | text | — |\n{TABLE_END}"
        );
        let table = parse_table(&text).unwrap();
        assert_eq!(
            table["server"],
            BTreeSet::from(["tls".into(), "url".into()])
        );
        assert!(table["display"].is_empty());
    }

    #[test]
    fn the_product_crate_matches_its_architecture_doc() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let problems = check(root).unwrap();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
