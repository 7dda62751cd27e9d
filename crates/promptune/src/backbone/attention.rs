//! Scaled dot-product attention with grouped key/value heads, masks built on the host, and
//! rotary position embeddings.

use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{activation, module, Bool, Device, Tensor, TensorData};

use super::layers::{dropout, float_tensor};
use crate::checkpoint::config::RopeConfig;

/// Attention over `q: [B, H, T, D]` and `k, v: [B, KV, S, D]` with the mask repeated for the
/// query group by [`group_mask`], `[B, 1, (H / KV) * T, S]` (true = may not attend; with
/// `H = KV` that is the plain `[B, 1, T, S]` mask). Returns `[B, T, H * D]`.
///
/// Query heads are grouped by key/value head (head `h` reads kv head `h / (H / KV)`, as
/// HF's `repeat_kv`), without copying the keys.
pub fn attend(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: &Tensor<4, Bool>,
    scale: f64,
    softcap: Option<f64>,
) -> Tensor<3> {
    let [b, h, t, d] = q.dims();
    let kv = k.dims()[1];
    let rep = h / kv;
    // Query heads that share a key/value head become extra query rows of that head, so one
    // attention call covers grouped-query attention without copying keys or values.
    let q = q.reshape([b, kv, rep * t, d]);
    let options = AttentionModuleOptions {
        scale: Some(scale),
        softcap,
        is_causal: false,
    };
    // The CPU backend fuses this (scores, softmax and the value product per head, without
    // materialising the score tensor); under autodiff burn decomposes it into differentiable
    // ops. A query that may attend to nothing (padding) gets a zero output.
    module::attention(q, k, v, Some(mask.clone()), None, options)
        .reshape([b, h, t, d])
        .swap_dims(1, 2)
        .reshape([b, t, h * d])
}

/// [`attend`] with an additive bias on the scores, `[B, H, T, S]` (T5's relative position
/// bias), for models without grouped key/value heads.
pub fn attend_biased(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: &Tensor<4, Bool>,
    bias: &Tensor<4>,
    scale: f64,
) -> Tensor<3> {
    let [b, h, t, d] = q.dims();
    let options = AttentionModuleOptions {
        scale: Some(scale),
        softcap: None,
        is_causal: false,
    };
    module::attention(q, k, v, Some(mask.clone()), Some(bias.clone()), options)
        .swap_dims(1, 2)
        .reshape([b, t, h * d])
}

/// [`attend`] in training mode with dropout on the attention probabilities (HF's
/// `attention_probs_dropout_prob`): each probability is zeroed with probability `p` and the others
/// scaled by `1 / (1 - p)`, the mask drawn from `seed`. The probabilities are materialised
/// (`[B, KV, (H / KV) * T, S]`), so this is only for training passes that ask for dropout; with
/// `p = 0` it computes what [`attend`] does, a query that may attend to nothing included (zero
/// output).
pub fn attend_with_dropout(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: &Tensor<4, Bool>,
    scale: f64,
    p: f32,
    seed: u64,
) -> Tensor<3> {
    let [b, h, t, d] = q.dims();
    let [_, kv, s, _] = k.dims();
    let rep = h / kv;
    let q = q.reshape([b, kv, rep * t, d]);
    let mask = mask.clone().expand([b, kv, rep * t, s]);
    // a large negative instead of -inf: a fully masked row softmaxes to uniform, not NaN, and is
    // then zeroed like the rest of the masked entries
    let scores = (q.matmul(k.swap_dims(2, 3)) * scale).mask_fill(mask.clone(), -1.0e30);
    let probs = activation::softmax(scores, 3).mask_fill(mask, 0.0);
    dropout(probs, p, seed)
        .matmul(v)
        .reshape([b, h, t, d])
        .swap_dims(1, 2)
        .reshape([b, t, h * d])
}

/// Repeats a `[B, 1, T, S]` mask for the `rep` query heads that share one key/value head,
/// giving the `[B, 1, rep * T, S]` layout [`attend`] uses; build it once per forward pass.
pub fn group_mask(mask: Tensor<4, Bool>, rep: usize) -> Tensor<4, Bool> {
    if rep > 1 {
        mask.repeat_dim(2, rep)
    } else {
        mask
    }
}

/// Splits `[B, T, heads * D]` into `[B, heads, T, D]`.
pub fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [b, t, w] = x.dims();
    x.reshape([b, t, heads, w / heads]).swap_dims(1, 2)
}

/// Which keys each query may see.
#[derive(Debug, Clone, Copy)]
pub struct MaskSpec {
    /// Causal (decoder) attention.
    pub causal: bool,
    /// Sliding window: a query at index `i` sees keys `j` with `i - j < window`.
    pub window: Option<usize>,
    /// The first `prefix_slots` keys of every row are prefix slots; the masked ones among
    /// them take no place in the row's sequence, so the sliding window measures distances
    /// without them (0: indices are positions, as without a per-row prefix mask).
    pub prefix_slots: usize,
}

/// Builds the boolean mask `[B, 1, T, S]` for `T` queries that follow `S - T` earlier keys
/// (prefixes and cached tokens). `key_valid` is `[B, S]` (0 = padding).
pub fn build_mask(
    batch: usize,
    queries: usize,
    key_valid: &[u8],
    spec: MaskSpec,
    device: &Device,
) -> Tensor<4, Bool> {
    let keys = key_valid.len() / batch;
    let past = keys - queries;
    let slots = spec.prefix_slots.min(keys);
    let mut data = Vec::with_capacity(batch * queries * keys);
    for b in 0..batch {
        let valid = &key_valid[b * keys..(b + 1) * keys];
        // place of each key in the row's own sequence: unused prefix slots take none
        let mut skipped = 0;
        let place: Vec<usize> = (0..keys)
            .map(|j| {
                if j > 0 && j <= slots && valid[j - 1] == 0 {
                    skipped += 1;
                }
                j - skipped
            })
            .collect();
        for i in 0..queries {
            let q = past + i;
            for (j, &ok) in valid.iter().enumerate() {
                let mut masked = ok == 0;
                if spec.causal && j > q {
                    masked = true;
                }
                if let Some(w) = spec.window {
                    if j <= q && place[q] - place[j] >= w {
                        masked = true;
                    }
                }
                data.push(masked);
            }
        }
    }
    Tensor::from_data(TensorData::new(data, [batch, 1, queries, keys]), device)
}

/// Rotary position embedding (HF's non-interleaved "rotate half" layout).
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
}

impl Rope {
    /// Frequencies for `head_dim` under `config`.
    pub fn new(config: &RopeConfig, head_dim: usize) -> Self {
        let half = head_dim / 2;
        let mut inv_freq: Vec<f64> = (0..half)
            .map(|i| 1.0 / config.theta.powf((2 * i) as f64 / head_dim as f64))
            .collect();
        if let Some((factor, low, high, original)) = config.llama3 {
            let low_wavelen = original / low;
            let high_wavelen = original / high;
            for f in inv_freq.iter_mut() {
                let wavelen = 2.0 * std::f64::consts::PI / *f;
                if wavelen > low_wavelen {
                    *f /= factor;
                } else if wavelen >= high_wavelen {
                    let smooth = (original / wavelen - low) / (high - low);
                    *f = (1.0 - smooth) * *f / factor + smooth * *f;
                }
            }
        }
        let inv_freq = inv_freq
            .into_iter()
            .map(|f| (f / config.linear_factor) as f32)
            .collect();
        Self { inv_freq }
    }

    /// `cos` and `sin` tables `[B, 1, T, D]` for per-row positions `[B, T]`.
    pub fn tables(
        &self,
        positions: &[i64],
        batch: usize,
        device: &Device,
    ) -> (Tensor<4>, Tensor<4>) {
        let t = positions.len() / batch;
        let half = self.inv_freq.len();
        let d = half * 2;
        let mut cos = Vec::with_capacity(positions.len() * d);
        let mut sin = Vec::with_capacity(positions.len() * d);
        for &p in positions {
            let start = cos.len();
            for &f in &self.inv_freq {
                let angle = (p as f32 * f) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
            cos.extend_from_within(start..start + half);
            sin.extend_from_within(start..start + half);
        }
        (
            float_tensor(cos, [batch, 1, t, d], device),
            float_tensor(sin, [batch, 1, t, d], device),
        )
    }

    /// Rotates `x: [B, H, T, D]`.
    pub fn apply(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
        let d = x.dims()[3];
        let x1 = x.clone().narrow(3, 0, d / 2);
        let x2 = x.clone().narrow(3, d / 2, d / 2);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos.clone() + rotated * sin.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::layers::to_vec;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn random(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = shape.iter().product();
        float_tensor(
            (0..n).map(|_| rng.random_range(-1.0..1.0)).collect(),
            shape,
            device,
        )
    }

    /// Two sequences with four keys (a prefix of one included) and three queries; the second
    /// has one padded key and a query that may see nothing at all.
    fn case(
        heads: usize,
        kv: usize,
        d: &Device,
    ) -> (Tensor<4>, Tensor<4>, Tensor<4>, Tensor<4, Bool>) {
        // [2, 1, 3 queries, 4 keys]: key 3 of sequence 2 is padding, its query 1 sees nothing
        let mut rows = vec![false; 24];
        for q in 0..3 {
            rows[12 + 4 * q + 3] = true;
        }
        rows[16..20].iter_mut().for_each(|m| *m = true);
        let mask = Tensor::from_data(TensorData::new(rows, [2, 1, 3, 4]), d);
        let mask = group_mask(mask, heads / kv);
        (
            random([2, heads, 3, 8], 1, d),
            random([2, kv, 4, 8], 2, d),
            random([2, kv, 4, 8], 3, d),
            mask,
        )
    }

    #[test]
    fn explicit_probabilities_without_dropout_match_the_fused_attention() {
        let d = Device::flex();
        for (heads, kv) in [(4, 4), (4, 2)] {
            let (q, k, v, mask) = case(heads, kv, &d);
            let fused = to_vec(attend(q.clone(), k.clone(), v.clone(), &mask, 0.35, None));
            let explicit = to_vec(attend_with_dropout(q, k, v, &mask, 0.35, 0.0, 9));
            assert_eq!(fused.len(), explicit.len());
            let worst = fused
                .iter()
                .zip(&explicit)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "heads {heads}/{kv}: max diff {worst}");
            // the query of sequence 2 that sees no key gets a zero output, as in the fused path
            let row = &explicit[(3 + 1) * heads * 8..(3 + 2) * heads * 8];
            assert!(row.iter().all(|x| *x == 0.0));
        }
    }

    #[test]
    fn probability_dropout_follows_its_seed_and_keeps_the_expectation() {
        let d = Device::flex();
        let (q, k, _, mask) = case(4, 4, &d);
        // values of ones: without dropout every visible query outputs exactly 1; with dropout
        // it outputs the kept probabilities' sum, scaled by 1/(1-p): 1 on average
        let v = Tensor::<4>::ones([2, 4, 4, 8], &d);
        let run = |seed| {
            to_vec(attend_with_dropout(
                q.clone(),
                k.clone(),
                v.clone(),
                &mask,
                0.35,
                0.5,
                seed,
            ))
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let visible: Vec<f32> = (0..400u64)
            .flat_map(|seed| {
                let out = run(seed);
                // sequence 1's queries (all see four keys)
                out[..3 * 4 * 8].to_vec()
            })
            .collect();
        let mean = visible.iter().sum::<f32>() / visible.len() as f32;
        assert!((mean - 1.0).abs() < 0.05, "mean {mean}");
        assert!(
            visible.iter().any(|x| (x - 1.0).abs() > 0.1),
            "dropout changed nothing"
        );
    }
}
