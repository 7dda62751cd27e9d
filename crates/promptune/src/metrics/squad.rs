//! SQuAD v1.1 exact match and F1, as the official `evaluate-v1.1.py` computes them.
//!
//! Answers are compared after [`normalize_answer`]; a prediction scores the best exact match
//! and the best token F1 over its gold answers; the totals are means over the questions, times
//! 100. Unlike SQuAD 2.0's script, two answers that both normalise to nothing are an exact
//! match but have F1 0 (v1.1 behaviour).

use std::collections::HashMap;

use crate::data::squad::QaExample;
use crate::error::{Error, Result};

/// Whitespace as Python's `str.split()` sees it: Unicode `White_Space` plus the four ASCII
/// separators U+001C..U+001F.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// A word character of Python's `re` `\b` (alphanumeric or `_`). Rust's `is_alphanumeric`
/// also counts the few combining marks with the `Other_Alphabetic` property, which Python
/// does not; that matters only for an article written right next to such a mark.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The official answer normalisation: lower-case, remove ASCII punctuation
/// (Python's `string.punctuation`), replace the words `a`, `an`, `the` by a space, and
/// collapse whitespace runs into single spaces (no leading or trailing space).
pub fn normalize_answer(text: &str) -> String {
    let lowered = text.to_lowercase();
    let no_punct: String = lowered
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    // `\b(a|an|the)\b` matches exactly the maximal word runs equal to an article
    let mut no_articles = String::with_capacity(no_punct.len());
    let mut rest = no_punct.as_str();
    while let Some(c) = rest.chars().next() {
        let run = if is_word(c) {
            rest.find(|c: char| !is_word(c)).unwrap_or(rest.len())
        } else {
            rest.find(is_word).unwrap_or(rest.len())
        };
        let (piece, tail) = rest.split_at(run);
        if is_word(c) && matches!(piece, "a" | "an" | "the") {
            no_articles.push(' ');
        } else {
            no_articles.push_str(piece);
        }
        rest = tail;
    }
    no_articles
        .split(is_space)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `prediction` and `gold` are equal after [`normalize_answer`].
pub fn exact_match(prediction: &str, gold: &str) -> bool {
    normalize_answer(prediction) == normalize_answer(gold)
}

/// Token-level F1 of the normalised answers (tokens counted with multiplicity); 0 when they
/// share no token.
pub fn token_f1(prediction: &str, gold: &str) -> f64 {
    let prediction = normalize_answer(prediction);
    let gold = normalize_answer(gold);
    let pred_tokens: Vec<&str> = prediction.split(' ').filter(|t| !t.is_empty()).collect();
    let gold_tokens: Vec<&str> = gold.split(' ').filter(|t| !t.is_empty()).collect();
    let mut gold_counts: HashMap<&str, usize> = HashMap::new();
    for t in &gold_tokens {
        *gold_counts.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in &pred_tokens {
        if let Some(n) = gold_counts.get_mut(t) {
            if *n > 0 {
                *n -= 1;
                same += 1;
            }
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / pred_tokens.len() as f64;
    let recall = same as f64 / gold_tokens.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// One prediction's scores: exact match (0 or 1) and F1, each the best over the gold answers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QaScore {
    /// 1.0 when the prediction matches some gold answer after normalisation, else 0.0.
    pub exact_match: f64,
    /// The highest [`token_f1`] over the gold answers.
    pub f1: f64,
}

/// Scores `prediction` against its gold answers (the max over them, per metric).
///
/// Errors (`InvalidInput`) when `gold` is empty.
pub fn score_prediction<S: AsRef<str>>(prediction: &str, gold: &[S]) -> Result<QaScore> {
    if gold.is_empty() {
        return Err(Error::InvalidInput(format!(
            "SQuAD scoring: no gold answers for prediction `{prediction}`"
        )));
    }
    let mut score = QaScore::default();
    for g in gold {
        if exact_match(prediction, g.as_ref()) {
            score.exact_match = 1.0;
        }
        score.f1 = score.f1.max(token_f1(prediction, g.as_ref()));
    }
    Ok(score)
}

/// Corpus scores: means over the questions, times 100.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SquadScores {
    /// Mean exact match × 100.
    pub exact_match: f64,
    /// Mean F1 × 100.
    pub f1: f64,
    /// Number of questions scored (the denominator).
    pub total: usize,
    /// Questions without a prediction (they score 0).
    pub unanswered: usize,
}

/// The official `evaluate`: every example is a question; one without an entry in
/// `predictions` (question id -> answer text) scores 0 but still counts, and predictions for
/// ids not in `examples` are ignored. All scores are 0 when `examples` is empty.
///
/// Errors (`InvalidInput`) when an example has no gold answer.
pub fn evaluate_squad(
    examples: &[QaExample],
    predictions: &HashMap<String, String>,
) -> Result<SquadScores> {
    let mut scores = SquadScores {
        total: examples.len(),
        ..SquadScores::default()
    };
    let (mut em, mut f1) = (0.0, 0.0);
    for example in examples {
        let Some(prediction) = predictions.get(&example.id) else {
            scores.unanswered += 1;
            continue;
        };
        let gold: Vec<&str> = example.answers.iter().map(|a| a.text.as_str()).collect();
        let score = score_prediction(prediction, &gold).map_err(|e| match e {
            Error::InvalidInput(m) => Error::InvalidInput(format!("{m} (question {})", example.id)),
            other => other,
        })?;
        em += score.exact_match;
        f1 += score.f1;
    }
    if scores.total > 0 {
        scores.exact_match = 100.0 * em / scores.total as f64;
        scores.f1 = 100.0 * f1 / scores.total as f64;
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization() {
        assert_eq!(normalize_answer("The  Denver Broncos!"), "denver broncos");
        // punctuation goes first, so `apple,a` is one word
        assert_eq!(normalize_answer("an\tapple,a pear"), "applea pear");
        assert_eq!(normalize_answer("theory anthem"), "theory anthem");
        assert_eq!(normalize_answer("a\u{1f}b"), "b");
        assert_eq!(normalize_answer(" The "), "");
        assert_eq!(normalize_answer("éthe"), "éthe");
    }

    #[test]
    fn pair_scores() {
        assert!(exact_match("The Broncos", "broncos."));
        assert_eq!(token_f1("x b c", "b c d"), 2.0 / 3.0);
        assert_eq!(token_f1("The", "a"), 0.0);
        let s = score_prediction("Broncos", &["Denver Broncos", "The Broncos"]).unwrap();
        assert_eq!(
            s,
            QaScore {
                exact_match: 1.0,
                f1: 1.0
            }
        );
        assert!(score_prediction::<&str>("x", &[]).is_err());
    }
}
