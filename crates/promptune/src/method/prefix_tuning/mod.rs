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

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

pub use activations::{activation_prefix, init_token_ids};
pub use fold::fold;
pub use init::{initial_prefix, task_prefix};
pub use layout::{layer_prefixes, peft_offset};

use super::prompt_tuning::PromptInit;
use super::unfreeze::Unfreeze;
use super::{AdapterHooks, InitContext, Method};
use crate::backbone::{BackboneInfo, LayerPrefix};
use crate::params::{HostTensor, Trainables};
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
    /// The shape for a backbone.
    pub fn of(info: &BackboneInfo) -> Self {
        Self {
            num_layers: info.num_layers,
            kv_heads: info.num_kv_heads,
            head_dim: info.head_dim,
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

/// Which attention a prefix stands in front of. Its tensors are named under
/// [`PrefixSite::tensor_prefix`]: a decoder-only model's (or an encoder's) `prefix.*`, an
/// encoder-decoder's decoder self-attention `prefix.decoder.*` and cross-attention
/// `prefix.cross.*`, each with its own length, parametrisation and MLP (Li & Liang's
/// encoder-decoder prefixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixSite {
    /// The self-attention of a decoder-only model, or of an encoder-decoder's encoder.
    Main,
    /// An encoder-decoder's decoder self-attention.
    Decoder,
    /// An encoder-decoder's cross-attention (before the encoder's keys).
    Cross,
}

impl PrefixSite {
    /// Every site, in the order adapters list them.
    pub const ALL: [PrefixSite; 3] = [PrefixSite::Main, PrefixSite::Decoder, PrefixSite::Cross];

    /// The start of this site's tensor names.
    pub fn tensor_prefix(self) -> &'static str {
        match self {
            PrefixSite::Main => "prefix.",
            PrefixSite::Decoder => "prefix.decoder.",
            PrefixSite::Cross => "prefix.cross.",
        }
    }

    /// The name of this site's tensor `main_name` (one of [`EMBEDDING`], [`MLP_IN_WEIGHT`],
    /// ... as named for [`PrefixSite::Main`]).
    pub fn name(self, main_name: &str) -> String {
        let rest = main_name.strip_prefix("prefix.").unwrap_or(main_name);
        format!("{}{rest}", self.tensor_prefix())
    }

    /// The sizes of this site's prefix on a backbone (decoder and cross sites have the
    /// decoder's layers).
    pub fn shape(self, info: &BackboneInfo) -> PrefixShape {
        let mut shape = PrefixShape::of(info);
        if self != PrefixSite::Main {
            shape.num_layers = info.decoder_layers;
        }
        shape
    }

    /// Whether a backbone has this site.
    pub fn exists_in(self, info: &BackboneInfo) -> bool {
        self == PrefixSite::Main || info.has_site(crate::backbone::AttentionSite::Cross)
    }

    /// The sites a placement puts prefixes at on a backbone.
    pub fn placed(placement: PrefixPlacement, info: &BackboneInfo) -> Vec<PrefixSite> {
        if !info.has_site(crate::backbone::AttentionSite::Cross) {
            return vec![PrefixSite::Main];
        }
        match placement {
            PrefixPlacement::AllSites => PrefixSite::ALL.to_vec(),
            PrefixPlacement::Peft => vec![PrefixSite::Decoder],
        }
    }

    /// What the site is called in messages.
    pub fn describe(self) -> &'static str {
        match self {
            PrefixSite::Main => "self-attention",
            PrefixSite::Decoder => "decoder self-attention",
            PrefixSite::Cross => "cross-attention",
        }
    }
}

/// Where an encoder-decoder model gets prefixes (decoder-only models and encoders have one
/// site, their self-attention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefixPlacement {
    /// Encoder self-attention, decoder self-attention and cross-attention, each its own
    /// prefix (Li & Liang's summarisation setup).
    #[default]
    AllSites,
    /// Decoder self-attention only: what PEFT 0.21's PREFIX_TUNING reaches on T5 and BART
    /// (PEFT also feeds decoder layers `i` and `i + layers / 2` one prefix; trained here per
    /// layer, such an adapter exports to PEFT only when those layers agree).
    Peft,
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
#[derive(Debug, Clone)]
pub struct PrefixMlp {
    /// `[token_dim, encoder_hidden]`.
    pub in_weight: Tensor<2>,
    /// `[encoder_hidden]`.
    pub in_bias: Tensor<1>,
    /// `[encoder_hidden, width]`.
    pub out_weight: Tensor<2>,
    /// `[width]`.
    pub out_bias: Tensor<1>,
}

impl PrefixMlp {
    /// Checks that the layers chain from an embedding `d_emb` wide to the output width.
    fn check_chain(&self, d_emb: usize) -> Result<()> {
        let [d, enc] = self.in_weight.dims();
        let [enc2, width] = self.out_weight.dims();
        let (b1, b2) = (self.in_bias.dims()[0], self.out_bias.dims()[0]);
        if d != d_emb || enc != enc2 || b1 != enc || b2 != width {
            return Err(Error::Shape(format!(
                "prefix MLP sizes do not chain: embedding {d_emb} wide, layers [{d}, {enc}] and [{enc2}, {width}], biases {b1} and {b2}"
            )));
        }
        Ok(())
    }
}

/// The trainable prefix of every layer, read from its tensors (gradients flow back to them).
#[derive(Debug, Clone)]
pub struct Prefix {
    /// `[n, width]` (direct) or `[n, token_dim]` (through [`Prefix::mlp`]).
    pub embedding: Tensor<2>,
    /// The reparametrisation, when trained through it.
    pub mlp: Option<PrefixMlp>,
}

impl Prefix {
    /// Prefix length.
    pub fn len(&self) -> usize {
        self.embedding.dims()[0]
    }

    /// True for an empty prefix.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Width of the prefix matrix this module produces.
    pub fn width(&self) -> usize {
        match &self.mlp {
            Some(m) => m.out_weight.dims()[1],
            None => self.embedding.dims()[1],
        }
    }

    /// The prefix matrix `[n, width]` (through the MLP when there is one).
    pub fn matrix(&self) -> Tensor<2> {
        let e = self.embedding.clone();
        match &self.mlp {
            None => e,
            Some(m) => {
                let h = (e.matmul(m.in_weight.clone()) + m.in_bias.clone().unsqueeze()).tanh();
                h.matmul(m.out_weight.clone()) + m.out_bias.clone().unsqueeze()
            }
        }
    }

    /// Checks the sizes against a backbone, so that no tensor operation sees a bad shape.
    pub fn check(&self, info: &BackboneInfo) -> Result<()> {
        self.check_at(info, PrefixSite::Main)
    }

    /// [`Prefix::check`] for the prefix of `site`.
    pub fn check_at(&self, info: &BackboneInfo, site: PrefixSite) -> Result<()> {
        if !site.exists_in(info) {
            return Err(Error::InvalidInput(format!(
                "a {} prefix (`{}*` tensors) needs an encoder-decoder model; {} has no such site",
                site.describe(),
                site.tensor_prefix(),
                info.family
            )));
        }
        let shape = site.shape(info);
        check_fits(self.len(), info.max_positions)?;
        if self.width() != shape.width() {
            return Err(Error::Shape(format!(
                "the {} prefix is {} wide; this model needs {} ({} layers x 2 x {} key/value heads x {} head dim)",
                site.describe(),
                self.width(),
                shape.width(),
                shape.num_layers,
                shape.kv_heads,
                shape.head_dim
            )));
        }
        match &self.mlp {
            Some(m) => m.check_chain(self.embedding.dims()[1]),
            None => Ok(()),
        }
    }

    /// Per-layer keys and values `[1, kv_heads, n, head_dim]` for the backbone's hook.
    pub fn layers(&self, info: &BackboneInfo) -> Result<Vec<LayerPrefix>> {
        self.layers_at(info, PrefixSite::Main)
    }

    /// [`Prefix::layers`] for the prefix of `site`.
    pub fn layers_at(&self, info: &BackboneInfo, site: PrefixSite) -> Result<Vec<LayerPrefix>> {
        self.check_at(info, site)?;
        Ok(layer_prefixes(self.matrix(), site.shape(info)))
    }

    /// The prefix in `params` (`None` without [`EMBEDDING`]); an MLP must be complete and
    /// its sizes must chain.
    pub fn from_params(params: &Trainables) -> Result<Option<Self>> {
        Self::from_params_at(params, PrefixSite::Main)
    }

    /// [`Prefix::from_params`] for the tensors of `site`.
    pub fn from_params_at(params: &Trainables, site: PrefixSite) -> Result<Option<Self>> {
        let [embedding_name, in_w, in_b, out_w, out_b] = [
            EMBEDDING,
            MLP_IN_WEIGHT,
            MLP_IN_BIAS,
            MLP_OUT_WEIGHT,
            MLP_OUT_BIAS,
        ]
        .map(|n| site.name(n));
        let mlp_names = [&in_w, &in_b, &out_w, &out_b];
        let present = mlp_names
            .iter()
            .filter(|n| params.dims(n).is_some())
            .count();
        let mlp = match (
            params.matrix(&in_w),
            params.vector(&in_b),
            params.matrix(&out_w),
            params.vector(&out_b),
        ) {
            (Some(in_weight), Some(in_bias), Some(out_weight), Some(out_bias)) => Some(PrefixMlp {
                in_weight,
                in_bias,
                out_weight,
                out_bias,
            }),
            _ if present == 0 => None,
            _ => {
                return Err(Error::InvalidInput(format!(
                    "a prefix MLP needs all of `{in_w}` and `{out_w}` (2-D) and `{in_b}` and `{out_b}` (1-D)"
                )))
            }
        };
        let Some(embedding) = params.matrix(&embedding_name) else {
            if mlp.is_some() || params.dims(&embedding_name).is_some() {
                return Err(Error::InvalidInput(format!(
                    "a prefix needs its 2-D embedding `{embedding_name}`"
                )));
            }
            return Ok(None);
        };
        if let Some(m) = &mlp {
            // the sizes must chain before any product runs
            m.check_chain(embedding.dims()[1])?;
        }
        Ok(Some(Self { embedding, mlp }))
    }
}

/// The `[method]` settings of `kind = "prefix_tuning"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrefixTuningConfig {
    /// Initialisation. Without projection: the keys and values the model computes for real
    /// tokens (Li & Liang's initialisation from word activations) of `text`'s tokens, of
    /// sampled vocabulary (default) or of the label words; or `random`, PEFT's N(0, 1). With
    /// `prefix_projection` the MLP starts as PEFT's and this is not used.
    pub init: PromptInit,
    /// Prefix length: key/value positions added to every layer (default 20).
    pub num_virtual_tokens: usize,
    /// Train the prefixes through a two-layer tanh MLP (the paper's reparametrisation, PEFT's
    /// `prefix_projection = true`), folded away when the adapter is saved; `false` (default,
    /// as PEFT) trains them directly (P-Tuning v2). The MLP wants a far smaller learning rate
    /// (the paper: 5e-5; SmolLM2 on SST-2 collapsed to one class at 1e-3).
    pub prefix_projection: bool,
    /// Hidden width of the MLP (default: the model's key/value width `kv_heads * head_dim`,
    /// PEFT's default `token_dim`).
    pub encoder_hidden_size: Option<usize>,
    /// Backbone weights trained beside the prefix: `none` (default), `biases` or `all`.
    pub unfreeze: Unfreeze,
    /// Where an encoder-decoder model gets prefixes: `all_sites` (default: encoder,
    /// decoder and cross-attention, the paper's) or `peft` (decoder self-attention only, as
    /// PEFT). Decoder-only models and encoders have one site.
    pub placement: PrefixPlacement,
}

impl Default for PrefixTuningConfig {
    fn default() -> Self {
        Self {
            init: PromptInit::default(),
            num_virtual_tokens: 20,
            prefix_projection: false,
            encoder_hidden_size: None,
            unfreeze: Unfreeze::None,
            placement: PrefixPlacement::AllSites,
        }
    }
}

impl PrefixTuningConfig {
    /// The keys of this config.
    pub const FIELDS: &'static [&'static str] = &[
        "init",
        "num_virtual_tokens",
        "prefix_projection",
        "encoder_hidden_size",
        "unfreeze",
        "placement",
    ];

    /// The sizes of the prefix.
    pub fn settings(&self) -> PrefixSettings {
        PrefixSettings {
            num_virtual_tokens: self.num_virtual_tokens,
            prefix_projection: self.prefix_projection,
            encoder_hidden_size: self.encoder_hidden_size,
        }
    }

    /// The initial prefix ([`task_prefix`]) of a decoder-only model or an encoder; on an
    /// encoder-decoder model one prefix per placed site, each from its own seed (PEFT's
    /// N(0, 1) or MLP initialisation: word activations need a decoder-only model).
    pub fn initial_tensors(&self, ctx: &InitContext) -> Result<Vec<HostTensor>> {
        let info = ctx.backbone.info();
        let sites = PrefixSite::placed(self.placement, &info);
        if sites == [PrefixSite::Main] {
            return task_prefix(
                &self.settings(),
                &self.init,
                ctx.backbone,
                ctx.tokenizer,
                ctx.label_words,
                ctx.longest_input,
                ctx.seed,
            );
        }
        if !self.prefix_projection && self.init != PromptInit::Random {
            return Err(Error::InvalidInput(
                "an encoder-decoder prefix starts from noise: set `init = { kind = \"random\" }` \
                 or train it through the MLP (`prefix_projection = true`); initialising from \
                 word activations needs a decoder-only model"
                    .into(),
            ));
        }
        let mut out = Vec::new();
        for (i, site) in sites.into_iter().enumerate() {
            let seed = ctx.seed ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
            let tensors = initial_prefix(
                &self.settings(),
                site.shape(&info),
                info.max_positions,
                seed,
            )?;
            out.extend(tensors.into_iter().map(|mut t| {
                t.name = site.name(&t.name);
                t
            }));
        }
        Ok(out)
    }
}

/// The registry entry: `prefix.*` tensors become every layer's key/value prefix.
pub struct PrefixTuning;

impl Method for PrefixTuning {
    fn kind(&self) -> &'static str {
        "prefix_tuning"
    }

    fn owns(&self, name: &str) -> bool {
        name.starts_with("prefix.")
    }

    fn contribute(
        &self,
        params: &Trainables,
        info: &BackboneInfo,
        hooks: &mut AdapterHooks,
    ) -> Result<()> {
        for site in PrefixSite::ALL {
            if let Some(p) = Prefix::from_params_at(params, site)? {
                hooks.set_site_prefix(site, p.layers_at(info, site)?, self.kind())?;
            }
        }
        Ok(())
    }

    fn adapter_tensors(
        &self,
        tensors: Vec<HostTensor>,
        device: &Device,
    ) -> Result<Vec<HostTensor>> {
        fold(&tensors, device)
    }
}
