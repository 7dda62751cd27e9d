//! SuperGLUE / FewGLUE JSONL readers for BoolQ, RTE and CB -> [`Example`]s.
//!
//! | task | text fields | `label` in the file | label names ([`SuperGlueTask::labels`]) |
//! |---|---|---|---|
//! | BoolQ | `passage`, `question` | JSON `true` / `false` | `false`, `true` |
//! | RTE | `premise`, `hypothesis` | `"entailment"` / `"not_entailment"` | same |
//! | CB | `premise`, `hypothesis` | `"entailment"` / `"contradiction"` / `"neutral"` | same |
//!
//! Each [`Example`] holds its two texts (whitespace-trimmed) under their SuperGLUE names and
//! also as `text_a` / `text_b` (passage / question, premise / hypothesis), so a template may
//! use either; [`Example::label`] indexes [`SuperGlueTask::labels`]. Other keys (`idx`, ...)
//! are ignored.
//!
//! The FewGLUE_32dev folders (`../shared/data/fewglue-superglue/<Task>/`) hold `train.jsonl`
//! (32 FewGLUE training examples), `dev32.jsonl` (32 more from the SuperGLUE train set) and
//! `val.jsonl` (the full SuperGLUE validation set); see [`SuperGlueSplit`].

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::reader::{for_each_line, json_object};
use super::Example;
use crate::error::{Error, Result};

/// The SuperGLUE tasks these readers cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SuperGlueTask {
    /// Yes/no questions about a passage.
    BoolQ,
    /// Recognizing Textual Entailment (2 classes).
    Rte,
    /// CommitmentBank (3 classes).
    Cb,
}

impl SuperGlueTask {
    /// Every task, in the order above.
    pub const ALL: [SuperGlueTask; 3] =
        [SuperGlueTask::BoolQ, SuperGlueTask::Rte, SuperGlueTask::Cb];

    /// The task's name, as its data folder is called: `BoolQ`, `RTE`, `CB`.
    pub fn name(self) -> &'static str {
        match self {
            SuperGlueTask::BoolQ => "BoolQ",
            SuperGlueTask::Rte => "RTE",
            SuperGlueTask::Cb => "CB",
        }
    }

    /// The task named `name` (any case), if it is one of these.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// The label names, in label-index order.
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            SuperGlueTask::BoolQ => &["false", "true"],
            SuperGlueTask::Rte => &["entailment", "not_entailment"],
            SuperGlueTask::Cb => &["entailment", "contradiction", "neutral"],
        }
    }

    /// The JSON keys of the two texts, stored as `text_a` and `text_b`.
    pub fn text_keys(self) -> [&'static str; 2] {
        match self {
            SuperGlueTask::BoolQ => ["passage", "question"],
            SuperGlueTask::Rte | SuperGlueTask::Cb => ["premise", "hypothesis"],
        }
    }
}

/// The files of a FewGLUE_32dev task folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SuperGlueSplit {
    /// `train.jsonl`: the 32 FewGLUE training examples.
    Train,
    /// `dev32.jsonl`: 32 development examples drawn from the SuperGLUE training set.
    Dev32,
    /// `val.jsonl`: the full SuperGLUE validation set (BoolQ 3,270, CB 56, RTE 277).
    Val,
}

impl SuperGlueSplit {
    /// The split's file name.
    pub fn file_name(self) -> &'static str {
        match self {
            SuperGlueSplit::Train => "train.jsonl",
            SuperGlueSplit::Dev32 => "dev32.jsonl",
            SuperGlueSplit::Val => "val.jsonl",
        }
    }
}

/// `root/<Task>/<split file>`, e.g. `root/RTE/val.jsonl` for `root` =
/// `../shared/data/fewglue-superglue`.
pub fn superglue_path(
    root: impl AsRef<Path>,
    task: SuperGlueTask,
    split: SuperGlueSplit,
) -> PathBuf {
    root.as_ref().join(task.name()).join(split.file_name())
}

/// Reads a BoolQ JSONL file (see [`read_superglue`]).
pub fn read_boolq(path: impl AsRef<Path>) -> Result<Vec<Example>> {
    read_superglue(path, SuperGlueTask::BoolQ)
}

/// Reads an RTE JSONL file (see [`read_superglue`]).
pub fn read_rte(path: impl AsRef<Path>) -> Result<Vec<Example>> {
    read_superglue(path, SuperGlueTask::Rte)
}

/// Reads a CB JSONL file (see [`read_superglue`]).
pub fn read_cb(path: impl AsRef<Path>) -> Result<Vec<Example>> {
    read_superglue(path, SuperGlueTask::Cb)
}

/// Reads a JSONL file of `task`, one labelled example per non-blank line (see the module docs
/// for the fields and labels).
///
/// Errors (with the 1-based line): missing file, invalid UTF-8 or JSON, a line that is not an
/// object, a missing text or label key (the keys present are listed), a text that is not a
/// string, a BoolQ label that is not a boolean, an unknown RTE / CB label (the known ones are
/// listed), or a file without examples.
pub fn read_superglue(path: impl AsRef<Path>, task: SuperGlueTask) -> Result<Vec<Example>> {
    let path = path.as_ref();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingFile {
                path: path.to_path_buf(),
                hint: format!("{} data file not found", task.name()),
            })
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut examples = Vec::new();
    for_each_line(path, file, |line_no, text| {
        if let Some(obj) = json_object(path, line_no, text)? {
            let example =
                parse_example(task, &obj).map_err(|m| Error::data(path, Some(line_no), m))?;
            examples.push(example);
        }
        Ok(true)
    })?;
    if examples.is_empty() {
        return Err(Error::data(
            path,
            None,
            format!(
                "no {} examples in the file (it is empty or blank)",
                task.name()
            ),
        ));
    }
    Ok(examples)
}

/// One JSON object -> an [`Example`], or the message saying what is wrong with it.
fn parse_example(
    task: SuperGlueTask,
    obj: &Map<String, Value>,
) -> std::result::Result<Example, String> {
    let get = |key: &str| -> std::result::Result<&Value, String> {
        obj.get(key).ok_or_else(|| {
            let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            format!(
                "missing field `{key}` for {}; the line has: {}",
                task.name(),
                keys.join(", ")
            )
        })
    };
    let mut fields = BTreeMap::new();
    for (field, key) in ["text_a", "text_b"].into_iter().zip(task.text_keys()) {
        let text = match get(key)? {
            Value::String(s) => s.trim().to_string(),
            other => {
                return Err(format!(
                    "field `{key}` must be a string, found {}",
                    json_kind(other)
                ))
            }
        };
        fields.insert(key.to_string(), text.clone());
        fields.insert(field.to_string(), text);
    }
    let label = get("label")?;
    let labels = task.labels();
    let index = match (task, label) {
        (SuperGlueTask::BoolQ, Value::Bool(b)) => usize::from(*b),
        (SuperGlueTask::BoolQ, other) => {
            return Err(format!(
                "BoolQ `label` must be true or false, found {}",
                shown(other)
            ))
        }
        (_, Value::String(s)) => labels.iter().position(|l| l == s).ok_or_else(|| {
            format!(
                "unknown {} label `{s}` (known labels: {})",
                task.name(),
                labels.join(", ")
            )
        })?,
        (_, other) => {
            return Err(format!(
                "{} `label` must be a string ({}), found {}",
                task.name(),
                labels.join(", "),
                shown(other)
            ))
        }
    };
    Ok(Example {
        fields,
        label: Some(index),
    })
}

/// A JSON value's kind, for messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON value as a short text, for messages.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(SuperGlueTask::from_name("rte"), Some(SuperGlueTask::Rte));
        assert_eq!(
            SuperGlueTask::from_name("BOOLQ"),
            Some(SuperGlueTask::BoolQ)
        );
        assert_eq!(SuperGlueTask::from_name("copa"), None);
        assert_eq!(
            superglue_path("/d", SuperGlueTask::Cb, SuperGlueSplit::Dev32),
            Path::new("/d/CB/dev32.jsonl")
        );
    }

    #[test]
    fn parse_labels_and_fields() {
        let obj = |v: Value| v.as_object().unwrap().clone();
        let e = parse_example(
            SuperGlueTask::BoolQ,
            &obj(serde_json::json!({"passage": " P ", "question": "q?", "label": true, "idx": 3})),
        )
        .unwrap();
        assert_eq!(e.label, Some(1));
        assert_eq!(e.fields["text_a"], "P");
        assert_eq!(e.fields["passage"], "P");
        assert_eq!(e.fields["text_b"], "q?");
        assert_eq!(e.fields.len(), 4);
        let err = parse_example(
            SuperGlueTask::BoolQ,
            &obj(serde_json::json!({"passage": "P", "question": "q", "label": "True"})),
        )
        .unwrap_err();
        assert!(
            err.contains("must be true or false, found \"True\""),
            "{err}"
        );
        let err = parse_example(
            SuperGlueTask::Cb,
            &obj(serde_json::json!({"premise": "P", "hypothesis": 3, "label": "neutral"})),
        )
        .unwrap_err();
        assert!(
            err.contains("`hypothesis` must be a string, found a number"),
            "{err}"
        );
        let e = parse_example(
            SuperGlueTask::Cb,
            &obj(serde_json::json!({"premise": "P", "hypothesis": "H", "label": "neutral"})),
        )
        .unwrap();
        assert_eq!(e.label, Some(2));
        let err = parse_example(
            SuperGlueTask::Rte,
            &obj(serde_json::json!({"premise": "P", "hypothesis": "H", "label": 0})),
        )
        .unwrap_err();
        assert!(err.contains("must be a string"), "{err}");
    }
}
