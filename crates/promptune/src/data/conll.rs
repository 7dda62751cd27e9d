//! [`read_conll`]: CoNLL-2003 style NER files -> [`TaggedSentence`]s.
//!
//! The layout is one token per line with whitespace-separated columns (CoNLL-2003:
//! `token POS chunk NER`), a blank line between sentences, and `-DOCSTART-` lines between
//! documents:
//!
//! ```text
//! -DOCSTART- -X- -X- O
//!
//! EU NNP B-NP B-ORG
//! rejects VBZ B-VP O
//! ```
//!
//! Tags are IOB2 (`O`, `B-TYPE`, `I-TYPE`). IOB1 input, where `I-TYPE` opens an entity and
//! `B-TYPE` only separates two adjacent entities of one type (the original CoNLL-2003
//! release), is accepted and converted to IOB2 while reading: every `I-TYPE` that does not
//! continue an entity of type `TYPE` (sentence start, after `O` or after another type) becomes
//! `B-TYPE`. On IOB2 input this changes nothing, and it gives the entities conlleval / seqeval
//! read from the same tags, so scores do not change either.
//!
//! Every failure is an [`Error::Data`] (or [`Error::MissingFile`] / [`Error::Io`]) naming the
//! file and, where it applies, the 1-based line; nothing here panics on bad input.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;

use super::reader::for_each_line;
use crate::error::{Error, Result};

/// The tag of tokens outside every entity.
pub const OUTSIDE: &str = "O";

/// One sentence of a tagged corpus: its tokens and their IOB2 tags (same length).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaggedSentence {
    /// The tokens, in order.
    pub tokens: Vec<String>,
    /// One IOB2 tag per token (`O`, `B-TYPE` or `I-TYPE`).
    pub tags: Vec<String>,
}

/// Reads a CoNLL-format file.
///
/// * Column 0 is the token; `tag_column` (0-based) holds the tag, `None` meaning the last
///   column (the NER column of CoNLL-2003). Columns are separated by spaces or tabs.
/// * Every token line must have as many columns as the file's first token line.
/// * Blank lines end sentences; `-DOCSTART-` lines are skipped (and end a sentence too).
/// * Tags must be `O`, `B-TYPE` or `I-TYPE`; IOB1 is converted to IOB2 (see the module docs).
/// * With `known_tags`, every (converted) tag must be one of them, e.g. the [`tag_set`] of the
///   training file when reading the dev file.
///
/// Errors: missing file, invalid UTF-8, a line with a different number of columns than the
/// first token line, fewer than two columns, a `tag_column` out of range or pointing at the
/// token column, an invalid or unknown tag, or a file without any sentence.
pub fn read_conll(
    path: impl AsRef<Path>,
    tag_column: Option<usize>,
    known_tags: Option<&[String]>,
) -> Result<Vec<TaggedSentence>> {
    let path = path.as_ref();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingFile {
                path: path.to_path_buf(),
                hint: "CoNLL data file not found".into(),
            })
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut parser = Parser {
        path,
        tag_column,
        known_tags,
        layout: None,
        sentences: Vec::new(),
        current: TaggedSentence::default(),
        previous_type: None,
    };
    for_each_line(path, file, |line_no, text| {
        parser.line(line_no, text)?;
        Ok(true)
    })?;
    parser.end_sentence();
    if parser.sentences.is_empty() {
        return Err(Error::data(
            path,
            None,
            "no sentences in the file (it is empty, or holds only blank and -DOCSTART- lines)",
        ));
    }
    Ok(parser.sentences)
}

/// The tags of `sentences`: `O` first (always present, even when no token has it), then the
/// other tags in sorted order (e.g. `O, B-LOC, B-MISC, ..., I-PER`).
pub fn tag_set(sentences: &[TaggedSentence]) -> Vec<String> {
    let others: BTreeSet<&str> = sentences
        .iter()
        .flat_map(|s| s.tags.iter().map(String::as_str))
        .filter(|&t| t != OUTSIDE)
        .collect();
    std::iter::once(OUTSIDE)
        .chain(others)
        .map(str::to_string)
        .collect()
}

/// The column layout fixed by the first token line.
struct Layout {
    columns: usize,
    tag_index: usize,
    first_line: usize,
}

/// Line-by-line state of [`read_conll`].
struct Parser<'a> {
    path: &'a Path,
    tag_column: Option<usize>,
    known_tags: Option<&'a [String]>,
    layout: Option<Layout>,
    sentences: Vec<TaggedSentence>,
    current: TaggedSentence,
    /// Entity type of the previous token of the current sentence (`None` after `O`).
    previous_type: Option<String>,
}

impl Parser<'_> {
    fn error(&self, line: usize, message: impl Into<String>) -> Error {
        Error::data(self.path, Some(line), message)
    }

    fn end_sentence(&mut self) {
        if !self.current.tokens.is_empty() {
            self.sentences.push(std::mem::take(&mut self.current));
        }
        self.previous_type = None;
    }

    fn layout(&mut self, line: usize, columns: usize) -> Result<&Layout> {
        if self.layout.is_none() {
            if columns < 2 {
                return Err(self.error(
                    line,
                    format!(
                        "a token line needs at least 2 columns (token and tag), found {columns}"
                    ),
                ));
            }
            let tag_index = self.tag_column.unwrap_or(columns - 1);
            if tag_index == 0 || tag_index >= columns {
                return Err(self.error(
                    line,
                    format!(
                        "tag column {tag_index} (0-based) does not exist or is the token column: \
                         the first token line has {columns} columns, so it must be 1 to {}",
                        columns - 1
                    ),
                ));
            }
            self.layout = Some(Layout {
                columns,
                tag_index,
                first_line: line,
            });
        }
        let layout = self.layout.as_ref().expect("set above");
        if columns != layout.columns {
            return Err(self.error(
                line,
                format!(
                    "malformed line: {columns} column(s), but the first token line (line {}) \
                     has {}",
                    layout.first_line, layout.columns
                ),
            ));
        }
        Ok(layout)
    }

    fn line(&mut self, line: usize, text: &str) -> Result<()> {
        let columns: Vec<&str> = text.split_whitespace().collect();
        let Some(&token) = columns.first() else {
            self.end_sentence();
            return Ok(());
        };
        if token == "-DOCSTART-" {
            self.end_sentence();
            return Ok(());
        }
        let tag_index = self.layout(line, columns.len())?.tag_index;
        let written = columns[tag_index];
        let Some((prefix, kind)) = split_iob(written) else {
            return Err(self.error(
                line,
                format!(
                    "invalid tag `{written}`: expected `O`, `B-TYPE` or `I-TYPE` (IOB2, or IOB1 \
                     which is converted)"
                ),
            ));
        };
        let tag = match (prefix, kind) {
            ('I', Some(kind)) if self.previous_type.as_deref() != Some(kind) => {
                format!("B-{kind}")
            }
            _ => written.to_string(),
        };
        if let Some(known) = self.known_tags {
            if !known.contains(&tag) {
                let converted = if tag != written {
                    format!(" (written `{written}`, converted from IOB1)")
                } else {
                    String::new()
                };
                return Err(self.error(
                    line,
                    format!(
                        "unknown tag `{tag}`{converted} (known tags: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        self.previous_type = kind.map(str::to_string);
        self.current.tokens.push(token.to_string());
        self.current.tags.push(tag);
        Ok(())
    }
}

/// `O` -> `('O', None)`, `B-X` / `I-X` -> `('B' | 'I', Some("X"))`; `None` for anything else
/// (including an empty type).
fn split_iob(tag: &str) -> Option<(char, Option<&str>)> {
    if tag == OUTSIDE {
        return Some(('O', None));
    }
    let (prefix, kind) = tag.split_once('-')?;
    let prefix = match prefix {
        "B" => 'B',
        "I" => 'I',
        _ => return None,
    };
    (!kind.is_empty()).then_some((prefix, Some(kind)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str, known: Option<&[String]>) -> Result<Vec<TaggedSentence>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.txt");
        std::fs::write(&path, text).unwrap();
        read_conll(&path, None, known)
    }

    #[test]
    fn split_iob_shapes() {
        assert_eq!(split_iob("O"), Some(('O', None)));
        assert_eq!(split_iob("B-PER"), Some(('B', Some("PER"))));
        assert_eq!(split_iob("I-GPE-LOC"), Some(('I', Some("GPE-LOC"))));
        for bad in ["B-", "I", "PER", "E-PER", "S-X", "o", "b-PER", ""] {
            assert_eq!(split_iob(bad), None, "{bad}");
        }
    }

    #[test]
    fn crlf_tabs_bom_and_docstart() {
        let text = "\u{feff}-DOCSTART- -X- -X- O\r\n\r\nA\tx\ty\tB-PER\r\nb x y I-PER\r\n\r\n\r\n\
                    -DOCSTART- -X- -X- O\r\nc x y O";
        let s = read_text(text, None).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].tokens, ["A", "b"]);
        assert_eq!(s[0].tags, ["B-PER", "I-PER"]);
        assert_eq!(s[1].tags, ["O"]);
    }

    #[test]
    fn iob1_is_converted() {
        let text = "a I-PER\nb I-PER\nc B-PER\nd I-LOC\ne O\nf I-LOC\n\ng I-ORG\n";
        let s = read_text(text, None).unwrap();
        assert_eq!(
            s[0].tags,
            ["B-PER", "I-PER", "B-PER", "B-LOC", "O", "B-LOC"]
        );
        assert_eq!(s[1].tags, ["B-ORG"]);
    }

    #[test]
    fn tag_column_choice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.txt");
        std::fs::write(&path, "a NN B-NP O\nb NN I-NP B-LOC\n").unwrap();
        let s = read_conll(&path, Some(2), None).unwrap();
        assert_eq!(s[0].tags, ["B-NP", "I-NP"]);
        for bad in [0, 4] {
            let err = read_conll(&path, Some(bad), None).unwrap_err().to_string();
            assert!(err.contains("x.txt:1: tag column"), "{err}");
        }
        std::fs::write(&path, "lonely\n").unwrap();
        let err = read_conll(&path, None, None).unwrap_err().to_string();
        assert!(err.contains("at least 2 columns"), "{err}");
    }

    #[test]
    fn tag_set_puts_o_first() {
        let s = vec![TaggedSentence {
            tokens: vec!["a".into(), "b".into(), "c".into()],
            tags: vec!["I-PER".into(), "B-LOC".into(), "B-PER".into()],
        }];
        assert_eq!(tag_set(&s), ["O", "B-LOC", "B-PER", "I-PER"]);
        assert_eq!(tag_set(&[]), ["O"]);
    }
}
