//! Text-generation data: an input and the references that may answer it.
//!
//! - E2E NLG (`mr`,`ref` CSV): the references of one meaning representation grouped (in the
//!   order the file first names them), the representation linearised in the layout of the
//!   Prefix-Tuning release's `src1_*.txt` files: `name : Alimentum | area : city centre |
//!   family friendly : no` (attribute names `familyFriendly`, `priceRange`, `eatType` read as
//!   `family friendly`, `price`, `Type`; values as the CSV writes them, where those files
//!   split them into tokens, `£ 20 - 25`);
//! - DART (a JSON list of `tripleset` and `annotations`): triples linearised as
//!   `subject : property : object` joined by ` | `;
//! - any JSONL/CSV/TSV file of a source and a target column (XSum's `document` and `summary`),
//!   one reference per line.

use std::path::Path;

use serde::Deserialize;

use super::{read_examples, DataSpec};
use crate::{Error, Result};

/// The largest DART file read (the full training set is about 30 MB).
const MAX_JSON_BYTES: u64 = 512 << 20;

/// One input and the texts that may answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationExample {
    /// The input (a linearised table, a document).
    pub source: String,
    /// Every reference output (at least one).
    pub references: Vec<String>,
}

/// One training pair per reference: (source, target).
pub fn training_pairs(examples: &[GenerationExample]) -> Vec<(String, String)> {
    examples
        .iter()
        .flat_map(|e| {
            e.references
                .iter()
                .map(move |r| (e.source.clone(), r.clone()))
        })
        .collect()
}

/// Groups (source, reference) rows by source, in first-appearance order.
fn group(rows: impl IntoIterator<Item = (String, String)>) -> Vec<GenerationExample> {
    let mut index = std::collections::HashMap::new();
    let mut out: Vec<GenerationExample> = Vec::new();
    for (source, reference) in rows {
        let at = *index.entry(source.clone()).or_insert_with(|| {
            out.push(GenerationExample {
                source,
                references: Vec::new(),
            });
            out.len() - 1
        });
        out[at].references.push(reference);
    }
    out
}

/// An E2E meaning representation (`name[Alimentum], area[city centre]`) linearised as
/// Prefix-Tuning's files write it.
pub fn linearize_e2e(mr: &str) -> std::result::Result<String, String> {
    let mut parts = Vec::new();
    let mut rest = mr.trim();
    while !rest.is_empty() {
        let open = rest
            .find('[')
            .ok_or_else(|| format!("`{rest}` is not `attribute[value]`"))?;
        let close = rest[open..]
            .find(']')
            .map(|c| open + c)
            .ok_or_else(|| format!("`{rest}` has no closing `]`"))?;
        let key = rest[..open].trim();
        if key.is_empty() {
            return Err(format!("a value without an attribute name in `{mr}`"));
        }
        let key = match key {
            "familyFriendly" => "family friendly",
            "priceRange" => "price",
            "eatType" => "Type",
            other => other,
        };
        parts.push(format!("{key} : {}", rest[open + 1..close].trim()));
        rest = rest[close + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    if parts.is_empty() {
        return Err("an empty meaning representation".into());
    }
    Ok(parts.join(" | "))
}

/// An E2E NLG CSV file (`mr`, `ref` columns): references grouped per meaning representation.
pub fn read_e2e(path: &Path) -> Result<Vec<GenerationExample>> {
    let spec = DataSpec::new(path).column("mr", "mr").column("ref", "ref");
    let rows = read_examples(&spec, &[])?;
    let mut pairs = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let source =
            linearize_e2e(&row.fields["mr"]).map_err(|m| Error::data(path, Some(i + 2), m))?;
        pairs.push((source, row.fields["ref"].clone()));
    }
    Ok(group(pairs))
}

#[derive(Deserialize)]
struct DartEntry {
    tripleset: Vec<Vec<String>>,
    annotations: Vec<DartAnnotation>,
}

#[derive(Deserialize)]
struct DartAnnotation {
    text: String,
}

/// A DART JSON file: each entry's triples linearised, its annotations as references.
pub fn read_dart(path: &Path) -> Result<Vec<GenerationExample>> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if size > MAX_JSON_BYTES {
        return Err(Error::format(
            path,
            format!("{size} bytes is more than a DART file may hold here ({MAX_JSON_BYTES})"),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let entries: Vec<DartEntry> = serde_json::from_str(&text).map_err(|e| {
        Error::format(
            path,
            format!("not a DART file (a list of tripleset/annotations entries): {e}"),
        )
    })?;
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let mut triples = Vec::with_capacity(entry.tripleset.len());
        for t in &entry.tripleset {
            let [s, p, o] = t.as_slice() else {
                return Err(Error::format(
                    path,
                    format!("entry {}: a triple of {} parts", i + 1, t.len()),
                ));
            };
            triples.push(format!("{s} : {p} : {o}"));
        }
        let references: Vec<String> = entry
            .annotations
            .into_iter()
            .map(|a| a.text)
            .filter(|t| !t.trim().is_empty())
            .collect();
        if triples.is_empty() || references.is_empty() {
            return Err(Error::format(
                path,
                format!("entry {}: no triples or no annotation text", i + 1),
            ));
        }
        out.push(GenerationExample {
            source: triples.join(" | "),
            references,
        });
    }
    Ok(out)
}

/// A JSONL/CSV/TSV file whose `spec` maps the fields `source` and `target` to columns: one
/// example per line (lines with the same source stay separate).
pub fn read_source_target(spec: &DataSpec) -> Result<Vec<GenerationExample>> {
    for field in ["source", "target"] {
        if !spec.columns.contains_key(field) {
            return Err(Error::InvalidInput(format!(
                "{}: name the `{field}` column (e.g. `document` / `summary` for XSum)",
                spec.path.display()
            )));
        }
    }
    Ok(read_examples(spec, &[])?
        .into_iter()
        .map(|e| GenerationExample {
            source: e.fields["source"].clone(),
            references: vec![e.fields["target"].clone()],
        })
        .collect())
}
