//! The prompt encoder: a trainable input embedding `[n, hidden]` through an MLP or a
//! bidirectional LSTM + MLP, giving the soft-token embeddings `[n, hidden]`.
//!
//! Host names (our adapter and checkpoint format): [`EMBEDDING`], `p_tuning.mlp.{i}.weight`
//! (`[in, out]`) / `.bias` for the MLP's linear layers in order, and `p_tuning.lstm.{k}.w_ih`
//! (`[in, 4e]`), `.w_hh` (`[e, 4e]`), `.bias` (`[4e]`, PyTorch's `b_ih + b_hh`) for the LSTM
//! direction `k = 2 * layer + (0 forward | 1 backward)`, gates in PyTorch's order i, f, g, o.

use burn::tensor::{activation, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};

use super::EncoderType;
use crate::params::{HostTensor, Trainables};
use crate::{Error, Result};

/// Host name of the encoder's input embedding `[n, hidden]`.
pub const EMBEDDING: &str = "p_tuning.embedding";
/// Prefix of every host name of the encoder.
pub const PREFIX: &str = "p_tuning.";

/// Layers of the LSTM: PEFT's default `encoder_num_layers` (the only depth we build).
pub const LSTM_LAYERS: usize = 2;

/// A linear layer `x W + b`.
#[derive(Debug, Clone)]
pub struct EncoderLinear {
    /// `[in, out]`.
    pub weight: Tensor<2>,
    /// `[out]`.
    pub bias: Tensor<1>,
}

/// One direction of one LSTM layer.
#[derive(Debug, Clone)]
pub struct LstmDirection {
    /// Input weights `[in, 4e]`.
    pub w_ih: Tensor<2>,
    /// Recurrent weights `[e, 4e]`.
    pub w_hh: Tensor<2>,
    /// `[4e]`.
    pub bias: Tensor<1>,
}

impl LstmDirection {
    /// Runs over the rows of `x` `[n, in]` (backwards when `reverse`); returns `[n, e]`.
    fn run(&self, x: Tensor<2>, reverse: bool) -> Tensor<2> {
        let [n, _] = x.dims();
        let e = self.w_hh.dims()[0];
        let device = x.device();
        let xw = x.matmul(self.w_ih.clone()) + self.bias.clone().unsqueeze();
        let w_hh = self.w_hh.clone();
        let mut h: Tensor<2> = Tensor::zeros([1, e], &device);
        let mut c: Tensor<2> = Tensor::zeros([1, e], &device);
        let mut outs: Vec<Option<Tensor<2>>> = vec![None; n];
        let order: Vec<usize> = if reverse {
            (0..n).rev().collect()
        } else {
            (0..n).collect()
        };
        for t in order {
            let g = xw.clone().narrow(0, t, 1) + h.matmul(w_hh.clone());
            let i = activation::sigmoid(g.clone().narrow(1, 0, e));
            let f = activation::sigmoid(g.clone().narrow(1, e, e));
            let cand = g.clone().narrow(1, 2 * e, e).tanh();
            let o = activation::sigmoid(g.narrow(1, 3 * e, e));
            c = f * c + i * cand;
            h = o * c.clone().tanh();
            outs[t] = Some(h.clone());
        }
        Tensor::cat(
            outs.into_iter()
                .map(|o| o.expect("every step ran"))
                .collect(),
            0,
        )
    }
}

/// The prompt encoder, read from its trainable tensors (gradients flow back to them).
#[derive(Debug, Clone)]
pub struct PromptEncoderNet {
    /// Input embedding `[n, hidden]`.
    pub embedding: Tensor<2>,
    /// LSTM directions (`2 * layer + direction`); empty for the MLP encoder.
    pub lstm: Vec<LstmDirection>,
    /// Linear layers, ReLU between them.
    pub mlp: Vec<EncoderLinear>,
}

impl PromptEncoderNet {
    /// Number of soft tokens.
    pub fn len(&self) -> usize {
        self.embedding.dims()[0]
    }

    /// True for an empty prompt.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoder type.
    pub fn encoder_type(&self) -> EncoderType {
        if self.lstm.is_empty() {
            EncoderType::Mlp
        } else {
            EncoderType::Lstm
        }
    }

    /// Width of the soft tokens this encoder produces.
    pub fn output_width(&self) -> usize {
        self.mlp
            .last()
            .map(|l| l.bias.dims()[0])
            .unwrap_or_else(|| self.embedding.dims()[1])
    }

    /// The soft-token embeddings `[n, hidden]`.
    pub fn output(&self) -> Tensor<2> {
        let mut x = self.embedding.clone();
        for layer in self.lstm.chunks(2) {
            let fw = layer[0].run(x.clone(), false);
            let bw = layer[1].run(x, true);
            x = Tensor::cat(vec![fw, bw], 1);
        }
        let last = self.mlp.len().saturating_sub(1);
        for (i, l) in self.mlp.iter().enumerate() {
            x = x.matmul(l.weight.clone()) + l.bias.clone().unsqueeze();
            if i < last {
                x = activation::relu(x);
            }
        }
        x
    }

    /// Checks that the sizes chain, from the embedding through every layer to `hidden`.
    pub fn check(&self, hidden: usize) -> Result<()> {
        if !self.lstm.len().is_multiple_of(2) {
            return Err(Error::Shape(
                "a p-tuning LSTM needs a forward and a backward direction per layer".into(),
            ));
        }
        let mut width = self.embedding.dims()[1];
        for (k, d) in self.lstm.iter().enumerate() {
            let [i, g] = d.w_ih.dims();
            let [e, g2] = d.w_hh.dims();
            if i != width || g != 4 * e || g2 != g || d.bias.dims()[0] != g {
                return Err(Error::Shape(format!(
                    "p-tuning LSTM direction {k} does not chain: input {width} wide, w_ih [{i}, {g}], w_hh [{e}, {g2}]"
                )));
            }
            if k % 2 == 1 {
                width = 2 * e;
            }
        }
        for (k, l) in self.mlp.iter().enumerate() {
            let [i, o] = l.weight.dims();
            if i != width || l.bias.dims()[0] != o {
                return Err(Error::Shape(format!(
                    "p-tuning MLP layer {k} does not chain: input {width} wide, weight [{i}, {o}]"
                )));
            }
            width = o;
        }
        if width != hidden {
            return Err(Error::Shape(format!(
                "the p-tuning encoder produces soft tokens {width} wide; the model's hidden size is {hidden}"
            )));
        }
        Ok(())
    }
}

/// Host name of MLP layer `i`'s weight or bias (`part`).
pub fn mlp_name(i: usize, part: &str) -> String {
    format!("{PREFIX}mlp.{i}.{part}")
}

/// Host name of LSTM direction `k`'s `part` (`w_ih`, `w_hh`, `bias`).
pub fn lstm_name(k: usize, part: &str) -> String {
    format!("{PREFIX}lstm.{k}.{part}")
}

/// Host values of a fresh encoder over the input embedding `embedding` (`[n, hidden]`,
/// row-major): PyTorch's defaults, as PEFT's `PromptEncoder` starts, U(±1/√fan_in) for the
/// linear layers and U(±1/√e) for the LSTM, drawn from `seed`.
pub fn initial_encoder(
    kind: EncoderType,
    n: usize,
    hidden: usize,
    encoder_hidden: usize,
    embedding: Vec<f32>,
    seed: u64,
) -> Vec<HostTensor> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9_7075_6e65);
    let mut uniform = |len: usize, bound: f32| -> Vec<f32> {
        (0..len).map(|_| rng.random_range(-bound..bound)).collect()
    };
    let mut out = vec![HostTensor::new(EMBEDDING, vec![n, hidden], embedding)];
    let e = encoder_hidden;
    let dims: Vec<(usize, usize)> = match kind {
        EncoderType::Mlp => vec![(hidden, e), (e, e), (e, hidden)],
        EncoderType::Lstm => {
            let bound = 1.0 / (e as f32).sqrt();
            for layer in 0..LSTM_LAYERS {
                let input = if layer == 0 { hidden } else { 2 * e };
                for dir in 0..2 {
                    let k = 2 * layer + dir;
                    out.push(HostTensor::new(
                        lstm_name(k, "w_ih"),
                        vec![input, 4 * e],
                        uniform(input * 4 * e, bound),
                    ));
                    out.push(HostTensor::new(
                        lstm_name(k, "w_hh"),
                        vec![e, 4 * e],
                        uniform(e * 4 * e, bound),
                    ));
                    // PyTorch draws b_ih and b_hh separately; their sum is what runs
                    let b: Vec<f32> = uniform(4 * e, bound)
                        .into_iter()
                        .zip(uniform(4 * e, bound))
                        .map(|(a, b)| a + b)
                        .collect();
                    out.push(HostTensor::new(lstm_name(k, "bias"), vec![4 * e], b));
                }
            }
            vec![(2 * e, 2 * e), (2 * e, hidden)]
        }
    };
    for (i, (fan_in, fan_out)) in dims.into_iter().enumerate() {
        let bound = 1.0 / (fan_in as f32).sqrt();
        out.push(HostTensor::new(
            mlp_name(i, "weight"),
            vec![fan_in, fan_out],
            uniform(fan_in * fan_out, bound),
        ));
        out.push(HostTensor::new(
            mlp_name(i, "bias"),
            vec![fan_out],
            uniform(fan_out, bound),
        ));
    }
    out
}

/// The encoder in `params` (`None` when it has no [`EMBEDDING`]), its layers chained and
/// checked.
pub fn from_params(params: &Trainables) -> Result<Option<PromptEncoderNet>> {
    let Some(embedding) = params.matrix(EMBEDDING) else {
        if let Some(name) = params.names().find(|n| n.starts_with(PREFIX)) {
            return Err(Error::InvalidInput(format!(
                "p-tuning tensor `{name}` without the encoder's input embedding `{EMBEDDING}`"
            )));
        }
        return Ok(None);
    };
    let mut mlp = Vec::new();
    while let (Some(weight), Some(bias)) = (
        params.matrix(&mlp_name(mlp.len(), "weight")),
        params.vector(&mlp_name(mlp.len(), "bias")),
    ) {
        mlp.push(EncoderLinear { weight, bias });
    }
    let mut lstm = Vec::new();
    while let (Some(w_ih), Some(w_hh), Some(bias)) = (
        params.matrix(&lstm_name(lstm.len(), "w_ih")),
        params.matrix(&lstm_name(lstm.len(), "w_hh")),
        params.vector(&lstm_name(lstm.len(), "bias")),
    ) {
        lstm.push(LstmDirection { w_ih, w_hh, bias });
    }
    let used = 1 + 2 * mlp.len() + 3 * lstm.len();
    let all = params.names().filter(|n| n.starts_with(PREFIX)).count();
    if used != all || mlp.len() > 3 || lstm.len() > 2 * LSTM_LAYERS {
        return Err(Error::InvalidInput(format!(
            "the p-tuning encoder's tensors do not form an MLP or LSTM encoder ({all} tensors named `{PREFIX}*`, {} MLP layers, {} LSTM directions)",
            mlp.len(),
            lstm.len()
        )));
    }
    if mlp.is_empty() {
        return Err(Error::InvalidInput(
            "the p-tuning encoder has no MLP layers".into(),
        ));
    }
    let net = PromptEncoderNet {
        embedding,
        lstm,
        mlp,
    };
    let hidden = net.output_width();
    net.check(hidden)?;
    Ok(Some(net))
}
