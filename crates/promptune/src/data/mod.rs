//! Labelled examples: reading them from JSONL / CSV / TSV files ([`reader`]), drawing
//! few-shot subsets and epoch orders ([`sampling`]), and grouping them into batches
//! ([`batching`]).
//!
//! A [`DataSpec`] (usually a table of a TOML run config) says where a file is, which of its
//! columns feed which template field, and how its raw label values map to label names:
//!
//! ```toml
//! [train]
//! path = "sst2/train.tsv"
//! columns = { text_a = "sentence" }
//! label_column = "label"
//! label_map = { "0" = "negative", "1" = "positive" }
//! ```

pub mod batching;
pub mod conll;
pub mod generation;
pub mod reader;
pub mod sampling;
pub mod squad;
pub mod superglue;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use batching::{bucketed_batches, length_sorted_batches, sequential_batches};
pub use conll::{read_conll, tag_set, TaggedSentence};
pub use reader::read_examples;
pub use sampling::{k_shot, shuffled_indices};
pub use squad::{read_squad, split_by_article, Answer, QaExample};
pub use superglue::{read_superglue, SuperGlueSplit, SuperGlueTask};

/// One example: the text of each template field and, when the file is labelled, its label.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// Template field name (e.g. `text_a`) -> its text, surrounding whitespace trimmed.
    pub fields: BTreeMap<String, String>,
    /// Index into the label list passed to [`read_examples`]; `None` for unlabelled data.
    pub label: Option<usize>,
}

/// File layouts [`read_examples`] understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// One JSON object per line; values may be strings, numbers or booleans.
    Jsonl,
    /// Comma-separated values with standard `"` quoting.
    Csv,
    /// Tab-separated values; quotes are ordinary characters (GLUE files contain stray ones).
    Tsv,
    /// The E2E NLG challenge's CSV (`mr`, `ref`); generation tasks only (fields `source`, the
    /// linearised meaning representation, and `target`).
    E2e,
    /// DART's JSON; generation tasks only (fields `source`, `target`).
    Dart,
    /// WebNLG 2017's XML; generation tasks only (fields `source`, `target`, `category` and
    /// `subset`, `seen` or `unseen`).
    Webnlg,
}

impl DataFormat {
    /// The format a file extension implies (`jsonl`/`ndjson`, `csv`, `tsv`; any case).
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Some(DataFormat::Jsonl),
            "csv" => Some(DataFormat::Csv),
            "tsv" => Some(DataFormat::Tsv),
            _ => None,
        }
    }
}

/// Where a data file is and how to turn its rows into [`Example`]s.
///
/// Unknown keys are rejected so a typo in a config file is an error rather than a silently
/// ignored setting.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// The data file.
    pub path: PathBuf,
    /// File layout; `None` infers it from the extension (`.jsonl`, `.csv`, `.tsv`).
    #[serde(default)]
    pub format: Option<DataFormat>,
    /// CSV/TSV only: whether the first line names the columns (`None` = `true`).
    #[serde(default)]
    pub header: Option<bool>,
    /// Template field name (e.g. `text_a`) -> column: a header name / JSON key, or a 0-based
    /// column index written as a string when the CSV/TSV file has no header.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Column holding the label; `None` reads the file as unlabelled (for prediction).
    #[serde(default)]
    pub label_column: Option<String>,
    /// Raw value in the file -> label name (e.g. `"0"` -> `"negative"`); empty means the raw
    /// values already are label names.
    #[serde(default)]
    pub label_map: BTreeMap<String, String>,
    /// Keep only the first `limit` examples of the file.
    #[serde(default)]
    pub limit: Option<usize>,
    /// SQuAD files only: keep the questions of articles `[start, end)` (0-based, in file
    /// order), before `limit` applies; a fixed split of one file into train and dev parts.
    #[serde(default)]
    pub articles: Option<[usize; 2]>,
    /// JSONL/CSV/TSV: the longest line read, in bytes ([`DEFAULT_MAX_LINE_BYTES`] when
    /// `None`); a longer one is an error naming it, before any of it is tokenized.
    #[serde(default)]
    pub max_line_bytes: Option<usize>,
}

/// The longest line a data file may hold unless [`DataSpec::max_line_bytes`] says otherwise
/// (4 MiB: a million words, far beyond any prompt's `max_len`).
pub const DEFAULT_MAX_LINE_BYTES: usize = 4 << 20;

impl DataSpec {
    /// A spec for `path` with everything else at its default: no columns, no labels, the
    /// format taken from the extension, a header line for CSV/TSV, no limit.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DataSpec {
            path: path.into(),
            format: None,
            header: None,
            columns: BTreeMap::new(),
            label_column: None,
            label_map: BTreeMap::new(),
            limit: None,
            max_line_bytes: None,
            articles: None,
        }
    }

    /// Maps template field `field` to file column `column` (builder style).
    pub fn column(mut self, field: impl Into<String>, column: impl Into<String>) -> Self {
        self.columns.insert(field.into(), column.into());
        self
    }

    /// Reads labels from `column` (builder style).
    pub fn label(mut self, column: impl Into<String>) -> Self {
        self.label_column = Some(column.into());
        self
    }

    /// The format to read with: the explicit one, else the one the extension implies.
    pub fn resolved_format(&self) -> crate::Result<DataFormat> {
        if let Some(format) = self.format {
            return Ok(format);
        }
        self.path
            .extension()
            .and_then(|e| e.to_str())
            .and_then(DataFormat::from_extension)
            .ok_or_else(|| {
                crate::Error::data(
                    &self.path,
                    None,
                    "cannot tell the file format from the extension; set `format` to \
                     \"jsonl\", \"csv\" or \"tsv\"",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Config {
        train: DataSpec,
    }

    #[test]
    fn spec_from_json_with_defaults() {
        let spec: DataSpec =
            serde_json::from_str(r#"{"path": "a.tsv", "columns": {"text_a": "sentence"}}"#)
                .unwrap();
        assert_eq!(spec, DataSpec::new("a.tsv").column("text_a", "sentence"));
        assert_eq!(spec.resolved_format().unwrap(), DataFormat::Tsv);
    }

    #[test]
    fn spec_rejects_unknown_fields() {
        let ok: Config = serde_json::from_str(
            r#"{"train": {"path": "a.tsv", "columns": {}, "label_column": "label"}}"#,
        )
        .unwrap();
        assert_eq!(ok.train.label_column.as_deref(), Some("label"));
        let err = serde_json::from_str::<Config>(
            r#"{"train": {"path": "a.tsv", "columns": {}, "lable_column": "label"}}"#,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("lable_column"), "{err}");
    }

    #[test]
    fn spec_format_names() {
        let spec: DataSpec =
            serde_json::from_str(r#"{"path": "a.txt", "columns": {}, "format": "csv"}"#).unwrap();
        assert_eq!(spec.resolved_format().unwrap(), DataFormat::Csv);
        let err = DataSpec::new("a.txt")
            .resolved_format()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("a.txt: ") && err.contains("`format`"),
            "{err}"
        );
        assert_eq!(DataFormat::from_extension("JSONL"), Some(DataFormat::Jsonl));
        assert_eq!(DataFormat::from_extension("json"), None);
    }
}
