//! Seeded sampling: LM-BFF style k-shot subsets and per-epoch shuffles.
//!
//! Everything uses `rand`'s [`StdRng`], so results are reproducible for a seed with a given
//! `rand` version (StdRng's algorithm may change between `rand` releases).

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::Example;
use crate::error::{Error, Result};

/// Draws `k` examples of each of the `num_labels` classes, LM-BFF style: for each class (in
/// label order) `k` of its examples are chosen at random, then the whole subset is shuffled;
/// both steps use one [`StdRng`] seeded with `seed`, so the result is a function of
/// (`examples`, `k`, `num_labels`, `seed`).
///
/// Errors when `k` is 0, an example is unlabelled or its label is `>= num_labels`, or a class
/// has fewer than `k` examples (the message names the class index and gives every class's
/// count).
pub fn k_shot(
    examples: &[Example],
    k: usize,
    num_labels: usize,
    seed: u64,
) -> Result<Vec<Example>> {
    if k == 0 {
        return Err(Error::InvalidInput("k-shot sampling needs k >= 1".into()));
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_labels];
    for (i, example) in examples.iter().enumerate() {
        match example.label {
            Some(label) if label < num_labels => by_class[label].push(i),
            Some(label) => {
                return Err(Error::InvalidInput(format!(
                    "k-shot sampling: example {i} has label index {label} but there are only \
                     {num_labels} labels"
                )))
            }
            None => {
                return Err(Error::InvalidInput(format!(
                    "k-shot sampling needs labelled examples; example {i} has no label"
                )))
            }
        }
    }
    if let Some((class, members)) = by_class.iter().enumerate().find(|(_, m)| m.len() < k) {
        let counts: Vec<String> = by_class
            .iter()
            .enumerate()
            .map(|(c, m)| format!("{c}: {}", m.len()))
            .collect();
        return Err(Error::InvalidInput(format!(
            "k-shot sampling: class {class} has {} example(s), fewer than k = {k} (examples per \
             class: {})",
            members.len(),
            counts.join(", ")
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut chosen = Vec::with_capacity(k * num_labels);
    for mut members in by_class {
        members.shuffle(&mut rng);
        chosen.extend_from_slice(&members[..k]);
    }
    chosen.shuffle(&mut rng);
    Ok(chosen.into_iter().map(|i| examples[i].clone()).collect())
}

/// SplitMix64 finaliser: spreads nearby inputs over the whole 64-bit range.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An RNG for (`seed`, `epoch`, `stream`): distinct streams give independent orders.
pub(crate) fn epoch_rng(seed: u64, epoch: usize, stream: u64) -> StdRng {
    StdRng::seed_from_u64(mix(mix(mix(seed) ^ epoch as u64) ^ stream))
}

/// A random permutation of `0..n`, a function of (`seed`, `epoch`): use one per epoch so every
/// epoch sees a different order yet a rerun with the same seed sees the same ones.
pub fn shuffled_indices(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..n).collect();
    indices.shuffle(&mut epoch_rng(seed, epoch, 0));
    indices
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// `counts[c]` examples of class `c`; the text is the example's index.
    fn dataset(counts: &[usize]) -> Vec<Example> {
        let mut out = Vec::new();
        for (class, &n) in counts.iter().enumerate() {
            for _ in 0..n {
                let fields = BTreeMap::from([("text_a".to_string(), out.len().to_string())]);
                out.push(Example {
                    fields,
                    label: Some(class),
                });
            }
        }
        out
    }

    #[test]
    fn k_shot_balances_and_is_deterministic() {
        let data = dataset(&[20, 7, 30]);
        let a = k_shot(&data, 5, 3, 13).unwrap();
        assert_eq!(a.len(), 15);
        for class in 0..3 {
            assert_eq!(a.iter().filter(|e| e.label == Some(class)).count(), 5);
        }
        let mut texts: Vec<&str> = a.iter().map(|e| e.fields["text_a"].as_str()).collect();
        texts.sort();
        texts.dedup();
        assert_eq!(texts.len(), 15, "no example drawn twice");
        assert_eq!(a, k_shot(&data, 5, 3, 13).unwrap());
        assert_ne!(a, k_shot(&data, 5, 3, 42).unwrap());
        // shuffled: not grouped by class
        let labels: Vec<usize> = a.iter().map(|e| e.label.unwrap()).collect();
        let mut sorted = labels.clone();
        sorted.sort();
        assert_ne!(labels, sorted);
    }

    #[test]
    fn k_shot_whole_class() {
        let data = dataset(&[4, 4]);
        let a = k_shot(&data, 4, 2, 1).unwrap();
        assert_eq!(a.len(), 8);
    }

    #[test]
    fn k_shot_errors() {
        let data = dataset(&[10, 3]);
        let err = k_shot(&data, 4, 2, 0).unwrap_err().to_string();
        assert!(
            err.contains("class 1 has 3 example(s), fewer than k = 4"),
            "{err}"
        );
        assert!(err.contains("0: 10, 1: 3"), "{err}");
        let err = k_shot(&data, 2, 3, 0).unwrap_err().to_string();
        assert!(err.contains("class 2 has 0 example(s)"), "{err}");
        assert!(k_shot(&data, 0, 2, 0).is_err());
        assert!(k_shot(&data, 1, 1, 0)
            .unwrap_err()
            .to_string()
            .contains("label index 1"));
        let mut unlabelled = data.clone();
        unlabelled[3].label = None;
        assert!(k_shot(&unlabelled, 1, 2, 0)
            .unwrap_err()
            .to_string()
            .contains("example 3"));
    }

    #[test]
    fn shuffled_indices_is_a_deterministic_permutation() {
        for n in [0, 1, 2, 17, 100] {
            for epoch in 0..4 {
                let p = shuffled_indices(n, 7, epoch);
                let mut sorted = p.clone();
                sorted.sort();
                assert_eq!(sorted, (0..n).collect::<Vec<_>>());
                assert_eq!(p, shuffled_indices(n, 7, epoch));
            }
        }
        assert_ne!(shuffled_indices(100, 7, 0), shuffled_indices(100, 7, 1));
        assert_ne!(shuffled_indices(100, 7, 0), shuffled_indices(100, 8, 0));
        assert_ne!(shuffled_indices(100, 1, 0), shuffled_indices(100, 0, 1));
    }
}
