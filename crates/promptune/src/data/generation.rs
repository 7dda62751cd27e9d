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
//! - WebNLG 2017 (XML): each entry's triples linearised as DART's (underscores as spaces), its
//!   lexicalisations as references, its category seen in training or not (the paper's S / U);
//! - any JSONL/CSV/TSV file of a source and a target column (XSum's `document` and `summary`),
//!   one reference per line.

use std::path::Path;

use serde::Deserialize;

use std::collections::BTreeMap;

use super::{read_examples, DataFormat, DataSpec, Example};
use crate::{Error, Result};

/// The largest DART file read (the full training set is about 30 MB).
const MAX_JSON_BYTES: u64 = 512 << 20;

/// One input and the texts that may answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationExample {
    /// The input (a linearised table, a document).
    pub source: String,
    /// Every reference output (at least one; none only for a WebNLG test file without them).
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

/// The examples of a generation data set: for the `e2e`, `dart` and `webnlg` formats one
/// example per reference with the fields `source` and `target` (WebNLG adds `category` and
/// `subset`, `seen` or `unseen`; a source without references gives one example without a
/// target), `spec.limit` counting sources; for JSONL/CSV/TSV the rows as
/// [`read_examples`] reads them (without labels).
pub fn read_generation_examples(spec: &DataSpec) -> Result<Vec<Example>> {
    let format = spec.resolved_format()?;
    let grouped: Vec<(GenerationExample, Vec<(&str, String)>)> = match format {
        DataFormat::Jsonl | DataFormat::Csv | DataFormat::Tsv => {
            return read_examples(spec, &[]);
        }
        DataFormat::E2e => read_e2e(&spec.path)?
            .into_iter()
            .map(|e| (e, Vec::new()))
            .collect(),
        DataFormat::Dart => read_dart(&spec.path)?
            .into_iter()
            .map(|e| (e, Vec::new()))
            .collect(),
        DataFormat::Webnlg => read_webnlg(&spec.path)?
            .into_iter()
            .map(|w| {
                let subset = if w.seen { "seen" } else { "unseen" };
                let extra = vec![("category", w.category), ("subset", subset.to_string())];
                (w.example, extra)
            })
            .collect(),
    };
    let keep = spec.limit.unwrap_or(usize::MAX);
    if keep == 0 {
        return Err(Error::data(
            &spec.path,
            None,
            "`limit = 0` keeps no examples",
        ));
    }
    let mut out = Vec::new();
    for (example, extra) in grouped.into_iter().take(keep) {
        let mut fields: BTreeMap<String, String> =
            extra.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        fields.insert("source".into(), example.source);
        if example.references.is_empty() {
            out.push(Example {
                fields: fields.clone(),
                label: None,
            });
        }
        for r in example.references {
            let mut f = fields.clone();
            f.insert("target".into(), r);
            out.push(Example {
                fields: f,
                label: None,
            });
        }
    }
    if out.is_empty() {
        return Err(Error::data(&spec.path, None, "no examples in the file"));
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

/// WebNLG 2017's categories seen in training; the others of its test set are "unseen".
pub const WEBNLG_SEEN_CATEGORIES: [&str; 10] = [
    "Airport",
    "Astronaut",
    "Building",
    "City",
    "ComicsCharacter",
    "Food",
    "Monument",
    "SportsTeam",
    "University",
    "WrittenWork",
];

/// A WebNLG entry: its category, triples linearised, lexicalisations as references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebNlgExample {
    /// DBpedia category (`Airport`, `Artist`, ...).
    pub category: String,
    /// Whether the category is one of the training categories ([`WEBNLG_SEEN_CATEGORIES`]).
    pub seen: bool,
    /// Triples and references.
    pub example: GenerationExample,
}

/// A WebNLG 2017 XML file (`<entry category=…>` with `<mtriple>s | p | o</mtriple>` and
/// `<lex>` texts): each entry's modified triples linearised as `s : p : o` joined by ` | `
/// (underscores as spaces), its lexicalisations as references.
pub fn read_webnlg(path: &Path) -> Result<Vec<WebNlgExample>> {
    use quick_xml::events::Event;
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if size > MAX_JSON_BYTES {
        return Err(Error::format(
            path,
            format!("{size} bytes is more than a WebNLG file may hold here ({MAX_JSON_BYTES})"),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut reader = quick_xml::Reader::from_str(&text);
    let bad = |reader: &quick_xml::Reader<&[u8]>, what: String| {
        Error::format(
            path,
            format!(
                "not a WebNLG file at byte {}: {what}",
                reader.buffer_position()
            ),
        )
    };
    let mut out = Vec::new();
    let mut category: Option<String> = None;
    let mut triples: Vec<String> = Vec::new();
    let mut references: Vec<String> = Vec::new();
    // the element whose text is being read, and the text so far
    let mut inside: Option<&'static str> = None;
    let mut content = String::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| bad(&reader, e.to_string()))?;
        match event {
            Event::Start(e) => match e.name().as_ref() {
                b"entry" => {
                    let attr = e
                        .try_get_attribute("category")
                        .map_err(|err| bad(&reader, err.to_string()))?
                        .ok_or_else(|| bad(&reader, "an entry without a category".into()))?;
                    let value = attr
                        .unescape_value()
                        .map_err(|err| bad(&reader, err.to_string()))?;
                    category = Some(value.into_owned());
                    triples.clear();
                    references.clear();
                }
                b"mtriple" => inside = Some("mtriple"),
                b"lex" => inside = Some("lex"),
                _ => {}
            },
            Event::Text(t) if inside.is_some() => {
                content.push_str(&t.decode().map_err(|e| bad(&reader, e.to_string()))?)
            }
            Event::GeneralRef(r) if inside.is_some() => {
                if let Some(c) = r
                    .resolve_char_ref()
                    .map_err(|e| bad(&reader, e.to_string()))?
                {
                    content.push(c);
                } else {
                    let name = r.decode().map_err(|e| bad(&reader, e.to_string()))?;
                    let entity = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| bad(&reader, format!("unknown entity `&{name};`")))?;
                    content.push_str(entity);
                }
            }
            Event::End(e) => match e.name().as_ref() {
                b"mtriple" => {
                    let parts: Vec<&str> = content.split(" | ").collect();
                    let [s, p, o] = parts.as_slice() else {
                        return Err(bad(
                            &reader,
                            format!("a triple `{content}` not of three parts"),
                        ));
                    };
                    let clean = |x: &str| x.trim().replace('_', " ");
                    triples.push(format!("{} : {} : {}", clean(s), clean(p), clean(o)));
                    content.clear();
                    inside = None;
                }
                b"lex" => {
                    let lex = content.trim().to_string();
                    if !lex.is_empty() {
                        references.push(lex);
                    }
                    content.clear();
                    inside = None;
                }
                b"entry" => {
                    let category = category
                        .take()
                        .ok_or_else(|| bad(&reader, "an entry closed twice".into()))?;
                    if triples.is_empty() {
                        return Err(bad(&reader, "an entry without triples".into()));
                    }
                    // the test files without references still give their sources
                    out.push(WebNlgExample {
                        seen: WEBNLG_SEEN_CATEGORIES.contains(&category.as_str()),
                        category,
                        example: GenerationExample {
                            source: triples.join(" | "),
                            references: std::mem::take(&mut references),
                        },
                    });
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    if inside.is_some() || category.is_some() {
        return Err(bad(&reader, "the file ends inside an entry".into()));
    }
    Ok(out)
}
