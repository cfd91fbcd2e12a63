//! The data findings' facts from an RDB file: the `inspect` census plus example keys.

use super::source::SourceFacts;
use crate::commands::inspect::Census;
use crate::display::plain_or_quoted;
use crate::error::Error;
use crate::filter::Scope;
use crate::progress::InputProgress;
use crate::sources::file::RdbFileSource;
use crate::sources::Source;
use ferry_codec::{Item, Kind, ValuePart};
use std::path::Path;

/// Under a scope only the kept keys of kept databases are counted.
pub fn probe(path: &Path, scope: &Scope) -> Result<SourceFacts, Error> {
    let mut source = RdbFileSource::open(path)?;
    let progress = InputProgress::new(source.total_bytes());
    let facts = read(&mut source, &progress, scope);
    progress.finish();
    let (census, mut facts) = facts?;
    facts.origin = path.display().to_string();
    facts.mode = "rdb";
    facts.server = census.producer();
    facts.rdb_version = census.version.map(|v| v.number);
    facts.keys = census.total_keys();
    facts.databases = census
        .databases
        .iter()
        .map(|(db, counts)| (*db, counts.keys))
        .collect();
    for (type_key, counts) in census.types() {
        *facts.types.entry(type_key.type_name.clone()).or_default() += counts.keys;
    }
    facts.function_libraries = census.functions;
    Ok(facts)
}

/// Runs the census and, beside it, keeps the names of the keys findings point at.
fn read(
    source: &mut RdbFileSource,
    progress: &InputProgress,
    scope: &Scope,
) -> Result<(Census, SourceFacts), Error> {
    let mut census = Census::default();
    let mut facts = SourceFacts::default();
    let mut current: Option<(String, Kind, u64)> = None;
    let mut before = 0;
    let mut db = 0;
    // Inside a key the scope leaves out: its items are not counted.
    let mut left_out = false;
    while let Some(item) = source.next_item()? {
        let after = source.bytes_read();
        match &item {
            Item::SelectDb(selected) => db = *selected,
            Item::KeyStart(header) => left_out = !scope.keeps(header.db, &header.key),
            _ => {}
        }
        let skip = match &item {
            Item::SelectDb(_) | Item::ResizeDb { .. } => !scope.keeps_db(db),
            Item::KeyStart(_) | Item::Part(_) => left_out,
            Item::KeyEnd => std::mem::take(&mut left_out),
            _ => false,
        };
        if skip {
            before = after;
            continue;
        }
        census.observe(&item, before, after);
        before = after;
        match &item {
            Item::KeyStart(header) => {
                current = Some((plain_or_quoted(&header.key), header.kind, 0));
            }
            Item::Part(ValuePart::HashFields(fields)) => {
                if let Some((_, _, ttl_fields)) = &mut current {
                    *ttl_fields +=
                        fields.iter().filter(|f| f.expire_at_ms.is_some()).count() as u64;
                }
            }
            Item::KeyEnd => {
                if let Some((key, kind, ttl_fields)) = current.take() {
                    tally_key(&mut facts, &key, kind, ttl_fields);
                }
                progress.set(after);
            }
            Item::Function { code } => {
                let code = String::from_utf8_lossy(code).into_owned();
                facts.functions.push((library_name(&code), code));
            }
            _ => {}
        }
    }
    Ok((census, facts))
}

fn tally_key(facts: &mut SourceFacts, key: &str, kind: Kind, ttl_fields: u64) {
    match kind {
        Kind::Module(id) if id.is_vector_set() => facts.vector_sets.add(key, 0),
        Kind::Module(id) => facts.module_types.entry(id.name()).or_default().add(key, 0),
        Kind::Hash if ttl_fields > 0 => facts.field_ttl.add(key, ttl_fields),
        _ => {}
    }
}

/// The `name=` of a library's `#!lua name=...` first line.
pub fn library_name(code: &str) -> String {
    code.lines()
        .next()
        .and_then(|line| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix("name="))
        })
        .unwrap_or("?")
        .to_owned()
}
