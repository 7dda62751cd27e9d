//! Grouping example indices into batches: length-bucketed random batches for training,
//! sequential ones for evaluation.

use rand::seq::SliceRandom;

use super::sampling::{epoch_rng, shuffled_indices};

/// Random batches of similar-length examples, for less padding.
///
/// The indices `0..lengths.len()` are shuffled with (`seed`, `epoch`) (as
/// [`shuffled_indices`]), cut into chunks of `batch_size * bucket_factor`, each chunk is
/// sorted by length (stable) and cut into batches of `batch_size`, and the order of all the
/// batches is shuffled again. Every index appears in exactly one batch; only the last batch of
/// the last chunk may be short. The result is a function of (`lengths`, `batch_size`, `seed`,
/// `epoch`, `bucket_factor`).
///
/// `bucket_factor = 1` gives plain shuffled batches; larger factors trade randomness for less
/// padding. A `batch_size` or `bucket_factor` of 0 is treated as 1.
pub fn bucketed_batches(
    lengths: &[usize],
    batch_size: usize,
    seed: u64,
    epoch: usize,
    bucket_factor: usize,
) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let chunk_size = batch_size.saturating_mul(bucket_factor.max(1));
    let order = shuffled_indices(lengths.len(), seed, epoch);
    let mut batches: Vec<Vec<usize>> = Vec::with_capacity(lengths.len().div_ceil(batch_size));
    for chunk in order.chunks(chunk_size) {
        let mut chunk = chunk.to_vec();
        chunk.sort_by_key(|&i| lengths[i]);
        batches.extend(chunk.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut epoch_rng(seed, epoch, 1));
    batches
}

/// Batches for inference: indices sorted by length (stable, so ties keep file order), then cut
/// into batches of `batch_size`, so each batch pads to nearly its own rows' length. Callers
/// put results back by index.
pub fn length_sorted_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// `0..n` in order, in batches of `batch_size` (the last may be short); for evaluation. A
/// `batch_size` of 0 is treated as 1.
pub fn sequential_batches(n: usize, batch_size: usize) -> Vec<Vec<usize>> {
    let indices: Vec<usize> = (0..n).collect();
    indices
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Every index of `0..n` exactly once.
    fn assert_partition(batches: &[Vec<usize>], n: usize) {
        let mut all: Vec<usize> = batches.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
        assert!(batches.iter().all(|b| !b.is_empty()));
    }

    /// Total padding: sum over batches of (max length - length).
    fn padding(lengths: &[usize], batches: &[Vec<usize>]) -> usize {
        batches
            .iter()
            .map(|b| {
                let max = b.iter().map(|&i| lengths[i]).max().unwrap();
                b.iter().map(|&i| max - lengths[i]).sum::<usize>()
            })
            .sum()
    }

    #[test]
    fn bucketed_batches_invariants() {
        let mut rng = StdRng::seed_from_u64(99);
        for case in 0..200 {
            let n = rng.random_range(0..300);
            let lengths: Vec<usize> = (0..n).map(|_| rng.random_range(1..128)).collect();
            let batch_size = rng.random_range(1..40);
            let factor = rng.random_range(1..8);
            let seed = rng.random::<u64>();
            let epoch = rng.random_range(0..5);
            let batches = bucketed_batches(&lengths, batch_size, seed, epoch, factor);
            assert_partition(&batches, n);
            assert_eq!(batches.len(), n.div_ceil(batch_size), "case {case}");
            let short = batches.iter().filter(|b| b.len() < batch_size).count();
            assert!(short <= 1, "case {case}: {short} short batches");
            assert!(batches.iter().all(|b| b.len() <= batch_size));
            assert_eq!(
                batches,
                bucketed_batches(&lengths, batch_size, seed, epoch, factor)
            );
        }
    }

    #[test]
    fn length_sorted_batches_cover_everything_in_length_order() {
        let lengths = [5, 1, 9, 1, 3, 7, 2];
        let batches = length_sorted_batches(&lengths, 3);
        assert_eq!(batches, vec![vec![1, 3, 6], vec![4, 0, 5], vec![2]]);
        assert_partition(&batches, lengths.len());
        assert!(length_sorted_batches(&[], 4).is_empty());
    }

    #[test]
    fn bucketed_batches_vary_by_epoch_and_seed() {
        let lengths: Vec<usize> = (0..200).map(|i| (i * 37) % 101).collect();
        let a = bucketed_batches(&lengths, 8, 1, 0, 4);
        assert_ne!(a, bucketed_batches(&lengths, 8, 1, 1, 4));
        assert_ne!(a, bucketed_batches(&lengths, 8, 2, 0, 4));
    }

    #[test]
    fn bucketing_reduces_padding() {
        let mut rng = StdRng::seed_from_u64(5);
        let lengths: Vec<usize> = (0..2000).map(|_| rng.random_range(1..256)).collect();
        let plain = bucketed_batches(&lengths, 16, 3, 0, 1);
        let bucketed = bucketed_batches(&lengths, 16, 3, 0, 50);
        assert!(padding(&lengths, &bucketed) * 4 < padding(&lengths, &plain));
        // with factor 1 a batch holds the same members as the plain shuffled chunk
        let order = shuffled_indices(lengths.len(), 3, 0);
        let mut expected: Vec<Vec<usize>> = order
            .chunks(16)
            .map(|c| {
                let mut c = c.to_vec();
                c.sort();
                c
            })
            .collect();
        let mut got: Vec<Vec<usize>> = plain
            .into_iter()
            .map(|mut b| {
                b.sort();
                b
            })
            .collect();
        expected.sort();
        got.sort();
        assert_eq!(got, expected);
    }

    #[test]
    fn zero_sizes_are_treated_as_one() {
        assert_partition(&bucketed_batches(&[3, 1, 2], 0, 0, 0, 0), 3);
        assert_eq!(sequential_batches(2, 0), vec![vec![0], vec![1]]);
    }

    #[test]
    fn sequential_batches_in_order() {
        assert_eq!(sequential_batches(0, 4), Vec::<Vec<usize>>::new());
        assert_eq!(
            sequential_batches(5, 2),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
        for n in 0..50 {
            for bs in 1..10 {
                let b = sequential_batches(n, bs);
                assert_eq!(b.concat(), (0..n).collect::<Vec<_>>());
                assert_eq!(b.len(), n.div_ceil(bs));
            }
        }
    }
}
