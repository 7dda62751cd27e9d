//! Frozen transformer backbones with prompt hooks.
//!
//! One forward API ([`Backbone::forward`]) for every family: token ids plus the hooks of
//! [`hooks`]; outputs are hidden states and, only where asked, LM logits for a subset of
//! the vocabulary. Each family implements [`FamilyModel`] in a file of its own; [`Backbone`]
//! validates every input once, then hands it to the family, and [`Backbone::info`] is all a
//! method may know of it. Weights are plain (non-autodiff) tensors, so no gradient is ever kept for
//! them; trainable hook tensors may live on an autodiff device and gradients flow to them.

pub mod attention;
pub mod bart;
pub mod bert;
pub mod decoder;
pub mod gemma3;
pub mod gpt2;
pub mod hooks;
pub mod info;
pub mod kv_cache;
pub mod layers;
pub mod llama;
mod loader;
mod prepare;
mod seq2seq;
pub mod t5;
pub mod tensors;

use burn::tensor::{Device, Int, Tensor};

pub use crate::checkpoint::config::{BackboneConfig, Family, RopeConfig};
pub use hooks::{
    BiasDelta, DecoderInput, DeepTokens, EncoderOutput, ForwardInput, ForwardOutput, LayerPrefix,
    LogitPositions, LogitsRequest, PaddingSide, SoftEmbeddings, TokenBatch,
};
pub use info::{AttentionSite, BackboneInfo, Modality, PrefixPositions};
pub use kv_cache::KvCache;
pub use tensors::TensorSlot;

use crate::checkpoint::weights::WeightSource;
use crate::Result;

/// What one transformer family implements (BERT/RoBERTa in [`bert`], Llama in [`llama`], Gemma 3
/// in [`gemma3`], both on the blocks of [`decoder`], GPT-2 in [`gpt2`], BART in [`bart`], T5 in [`t5`]). Inputs arrive validated against [`FamilyModel::config`].
pub trait FamilyModel: std::fmt::Debug + Send + Sync {
    /// The sizes and options it was loaded with.
    fn config(&self) -> &BackboneConfig;
    /// The device holding the weights.
    fn device(&self) -> Device;
    /// Rows of the LM head (0 when the checkpoint has none).
    fn output_vocab(&self) -> usize;
    /// Number of parameters in the checkpoint (tied weights counted once).
    fn num_parameters(&self) -> usize;
    /// Calls `f` on every weight with its name (see [`tensors`]).
    fn visit_tensors(&mut self, f: &mut dyn FnMut(&str, TensorSlot));
    /// The embeddings of token ids `idx` as the first layer sees them.
    fn embed(&self, idx: Tensor<1, Int>) -> Tensor<2>;
    /// Runs the model; `cache` only for families that [`FamilyModel::caches_keys`].
    fn forward(&self, input: &ForwardInput, cache: Option<&mut KvCache>) -> ForwardOutput;
    /// The model's pooled output of `last_hidden`, when it has a pooler.
    fn pool(&self, last_hidden: &Tensor<3>) -> Option<Tensor<2>>;
    /// What methods may know of it.
    fn info(&self) -> BackboneInfo;
    /// Whether it decodes incrementally with a KV cache.
    fn caches_keys(&self) -> bool;
    /// A copy (weights are shared until one is replaced).
    fn boxed_clone(&self) -> Box<dyn FamilyModel>;
}

/// A loaded frozen backbone of any supported family.
#[derive(Debug)]
pub struct Backbone {
    model: Box<dyn FamilyModel>,
}

impl Clone for Backbone {
    fn clone(&self) -> Self {
        Self {
            model: self.model.boxed_clone(),
        }
    }
}

/// The loader of a family's weights.
type LoadFamily = fn(BackboneConfig, &dyn WeightSource, &Device) -> Result<Box<dyn FamilyModel>>;

/// Every family and its loader: the one place that matches on [`Family`].
fn loader(family: Family) -> LoadFamily {
    match family {
        Family::Bert | Family::Roberta => |c, w, d| Ok(Box::new(bert::Encoder::load(c, w, d)?)),
        Family::Llama => |c, w, d| Ok(Box::new(llama::load(c, w, d)?)),
        Family::Gemma3 => |c, w, d| Ok(Box::new(gemma3::load(c, w, d)?)),
        Family::Gpt2 => |c, w, d| Ok(Box::new(gpt2::load(c, w, d)?)),
        Family::Bart => |c, w, d| Ok(Box::new(bart::load(c, w, d)?)),
        Family::T5 => |c, w, d| Ok(Box::new(t5::load(c, w, d)?)),
    }
}

impl Backbone {
    /// Builds the backbone described by `config` from `weights` onto `device`.
    pub fn load(
        config: BackboneConfig,
        weights: &dyn WeightSource,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let model = loader(config.family)(config, weights, device)?;
        Ok(Self { model })
    }

    /// The sizes of this backbone.
    pub fn config(&self) -> &BackboneConfig {
        self.model.config()
    }

    /// What methods may know about this backbone.
    pub fn info(&self) -> BackboneInfo {
        self.model.info()
    }

    /// The model's own pooled output `[batch, hidden]` of `last_hidden` (BERT: dense + tanh
    /// over the first token), or `None` when it has no pooler.
    pub fn pool(&self, last_hidden: &Tensor<3>) -> Option<Tensor<2>> {
        self.model.pool(last_hidden)
    }

    /// The device holding the weights.
    pub fn device(&self) -> Device {
        self.model.device()
    }

    /// Rows of the LM head (0 when the checkpoint has none).
    pub fn output_vocab(&self) -> usize {
        self.model.output_vocab()
    }

    /// Number of parameters in the checkpoint (tied weights counted once).
    pub fn num_parameters(&self) -> usize {
        self.model.num_parameters()
    }

    /// Calls `f` on every weight with its name (see [`tensors`]).
    pub fn visit_tensors(&mut self, f: &mut dyn FnMut(&str, TensorSlot)) {
        self.model.visit_tensors(f)
    }

    /// The token embeddings as the model feeds them to its first layer (Gemma's scale applied),
    /// i.e. the space soft embeddings live in.
    pub fn embed_tokens(&self, ids: &[u32]) -> Result<Tensor<2>> {
        let vocab = self.config().vocab_size;
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
            return Err(crate::Error::Shape(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let idx = layers::int_tensor(
            ids.iter().map(|&i| i as i64).collect(),
            [ids.len()],
            &self.device(),
        );
        Ok(self.model.embed(idx))
    }

    /// Runs the model. `cache` (decoders only) is read and extended for incremental decoding.
    pub fn forward(
        &self,
        input: &ForwardInput,
        cache: Option<&mut KvCache>,
    ) -> Result<ForwardOutput> {
        match &input.bias_deltas {
            Some(deltas) if !deltas.is_empty() => {
                let batch = match (&input.decoder, &input.tokens, &input.input_embeds) {
                    (Some(d), _, _) => d.tokens.batch,
                    (None, Some(t), _) => t.batch,
                    (None, None, Some(e)) => e.dims()[0],
                    (None, None, None) => {
                        return Err(crate::Error::InvalidInput(
                            "a forward pass needs tokens or input embeddings".into(),
                        ))
                    }
                };
                self.with_bias_deltas(deltas, Some(batch))?
                    .run(input, cache)
            }
            _ => self.run(input, cache),
        }
    }

    /// A copy sharing every weight, whose biases named in `deltas` add them per row of a
    /// `batch`-row pass (`[batch or 1, width]` each), or, with `batch: None`, single-row deltas
    /// added to every row of every pass: how a sequence of passes (a decode with its cache,
    /// whose later steps take no hooks) keeps BitFit biases without repeating them.
    pub fn with_bias_deltas(&self, deltas: &[BiasDelta], batch: Option<usize>) -> Result<Backbone> {
        let mut wanted: std::collections::HashMap<&str, &Tensor<2>> =
            std::collections::HashMap::new();
        for d in deltas {
            if wanted.insert(d.name.as_str(), &d.values).is_some() {
                return Err(crate::Error::InvalidInput(format!(
                    "bias `{}` has two per-row deltas",
                    d.name
                )));
            }
        }
        let mut copy = self.clone();
        let mut problem: Option<String> = None;
        copy.visit_tensors(&mut |name, slot| {
            if let TensorSlot::RowBias(rows, width) = slot {
                if let Some(values) = wanted.remove(name) {
                    let [b, w] = values.dims();
                    if w != width || (b != 1 && Some(b) != batch) {
                        let rows = batch.map_or("1".to_string(), |n| format!("{n} or 1"));
                        problem.get_or_insert(format!(
                            "the per-row delta of bias `{name}` is [{b}, {w}]; it must be \
                             [{rows}, {width}]"
                        ));
                    } else {
                        *rows = Some(values.clone());
                    }
                }
            }
        });
        if let Some(p) = problem {
            return Err(crate::Error::Shape(p));
        }
        if let Some(name) = wanted.keys().next() {
            return Err(crate::Error::InvalidInput(format!(
                "this {} model has no bias `{name}` that takes per-row deltas (only linear \
                 layers and layer norms do)",
                self.config().family.name()
            )));
        }
        Ok(copy)
    }

    fn run(&self, input: &ForwardInput, cache: Option<&mut KvCache>) -> Result<ForwardOutput> {
        if self.config().decoder_layers > 0 {
            prepare::validate_encoder_decoder(
                self.config(),
                self.output_vocab(),
                input,
                cache.as_deref(),
            )?;
            return Ok(self.model.forward(input, cache));
        }
        if input.decoder.is_some() {
            return Err(crate::Error::InvalidInput(format!(
                "decoder input was given to a {} model, which has no decoder stack (only \
                 encoder-decoder models such as BART take one)",
                self.config().family.name()
            )));
        }
        let past = cache.as_ref().map(|c| c.len()).unwrap_or(0);
        prepare::validate(
            self.config(),
            self.output_vocab(),
            input,
            cache.as_deref(),
            past,
        )?;
        if cache.is_some() && !self.model.caches_keys() {
            return Err(crate::Error::InvalidInput(
                "encoders take no KV cache".into(),
            ));
        }
        Ok(self.model.forward(input, cache))
    }
}

/// Loads the frozen backbone at `path` (an HF model folder or a `.gguf` file) onto `device`.
pub fn load_backbone(path: &std::path::Path, device: &Device) -> Result<Backbone> {
    let (source, config) = crate::checkpoint::open_weights(path)?;
    Backbone::load(config, source.as_ref(), device)
}
