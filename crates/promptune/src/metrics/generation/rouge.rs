//! ROUGE two ways: pycocoevalcap's sentence ROUGE-L (the E2E challenge's: LCS precision and
//! recall each maximised over the references, F with β = 1.2, averaged over items), and
//! Google's `rouge-score` ROUGE-1/2/L F1 (through `rougers`, a bit-exact port: its tokenizer,
//! NLTK's Porter stemmer), the best reference per item, averaged (summarisation papers).

use super::{check_corpus, tokens};
use crate::{Error, Result};

/// Length of the longest common subsequence of `a` and `b`.
fn lcs(a: &[String], b: &[String]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diagonal = 0;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// pycocoevalcap's ROUGE-L (0-1) on lowercased mteval tokens.
pub fn rouge_l_coco<R: AsRef<str>>(hypotheses: &[String], references: &[Vec<R>]) -> Result<f64> {
    check_corpus(hypotheses, references)?;
    const BETA: f64 = 1.2;
    let mut total = 0.0;
    for (hyp, group) in hypotheses.iter().zip(references) {
        let h = tokens(hyp, false);
        let (mut prec, mut rec) = (0.0f64, 0.0f64);
        for r in group {
            let r = tokens(r.as_ref(), false);
            let common = lcs(&r, &h) as f64;
            // pycocoevalcap splits an empty text into one empty token
            prec = prec.max(common / h.len().max(1) as f64);
            rec = rec.max(common / r.len().max(1) as f64);
        }
        if prec != 0.0 && rec != 0.0 {
            total += (1.0 + BETA * BETA) * prec * rec / (rec + BETA * BETA * prec);
        }
    }
    Ok(total / hypotheses.len() as f64)
}

/// rouge-score's mean F1 (0-1) per variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RougeScores {
    /// Unigram overlap.
    pub rouge1: f64,
    /// Bigram overlap.
    pub rouge2: f64,
    /// Longest common subsequence.
    pub rouge_l: f64,
}

/// `rouge-score`'s ROUGE-1/2/L F1 with its own tokenizer (and Porter stemming when `stem`),
/// each item scored against its best reference per variant (`score_multi`), averaged.
pub fn rouge_score<R: AsRef<str>>(
    hypotheses: &[String],
    references: &[Vec<R>],
    stem: bool,
) -> Result<RougeScores> {
    check_corpus(hypotheses, references)?;
    let scorer = rougers::RougeScorer::new(["rouge1", "rouge2", "rougeL"], stem)
        .map_err(|e| Error::Internal(format!("rouge scorer: {e}")))?;
    let mut sums = [0.0f64; 3];
    for (hyp, group) in hypotheses.iter().zip(references) {
        let refs: Vec<&str> = group.iter().map(|r| r.as_ref()).collect();
        let scores = scorer
            .score_multi(&refs, hyp)
            .ok_or_else(|| Error::InvalidInput("an item without references".into()))?;
        for (i, kind) in [
            rougers::RougeType::N(1),
            rougers::RougeType::N(2),
            rougers::RougeType::L,
        ]
        .into_iter()
        .enumerate()
        {
            sums[i] += scores.get(kind).map(|s| s.fmeasure).unwrap_or(0.0);
        }
    }
    let n = hypotheses.len() as f64;
    Ok(RougeScores {
        rouge1: sums[0] / n,
        rouge2: sums[1] / n,
        rouge_l: sums[2] / n,
    })
}
