//! Prefix-Tuning (Li & Liang 2021): trainable keys and values that every attention layer
//! sees in front of the real tokens, through the backbone's [`LayerPrefix`] hook.
//!
//! The prefix of all layers is one matrix `[n, layers * 2 * kv_dim]` (`kv_dim = kv_heads *
//! head_dim`, so grouped-query models get prefixes of their key/value width), laid out as PEFT
//! lays out `past_key_values` (see [`layout`]). Two parametrisations, as PEFT's
//! `prefix_projection`:
//! - direct (`false`, PEFT's default and P-Tuning v2's choice): the matrix itself is trained;
//! - MLP (`true`, the paper's reparametrisation): an embedding `[n, token_dim]` goes through
//!   `Linear(token_dim, encoder_hidden) → tanh → Linear(encoder_hidden, layers * 2 * kv_dim)`.
//!   `token_dim` is PEFT's: the model's `kv_dim` (the hidden size without GQA, since PEFT
//!   sets `token_dim = kv_heads * head_dim` for models with key/value heads).
//!
//! After training the MLP is folded away ([`fold`]): adapters store the projected matrix
//! only, exactly what PEFT saves as `prompt_embeddings` for PREFIX_TUNING. Resumable
//! checkpoints keep the MLP weights.
//!
//! Initialisation ([`initial_prefix`]) is PEFT's `PrefixEncoder`: the embedding is N(0, 1)
//! (`torch.nn.Embedding`'s default), the linear layers take `torch.nn.Linear`'s default
//! U(±1/√fan_in) for weights and biases. Unless the task asks for `init = random`, a direct
//! prefix then starts from the keys and values of real tokens instead ([`task_prefix`],
//! [`activation_prefix`]: the paper's initialisation from word activations). N(0, 1) keys and
//! values at every layer leave a pretrained model near chance: SmolLM2-135M on SST-2 (1,000
//! examples, one epoch, lr 1e-2) stays at 51.5% dev accuracy, where a prefix started from the
//! activations of a task description goes from 63.8% to 86.2%.

mod activations;
mod fold;
mod init;
pub mod layout;

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

pub use activations::{activation_prefix, init_token_ids};
pub use fold::fold;
pub use init::{initial_prefix, task_prefix};
pub use layout::{layer_prefixes, peft_offset};

use crate::backbone::{BackboneConfig, LayerPrefix};
use crate::{Error, Result};

/// Host name of the prefix embedding (`[n, width]` direct or folded, `[n, token_dim]` with
/// the MLP).
pub const EMBEDDING: &str = "prefix.embedding";
/// Host name of the MLP's first weight, `[token_dim, encoder_hidden]` (`[in, out]`).
pub const MLP_IN_WEIGHT: &str = "prefix.mlp.in.weight";
/// Host name of the MLP's first bias, `[encoder_hidden]`.
pub const MLP_IN_BIAS: &str = "prefix.mlp.in.bias";
/// Host name of the MLP's second weight, `[encoder_hidden, width]` (`[in, out]`).
pub const MLP_OUT_WEIGHT: &str = "prefix.mlp.out.weight";
/// Host name of the MLP's second bias, `[width]`.
pub const MLP_OUT_BIAS: &str = "prefix.mlp.out.bias";

/// The prefix-tuning settings of a task (the `[method]` keys of `kind = "prefix_tuning"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixSettings {
    /// Prefix length: key/value positions added in front of every layer.
    pub num_virtual_tokens: usize,
    /// Train through the MLP (PEFT's `prefix_projection`).
    pub prefix_projection: bool,
    /// Hidden width of the MLP (default: `token_dim`, PEFT's default).
    pub encoder_hidden_size: Option<usize>,
}

/// The sizes a prefix must have for one backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixShape {
    /// Attention layers.
    pub num_layers: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl PrefixShape {
    /// The shape for `cfg`.
    pub fn of(cfg: &BackboneConfig) -> Self {
        Self {
            num_layers: cfg.num_layers,
            kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
        }
    }

    /// Keys (or values) of one layer and position: PEFT's `token_dim` for prefix tuning.
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Width of the prefix matrix, `layers * 2 * kv_dim`.
    pub fn width(&self) -> usize {
        self.num_layers * 2 * self.kv_dim()
    }
}

/// Checks that a prefix of `n` positions leaves room for at least one token in a model of
/// `max_positions` positions.
pub fn check_fits(n: usize, max_positions: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::InvalidInput(
            "prefix tuning needs num_virtual_tokens >= 1".into(),
        ));
    }
    if n >= max_positions {
        return Err(Error::Shape(format!(
            "a prefix of {n} virtual tokens does not fit the model's context of {max_positions} positions (it must leave room for the input tokens)"
        )));
    }
    Ok(())
}

/// The MLP of the reparametrisation.
#[derive(Module, Debug)]
pub struct PrefixMlp {
    /// `[token_dim, encoder_hidden]`.
    pub in_weight: Param<Tensor<2>>,
    /// `[encoder_hidden]`.
    pub in_bias: Param<Tensor<1>>,
    /// `[encoder_hidden, width]`.
    pub out_weight: Param<Tensor<2>>,
    /// `[width]`.
    pub out_bias: Param<Tensor<1>>,
}

/// The trainable prefix of every layer.
#[derive(Module, Debug)]
pub struct Prefix {
    /// `[n, width]` (direct) or `[n, token_dim]` (through [`Prefix::mlp`]).
    pub embedding: Param<Tensor<2>>,
    /// The reparametrisation, when trained through it.
    pub mlp: Option<PrefixMlp>,
}

impl Prefix {
    /// Prefix length.
    pub fn len(&self) -> usize {
        self.embedding.val().dims()[0]
    }

    /// True for an empty prefix.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Width of the prefix matrix this module produces.
    pub fn width(&self) -> usize {
        match &self.mlp {
            Some(m) => m.out_weight.val().dims()[1],
            None => self.embedding.val().dims()[1],
        }
    }

    /// The prefix matrix `[n, width]` (through the MLP when there is one).
    pub fn matrix(&self) -> Tensor<2> {
        let e = self.embedding.val();
        match &self.mlp {
            None => e,
            Some(m) => {
                let h = (e.matmul(m.in_weight.val()) + m.in_bias.val().unsqueeze()).tanh();
                h.matmul(m.out_weight.val()) + m.out_bias.val().unsqueeze()
            }
        }
    }

    /// Checks the sizes against a backbone, so that no tensor operation sees a bad shape.
    pub fn check(&self, cfg: &BackboneConfig) -> Result<()> {
        let shape = PrefixShape::of(cfg);
        check_fits(self.len(), cfg.max_positions)?;
        if self.width() != shape.width() {
            return Err(Error::Shape(format!(
                "the prefix is {} wide; this model needs {} ({} layers x 2 x {} key/value heads x {} head dim)",
                self.width(),
                shape.width(),
                shape.num_layers,
                shape.kv_heads,
                shape.head_dim
            )));
        }
        if let Some(m) = &self.mlp {
            let [d, enc] = m.in_weight.val().dims();
            let [enc2, _] = m.out_weight.val().dims();
            let d_emb = self.embedding.val().dims()[1];
            if d != d_emb
                || enc != enc2
                || m.in_bias.val().dims()[0] != enc
                || m.out_bias.val().dims()[0] != self.width()
            {
                return Err(Error::Shape(format!(
                    "prefix MLP sizes do not chain: embedding {d_emb} wide, first layer [{d}, {enc}], second [{enc2}, {}]",
                    self.width()
                )));
            }
        }
        Ok(())
    }

    /// Per-layer keys and values `[1, kv_heads, n, head_dim]` for the backbone's hook.
    pub fn layers(&self, cfg: &BackboneConfig) -> Result<Vec<LayerPrefix>> {
        self.check(cfg)?;
        Ok(layer_prefixes(self.matrix(), PrefixShape::of(cfg)))
    }
}
