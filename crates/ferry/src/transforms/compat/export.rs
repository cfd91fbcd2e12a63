//! `--vector-set export=PATH`: vector set elements as JSON Lines.
//!
//! One line per element:
//! `{"db": D, "key": K, "element": E, "vector": [f32, ...], "attributes": A, "quantization": Q}`
//! where D is the set's database (two databases may hold sets of one name), K and E are strings, or `{"base64": "..."}` when not UTF-8; A is the element's JSON
//! attributes parsed, `null` when it has none, or the raw text (same string/base64 form) in
//! the unlikely case it is not valid JSON; Q is `"fp32"`, `"int8"` or `"binary"`. Vectors are
//! the dequantized values the set would return from `VEMB`.

use super::PolicyError;
use crate::codec::vectorset::{self, Quantization, VectorSet};
use crate::display::{json_bytes, quoted};
use crate::error::Error;
use crate::output_file::{check_writable, OutputFile};
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The vector sets an export covers, by (db, key): those the full sync exported and those
/// the stream changed after it. Shared by the full sync's [`super::CompatTransform`], the
/// stream's command translator and the run that brings the export up to date at its end
/// (`commands/migrate/vector_export.rs`). One entry per vector set: bounded by their count.
#[derive(Debug, Clone, Default)]
pub struct ExportedKeys(Arc<Mutex<BTreeSet<(u64, Bytes)>>>);

impl ExportedKeys {
    pub fn note(&self, db: u64, key: &Bytes) {
        if let Ok(mut keys) = self.0.lock() {
            keys.insert((db, key.clone()));
        }
    }

    /// `MOVE key to` in `from`: a set noted there is in `to` now (other keys stay
    /// unnoted, so the list holds vector sets only).
    pub fn move_key(&self, from: u64, key: &Bytes, to: u64) {
        if let Ok(mut keys) = self.0.lock() {
            if keys.remove(&(from, key.clone())) {
                keys.insert((to, key.clone()));
            }
        }
    }

    /// `SWAPDB a b`: the sets noted in `a` are in `b` now, and the other way round.
    pub fn swap_dbs(&self, a: u64, b: u64) {
        if let Ok(mut keys) = self.0.lock() {
            let swapped = std::mem::take(&mut *keys)
                .into_iter()
                .map(|(db, key)| match db {
                    db if db == a => (b, key),
                    db if db == b => (a, key),
                    db => (db, key),
                })
                .collect();
            *keys = swapped;
        }
    }

    pub fn snapshot(&self) -> BTreeSet<(u64, Bytes)> {
        self.0.lock().map(|keys| keys.clone()).unwrap_or_default()
    }
}

pub struct VectorExporter {
    path: PathBuf,
    force: bool,
    /// Opened at the first export, so a refused or failed run leaves nothing behind.
    open: Option<(OutputFile, BufWriter<File>)>,
}

#[derive(Serialize)]
struct ElementLine<'a> {
    db: u64,
    key: &'a Value,
    element: Value,
    vector: &'a [f32],
    attributes: Value,
    quantization: &'static str,
}

impl VectorExporter {
    /// Checks now that `path` may be written, so the run fails before any work.
    pub fn new(path: &Path, force: bool) -> Result<Self, Error> {
        check_writable(path, force)?;
        Ok(Self {
            path: path.to_owned(),
            force,
            open: None,
        })
    }

    /// Writes the elements of one vector set value; returns how many.
    pub fn export(&mut self, db: u64, key: &[u8], body: &[u8]) -> Result<u64, Error> {
        let set = vectorset::parse(body).map_err(|source| PolicyError::VectorSetBody {
            key: quoted(key),
            source,
        })?;
        self.write_set(db, key, &set)
    }

    fn write_set(&mut self, db: u64, key: &[u8], set: &VectorSet) -> Result<u64, Error> {
        let key_json = json_bytes(key);
        let quantization = match set.quantization {
            Quantization::Fp32 => "fp32",
            Quantization::Int8 => "int8",
            Quantization::Binary => "binary",
        };
        let path = self.path.clone();
        let write_error = |source| Error::Write {
            path: path.clone(),
            source,
        };
        let writer = self.writer()?;
        for element in &set.elements {
            let line = ElementLine {
                db,
                key: &key_json,
                element: json_bytes(&element.name),
                vector: &element.vector,
                attributes: element
                    .attributes
                    .as_deref()
                    .map_or(Value::Null, attributes_json),
                quantization,
            };
            serde_json::to_writer(&mut *writer, &line).map_err(|e| write_error(e.into()))?;
            writer.write_all(b"\n").map_err(write_error)?;
        }
        Ok(set.elements.len() as u64)
    }

    /// Puts the file in place; an export that found nothing still leaves an empty file, so
    /// the user can tell "nothing to export" from "not run".
    pub fn commit(mut self) -> Result<(), Error> {
        self.writer()?;
        let Some((output, writer)) = self.open.take() else {
            return Ok(());
        };
        let file = writer.into_inner().map_err(|e| Error::Write {
            path: self.path.clone(),
            source: e.into_error(),
        })?;
        output.commit(file)
    }

    fn writer(&mut self) -> Result<&mut BufWriter<File>, Error> {
        let open = match self.open.take() {
            Some(open) => open,
            None => {
                let (output, file) = OutputFile::create(&self.path, self.force)?;
                (output, BufWriter::new(file))
            }
        };
        Ok(&mut self.open.insert(open).1)
    }
}

fn attributes_json(raw: &[u8]) -> Value {
    if raw.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(raw).unwrap_or_else(|_| json_bytes(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::vectorset::VectorElement;
    use bytes::Bytes;
    use serde_json::json;

    #[test]
    fn noted_sets_follow_swapdb_and_move_and_other_keys_stay_out() {
        let keys = ExportedKeys::default();
        let (a, b) = (Bytes::from_static(b"a"), Bytes::from_static(b"b"));
        keys.note(2, &a);
        keys.note(3, &b);
        keys.swap_dbs(2, 3);
        keys.move_key(2, &b, 7);
        keys.move_key(0, &Bytes::from_static(b"plain"), 7);
        let noted: Vec<(u64, Bytes)> = keys.snapshot().into_iter().collect();
        assert_eq!(noted, [(3, a), (7, b)]);
    }

    fn element(
        name: &'static [u8],
        vector: Vec<f32>,
        attributes: Option<&'static [u8]>,
    ) -> VectorElement {
        VectorElement {
            name: Bytes::from_static(name),
            vector,
            attributes: attributes.map(Bytes::from_static),
        }
    }

    #[test]
    fn one_json_line_per_element() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.jsonl");
        let mut exporter = VectorExporter::new(&path, false).unwrap();
        let set = VectorSet {
            dim: 2,
            quantization: Quantization::Int8,
            hnsw_m: 16,
            projection: None,
            elements: vec![
                element(b"a", vec![0.5, -1.0], Some(br#"{"color":"red","n":3}"#)),
                element(b"\xffb", vec![0.25, 2.0], None),
                element(b"c", vec![1.0, 0.0], Some(b"not json")),
            ],
        };
        assert_eq!(exporter.write_set(2, b"vs:1", &set).unwrap(), 3);
        assert!(!path.exists(), "the file appears only on commit");
        exporter.commit().unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            json!({"db": 2, "key": "vs:1", "element": "a", "vector": [0.5, -1.0],
                   "attributes": {"color": "red", "n": 3}, "quantization": "int8"})
        );
        assert_eq!(lines[1]["element"], json!({"base64": "/2I="}));
        assert_eq!(lines[1]["attributes"], json!(null));
        assert_eq!(lines[2]["attributes"], json!("not json"));
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn an_export_with_nothing_to_export_leaves_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.jsonl");
        VectorExporter::new(&path, false).unwrap().commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn a_failed_run_leaves_no_export_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.jsonl");
        let mut exporter = VectorExporter::new(&path, false).unwrap();
        let set = VectorSet {
            dim: 1,
            quantization: Quantization::Fp32,
            hnsw_m: 16,
            projection: None,
            elements: vec![element(b"a", vec![1.0], None)],
        };
        exporter.write_set(0, b"k", &set).unwrap();
        drop(exporter);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
