//! Small building blocks shared by every family: linear layers, norms, activations, and
//! conversions between host vectors and tensors.

use burn::tensor::{activation, module, Device, Int, Tensor, TensorData};

/// A frozen linear layer `y = x W + b`, with `W` stored as `[in, out]` (burn's convention).
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[in, out]`.
    pub weight: Tensor<2>,
    /// `[out]`.
    pub bias: Option<Tensor<1>>,
    /// `[batch or 1, out]` added to the output of each batch row (the per-row bias hook:
    /// [`super::ForwardInput::bias_deltas`]); `None` outside such a pass.
    pub row_bias: Option<Tensor<2>>,
}

impl Linear {
    /// A layer with these weights and no per-row bias.
    pub fn new(weight: Tensor<2>, bias: Option<Tensor<1>>) -> Self {
        Self {
            weight,
            bias,
            row_bias: None,
        }
    }

    /// Applies the layer to the last dimension of `x`.
    ///
    /// The leading dimensions are folded into rows so that one `[rows, in] x [in, out]`
    /// matrix product runs (measured faster on the CPU backend than burn's batched
    /// broadcast product, which packs the weight once per batch row).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let y = if D <= 2 {
            module::linear(x, self.weight.clone(), self.bias.clone())
        } else {
            let mut dims = x.dims();
            let inp = dims[D - 1];
            let rows = dims[..D - 1].iter().product();
            let mut y = x.reshape([rows, inp]).matmul(self.weight.clone());
            if let Some(b) = &self.bias {
                y = y + b.clone().unsqueeze::<2>();
            }
            dims[D - 1] = self.out_features();
            y.reshape(dims)
        };
        add_row_bias(y, self.row_bias.as_ref())
    }

    /// One layer computing `parts` side by side: the weights are concatenated along the
    /// output dimension (a missing bias counts as zeros), so one product replaces several.
    pub fn fuse(parts: Vec<Linear>) -> Linear {
        let any_bias = parts.iter().any(|p| p.bias.is_some());
        let bias = any_bias.then(|| {
            Tensor::cat(
                parts
                    .iter()
                    .map(|p| {
                        p.bias.clone().unwrap_or_else(|| {
                            Tensor::zeros([p.out_features()], &p.weight.device())
                        })
                    })
                    .collect(),
                0,
            )
        });
        let weight = Tensor::cat(parts.into_iter().map(|p| p.weight).collect(), 1);
        Linear::new(weight, bias)
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.weight.dims()[1]
    }
}

/// Layer norm over the last dimension (biased variance, as PyTorch). burn's op, which the CPU
/// backend runs as one fused pass per row (decomposed into differentiable ops under autodiff).
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    weight: &Tensor<1>,
    bias: &Tensor<1>,
    eps: f64,
) -> Tensor<D> {
    module::layer_norm(x, weight.clone(), Some(bias.clone()), eps)
}

/// A LayerNorm's scale and shift (BERT, RoBERTa, GPT-2).
#[derive(Debug, Clone)]
pub struct Norm {
    /// Scale (`gamma`).
    pub weight: Tensor<1>,
    /// Shift (`beta`).
    pub bias: Tensor<1>,
    /// `[batch or 1, width]` added to each batch row's shift (the per-row bias hook).
    pub row_bias: Option<Tensor<2>>,
}

impl Norm {
    /// A norm with this scale and shift and no per-row shift.
    pub fn new(weight: Tensor<1>, bias: Tensor<1>) -> Self {
        Self {
            weight,
            bias,
            row_bias: None,
        }
    }

    /// [`layer_norm`] of `x` with this scale and shift.
    pub fn forward<const D: usize>(&self, x: Tensor<D>, eps: f64) -> Tensor<D> {
        add_row_bias(
            layer_norm(x, &self.weight, &self.bias, eps),
            self.row_bias.as_ref(),
        )
    }
}

/// `y` (`[batch, ..., width]`) plus row `b` of `rows` (`[batch or 1, width]`) on every vector
/// of batch row `b`; the caller has checked the batch sizes.
fn add_row_bias<const D: usize>(y: Tensor<D>, rows: Option<&Tensor<2>>) -> Tensor<D> {
    let Some(rows) = rows else {
        return y;
    };
    if D < 2 {
        return y;
    }
    let dims = y.dims();
    let width = dims[D - 1];
    let batch = dims[0];
    let middle = dims[1..D - 1].iter().product::<usize>();
    let y3: Tensor<3> = y.reshape([batch, middle, width]);
    (y3 + rows.clone().unsqueeze_dim::<3>(1)).reshape(dims)
}

/// RMS norm over the last dimension; `weight` is the effective multiplier (Gemma's `1 + w`
/// is folded in at load time).
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: &Tensor<1>, eps: f64) -> Tensor<D> {
    let mean_sq = x.clone().square().mean_dim(D - 1);
    x * (mean_sq + eps).sqrt().recip() * weight.clone().unsqueeze()
}

/// Applies the activation HF names `name`.
pub fn activate<const D: usize>(name: &str, x: Tensor<D>) -> Tensor<D> {
    match name {
        "silu" | "swish" => activation::silu(x),
        "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => activation::gelu_approximate(x),
        "relu" => activation::relu(x),
        _ => activation::gelu(x),
    }
}

pub use crate::checkpoint::config::is_known_activation;

/// Inverted dropout: each value is zeroed with probability `p`, the others scaled by
/// `1 / (1 - p)`. The mask is drawn on the host from `seed`, so a batch gets the same mask
/// whenever it is replayed (a resumed run repeats the interrupted one).
pub fn dropout<const D: usize>(x: Tensor<D>, p: f32, seed: u64) -> Tensor<D> {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    if p <= 0.0 {
        return x;
    }
    let dims = x.dims();
    let n: usize = dims.iter().product();
    let mut rng = StdRng::seed_from_u64(seed);
    let keep = 1.0 / (1.0 - p);
    let mask = (0..n)
        .map(|_| if rng.random::<f32>() < p { 0.0 } else { keep })
        .collect();
    let device = x.device();
    x * float_tensor(mask, dims, &device)
}

/// Looks up rows of an embedding table.
pub fn embed(table: &Tensor<2>, ids: Tensor<2, Int>) -> Tensor<3> {
    module::embedding(table.clone(), ids)
}

/// A float tensor from host data.
pub fn float_tensor<const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// An integer tensor from host data.
pub fn int_tensor<const D: usize>(
    values: Vec<i64>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Reads a float tensor back to the host.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap_or_default()
}
