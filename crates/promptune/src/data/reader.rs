//! [`read_examples`]: JSONL / CSV / TSV files -> [`Example`]s.
//!
//! Every failure is an [`Error::Data`] (or [`Error::MissingFile`] / [`Error::Io`]) naming the
//! file and, where it applies, the 1-based line; nothing here panics on bad input.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::Value;

use super::{DataFormat, DataSpec, Example, DEFAULT_MAX_LINE_BYTES};
use crate::error::{Error, Result};

/// Reads the examples `spec` describes.
///
/// * Each template field of `spec.columns` gets the text of its column, surrounding whitespace
///   trimmed. JSONL values may be strings, numbers or booleans (used in their JSON spelling,
///   e.g. `1`, `0.5`, `true`); nulls, arrays and objects are errors.
/// * With `spec.label_column`, each raw label value (trimmed) goes through `spec.label_map`
///   (when non-empty) and must then be one of `labels`; [`Example::label`] is its index there.
///   Without it every label is `None` and `labels` is not used.
/// * CSV files use `"` quoting; TSV files split on tabs only, quotes are plain text. Their
///   first line names the columns unless `spec.header` is `Some(false)`, in which case columns
///   are 0-based indices (`"0"`, `"1"`, ...). `spec.header` does not apply to JSONL.
/// * Blank lines are skipped; `spec.limit` stops after that many examples.
///
/// Errors: missing file, a file without examples, a line that does not parse, a missing column
/// (the available ones are listed), a row with too few fields, an unknown label (the known
/// labels and the label map are listed), or a `label_map` naming a label not in `labels`.
pub fn read_examples(spec: &DataSpec, labels: &[String]) -> Result<Vec<Example>> {
    let path = spec.path.as_path();
    if spec.columns.is_empty() {
        return Err(Error::data(
            path,
            None,
            "no `columns` given: map at least one template field (e.g. text_a) to a column",
        ));
    }
    if spec.limit == Some(0) {
        return Err(Error::data(path, None, "`limit = 0` keeps no examples"));
    }
    let format = spec.resolved_format()?;
    let resolver = LabelResolver::new(spec, labels)?;
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingFile {
                path: path.to_path_buf(),
                hint: "data file not found (check `path` in the data spec)".into(),
            })
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let examples = match format {
        DataFormat::Jsonl => read_jsonl(path, file, spec, &resolver)?,
        DataFormat::Csv | DataFormat::Tsv => read_delimited(path, file, format, spec, &resolver)?,
        DataFormat::E2e | DataFormat::Dart | DataFormat::Webnlg => {
            return Err(Error::data(
                path,
                None,
                format!(
                    "format {format:?} is a generation data set: read it with a `generation` \
                     task (data::generation::read_generation_examples)"
                ),
            ))
        }
    };
    if examples.is_empty() {
        return Err(Error::data(
            path,
            None,
            "no examples in the file (it is empty, or holds only blank lines or a header)",
        ));
    }
    Ok(examples)
}

/// Raw label value -> label index, per the spec's label map and the label list.
struct LabelResolver<'a> {
    labels: &'a [String],
    map: &'a BTreeMap<String, String>,
}

impl<'a> LabelResolver<'a> {
    fn new(spec: &'a DataSpec, labels: &'a [String]) -> Result<Self> {
        let resolver = LabelResolver {
            labels,
            map: &spec.label_map,
        };
        if spec.label_column.is_some() {
            if labels.is_empty() {
                return Err(Error::data(
                    &spec.path,
                    None,
                    "a label column is set but the task has no labels",
                ));
            }
            for (raw, name) in &spec.label_map {
                if !labels.contains(name) {
                    return Err(Error::data(
                        &spec.path,
                        None,
                        format!(
                            "label_map maps `{raw}` to `{name}`, which is not a known label \
                             (known labels: {})",
                            resolver.known_labels()
                        ),
                    ));
                }
            }
        }
        Ok(resolver)
    }

    fn known_labels(&self) -> String {
        self.labels.join(", ")
    }

    fn label_map(&self) -> String {
        let pairs: Vec<String> = self
            .map
            .iter()
            .map(|(raw, name)| format!("{raw:?} -> {name:?}"))
            .collect();
        format!("{{{}}}", pairs.join(", "))
    }

    /// The label index of raw value `raw`, or a message saying why there is none.
    fn resolve(&self, raw: &str) -> std::result::Result<usize, String> {
        let raw = raw.trim();
        let name = if self.map.is_empty() {
            raw
        } else {
            match self.map.get(raw) {
                Some(name) => name.as_str(),
                None => {
                    return Err(format!(
                        "unknown label `{raw}`: not a key of label_map {} (known labels: {})",
                        self.label_map(),
                        self.known_labels()
                    ))
                }
            }
        };
        self.labels.iter().position(|l| l == name).ok_or_else(|| {
            let map = if self.map.is_empty() {
                "empty, so raw values must be label names".to_string()
            } else {
                self.label_map()
            };
            format!(
                "unknown label `{raw}` (known labels: {}; label_map: {map})",
                self.known_labels()
            )
        })
    }
}

/// A JSON scalar as text; `Err` describes why the value cannot be used.
fn scalar_text(value: &Value) -> std::result::Result<String, &'static str> {
    match value {
        Value::String(s) => Ok(s.trim().to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err("is null"),
        Value::Array(_) => {
            Err("is a JSON array; only strings, numbers and booleans can be used as text or label")
        }
        Value::Object(_) => {
            Err("is a JSON object; only strings, numbers and booleans can be used as text or label")
        }
    }
}

fn read_jsonl(
    path: &Path,
    file: File,
    spec: &DataSpec,
    resolver: &LabelResolver,
) -> Result<Vec<Example>> {
    let mut examples = Vec::new();
    let cap = spec.max_line_bytes.unwrap_or(DEFAULT_MAX_LINE_BYTES);
    for_each_line_capped(path, file, cap, |line_no, text| {
        let line = Some(line_no);
        let Some(obj) = json_object(path, line_no, text)? else {
            return Ok(true);
        };
        let get = |key: &str, what: &str| -> Result<String> {
            let value = obj.get(key).ok_or_else(|| {
                let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
                Error::data(
                    path,
                    line,
                    format!(
                        "missing column `{key}` ({what}); available: {}",
                        keys.join(", ")
                    ),
                )
            })?;
            scalar_text(value).map_err(|why| Error::data(path, line, format!("`{key}` {why}")))
        };
        let mut fields = BTreeMap::new();
        for (field, key) in &spec.columns {
            fields.insert(field.clone(), get(key, &format!("for field `{field}`"))?);
        }
        let label = match &spec.label_column {
            Some(key) => {
                let raw = get(key, "the label column")?;
                Some(
                    resolver
                        .resolve(&raw)
                        .map_err(|m| Error::data(path, line, m))?,
                )
            }
            None => None,
        };
        examples.push(Example { fields, label });
        Ok(spec.limit != Some(examples.len()))
    })?;
    Ok(examples)
}

/// Reads `file` line by line and hands each line to `each` with its 1-based number (UTF-8
/// checked, the byte-order mark of the first line dropped, the line ending kept); `each`
/// returns whether to go on.
pub(crate) fn for_each_line(
    path: &Path,
    file: File,
    each: impl FnMut(usize, &str) -> Result<bool>,
) -> Result<()> {
    for_each_line_capped(path, file, DEFAULT_MAX_LINE_BYTES, each)
}

/// [`for_each_line`] refusing, by its number, a line longer than `cap` bytes (its ending
/// included) before it is held whole.
pub(crate) fn for_each_line_capped(
    path: &Path,
    file: File,
    cap: usize,
    mut each: impl FnMut(usize, &str) -> Result<bool>,
) -> Result<()> {
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(cap as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        if buf.len() > cap {
            return Err(line_too_long(path, line_no, cap));
        }
        let text = std::str::from_utf8(&buf)
            .map_err(|e| Error::data(path, Some(line_no), format!("not valid UTF-8 ({e})")))?;
        let text = if line_no == 1 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        if !each(line_no, text)? {
            return Ok(());
        }
    }
}

fn line_too_long(path: &Path, line_no: usize, cap: usize) -> Error {
    Error::data(
        path,
        Some(line_no),
        format!(
            "line longer than {cap} bytes (raise the data spec's max_line_bytes if it is \
             meant to be)"
        ),
    )
}

/// A reader that fails on a line longer than `cap` bytes, and counts the `"` it passes (an
/// odd count at the end is an unterminated quote).
struct LineCapped<R> {
    inner: R,
    cap: usize,
    line: usize,
    since_newline: usize,
    quotes: usize,
}

impl<R: Read> Read for LineCapped<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        for &b in &out[..n] {
            match b {
                b'\n' => {
                    self.line += 1;
                    self.since_newline = 0;
                }
                b'"' => {
                    self.quotes += 1;
                    self.since_newline += 1;
                }
                _ => self.since_newline += 1,
            }
            if self.since_newline > self.cap {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    LineTooLong(self.line + 1, self.cap),
                ));
            }
        }
        Ok(n)
    }
}

/// The 1-based line that passed the cap, and the cap.
#[derive(Debug)]
struct LineTooLong(usize, usize);

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} is too long", self.0)
    }
}

impl std::error::Error for LineTooLong {}

/// The JSON object on line `line_no` of a JSONL file, or `None` when the line is blank.
pub(crate) fn json_object(
    path: &Path,
    line_no: usize,
    text: &str,
) -> Result<Option<serde_json::Map<String, Value>>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let line = Some(line_no);
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::data(path, line, format!("not valid JSON: {e}")))?;
    match value {
        Value::Object(obj) => Ok(Some(obj)),
        _ => Err(Error::data(path, line, "expected a JSON object")),
    }
}

/// A file column resolved to its index, with the name used in messages.
struct Column {
    index: usize,
    name: String,
    what: String,
}

/// Resolves a spec column to an index: by header name, or as a 0-based index without one.
fn resolve_column(
    path: &Path,
    header: Option<&[String]>,
    column: &str,
    what: String,
) -> Result<Column> {
    let index =
        match header {
            Some(names) => {
                names
                    .iter()
                    .position(|n| n == column.trim())
                    .ok_or_else(|| {
                        Error::data(
                            path,
                            Some(1),
                            format!(
                        "missing column `{column}` ({what}); header columns: {} (if the first \
                         line is data, set `header = false` and use 0-based column indices)",
                        names.iter().map(|n| shorten(n)).collect::<Vec<_>>().join(", ")
                    ),
                        )
                    })?
            }
            None => column.trim().parse::<usize>().map_err(|_| {
                Error::data(
                    path,
                    None,
                    format!(
                        "column `{column}` ({what}) must be a 0-based index since the file has no \
                     header (`header = false`)"
                    ),
                )
            })?,
        };
    Ok(Column {
        index,
        name: column.to_string(),
        what,
    })
}

/// `name` cut to 40 characters, for listing header cells that may be data.
fn shorten(name: &str) -> String {
    match name.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &name[..i]),
        None => name.to_string(),
    }
}

/// Converts a csv error into ours, keeping its line when it has one.
fn csv_error(path: &Path, err: csv::Error) -> Error {
    let line = err.position().map(|p| p.line() as usize);
    match err.into_kind() {
        csv::ErrorKind::Io(e) => match e.get_ref().and_then(|x| x.downcast_ref::<LineTooLong>()) {
            Some(&LineTooLong(line, cap)) => line_too_long(path, line, cap),
            None => Error::io(path, e),
        },
        csv::ErrorKind::Utf8 { err, .. } => Error::data(
            path,
            line,
            format!("not valid UTF-8 (field {})", err.field() + 1),
        ),
        other => Error::data(path, line, format!("{other:?}")),
    }
}

fn read_delimited(
    path: &Path,
    file: impl Read,
    format: DataFormat,
    spec: &DataSpec,
    resolver: &LabelResolver,
) -> Result<Vec<Example>> {
    let tsv = format == DataFormat::Tsv;
    let file = LineCapped {
        inner: file,
        cap: spec.max_line_bytes.unwrap_or(DEFAULT_MAX_LINE_BYTES),
        line: 0,
        since_newline: 0,
        quotes: 0,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(if tsv { b'\t' } else { b',' })
        .quoting(!tsv)
        .from_reader(file);
    let mut record = csv::StringRecord::new();
    let has_header = spec.header.unwrap_or(true);
    let header: Option<Vec<String>> = if has_header {
        if !reader
            .read_record(&mut record)
            .map_err(|e| csv_error(path, e))?
        {
            return Err(Error::data(
                path,
                None,
                "empty file (expected a header line)",
            ));
        }
        Some(
            record
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    if i == 0 {
                        n.trim_start_matches('\u{feff}')
                    } else {
                        n
                    }
                })
                .map(|n| n.trim().to_string())
                .collect(),
        )
    } else {
        None
    };
    if let Some(names) = &header {
        for (i, name) in names.iter().enumerate() {
            if let Some(j) = names[..i].iter().position(|n| n == name && !n.is_empty()) {
                return Err(Error::data(
                    path,
                    Some(1),
                    format!(
                        "the header names column `{}` twice (columns {} and {}): a column \
                         must be named once",
                        shorten(name),
                        j + 1,
                        i + 1
                    ),
                ));
            }
        }
    }
    let mut columns = Vec::with_capacity(spec.columns.len());
    for (field, column) in &spec.columns {
        let what = format!("for field `{field}`");
        columns.push((
            field.clone(),
            resolve_column(path, header.as_deref(), column, what)?,
        ));
    }
    let label_column = match &spec.label_column {
        Some(c) => Some(resolve_column(
            path,
            header.as_deref(),
            c,
            "the label column".to_string(),
        )?),
        None => None,
    };

    let mut examples = Vec::new();
    let mut last_line = None;
    while reader
        .read_record(&mut record)
        .map_err(|e| csv_error(path, e))?
    {
        let line = record.position().map(|p| p.line() as usize);
        let cell = |col: &Column| -> Result<&str> {
            record
                .get(col.index)
                .map(|s| s.trim_start_matches('\u{feff}').trim())
                .ok_or_else(|| {
                    Error::data(
                        path,
                        line,
                        format!(
                            "row has {} field(s) but column `{}` ({}) is field {} of {}",
                            record.len(),
                            col.name,
                            col.what,
                            col.index + 1,
                            if tsv {
                                "tab-separated"
                            } else {
                                "comma-separated"
                            }
                        ),
                    )
                })
        };
        let mut fields = BTreeMap::new();
        for (field, col) in &columns {
            fields.insert(field.clone(), cell(col)?.to_string());
        }
        let label = match &label_column {
            Some(col) => {
                let raw = cell(col)?;
                Some(
                    resolver
                        .resolve(raw)
                        .map_err(|m| Error::data(path, line, m))?,
                )
            }
            None => None,
        };
        examples.push(Example { fields, label });
        last_line = line;
        if spec.limit == Some(examples.len()) {
            return Ok(examples);
        }
    }
    // read to the end: quotes come in pairs (`""` inside a quoted cell), so an odd count is
    // a quote never closed, which swallowed the lines after it into one cell
    if !tsv && reader.get_ref().quotes % 2 == 1 {
        return Err(Error::data(
            path,
            last_line,
            "a `\"` quote is never closed: the rest of the file was read as one cell (close \
             it, or write a literal quote as `\"\"` inside a quoted cell)",
        ));
    }
    Ok(examples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/data")
            .join(name)
    }

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Writes `content` to a file named `name` in a fresh temp dir.
    fn temp_file(name: &str, content: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    fn sst2_spec(path: PathBuf) -> DataSpec {
        let mut spec = DataSpec::new(path)
            .column("text_a", "sentence")
            .label("label");
        spec.label_map.insert("0".into(), "negative".into());
        spec.label_map.insert("1".into(), "positive".into());
        spec
    }

    fn err_text(spec: &DataSpec, labels: &[String]) -> String {
        read_examples(spec, labels).unwrap_err().to_string()
    }

    #[test]
    fn a_line_past_the_cap_is_named_before_it_is_held() {
        let long = "x".repeat(300);
        for (name, content) in [
            (
                "a.jsonl",
                format!("\n{{\"text\": \"ok\"}}\n{{\"text\": \"{long}\"}}\n"),
            ),
            ("a.csv", format!("text\nok\n{long}\n")),
            ("a.tsv", format!("text\nok\n{long}\n")),
        ] {
            let (_d, path) = temp_file(name, &content);
            let mut spec = DataSpec::new(path).column("text_a", "text");
            spec.max_line_bytes = Some(100);
            let err = err_text(&spec, &[]);
            assert!(
                err.contains(":3") && err.contains("longer than 100 bytes"),
                "{name}: {err}"
            );
            spec.max_line_bytes = None;
            assert_eq!(read_examples(&spec, &[]).unwrap().len(), 2, "{name}");
        }
    }

    #[test]
    fn an_unterminated_quote_is_an_error_not_one_huge_cell() {
        let (_d, path) = temp_file(
            "q.csv",
            "text,label\n\"fine, quoted\",0\n\"says \"\"hi\"\"\",1\n\"never closed,1\nlost,0\nlost,1\n",
        );
        let spec = DataSpec::new(path).column("text_a", "text");
        let err = err_text(&spec, &[]);
        assert!(err.contains("never closed") && err.contains(":4"), "{err}");
        // the same rows with the quote closed read as four examples
        let (_d, path) = temp_file(
            "q.csv",
            "text,label\n\"fine, quoted\",0\n\"says \"\"hi\"\"\",1\n\"closed\",1\nlost,0\n",
        );
        let examples = read_examples(&DataSpec::new(path).column("text_a", "text"), &[]).unwrap();
        assert_eq!(examples.len(), 4);
        assert_eq!(examples[1].fields["text_a"], "says \"hi\"");
    }

    #[test]
    fn a_column_named_twice_in_the_header_is_an_error() {
        let (_d, path) = temp_file("d.csv", "text,label,text\na,0,b\n");
        let err = err_text(&DataSpec::new(path).column("text_a", "text"), &[]);
        assert!(
            err.contains("`text` twice") && err.contains("columns 1 and 3"),
            "{err}"
        );
    }

    #[test]
    fn reads_sst2_tsv() {
        let spec = sst2_spec(fixture("sst2_dev_head.tsv"));
        let examples = read_examples(&spec, &labels(&["negative", "positive"])).unwrap();
        assert_eq!(examples.len(), 8);
        assert_eq!(
            examples[0].fields["text_a"],
            "a warm and quietly funny story about two old friends ."
        );
        assert_eq!(examples[0].label, Some(1));
        assert_eq!(
            examples[1].fields["text_a"],
            "dull , shapeless and far too long"
        );
        assert_eq!(examples[1].label, Some(0));
        // PTB-style quotes are plain text
        assert!(examples[7].fields["text_a"].starts_with("the quiet charm of `` harbour lights ''"));
    }

    #[test]
    fn reads_superglue_jsonl() {
        let spec = DataSpec::new(fixture("rte_train_head.jsonl"))
            .column("text_a", "premise")
            .column("text_b", "hypothesis")
            .label("label");
        let examples = read_examples(&spec, &labels(&["entailment", "not_entailment"])).unwrap();
        assert_eq!(examples.len(), 3);
        assert!(examples
            .iter()
            .all(|e| e.label.is_some() && e.fields.len() == 2));
        assert_eq!(
            examples[0].fields["text_b"],
            "The bridge was built last year."
        );
        assert_eq!(examples[0].label, Some(1));
    }

    #[test]
    fn jsonl_scalars_and_limit() {
        let (_d, path) = temp_file(
            "x.jsonl",
            "\u{feff}{\"q\": \" is it? \", \"n\": 3, \"label\": true}\n\n\
             {\"q\": \"no\", \"n\": 0.5, \"label\": false}\r\n{\"q\": 1}\n",
        );
        let mut spec = DataSpec::new(&path)
            .column("text_a", "q")
            .column("num", "n")
            .label("label");
        spec.label_map.insert("true".into(), "yes".into());
        spec.label_map.insert("false".into(), "no".into());
        spec.limit = Some(2);
        let examples = read_examples(&spec, &labels(&["no", "yes"])).unwrap();
        assert_eq!(examples.len(), 2);
        assert_eq!(examples[0].fields["text_a"], "is it?");
        assert_eq!(examples[0].fields["num"], "3");
        assert_eq!(examples[0].label, Some(1));
        assert_eq!(examples[1].fields["num"], "0.5");
        assert_eq!(examples[1].label, Some(0));
        // without the limit, line 4 lacks the `n` column
        spec.limit = None;
        let err = err_text(&spec, &labels(&["no", "yes"]));
        assert!(
            err.ends_with(":4: missing column `n` (for field `num`); available: q"),
            "{err}"
        );
    }

    #[test]
    fn jsonl_errors() {
        let l = labels(&["a", "b"]);
        let (_d, path) = temp_file("x.jsonl", "{\"t\": \"ok\"}\n{\"t\": {\"x\": 1}}\n");
        let err = err_text(&DataSpec::new(&path).column("text_a", "t"), &l);
        assert!(err.contains("x.jsonl:2: `t` is a JSON object"), "{err}");

        let (_d, path) = temp_file("x.jsonl", "{\"t\": \"ok\"}\n{\"t\": \"ok\"\n");
        let err = err_text(&DataSpec::new(&path).column("text_a", "t"), &l);
        assert!(err.contains("x.jsonl:2: not valid JSON"), "{err}");

        let (_d, path) = temp_file("x.jsonl", "[1, 2]\n");
        let err = err_text(&DataSpec::new(&path).column("text_a", "t"), &l);
        assert!(err.contains("x.jsonl:1: expected a JSON object"), "{err}");

        let (_d, path) = temp_file("x.jsonl", "{\"t\": \"ok\", \"y\": \"c\"}\n");
        let err = err_text(&DataSpec::new(&path).column("text_a", "t").label("y"), &l);
        assert!(
            err.contains("x.jsonl:1: unknown label `c` (known labels: a, b;"),
            "{err}"
        );

        let (_d, path) = temp_file("x.jsonl", "{\"t\": null}\n");
        let err = err_text(&DataSpec::new(&path).column("text_a", "t"), &l);
        assert!(err.contains("x.jsonl:1: `t` is null"), "{err}");
    }

    #[test]
    fn empty_and_missing_files() {
        let l = labels(&["a"]);
        let (_d, path) = temp_file("x.jsonl", "\n\n");
        let err = err_text(&DataSpec::new(&path).column("text_a", "t"), &l);
        assert!(err.contains("x.jsonl: no examples"), "{err}");

        let (_d, path) = temp_file("x.tsv", "");
        let err = err_text(&DataSpec::new(&path).column("text_a", "t"), &l);
        assert!(err.contains("x.tsv: empty file"), "{err}");

        let (_d, path) = temp_file("x.csv", "t,label\n");
        let err = err_text(&DataSpec::new(&path).column("text_a", "t"), &l);
        assert!(err.contains("x.csv: no examples"), "{err}");

        let spec = DataSpec::new("/nonexistent/dir/train.tsv").column("text_a", "t");
        let err = read_examples(&spec, &l).unwrap_err();
        assert!(matches!(err, Error::MissingFile { .. }), "{err}");
        assert!(
            err.to_string().contains("/nonexistent/dir/train.tsv"),
            "{err}"
        );
    }

    #[test]
    fn csv_with_quotes_and_label_names() {
        let (_d, path) = temp_file(
            "x.csv",
            "id,text,label\n1,\"hello, world\",pos\n2,\"say \"\"hi\"\"\",neg\n",
        );
        let spec = DataSpec::new(&path).column("text_a", "text").label("label");
        let examples = read_examples(&spec, &labels(&["neg", "pos"])).unwrap();
        assert_eq!(examples[0].fields["text_a"], "hello, world");
        assert_eq!(examples[0].label, Some(1));
        assert_eq!(examples[1].fields["text_a"], "say \"hi\"");
        assert_eq!(examples[1].label, Some(0));
    }

    #[test]
    fn tsv_without_header_and_unlabelled() {
        let (_d, path) = temp_file("x.tsv", "a \"quoted\ttail\t0\nb\tc\t1\n");
        let mut spec = DataSpec::new(&path)
            .column("text_a", "0")
            .column("text_b", "1");
        spec.header = Some(false);
        let examples = read_examples(&spec, &[]).unwrap();
        assert_eq!(examples.len(), 2);
        assert_eq!(examples[0].fields["text_a"], "a \"quoted");
        assert_eq!(examples[0].fields["text_b"], "tail");
        assert_eq!(examples[1].label, None);

        spec.columns.insert("text_a".into(), "sentence".into());
        let err = err_text(&spec, &[]);
        assert!(err.contains("must be a 0-based index"), "{err}");
    }

    #[test]
    fn delimited_errors() {
        let l = labels(&["negative", "positive"]);
        let (_d, path) = temp_file("x.tsv", "sentence\tlabel\ngood\t1\nbad\t7\n");
        let err = err_text(&sst2_spec(path), &l);
        assert!(
            err.contains("x.tsv:3: unknown label `7`: not a key of label_map {\"0\" -> \"negative\", \"1\" -> \"positive\"} (known labels: negative, positive)"),
            "{err}"
        );

        let (_d, path) = temp_file("x.tsv", "sentence\tlabel\ngood\t1\nbad\n");
        let err = err_text(&sst2_spec(path), &l);
        assert!(
            err.contains(
                "x.tsv:3: row has 1 field(s) but column `label` (the label column) is field 2"
            ),
            "{err}"
        );

        let (_d, path) = temp_file("x.tsv", "text\tlabel\ngood\t1\n");
        let err = err_text(&sst2_spec(path), &l);
        assert!(
            err.contains(
                "x.tsv:1: missing column `sentence` (for field `text_a`); header columns: text, \
                 label (if the first line is data, set `header = false`"
            ),
            "{err}"
        );

        let long = "a headerless first line that goes on and on for quite a while";
        let (_d, path) = temp_file("x.tsv", &format!("{long}\t1\n"));
        let err = err_text(&sst2_spec(path), &l);
        assert!(
            err.contains("header columns: a headerless first line that goes on and..., 1 ("),
            "{err}"
        );

        let (_d, path) = temp_file("x.tsv", "sentence\tlabel\ngood\t1\n");
        let mut spec = sst2_spec(path);
        spec.label_map.insert("2".into(), "neutral".into());
        let err = err_text(&spec, &l);
        assert!(
            err.contains("`neutral`, which is not a known label"),
            "{err}"
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_with_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tsv");
        std::fs::write(&path, b"t\tlabel\nok\t1\nbad \xff\t1\n").unwrap();
        let spec = DataSpec::new(&path).column("text_a", "t");
        let err = read_examples(&spec, &[]).unwrap_err().to_string();
        assert!(err.contains("x.tsv:3: not valid UTF-8"), "{err}");

        let path = dir.path().join("x.jsonl");
        std::fs::write(&path, b"{\"t\": \"ok\"}\n{\"t\": \"\xff\"}\n").unwrap();
        let spec = DataSpec::new(&path).column("text_a", "t");
        let err = read_examples(&spec, &[]).unwrap_err().to_string();
        assert!(err.contains("x.jsonl:2: not valid UTF-8"), "{err}");
    }

    #[test]
    fn spec_level_errors() {
        let (_d, path) = temp_file("x.tsv", "t\tlabel\nok\t1\n");
        let err = err_text(&DataSpec::new(&path), &[]);
        assert!(err.contains("no `columns` given"), "{err}");
        let mut spec = DataSpec::new(&path).column("text_a", "t");
        spec.limit = Some(0);
        assert!(err_text(&spec, &[]).contains("limit = 0"));
        let spec = DataSpec::new(&path).column("text_a", "t").label("label");
        assert!(err_text(&spec, &[]).contains("the task has no labels"));
    }
}
