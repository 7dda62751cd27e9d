//! Scaled dot-product attention with grouped key/value heads, masks built on the host, and
//! rotary position embeddings.

use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{module, Bool, Device, Tensor, TensorData};

use super::config::RopeConfig;
use super::layers::float_tensor;

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
    let mut data = Vec::with_capacity(batch * queries * keys);
    for b in 0..batch {
        let valid = &key_valid[b * keys..(b + 1) * keys];
        for i in 0..queries {
            let q = past + i;
            for (j, &ok) in valid.iter().enumerate() {
                let mut masked = ok == 0;
                if spec.causal && j > q {
                    masked = true;
                }
                if let Some(w) = spec.window {
                    if j <= q && q - j >= w {
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
