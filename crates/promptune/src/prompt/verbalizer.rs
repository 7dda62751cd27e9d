//! Manual verbalizers: each label is said with one or more words.
//!
//! A word is scored by the logit of its **first token** (the tokenization of the word as it
//! follows the answer slot, i.e. with its leading space when given one, " positive"); a label's
//! score is the mean over its words. Only those vocabulary rows of the LM head are computed.
//! Words that split into several tokens are accepted (their first token stands for them) and
//! reported by [`Verbalizer::multi_token_words`].

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::{Error, Result};

/// Label names and the words for each label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerbalizerSpec {
    /// Label names in index order.
    pub labels: Vec<String>,
    /// For each label, its words (same order as `labels`).
    pub words: Vec<Vec<String>>,
}

/// A verbalizer resolved against a tokenizer.
#[derive(Debug, Clone, PartialEq)]
pub struct Verbalizer {
    /// The spec it came from.
    pub spec: VerbalizerSpec,
    /// Distinct vocabulary rows used (the LM head rows to compute).
    pub rows: Vec<u32>,
    /// For each label, indices into `rows` of its words.
    pub label_rows: Vec<Vec<usize>>,
    multi_token: Vec<String>,
}

impl Verbalizer {
    /// Tokenizes the words of `spec`.
    pub fn new(spec: VerbalizerSpec, tokenizer: &Tokenizer) -> Result<Self> {
        if spec.labels.len() < 2 {
            return Err(Error::InvalidInput(
                "a verbalizer needs at least two labels".into(),
            ));
        }
        if spec.words.len() != spec.labels.len() {
            return Err(Error::InvalidInput(format!(
                "{} labels but {} word lists",
                spec.labels.len(),
                spec.words.len()
            )));
        }
        let unknown: Vec<u32> = ["[UNK]", "<unk>", "<UNK>"]
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        let mut rows: Vec<u32> = Vec::new();
        let mut label_rows = Vec::new();
        let mut multi_token = Vec::new();
        for (label, words) in spec.labels.iter().zip(&spec.words) {
            if words.is_empty() {
                return Err(Error::InvalidInput(format!("label `{label}` has no words")));
            }
            let mut mine = Vec::new();
            for word in words {
                let ids = tokenizer
                    .encode(word.as_str(), false)
                    .map_err(|e| Error::Tokenizer(e.to_string()))?;
                let ids = ids.get_ids();
                let Some(&first) = ids.first() else {
                    return Err(Error::InvalidInput(format!(
                        "label word `{word}` tokenizes to nothing"
                    )));
                };
                if ids.iter().any(|i| unknown.contains(i)) {
                    return Err(Error::InvalidInput(format!(
                        "label word `{word}` (label `{label}`) encodes to the unknown token: the \
                         model cannot say it; choose a word its vocabulary holds"
                    )));
                }
                if ids.len() > 1 {
                    multi_token.push(word.clone());
                }
                let index = match rows.iter().position(|&r| r == first) {
                    Some(i) => i,
                    None => {
                        rows.push(first);
                        rows.len() - 1
                    }
                };
                mine.push(index);
            }
            label_rows.push(mine);
        }
        let mut seen = std::collections::HashMap::new();
        for (l, r) in label_rows.iter().enumerate() {
            if let Some(prev) = seen.insert(r.clone(), l) {
                return Err(Error::InvalidInput(format!(
                    "labels `{}` and `{}` are said with the same tokens",
                    spec.labels[prev], spec.labels[l]
                )));
            }
        }
        Ok(Self {
            spec,
            rows,
            label_rows,
            multi_token,
        })
    }

    /// Number of labels.
    pub fn num_labels(&self) -> usize {
        self.spec.labels.len()
    }

    /// Words whose tokenization has more than one token.
    pub fn multi_token_words(&self) -> &[String] {
        &self.multi_token
    }

    /// `[label][row]` averaging weights: label score = Σ weight × row logit.
    pub fn weights(&self) -> Vec<f32> {
        let mut w = vec![0f32; self.num_labels() * self.rows.len()];
        for (l, rows) in self.label_rows.iter().enumerate() {
            for &r in rows {
                w[l * self.rows.len() + r] += 1.0 / rows.len() as f32;
            }
        }
        w
    }
}
