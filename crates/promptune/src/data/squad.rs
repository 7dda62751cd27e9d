//! [`read_squad`]: SQuAD v1.1 JSON files -> [`QaExample`]s, and [`split_by_article`] to cut
//! one file into train and eval parts without sharing a context between them.
//!
//! The file layout is `{"version": "1.1", "data": [{"title", "paragraphs": [{"context",
//! "qas": [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}`. `answer_start`
//! counts Unicode characters (code points, as Python's `str` indexing does), not bytes:
//! [`Answer::byte_range`] converts it for slicing a Rust `&str`.

use std::collections::{BTreeSet, HashSet};
use std::ops::Range;
use std::path::Path;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One gold answer: its text and where it starts in the context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The answer text, exactly as it occurs in the context.
    pub text: String,
    /// Offset of the answer's first character in the context, in Unicode characters.
    pub start_char: usize,
}

impl Answer {
    /// Offset just past the answer's last character, in Unicode characters.
    pub fn end_char(&self) -> usize {
        self.start_char.saturating_add(self.text.chars().count())
    }

    /// The answer's byte range in `context` (so `&context[range] == text`), or `None` when
    /// the answer does not occur at its offset there.
    pub fn byte_range(&self, context: &str) -> Option<Range<usize>> {
        let start = char_to_byte(context, self.start_char)?;
        let end = start + self.text.len();
        (context.get(start..end) == Some(self.text.as_str())).then_some(start..end)
    }
}

/// One question with its context and gold answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QaExample {
    /// The question id (unique in a file).
    pub id: String,
    /// Title of the article the context comes from.
    pub title: String,
    /// The paragraph the answers are taken from, as in the file.
    pub context: String,
    /// The question, as in the file.
    pub question: String,
    /// The gold answers (one in SQuAD train files, usually three in dev files; at least one).
    pub answers: Vec<Answer>,
}

/// Byte offset of character `index` of `text` (`text.len()` for `index == chars`), or `None`
/// past the end.
fn char_to_byte(text: &str, index: usize) -> Option<usize> {
    text.char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(text.len()))
        .nth(index)
}

#[derive(Deserialize)]
struct RawFile {
    data: Vec<RawArticle>,
}

#[derive(Deserialize)]
struct RawArticle {
    title: String,
    paragraphs: Vec<RawParagraph>,
}

#[derive(Deserialize)]
struct RawParagraph {
    context: String,
    qas: Vec<RawQa>,
}

#[derive(Deserialize)]
struct RawQa {
    id: String,
    question: String,
    answers: Vec<RawAnswer>,
    /// SQuAD 2.0 only.
    #[serde(default)]
    is_impossible: bool,
}

#[derive(Deserialize)]
struct RawAnswer {
    text: String,
    answer_start: usize,
}

/// The largest SQuAD file read (a stream without end, `/dev/zero` say, stops here).
pub const MAX_SQUAD_BYTES: u64 = 1 << 28;

/// Reads a SQuAD v1.1 file (e.g. `dev-v1.1.json`), in file order.
///
/// Every answer is checked: its `text` must occur in the context at `answer_start`, counted in
/// Unicode characters. Strings are kept as they are in the file (no trimming), so the offsets
/// stay valid.
///
/// Errors: missing file, a file that is not JSON or lacks a required key (with the line of the
/// problem), a question without answers or marked `is_impossible` (SQuAD 2.0 is not
/// supported), an answer that does not occur at its offset (naming the question id, what is
/// there instead, and where the text does occur), a repeated question id, or no questions.
pub fn read_squad(path: impl AsRef<Path>) -> Result<Vec<QaExample>> {
    let path = path.as_ref();
    let read = || -> std::io::Result<String> {
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(path)?
            .take(MAX_SQUAD_BYTES + 1)
            .read_to_string(&mut text)?;
        Ok(text)
    };
    let text = match read() {
        Ok(t) if t.len() as u64 > MAX_SQUAD_BYTES => {
            return Err(Error::data(
                path,
                None,
                format!(
                    "larger than {} MiB: not a SQuAD file (SQuAD v1.1 train is 30 MiB)",
                    MAX_SQUAD_BYTES >> 20
                ),
            ))
        }
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingFile {
                path: path.to_path_buf(),
                hint: "SQuAD data file not found".into(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(Error::data(path, None, format!("not valid UTF-8 ({e})")))
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let text = text.trim_start_matches('\u{feff}');
    if text.trim().is_empty() {
        return Err(Error::data(path, None, "empty file"));
    }
    let raw: RawFile = serde_json::from_str(text).map_err(|e| json_error(path, &e))?;

    let mut examples = Vec::new();
    let mut ids = HashSet::new();
    for article in raw.data {
        for paragraph in article.paragraphs {
            for qa in paragraph.qas {
                let where_ = format!("question {} (article `{}`)", qa.id, article.title);
                if qa.is_impossible || qa.answers.is_empty() {
                    return Err(Error::data(
                        path,
                        None,
                        format!(
                            "{where_} has no answer; SQuAD 2.0 unanswerable questions are not \
                             supported"
                        ),
                    ));
                }
                let answers = qa
                    .answers
                    .into_iter()
                    .enumerate()
                    .map(|(k, a)| check_answer(path, &where_, &paragraph.context, k, a))
                    .collect::<Result<Vec<_>>>()?;
                if !ids.insert(qa.id.clone()) {
                    return Err(Error::data(
                        path,
                        None,
                        format!("{where_}: the id occurs more than once in the file"),
                    ));
                }
                examples.push(QaExample {
                    id: qa.id,
                    title: article.title.clone(),
                    context: paragraph.context.clone(),
                    question: qa.question,
                    answers,
                });
            }
        }
    }
    if examples.is_empty() {
        return Err(Error::data(path, None, "no questions in the file"));
    }
    Ok(examples)
}

/// A serde_json error as a data error at its line (its column kept in the message).
fn json_error(path: &Path, e: &serde_json::Error) -> Error {
    let message = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    let message = message.strip_suffix(&position).unwrap_or(&message);
    let line = (e.line() > 0).then_some(e.line());
    Error::data(
        path,
        line,
        format!("not a SQuAD v1.1 file: {message} (column {})", e.column()),
    )
}

/// Checks that answer `k` occurs at its offset in `context`.
fn check_answer(
    path: &Path,
    where_: &str,
    context: &str,
    k: usize,
    answer: RawAnswer,
) -> Result<Answer> {
    let answer = Answer {
        text: answer.text,
        start_char: answer.answer_start,
    };
    if answer.text.is_empty() {
        return Err(Error::data(
            path,
            None,
            format!("{where_}: answer {} is empty", k + 1),
        ));
    }
    if answer.byte_range(context).is_some() {
        return Ok(answer);
    }
    let found: String = context
        .chars()
        .skip(answer.start_char)
        .take(answer.text.chars().count())
        .collect();
    let elsewhere = match context.find(&answer.text) {
        Some(byte) => format!(
            "; the text occurs at character {} (byte {byte})",
            context[..byte].chars().count()
        ),
        None => "; the text does not occur anywhere in the context".to_string(),
    };
    Err(Error::data(
        path,
        None,
        format!(
            "{where_}: answer {} `{}` does not occur at answer_start {} (counted in Unicode \
             characters) of its context, which has `{found}` there{elsewhere}",
            k + 1,
            answer.text,
            answer.start_char
        ),
    ))
}

/// Splits `examples` into `(train, eval)` by article title, so that no article, and so no
/// context, is in both parts.
///
/// The distinct titles are shuffled with a [`StdRng`] seeded with `seed` and the first
/// `round(eval_fraction × number of titles)` of them (at least 1, at most all but one) go to
/// eval. Both parts keep the order of `examples`. The result depends only on (`examples`,
/// `eval_fraction`, `seed`) for a given `rand` version.
///
/// Errors when `eval_fraction` is not strictly between 0 and 1, or when there are fewer than
/// two distinct titles.
pub fn split_by_article(
    examples: &[QaExample],
    eval_fraction: f64,
    seed: u64,
) -> Result<(Vec<QaExample>, Vec<QaExample>)> {
    if !(eval_fraction > 0.0 && eval_fraction < 1.0) {
        return Err(Error::InvalidInput(format!(
            "split_by_article: eval_fraction must be between 0 and 1 (exclusive), got \
             {eval_fraction}"
        )));
    }
    let mut seen = HashSet::new();
    let mut titles: Vec<&str> = examples
        .iter()
        .map(|e| e.title.as_str())
        .filter(|t| seen.insert(*t))
        .collect();
    if titles.len() < 2 {
        return Err(Error::InvalidInput(format!(
            "split_by_article needs at least 2 distinct article titles, found {}",
            titles.len()
        )));
    }
    let wanted = (eval_fraction * titles.len() as f64).round() as usize;
    let eval_count = wanted.clamp(1, titles.len() - 1);
    titles.shuffle(&mut StdRng::seed_from_u64(seed));
    let eval_titles: BTreeSet<&str> = titles[..eval_count].iter().copied().collect();
    let (eval, train): (Vec<QaExample>, Vec<QaExample>) = examples
        .iter()
        .cloned()
        .partition(|e| eval_titles.contains(e.title.as_str()));
    Ok((train, eval))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_range_counts_characters() {
        let context = "Beyoncé and Bruno Mars";
        let answer = Answer {
            text: "Bruno".into(),
            start_char: 12,
        };
        assert_eq!(answer.byte_range(context), Some(13..18));
        assert_eq!(answer.end_char(), 17);
        // the byte offset is not a character offset here
        let wrong = Answer {
            text: "Bruno".into(),
            start_char: 13,
        };
        assert_eq!(wrong.byte_range(context), None);
        let past_end = Answer {
            text: "x".into(),
            start_char: 99,
        };
        assert_eq!(past_end.byte_range(context), None);
        assert_eq!(char_to_byte(context, 22), Some(context.len()));
        assert_eq!(char_to_byte(context, 23), None);
    }

    fn example(id: &str, title: &str) -> QaExample {
        QaExample {
            id: id.into(),
            title: title.into(),
            context: format!("context of {title}"),
            question: "q".into(),
            answers: vec![Answer {
                text: "context".into(),
                start_char: 0,
            }],
        }
    }

    #[test]
    fn split_keeps_articles_whole_and_is_seeded() {
        let examples: Vec<QaExample> = (0..40)
            .map(|i| example(&i.to_string(), &format!("t{}", i % 10)))
            .collect();
        let (train, eval) = split_by_article(&examples, 0.3, 7).unwrap();
        assert_eq!(train.len() + eval.len(), 40);
        let train_titles: BTreeSet<&str> = train.iter().map(|e| e.title.as_str()).collect();
        let eval_titles: BTreeSet<&str> = eval.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(eval_titles.len(), 3);
        assert!(train_titles.is_disjoint(&eval_titles));
        assert_eq!(split_by_article(&examples, 0.3, 7).unwrap(), (train, eval));
        let (_, other) = split_by_article(&examples, 0.3, 8).unwrap();
        let other_titles: BTreeSet<&str> = other.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(other_titles.len(), 3);
        // at least one article each way
        let (train, eval) = split_by_article(&examples, 0.001, 1).unwrap();
        assert_eq!((train.len(), eval.len()), (36, 4));
        let (train, eval) = split_by_article(&examples, 0.999, 1).unwrap();
        assert_eq!((train.len(), eval.len()), (4, 36));
    }

    #[test]
    fn split_errors() {
        let one = vec![example("a", "t"), example("b", "t")];
        let err = split_by_article(&one, 0.5, 0).unwrap_err().to_string();
        assert!(err.contains("at least 2 distinct"), "{err}");
        for bad in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(split_by_article(&one, bad, 0).is_err());
        }
    }
}
