//! Corpus NIST (5-grams) as the E2E challenge's Python mteval (`pymteval.NISTScore`) computes
//! it: information weights from the n-gram counts of every reference in the corpus, n-gram
//! hits clipped by their largest count in any one reference of the item, and the length
//! penalty against the summed average reference length. Case-insensitive.

use std::collections::HashMap;

use super::{check_corpus, clipped_hits, ngram_counts, tokens};
use crate::Result;

/// n-gram orders NIST reads.
const ORDERS: usize = 5;

/// NIST of `hypotheses` against `references` (a group per hypothesis).
pub fn corpus_nist<R: AsRef<str>>(hypotheses: &[String], references: &[Vec<R>]) -> Result<f64> {
    check_corpus(hypotheses, references)?;
    // pymteval splits an empty text into one empty token
    let words = |text: &str| match tokens(text, false) {
        t if t.is_empty() => vec![String::new()],
        t => t,
    };
    let hyps: Vec<Vec<String>> = hypotheses.iter().map(|h| words(h)).collect();
    let refs: Vec<Vec<Vec<String>>> = references
        .iter()
        .map(|g| g.iter().map(|r| words(r.as_ref())).collect())
        .collect();
    // n-gram counts over every reference of the corpus; index 0 holds the word total
    let mut ref_counts: Vec<HashMap<&[String], f64>> = vec![HashMap::new(); ORDERS + 1];
    let mut ref_words = 0.0;
    let mut avg_ref_len = 0.0;
    for group in &refs {
        let len: usize = group.iter().map(Vec::len).sum();
        ref_words += len as f64;
        avg_ref_len += len as f64 / group.len() as f64;
        for r in group {
            for (n, counts) in ref_counts.iter_mut().enumerate().skip(1) {
                for (gram, c) in ngram_counts(r, n) {
                    *counts.entry(gram).or_insert(0.0) += c as f64;
                }
            }
        }
    }
    let info = |gram: &[String]| -> f64 {
        let n = gram.len();
        let Some(&count) = ref_counts[n].get(gram) else {
            return 0.0;
        };
        let context = if n == 1 {
            ref_words
        } else {
            ref_counts[n - 1]
                .get(&gram[..n - 1])
                .copied()
                .unwrap_or(0.0)
        };
        (context / count).log2()
    };
    let mut hit_info = [0.0f64; ORDERS];
    // pymteval adds len - n + 1 per item, negative for items shorter than n
    let mut cand_len = [0i64; ORDERS];
    for (hyp, group) in hyps.iter().zip(&refs) {
        for n in 1..=ORDERS {
            cand_len[n - 1] += hyp.len() as i64 - (n as i64 - 1);
            for (gram, hits) in clipped_hits(hyp, group, n) {
                hit_info[n - 1] += info(gram) * hits as f64;
            }
        }
    }
    let sum: f64 = hit_info
        .iter()
        .zip(&cand_len)
        // a corpus of hypotheses shorter than n has no n-grams (pymteval divides by zero)
        .map(|(&h, &l)| if l > 0 { h / l as f64 } else { 0.0 })
        .sum();
    Ok(length_penalty(cand_len[0] as f64, avg_ref_len) * sum)
}

/// NIST's brevity penalty: 1 at or above the reference length, falling as exp(-β log² ratio)
/// below it, with β making a ratio of 2/3 cost half.
fn length_penalty(sys_len: f64, avg_ref_len: f64) -> f64 {
    let ratio = sys_len / avg_ref_len;
    if ratio >= 1.0 {
        return 1.0;
    }
    if ratio <= 0.0 {
        return 0.0;
    }
    let beta = -(0.5f64.ln()) / 1.5f64.ln().powi(2);
    (-beta * ratio.ln().powi(2)).exp()
}
