//! Entity-span precision / recall / F1 over tag sequences, as `seqeval` computes them by
//! default (its non-strict mode, which chunks like the CoNLL `conlleval` script).
//!
//! An entity counts as found only when a predicted span has the same type, start and end as a
//! gold span of the same sentence. Ill-formed sequences are read the way conlleval reads them:
//! an `I-X` after `O`, at a sentence start or after another type opens a new entity, and a
//! type change inside a run closes one entity and opens another. Tags are split like seqeval
//! does: the first character is the chunk tag (`B`, `I`, `O`, and also `E`, `S` of IOBES),
//! the type is what follows the first `-` (`_` when empty, so a bare `B` has type `_`).

use std::collections::{BTreeMap, HashSet};

use crate::error::{Error, Result};

/// An entity found in a tag sequence: its type and its token range `start..end` (end
/// exclusive; seqeval reports `end - 1`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entity {
    /// The entity type (`PER`, `LOC`, ...).
    pub kind: String,
    /// Index of the first token.
    pub start: usize,
    /// Index just past the last token.
    pub end: usize,
}

/// Precision, recall and F1 with the counts they come from.
///
/// A ratio with a zero denominator is 0, as seqeval's default `zero_division` gives (without
/// its warning); F1 is 0 when precision and recall are both 0.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Prf {
    /// `correct / predicted`.
    pub precision: f64,
    /// `correct / support`.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Number of gold entities.
    pub support: usize,
    /// Number of predicted entities.
    pub predicted: usize,
    /// Number of predicted entities that match a gold one exactly.
    pub correct: usize,
}

impl Prf {
    /// The scores of `correct` matches among `predicted` entities for `support` gold ones.
    pub fn from_counts(correct: usize, predicted: usize, support: usize) -> Self {
        let ratio = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        let precision = ratio(correct, predicted);
        let recall = ratio(correct, support);
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Prf {
            precision,
            recall,
            f1,
            support,
            predicted,
            correct,
        }
    }
}

/// Micro-averaged scores over all entities, and the scores of each entity type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanScores {
    /// Counts summed over all types (seqeval's `average="micro"`, its default).
    pub micro: Prf,
    /// Per type (seqeval's `average=None`), for every type found in the gold or the
    /// predicted tags, in sorted order.
    pub per_type: BTreeMap<String, Prf>,
}

/// The chunk tag and type of `tag`, read as seqeval does; `None` for an empty tag.
fn split_tag(tag: &str) -> Option<(char, &str)> {
    let mut chars = tag.chars();
    let first = chars.next()?;
    let rest = chars.as_str();
    let kind = rest.split_once('-').map_or(rest, |(_, after)| after);
    Some((first, if kind.is_empty() { "_" } else { kind }))
}

/// Whether a chunk ended between the previous and the current token (seqeval's
/// `end_of_chunk`).
fn end_of_chunk(prev_tag: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(prev_tag, 'E' | 'S')
        || (matches!(prev_tag, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
        || (prev_tag != 'O' && prev_tag != '.' && prev_type != kind)
}

/// Whether a chunk started between the previous and the current token (seqeval's
/// `start_of_chunk`).
fn start_of_chunk(prev_tag: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev_tag, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_type != kind)
}

/// The entities of one sentence's tags, in order of their ends.
///
/// Errors when a tag is empty (`InvalidInput`, naming its position).
pub fn entities<S: AsRef<str>>(tags: &[S]) -> Result<Vec<Entity>> {
    let mut found = Vec::new();
    let (mut prev_tag, mut prev_type) = ('O', "_");
    let mut begin = 0usize;
    // a final `O` closes an entity running to the end
    let tags = tags.iter().map(AsRef::as_ref).chain(std::iter::once("O"));
    for (i, tag) in tags.enumerate() {
        let (chunk, kind) = split_tag(tag).ok_or_else(|| {
            Error::InvalidInput(format!("entity spans: the tag of token {i} is empty"))
        })?;
        if end_of_chunk(prev_tag, chunk, prev_type, kind) {
            found.push(Entity {
                kind: prev_type.to_string(),
                start: begin,
                end: i,
            });
        }
        if start_of_chunk(prev_tag, chunk, prev_type, kind) {
            begin = i;
        }
        prev_tag = chunk;
        prev_type = kind;
    }
    Ok(found)
}

/// Entity-span scores of `pred` against `gold`, both a list of sentences of tags; identical to
/// seqeval's `precision_score` / `recall_score` / `f1_score` (micro) and
/// `precision_recall_fscore_support(average=None)` (per type) in their default mode.
///
/// Entities never cross sentence boundaries. Errors (`InvalidInput`) when the two differ in
/// their number of sentences or a sentence's length, or a tag is empty.
pub fn span_scores<G, P, S, T>(gold: &[G], pred: &[P]) -> Result<SpanScores>
where
    G: AsRef<[S]>,
    P: AsRef<[T]>,
    S: AsRef<str>,
    T: AsRef<str>,
{
    if gold.len() != pred.len() {
        return Err(Error::InvalidInput(format!(
            "entity spans: {} gold sentences but {} predicted",
            gold.len(),
            pred.len()
        )));
    }
    // per type: (correct, predicted, gold)
    let mut counts: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for (i, (g, p)) in gold.iter().zip(pred).enumerate() {
        let (g, p) = (g.as_ref(), p.as_ref());
        if g.len() != p.len() {
            return Err(Error::InvalidInput(format!(
                "entity spans: sentence {i} has {} gold tags but {} predicted",
                g.len(),
                p.len()
            )));
        }
        let in_sentence = |e: Error| match e {
            Error::InvalidInput(m) => Error::InvalidInput(format!("{m} (sentence {i})")),
            other => other,
        };
        let gold_entities = entities(g).map_err(in_sentence)?;
        let pred_entities = entities(p).map_err(in_sentence)?;
        for e in &gold_entities {
            counts.entry(e.kind.clone()).or_default().2 += 1;
        }
        let gold_set: HashSet<&Entity> = gold_entities.iter().collect();
        for e in &pred_entities {
            let c = counts.entry(e.kind.clone()).or_default();
            c.1 += 1;
            if gold_set.contains(e) {
                c.0 += 1;
            }
        }
    }
    let (mut correct, mut predicted, mut support) = (0, 0, 0);
    let mut per_type = BTreeMap::new();
    for (kind, (c, p, s)) in counts {
        correct += c;
        predicted += p;
        support += s;
        per_type.insert(kind, Prf::from_counts(c, p, s));
    }
    Ok(SpanScores {
        micro: Prf::from_counts(correct, predicted, support),
        per_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(tags: &[&str]) -> Vec<(String, usize, usize)> {
        entities(tags)
            .unwrap()
            .into_iter()
            .map(|e| (e.kind, e.start, e.end))
            .collect()
    }

    #[test]
    fn chunking_follows_conlleval() {
        assert_eq!(
            spans(&["B-PER", "I-PER", "O", "B-LOC"]),
            [("PER".into(), 0, 2), ("LOC".into(), 3, 4)]
        );
        // I after O opens an entity; a type switch closes one and opens another
        assert_eq!(
            spans(&["O", "I-PER", "I-LOC", "B-LOC"]),
            [
                ("PER".into(), 1, 2),
                ("LOC".into(), 2, 3),
                ("LOC".into(), 3, 4)
            ]
        );
        assert!(spans(&["O", "O"]).is_empty());
        assert!(spans(&[]).is_empty());
        let err = entities(&["O", ""]).unwrap_err().to_string();
        assert!(err.contains("token 1 is empty"), "{err}");
    }

    #[test]
    fn shape_errors() {
        let gold = [vec!["O"], vec!["B-PER"]];
        let err = span_scores(&gold, &[vec!["O"]]).unwrap_err().to_string();
        assert!(err.contains("2 gold sentences but 1"), "{err}");
        let err = span_scores(&gold, &[vec!["O"], vec!["B-PER", "O"]])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sentence 1 has 1 gold tags but 2"), "{err}");
        let err = span_scores(&gold, &[vec!["O"], vec![""]])
            .unwrap_err()
            .to_string();
        assert!(err.contains("token 0 is empty (sentence 1)"), "{err}");
    }

    #[test]
    fn counts_and_zero_division() {
        let s = span_scores(&[vec!["B-PER", "O"]], &[vec!["B-PER", "B-LOC"]]).unwrap();
        assert_eq!(s.micro, Prf::from_counts(1, 2, 1));
        assert_eq!(s.micro.precision, 0.5);
        assert_eq!(s.per_type["LOC"], Prf::from_counts(0, 1, 0));
        assert_eq!(s.per_type["LOC"].f1, 0.0);
        let none = span_scores::<Vec<&str>, Vec<&str>, &str, &str>(&[], &[]).unwrap();
        assert_eq!(none, SpanScores::default());
    }
}
