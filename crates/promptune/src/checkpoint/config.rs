//! The sizes and options of a backbone, independent of the file format it came from.

use serde::{Deserialize, Serialize};

/// Which transformer family a checkpoint belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// BERT encoder (absolute positions, token types).
    Bert,
    /// RoBERTa encoder (positions offset past the padding id, one token type).
    Roberta,
    /// Llama-style decoder (RoPE, RMSNorm, SwiGLU, GQA).
    Llama,
    /// Gemma 3 decoder (QK-norm, sandwich norms, sliding-window and global layers).
    Gemma3,
    /// GPT-2 decoder (learned positions, LayerNorm, fused QKV, tied LM head).
    Gpt2,
    /// BART encoder-decoder (learned positions offset by 2, post-LayerNorm blocks, cross-attention).
    Bart,
    /// T5 encoder-decoder (bucketed relative position bias, RMS norms, unscaled attention;
    /// v1.0's ReLU and v1.1's gated-GELU feed-forward).
    T5,
}

impl Family {
    /// Short lowercase name, as used in configs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Roberta => "roberta",
            Family::Llama => "llama",
            Family::Gemma3 => "gemma3",
            Family::Gpt2 => "gpt2",
            Family::Bart => "bart",
            Family::T5 => "t5",
        }
    }

    /// Encoders attend in both directions; decoders are causal (an encoder-decoder's first
    /// stack is not).
    pub fn is_causal(self) -> bool {
        matches!(self, Family::Llama | Family::Gemma3 | Family::Gpt2)
    }

    /// Whether the family has an encoder and a decoder attending to it.
    pub fn is_encoder_decoder(self) -> bool {
        matches!(self, Family::Bart | Family::T5)
    }

    /// `encoder`, `decoder` or `encoder-decoder`.
    pub fn kind(self) -> &'static str {
        if self.is_encoder_decoder() {
            "encoder-decoder"
        } else if self.is_causal() {
            "decoder"
        } else {
            "encoder"
        }
    }
}

/// Rotary position embedding settings for one kind of layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeConfig {
    /// Base of the inverse frequencies.
    pub theta: f64,
    /// Linear position scaling factor (1.0 = none).
    pub linear_factor: f64,
    /// Llama-3 style frequency scaling: (factor, low_freq_factor, high_freq_factor, original_max_pos).
    pub llama3: Option<(f64, f64, f64, f64)>,
}

impl RopeConfig {
    /// Plain RoPE with the given base.
    pub fn plain(theta: f64) -> Self {
        Self {
            theta,
            linear_factor: 1.0,
            llama3: None,
        }
    }
}

/// Everything the tensor code needs to know about a backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackboneConfig {
    /// Model family.
    pub family: Family,
    /// Rows of the input embedding.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (equal to `num_heads` without GQA).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Longest sequence the position scheme supports.
    pub max_positions: usize,
    /// Epsilon of the layer/RMS norms.
    pub norm_eps: f64,
    /// RoPE for global layers (decoders).
    pub rope: Option<RopeConfig>,
    /// RoPE for sliding-window layers (Gemma 3).
    pub rope_local: Option<RopeConfig>,
    /// Sliding-window size for the local layers.
    pub sliding_window: Option<usize>,
    /// Per layer: true when the layer uses sliding-window attention.
    pub sliding_layers: Vec<bool>,
    /// Attention score scale (default 1/sqrt(head_dim)).
    pub attention_scale: f64,
    /// Gemma-style soft cap on the final logits.
    pub final_logit_softcap: Option<f64>,
    /// Gemma-style soft cap on attention scores.
    pub attn_logit_softcap: Option<f64>,
    /// Token type vocabulary (BERT).
    pub type_vocab_size: usize,
    /// Padding id (RoBERTa positions are counted past it).
    pub pad_token_id: Option<u32>,
    /// Beginning-of-sequence id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence ids.
    pub eos_token_ids: Vec<u32>,
    /// Output head shares the input embedding.
    pub tie_word_embeddings: bool,
    /// Feed-forward activation name as HF writes it (`gelu`, `silu`, `gelu_pytorch_tanh`...).
    pub hidden_act: String,
    /// Llama-style attention projections carry biases (Qwen-like); BERT always has them.
    pub attention_bias: bool,
    /// Dropout on hidden states while training (HF `hidden_dropout_prob`; encoders only, 0
    /// elsewhere): applied when a forward pass asks for it ([`super::ForwardInput::dropout`]).
    pub hidden_dropout: f32,
    /// Dropout on attention probabilities while training (HF `attention_probs_dropout_prob`;
    /// encoders only, 0 elsewhere), under the same switch as `hidden_dropout`.
    pub attention_dropout: f32,
    /// Decoder layers of an encoder-decoder model (0 elsewhere); `num_layers` counts the
    /// encoder's. Both stacks share the widths and head counts above.
    #[serde(default)]
    pub decoder_layers: usize,
    /// The id a decoder's input starts with (encoder-decoder models).
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    /// Token embeddings are multiplied by sqrt(hidden) before the first layer (BART's
    /// `scale_embedding`; Gemma scales its own).
    #[serde(default)]
    pub scale_embedding: bool,
    /// Bucketed relative position bias (T5).
    #[serde(default)]
    pub relative_attention: Option<RelativeAttention>,
    /// The feed-forward layer multiplies an activated projection by a second one (T5 v1.1's
    /// gated GELU).
    #[serde(default)]
    pub gated_ffn: bool,
    /// The decoder's output is scaled by hidden^-0.5 before the LM head (T5 with the head
    /// tied to the embedding, transformers' `scale_decoder_outputs`).
    #[serde(default)]
    pub scale_decoder_outputs: bool,
}

/// T5's relative position bias: distances are put into `num_buckets` buckets (half exact,
/// half logarithmic up to `max_distance`), each with a learned bias per head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelativeAttention {
    /// Buckets (in each direction half of them, for bidirectional attention).
    pub num_buckets: usize,
    /// Distances from here on share the last bucket.
    pub max_distance: usize,
}

impl BackboneConfig {
    /// A model of `family` with `num_layers` layers and nothing else yet: zero sizes, no RoPE,
    /// window, soft cap, token types, special ids, dropout or decoder stack, a tied head,
    /// unscaled attention. Readers fill in what their config says (struct update syntax).
    pub fn plain(family: Family, num_layers: usize) -> Self {
        Self {
            family,
            vocab_size: 0,
            hidden_size: 0,
            num_layers,
            num_heads: 0,
            num_kv_heads: 0,
            head_dim: 0,
            intermediate_size: 0,
            max_positions: 0,
            norm_eps: 1e-5,
            rope: None,
            rope_local: None,
            sliding_window: None,
            sliding_layers: vec![false; num_layers],
            attention_scale: 1.0,
            final_logit_softcap: None,
            attn_logit_softcap: None,
            type_vocab_size: 0,
            pad_token_id: None,
            bos_token_id: None,
            eos_token_ids: Vec::new(),
            tie_word_embeddings: true,
            hidden_act: "gelu".into(),
            attention_bias: false,
            hidden_dropout: 0.0,
            attention_dropout: 0.0,
            decoder_layers: 0,
            decoder_start_token_id: None,
            scale_embedding: false,
            relative_attention: None,
            gated_ffn: false,
            scale_decoder_outputs: false,
        }
    }

    /// The decoder stack of an encoder-decoder model seen as a model of its own (its layer
    /// count in `num_layers`), for checking decoder inputs; `None` without a decoder stack.
    pub fn decoder_stack(&self) -> Option<BackboneConfig> {
        (self.decoder_layers > 0).then(|| BackboneConfig {
            num_layers: self.decoder_layers,
            sliding_layers: vec![false; self.decoder_layers],
            type_vocab_size: 0,
            ..self.clone()
        })
    }

    /// Width of the keys/values of one layer (`num_kv_heads * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    /// Checks the internal consistency of the sizes, so tensor code can trust them.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(crate::Error::Shape(m));
        for (key, value, max) in [
            ("num_layers", self.num_layers, MAX_LAYERS),
            ("hidden_size", self.hidden_size, MAX_WIDTH),
            ("intermediate_size", self.intermediate_size, MAX_WIDTH),
            ("num_heads", self.num_heads, MAX_WIDTH),
            ("num_kv_heads", self.num_kv_heads, MAX_WIDTH),
            ("head_dim", self.head_dim, MAX_WIDTH),
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("max_positions", self.max_positions, MAX_POSITIONS),
            ("decoder_layers", self.decoder_layers, MAX_LAYERS),
        ] {
            check_size(key, value, max)?;
        }
        if self.num_layers == 0
            || self.hidden_size == 0
            || self.num_heads == 0
            || self.vocab_size == 0
        {
            return bad(format!("degenerate config: {self:?}"));
        }
        if self.num_kv_heads == 0 || !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return bad(format!(
                "{} query heads are not a multiple of {} key/value heads",
                self.num_heads, self.num_kv_heads
            ));
        }
        if self.sliding_layers.len() != self.num_layers {
            return bad(format!(
                "layer type list has {} entries for {} layers",
                self.sliding_layers.len(),
                self.num_layers
            ));
        }
        if self.rope.is_some() && !self.head_dim.is_multiple_of(2) {
            return bad(format!(
                "RoPE needs an even head_dim, got {}",
                self.head_dim
            ));
        }
        if self.family.is_encoder_decoder() && self.decoder_layers == 0 {
            return bad(format!(
                "a {} model needs decoder layers (`decoder_layers` is 0)",
                self.family.name()
            ));
        }
        if !self.family.is_encoder_decoder() && self.decoder_layers != 0 {
            return bad(format!(
                "a {} model has no decoder stack, yet `decoder_layers` is {}",
                self.family.name(),
                self.decoder_layers
            ));
        }
        if matches!(
            self.family,
            Family::Bert | Family::Roberta | Family::Gpt2 | Family::Bart
        ) && self.num_heads * self.head_dim != self.hidden_size
        {
            return bad(format!(
                "{} heads x {} head_dim != hidden {}",
                self.num_heads, self.head_dim, self.hidden_size
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout),
            ("attention_probs_dropout_prob", self.attention_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        Ok(())
    }
}

/// The most layers a checkpoint may declare (the largest released models have ~128): a count
/// read from a file is checked against it before anything is allocated per layer.
pub const MAX_LAYERS: usize = 1024;
/// The widest hidden, feed-forward or head size (and the most heads) a checkpoint may declare.
pub const MAX_WIDTH: usize = 1 << 20;
/// The largest vocabulary a checkpoint may declare.
pub const MAX_VOCAB: usize = 1 << 23;
/// The longest context a checkpoint may declare.
pub const MAX_POSITIONS: usize = 1 << 24;

/// Fails, naming `key`, when a size read from a checkpoint exceeds `max`.
pub fn check_size(key: &str, value: usize, max: usize) -> crate::Result<()> {
    if value > max {
        return Err(crate::Error::Shape(format!(
            "`{key}` = {value} is beyond any real model (at most {max}): the file is corrupt \
             or not a model config"
        )));
    }
    Ok(())
}

/// Whether the backbone's activation function knows the activation name (HF `hidden_act`).
pub fn is_known_activation(name: &str) -> bool {
    matches!(
        name,
        "silu" | "swish" | "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" | "relu" | "gelu"
    )
}
