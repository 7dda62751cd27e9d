//! Frozen transformer backbones with prompt hooks.
//!
//! One forward API ([`Backbone::forward`]) for every family: token ids plus the hooks of
//! [`hooks`]; outputs are hidden states and, only where asked, LM logits for a subset of
//! the vocabulary. Weights are plain (non-autodiff) tensors, so no gradient is ever kept for
//! them; trainable hook tensors may live on an autodiff device and gradients flow to them.

pub mod attention;
pub mod bert;
pub mod config;
pub mod decoder;
pub mod hooks;
pub mod info;
pub mod kv_cache;
pub mod layers;
mod prepare;
pub mod tensors;

use burn::tensor::{Device, Tensor};

pub use config::{BackboneConfig, Family, RopeConfig};
pub use hooks::{
    DeepTokens, ForwardInput, ForwardOutput, LayerPrefix, LogitPositions, LogitsRequest,
    PaddingSide, SoftEmbeddings, TokenBatch,
};
pub use info::{AttentionSite, BackboneInfo, Modality, PrefixPositions};
pub use kv_cache::KvCache;
pub use tensors::TensorSlot;

use crate::checkpoint::weights::WeightSource;
use crate::Result;

/// A loaded frozen backbone of any supported family.
#[derive(Debug, Clone)]
pub enum Backbone {
    /// BERT / RoBERTa encoder.
    Encoder(Box<bert::Encoder>),
    /// Llama / Gemma 3 decoder.
    Decoder(Box<decoder::Decoder>),
}

impl Backbone {
    /// Builds the backbone described by `config` from `weights` onto `device`.
    pub fn load(
        config: BackboneConfig,
        weights: &dyn WeightSource,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        Ok(match config.family {
            Family::Bert | Family::Roberta => {
                Backbone::Encoder(Box::new(bert::Encoder::load(config, weights, device)?))
            }
            Family::Llama | Family::Gemma3 => {
                Backbone::Decoder(Box::new(decoder::Decoder::load(config, weights, device)?))
            }
        })
    }

    /// The sizes of this backbone.
    pub fn config(&self) -> &BackboneConfig {
        match self {
            Backbone::Encoder(m) => &m.config,
            Backbone::Decoder(m) => &m.config,
        }
    }

    /// What methods may know about this backbone.
    pub fn info(&self) -> BackboneInfo {
        let c = self.config();
        let causal = c.family.is_causal();
        BackboneInfo {
            family: c.family.name(),
            num_layers: c.num_layers,
            hidden_size: c.hidden_size,
            num_heads: c.num_heads,
            num_kv_heads: c.num_kv_heads,
            head_dim: c.head_dim,
            max_positions: c.max_positions,
            vocab_size: c.vocab_size,
            output_vocab: self.output_vocab(),
            causal,
            sites: vec![if causal {
                AttentionSite::DecoderSelf
            } else {
                AttentionSite::EncoderSelf
            }],
            modality: Modality::Tokens,
            prefix_positions: if causal {
                PrefixPositions::CountRealTokens
            } else {
                PrefixPositions::Default
            },
            hidden_dropout: c.hidden_dropout,
        }
    }

    /// The model's own pooled output `[batch, hidden]` of `last_hidden` (BERT: dense + tanh
    /// over the first token), or `None` when it has no pooler.
    pub fn pool(&self, last_hidden: &Tensor<3>) -> Option<Tensor<2>> {
        match self {
            Backbone::Encoder(e) => e.pool(last_hidden),
            Backbone::Decoder(_) => None,
        }
    }

    /// The device holding the weights.
    pub fn device(&self) -> Device {
        match self {
            Backbone::Encoder(m) => m.word_embeddings.device(),
            Backbone::Decoder(m) => m.embed.device(),
        }
    }

    /// Rows of the LM head (0 when the checkpoint has none).
    pub fn output_vocab(&self) -> usize {
        match self {
            Backbone::Encoder(m) => m.mlm.as_ref().map(|_| m.config.vocab_size).unwrap_or(0),
            Backbone::Decoder(m) => m.config.vocab_size,
        }
    }

    /// Number of parameters in the checkpoint (tied weights counted once).
    pub fn num_parameters(&self) -> usize {
        match self {
            Backbone::Encoder(m) => m.num_parameters(),
            Backbone::Decoder(m) => m.num_parameters(),
        }
    }

    /// Calls `f` on every weight with its name (see [`tensors`]).
    pub fn visit_tensors(&mut self, f: &mut dyn FnMut(&str, TensorSlot)) {
        match self {
            Backbone::Encoder(m) => m.visit_tensors(f),
            Backbone::Decoder(m) => m.visit_tensors(f),
        }
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
        let device = self.device();
        let idx = layers::int_tensor(
            ids.iter().map(|&i| i as i64).collect(),
            [ids.len()],
            &device,
        );
        Ok(match self {
            Backbone::Encoder(m) => m.word_embeddings.clone().select(0, idx),
            Backbone::Decoder(m) => {
                let rows = m.embed.clone().select(0, idx);
                match m.embed_scale {
                    Some(s) => rows.mul_scalar(s),
                    None => rows,
                }
            }
        })
    }

    /// Runs the model. `cache` (decoders only) is read and extended for incremental decoding.
    pub fn forward(
        &self,
        input: &ForwardInput,
        cache: Option<&mut KvCache>,
    ) -> Result<ForwardOutput> {
        let past = cache.as_ref().map(|c| c.len()).unwrap_or(0);
        prepare::validate(
            self.config(),
            self.output_vocab(),
            input,
            cache.as_deref(),
            past,
        )?;
        match self {
            Backbone::Encoder(m) => {
                if cache.is_some() {
                    return Err(crate::Error::InvalidInput(
                        "encoders take no KV cache".into(),
                    ));
                }
                Ok(m.forward(input))
            }
            Backbone::Decoder(m) => Ok(m.forward(input, cache)),
        }
    }
}
