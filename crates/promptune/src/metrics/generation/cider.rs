//! CIDEr-D as pycocoevalcap's `Cider` computes it (the E2E challenge's CIDEr): TF-IDF vectors
//! of 1- to 4-grams with document frequencies over the items' reference sets, cosine
//! similarity clipped by the reference's weights, a Gaussian penalty (σ = 6) on the length
//! difference, averaged over references and orders, times 10, then over items. Tokens are the
//! lowercased mteval tokens (pycocoevalcap's pipeline uses Java's PTB tokenizer).

use std::collections::{HashMap, HashSet};

use super::{check_corpus, tokens};
use crate::Result;

/// n-gram orders.
const ORDERS: usize = 4;
/// Width of the length penalty.
const SIGMA: f64 = 6.0;

/// Every 1- to 4-gram of `words` with its count.
fn cook(words: &[String]) -> HashMap<Vec<String>, f64> {
    let mut counts = HashMap::new();
    for n in 1..=ORDERS {
        if words.len() >= n {
            for gram in words.windows(n) {
                *counts.entry(gram.to_vec()).or_insert(0.0) += 1.0;
            }
        }
    }
    counts
}

/// A TF-IDF vector per order, its norms, and pycocoevalcap's "length" (its bigram count).
struct Vector {
    weights: [HashMap<Vec<String>, f64>; ORDERS],
    norms: [f64; ORDERS],
    length: f64,
}

/// CIDEr-D of `hypotheses` against `references` (a group per hypothesis).
pub fn corpus_cider<R: AsRef<str>>(hypotheses: &[String], references: &[Vec<R>]) -> Result<f64> {
    check_corpus(hypotheses, references)?;
    let tests: Vec<_> = hypotheses.iter().map(|h| cook(&tokens(h, false))).collect();
    let refs: Vec<Vec<_>> = references
        .iter()
        .map(|g| g.iter().map(|r| cook(&tokens(r.as_ref(), false))).collect())
        .collect();
    let mut df: HashMap<&Vec<String>, f64> = HashMap::new();
    for group in &refs {
        let grams: HashSet<&Vec<String>> = group.iter().flat_map(|r| r.keys()).collect();
        for g in grams {
            *df.entry(g).or_insert(0.0) += 1.0;
        }
    }
    let log_items = (refs.len() as f64).ln();
    let vector = |counts: &HashMap<Vec<String>, f64>| -> Vector {
        let mut v = Vector {
            weights: Default::default(),
            norms: [0.0; ORDERS],
            length: 0.0,
        };
        for (gram, &tf) in counts {
            let d = df.get(gram).copied().unwrap_or(0.0).max(1.0).ln();
            let n = gram.len() - 1;
            let w = tf * (log_items - d);
            v.weights[n].insert(gram.clone(), w);
            v.norms[n] += w * w;
            // pycocoevalcap counts the bigrams as the length
            if n == 1 {
                v.length += tf;
            }
        }
        v.norms.iter_mut().for_each(|x| *x = x.sqrt());
        v
    };
    let mut total = 0.0;
    for (test, group) in tests.iter().zip(&refs) {
        let hyp = vector(test);
        let mut sum = [0.0f64; ORDERS];
        for r in group {
            let reference = vector(r);
            let delta = hyp.length - reference.length;
            for (n, total) in sum.iter_mut().enumerate() {
                let mut val: f64 = hyp.weights[n]
                    .iter()
                    .map(|(gram, &w)| {
                        let rw = reference.weights[n].get(gram).copied().unwrap_or(0.0);
                        w.min(rw) * rw
                    })
                    .sum();
                if hyp.norms[n] != 0.0 && reference.norms[n] != 0.0 {
                    val /= hyp.norms[n] * reference.norms[n];
                }
                *total += val * std::f64::consts::E.powf(-(delta * delta) / (2.0 * SIGMA * SIGMA));
            }
        }
        let mean = sum.iter().sum::<f64>() / ORDERS as f64;
        total += mean / group.len() as f64 * 10.0;
    }
    Ok(total / tests.len() as f64)
}
