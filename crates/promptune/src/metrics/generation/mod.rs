//! Metrics of generated text against one or more references per item, each computed as its
//! reference implementation does:
//!
//! - [`bleu`]: corpus BLEU as sacrebleu computes it (mteval-v13a tokenisation, clipped n-gram
//!   counts, closest reference length, `exp` smoothing), case-insensitive by default as the
//!   E2E challenge's mteval runs;
//! - [`nist`]: corpus NIST as the E2E challenge's Python mteval (`pymteval`) computes it;
//! - [`cider`] and [`rouge::rouge_l_coco`]: CIDEr-D and ROUGE-L as pycocoevalcap (the E2E
//!   challenge's other metrics), on the same lowercased mteval tokens instead of its Java PTB
//!   tokenizer;
//! - [`rouge::rouge_score`]: ROUGE-1/2/L as Google's `rouge-score` (through `rougers`, which
//!   reproduces it bit for bit), the usual summarisation figures.
//!
//! METEOR is not here yet.

pub mod bleu;
pub mod cider;
pub mod files;
pub mod nist;
pub mod rouge;

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

use crate::{Error, Result};

/// mteval-v13a's tokenisation (sacrebleu's `13a`): SGML entities unescaped, punctuation and
/// symbols split off, periods and commas split off unless between digits, a dash after a digit
/// split off.
pub fn tokenize_13a(line: &str) -> Vec<String> {
    static RULES: OnceLock<[(Regex, &str); 4]> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (
                Regex::new(r"([\{-\~\[-\` -\&\(-\+\:-\@/])").expect("valid"),
                " $1 ",
            ),
            (Regex::new(r"([^0-9])([\.,])").expect("valid"), "$1 $2 "),
            (Regex::new(r"([\.,])([^0-9])").expect("valid"), " $1 $2"),
            (Regex::new(r"([0-9])(-)").expect("valid"), "$1 $2 "),
        ]
    });
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (re, replacement) in rules {
        line = re.replace_all(&line, *replacement).into_owned();
    }
    line.split_whitespace().map(str::to_string).collect()
}

/// The tokens every corpus metric here reads: trailing whitespace dropped, lowercased unless
/// `case_sensitive`, then [`tokenize_13a`].
pub fn tokens(text: &str, case_sensitive: bool) -> Vec<String> {
    let text = text.trim_end();
    if case_sensitive {
        tokenize_13a(text)
    } else {
        tokenize_13a(&text.to_lowercase())
    }
}

/// Counts of the n-grams of one length in `tokens`.
pub(crate) fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    if n > 0 && tokens.len() >= n {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// The n-grams of `hyp` of length `n` with their counts clipped by the largest count of any
/// one of `refs` (BLEU's and NIST's matches); n-grams without a match are left out.
pub(crate) fn clipped_hits<'a>(
    hyp: &'a [String],
    refs: &'a [Vec<String>],
    n: usize,
) -> Vec<(&'a [String], usize)> {
    let mut max_ref: HashMap<&[String], usize> = HashMap::new();
    for r in refs {
        for (gram, c) in ngram_counts(r, n) {
            let slot = max_ref.entry(gram).or_insert(0);
            *slot = (*slot).max(c);
        }
    }
    ngram_counts(hyp, n)
        .into_iter()
        .filter_map(|(gram, c)| {
            let hits = c.min(max_ref.get(gram).copied().unwrap_or(0));
            (hits > 0).then_some((gram, hits))
        })
        .collect()
}

/// The hypotheses and their references, checked to pair up.
pub fn check_corpus<R: AsRef<str>>(hypotheses: &[String], references: &[Vec<R>]) -> Result<()> {
    if hypotheses.len() != references.len() {
        return Err(Error::InvalidInput(format!(
            "{} hypotheses but {} reference groups: there must be one group per hypothesis",
            hypotheses.len(),
            references.len()
        )));
    }
    if hypotheses.is_empty() {
        return Err(Error::InvalidInput("no hypotheses to score".into()));
    }
    if let Some(i) = references.iter().position(Vec::is_empty) {
        return Err(Error::InvalidInput(format!(
            "item {} has no reference",
            i + 1
        )));
    }
    Ok(())
}

/// Every metric of one corpus, on the scales papers report them (BLEU, ROUGE and CIDEr as the
/// E2E tables do: BLEU and ROUGE in percent, NIST and CIDEr as they come).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GenerationScores {
    /// Corpus BLEU (0-100).
    pub bleu: f64,
    /// Corpus NIST.
    pub nist: f64,
    /// pycocoevalcap's ROUGE-L (0-100).
    pub rouge_l: f64,
    /// pycocoevalcap's CIDEr-D.
    pub cider: f64,
    /// rouge-score's ROUGE-1 F1, best reference per item, mean over items (0-100).
    pub rouge1: f64,
    /// rouge-score's ROUGE-2 F1 (0-100).
    pub rouge2: f64,
    /// rouge-score's ROUGE-L F1 (0-100).
    pub rouge_l_summary: f64,
    /// Items scored.
    pub items: usize,
}

/// All metrics of `hypotheses` against `references` (one group per hypothesis),
/// case-insensitive, ROUGE-score with Porter stemming as summarisation papers use it.
pub fn score_generations(
    hypotheses: &[String],
    references: &[Vec<String>],
) -> Result<GenerationScores> {
    check_corpus(hypotheses, references)?;
    let rouge = rouge::rouge_score(hypotheses, references, true)?;
    Ok(GenerationScores {
        bleu: bleu::corpus_bleu(hypotheses, references, false)?.score,
        nist: nist::corpus_nist(hypotheses, references)?,
        rouge_l: 100.0 * rouge::rouge_l_coco(hypotheses, references)?,
        cider: cider::corpus_cider(hypotheses, references)?,
        rouge1: 100.0 * rouge.rouge1,
        rouge2: 100.0 * rouge.rouge2,
        rouge_l_summary: 100.0 * rouge.rouge_l,
        items: hypotheses.len(),
    })
}
