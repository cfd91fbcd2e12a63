//! Checks ferry's vector set export (JSON Lines, one element a line) against what Redis
//! itself reports for those sets (VEMB, VGETATTR).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value as Json;

use ferry_testkit::expect::RemovedVectorSets as VectorSets;

/// Embeddings are compared as f32 with this relative slack: both sides dequantize the same
/// stored bytes, but may round differently in the last place.
const RELATIVE_SLACK: f64 = 1e-5;

#[derive(Deserialize)]
struct Line {
    db: u64,
    key: Json,
    element: Json,
    vector: Vec<f64>,
    attributes: Json,
}

pub struct ExportCheck {
    pub elements: u64,
    pub problems: Vec<String>,
}

/// Compares `path` with `expected` (vector sets by db and key). ferry rewrites the export from
/// the source when it stops, so it holds the sets the load changed as they are at the end.
pub fn check(path: &Path, expected: &VectorSets) -> Result<ExportCheck> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the vector export {}", path.display()))?;
    let mut found: BTreeMap<(u64, Vec<u8>), BTreeMap<Vec<u8>, Line>> = BTreeMap::new();
    let mut elements = 0;
    for (number, raw) in text.lines().enumerate() {
        let line: Line = serde_json::from_str(raw)
            .with_context(|| format!("{}:{}: not an element line", path.display(), number + 1))?;
        let (key, element) = ((line.db, name(&line.key)), name(&line.element));
        found.entry(key).or_default().insert(element, line);
        elements += 1;
    }

    let mut problems = Vec::new();
    for ((db, key), set) in expected.iter() {
        let shown = format!("db{db} {:?}", String::from_utf8_lossy(key));
        let Some(lines) = found.remove(&(u64::from(*db), key.clone())) else {
            problems.push(format!("vector set {shown} missing from the export"));
            continue;
        };
        for (element, stored) in &set.elements {
            let label = format!("{shown} element {:?}", String::from_utf8_lossy(element));
            let Some(line) = lines.get(element) else {
                problems.push(format!("{label} missing from the export"));
                continue;
            };
            if !same_vector(&line.vector, &stored.embedding) {
                problems.push(format!(
                    "{label}: exported vector differs from VEMB ({} vs {} components)",
                    line.vector.len(),
                    stored.embedding.len()
                ));
            }
            let attributes = stored
                .attributes
                .as_deref()
                .map(|raw| serde_json::from_slice(raw).unwrap_or(Json::Null))
                .unwrap_or(Json::Null);
            if line.attributes != attributes {
                problems.push(format!("{label}: exported attributes differ from VGETATTR"));
            }
        }
        for element in lines.keys().filter(|e| !set.elements.contains_key(*e)) {
            problems.push(format!(
                "{shown} element {:?} exported but not in Redis",
                String::from_utf8_lossy(element)
            ));
        }
    }
    for (db, key) in found.keys() {
        problems.push(format!(
            "db{db} {:?} exported but is not a vector set in Redis",
            String::from_utf8_lossy(key)
        ));
    }
    Ok(ExportCheck { elements, problems })
}

/// A JSON name: a string, or `{"base64": …}` kept in its JSON text (never equal to a real
/// UTF-8 name, so it shows up as a mismatch rather than matching the wrong key).
fn name(value: &Json) -> Vec<u8> {
    match value {
        Json::String(text) => text.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

fn same_vector(exported: &[f64], vemb: &[f64]) -> bool {
    exported.len() == vemb.len()
        && exported.iter().zip(vemb).all(|(a, b)| {
            let (a, b) = (f64::from(*a as f32), f64::from(*b as f32));
            (a - b).abs() <= RELATIVE_SLACK * a.abs().max(b.abs()).max(1e-30)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_testkit::snapshot::{VectorElement, VectorSet};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn expected() -> VectorSets {
        let mut elements = BTreeMap::new();
        elements.insert(
            b"e0".to_vec(),
            VectorElement {
                embedding: vec![0.5, -0.25],
                attributes: Some(br#"{"i":0}"#.to_vec()),
            },
        );
        elements.insert(
            b"e1".to_vec(),
            VectorElement {
                embedding: vec![1.0, 0.0],
                attributes: None,
            },
        );
        let set = VectorSet {
            card: 2,
            dim: 2,
            settings: BTreeMap::new(),
            elements,
        };
        [((0, b"vs".to_vec()), set)].into_iter().collect()
    }

    fn check_text(text: &str) -> ExportCheck {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("xtask-vectors-{}-{n}.jsonl", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let result = check(&path, &expected()).unwrap();
        let _ = std::fs::remove_file(&path);
        result
    }

    const GOOD: &str = r#"{"db":0,"key":"vs","element":"e0","vector":[0.5,-0.25],"attributes":{"i":0},"quantization":"int8"}
{"db":0,"key":"vs","element":"e1","vector":[1.0,0.0],"attributes":null,"quantization":"int8"}
"#;

    #[test]
    fn a_faithful_export_has_no_problems() {
        let result = check_text(GOOD);
        assert_eq!(result.elements, 2);
        assert!(result.problems.is_empty(), "{:?}", result.problems);
    }

    #[test]
    fn a_changed_vector_a_lost_element_and_wrong_attributes_are_each_reported() {
        let bad = GOOD
            .replace("-0.25", "-0.26")
            .replace(r#""attributes":null"#, r#""attributes":{"x":1}"#);
        let result = check_text(&bad);
        assert_eq!(result.problems.len(), 2, "{:?}", result.problems);
        let lost = GOOD.lines().next().unwrap().to_string() + "\n";
        let result = check_text(&lost);
        assert_eq!(
            result.problems,
            vec![r#"db0 "vs" element "e1" missing from the export"#]
        );
    }
}
