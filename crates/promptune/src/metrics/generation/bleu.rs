//! Corpus BLEU as sacrebleu computes it (`corpus_bleu` with the `13a` tokenizer and `exp`
//! smoothing), with any number of references per item.

use serde::Serialize;

use super::{check_corpus, clipped_hits, tokens};
use crate::Result;

/// n-gram orders BLEU reads.
const ORDERS: usize = 4;

/// A corpus BLEU and its parts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bleu {
    /// The score, 0-100.
    pub score: f64,
    /// n-gram precisions (percent), n = 1..4.
    pub precisions: [f64; ORDERS],
    /// Brevity penalty.
    pub brevity_penalty: f64,
    /// Hypothesis tokens.
    pub sys_len: usize,
    /// Reference tokens (the closest reference of each item).
    pub ref_len: usize,
}

/// The closest reference length to `hyp` (the shorter one on ties).
fn closest(hyp: usize, refs: &[usize]) -> usize {
    let mut best = refs[0];
    for &r in &refs[1..] {
        let (d, bd) = (r.abs_diff(hyp), best.abs_diff(hyp));
        if d < bd || (d == bd && r < best) {
            best = r;
        }
    }
    best
}

/// BLEU of `hypotheses` against `references` (a group per hypothesis).
pub fn corpus_bleu<R: AsRef<str>>(
    hypotheses: &[String],
    references: &[Vec<R>],
    case_sensitive: bool,
) -> Result<Bleu> {
    check_corpus(hypotheses, references)?;
    let mut correct = [0usize; ORDERS];
    let mut total = [0usize; ORDERS];
    let (mut sys_len, mut ref_len) = (0, 0);
    for (hyp, refs) in hypotheses.iter().zip(references) {
        let hyp = tokens(hyp, case_sensitive);
        let refs: Vec<Vec<String>> = refs
            .iter()
            .map(|r| tokens(r.as_ref(), case_sensitive))
            .collect();
        sys_len += hyp.len();
        ref_len += closest(hyp.len(), &refs.iter().map(Vec::len).collect::<Vec<_>>());
        for n in 1..=ORDERS {
            correct[n - 1] += clipped_hits(&hyp, &refs, n)
                .iter()
                .map(|(_, hits)| hits)
                .sum::<usize>();
            total[n - 1] += hyp.len().saturating_sub(n - 1);
        }
    }
    Ok(score_from_stats(&correct, &total, sys_len, ref_len))
}

/// sacrebleu's `compute_bleu` with `exp` smoothing and no effective order.
fn score_from_stats(correct: &[usize], total: &[usize], sys_len: usize, ref_len: usize) -> Bleu {
    let brevity_penalty = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let mut precisions = [0.0; ORDERS];
    let nothing = Bleu {
        score: 0.0,
        precisions,
        brevity_penalty,
        sys_len,
        ref_len,
    };
    if correct.iter().all(|&c| c == 0) {
        return nothing;
    }
    let mut smooth = 1.0;
    for n in 0..ORDERS {
        if total[n] == 0 {
            break;
        }
        precisions[n] = if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
    }
    let log = |p: f64| if p == 0.0 { -9_999_999_999.0 } else { p.ln() };
    let mean = precisions.iter().map(|&p| log(p)).sum::<f64>() / ORDERS as f64;
    Bleu {
        score: brevity_penalty * mean.exp(),
        precisions,
        ..nothing
    }
}
