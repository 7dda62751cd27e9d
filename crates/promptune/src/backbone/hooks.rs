//! What a forward pass takes besides token ids (the prompt hooks) and what it gives back.
//!
//! The input is token ids ([`TokenBatch`]), or vectors in their place
//! ([`ForwardInput::input_embeds`]). Every prompt method is expressed through three hooks:
//! - [`SoftEmbeddings`]: vectors that replace the embedded tokens at chosen positions
//!   (prompt tuning prepends them; P-tuning puts them anywhere in a template);
//! - [`LayerPrefix`]: learned keys and values that every query of a layer can attend to
//!   (prefix tuning, P-tuning v2), shaped for the model's key/value heads (GQA-aware);
//! - [`DeepTokens`]: tokens inserted into the hidden-state sequence and overwritten with a
//!   layer's own values before that layer (VPT-deep).
//!
//! An encoder-decoder model (BART) takes the encoder's input in [`ForwardInput`] (its prefixes
//! go to encoder self-attention) and the decoder's in [`DecoderInput`], with prefixes of its own
//! for decoder self-attention and for cross-attention: each site optional, each of its own
//! length.

use burn::tensor::Tensor;

/// A padded batch of token ids with its attention mask, kept on the host so that it can be
/// validated before any tensor is built.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Row-major `[batch, len]` ids.
    pub ids: Vec<u32>,
    /// Row-major `[batch, len]`: 1 for a real token, 0 for padding.
    pub mask: Vec<u8>,
    /// Optional `[batch, len]` segment ids (BERT token types).
    pub token_types: Option<Vec<u32>>,
    /// Number of rows.
    pub batch: usize,
    /// Padded length.
    pub len: usize,
}

/// Which side padding goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaddingSide {
    /// Pad after the tokens (encoders, training).
    #[default]
    Right,
    /// Pad before the tokens (decoder generation).
    Left,
}

impl TokenBatch {
    /// Pads sequences of possibly different lengths to the longest one.
    pub fn pad(seqs: &[Vec<u32>], pad_id: u32, side: PaddingSide) -> crate::Result<Self> {
        if seqs.is_empty() {
            return Err(crate::Error::InvalidInput("empty batch".into()));
        }
        if seqs.iter().any(|s| s.is_empty()) {
            return Err(crate::Error::InvalidInput(
                "a sequence in the batch has no tokens".into(),
            ));
        }
        let len = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(seqs.len() * len);
        let mut mask = Vec::with_capacity(seqs.len() * len);
        for s in seqs {
            let pad = len - s.len();
            if side == PaddingSide::Left {
                ids.extend(std::iter::repeat_n(pad_id, pad));
                mask.extend(std::iter::repeat_n(0u8, pad));
            }
            ids.extend_from_slice(s);
            mask.extend(std::iter::repeat_n(1u8, s.len()));
            if side == PaddingSide::Right {
                ids.extend(std::iter::repeat_n(pad_id, pad));
                mask.extend(std::iter::repeat_n(0u8, pad));
            }
        }
        Ok(Self {
            ids,
            mask,
            token_types: None,
            batch: seqs.len(),
            len,
        })
    }

    /// A batch with a single unpadded sequence.
    pub fn single(ids: &[u32]) -> crate::Result<Self> {
        Self::pad(&[ids.to_vec()], 0, PaddingSide::Right)
    }

    /// Index of the last real token of each row.
    pub fn last_positions(&self) -> Vec<usize> {
        (0..self.batch)
            .map(|b| {
                let row = &self.mask[b * self.len..(b + 1) * self.len];
                row.iter().rposition(|&m| m != 0).unwrap_or(0)
            })
            .collect()
    }
}

/// Vectors that replace the token embeddings at given positions of the input.
///
/// With shared values (batch dimension 1) every row places all `n` vectors. With one set of
/// values per row (batch dimension = batch), row `r` may place `k_r <= n` vectors, possibly
/// none: the first `k_r` vectors of its own row of values go to its `k_r` positions, and the
/// rest of that row is unused (it must hold finite numbers; it gets a zero gradient).
#[derive(Debug, Clone)]
pub struct SoftEmbeddings {
    /// `[batch or 1, n, hidden]`; may be a trainable (autodiff) tensor.
    pub values: Tensor<3>,
    /// For each batch row, the distinct input positions its vectors go to (in order): `n` of
    /// them with shared values, at most `n` with per-row values.
    pub positions: Vec<Vec<usize>>,
}

/// Learned keys and values for one attention layer (rows that use fewer positions, or none:
/// [`ForwardInput::prefix_mask`]).
#[derive(Debug, Clone)]
pub struct LayerPrefix {
    /// `[batch or 1, kv_heads, prefix_len, head_dim]`.
    pub key: Tensor<4>,
    /// `[batch or 1, kv_heads, prefix_len, head_dim]`.
    pub value: Tensor<4>,
}

/// An addition to one of the backbone's biases, per batch row.
#[derive(Debug, Clone)]
pub struct BiasDelta {
    /// The bias's name as [`super::tensors`] gives it (`layer.3.qkv.bias`); only linear layers'
    /// biases (present or not) and layer norms' shifts take one.
    pub name: String,
    /// `[batch or 1, width]`: row `b` is added to the bias in batch row `b`; may be trainable.
    pub values: Tensor<2>,
}

/// Tokens inserted into the hidden-state sequence (VPT-style deep prompts).
#[derive(Debug, Clone)]
pub struct DeepTokens {
    /// Index in the input sequence before which the tokens are inserted.
    pub at: usize,
    /// Per layer `[batch or 1, n, hidden]`: entry 0 is inserted after the embedding layer;
    /// a later entry overwrites the same slots before that layer; `None` keeps what the
    /// previous layer produced (only entry 0 = shallow prompts).
    pub layers: Vec<Option<Tensor<3>>>,
}

impl DeepTokens {
    /// Number of inserted tokens.
    pub fn len(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .next()
            .map(|t| t.dims()[1])
            .unwrap_or(0)
    }

    /// True when nothing is inserted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where the LM head is evaluated.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum LogitPositions {
    /// No logits.
    #[default]
    None,
    /// Every position (scoring, training an LM).
    All,
    /// The last real token of each row (next-token prediction, decoder verbalizers).
    Last,
    /// The same number of positions for every row, indices into the input sequence.
    At(Vec<Vec<usize>>),
}

/// A request for LM logits: where, and optionally which vocabulary rows only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogitsRequest {
    /// Positions to evaluate.
    pub positions: LogitPositions,
    /// Vocabulary rows to compute (a verbalizer's label words); `None` = full vocabulary.
    /// For a different set per batch row see [`ForwardInput::logit_rows_per_row`].
    pub rows: Option<Vec<u32>>,
}

/// Everything one forward pass takes.
#[derive(Debug, Clone, Default)]
pub struct ForwardInput {
    /// The token ids (with placeholders where soft embeddings go).
    pub tokens: Option<TokenBatch>,
    /// `[batch, len, hidden]` vectors fed to the first layer in place of looking up
    /// `tokens.ids` (HF's `inputs_embeds`): what [`super::Backbone::embed_tokens`] gives for ids,
    /// so a family's embedding scale is already in them. `tokens` still gives the shape, the
    /// padding mask, the token types and RoBERTa's padding-aware positions. May be trainable.
    pub input_embeds: Option<Tensor<3>>,
    /// Soft vectors spliced into the embedded sequence.
    pub soft: Option<SoftEmbeddings>,
    /// One key/value prefix per layer.
    pub prefixes: Option<Vec<LayerPrefix>>,
    /// Which prefix positions each row attends to, row-major `[batch, prefix_len]`
    /// (non-zero = attends, 0 = masked), so that one batch can mix rows with different
    /// prefixes (per-row keys and values), shorter prefixes padded up to `prefix_len`, or none.
    /// A row's valid positions should be a leading run (its own prefix, then unused slots).
    /// Unused slots take no place in the row's sequence: its default positions and sliding
    /// window count only its valid prefix positions, so a row gives what it gives alone with
    /// just its valid prefix (none valid: without any prefix). A decoder KV cache keeps this
    /// for later steps. Needs `prefixes`; `None` = every row attends to every position.
    pub prefix_mask: Option<Vec<u8>>,
    /// Deep tokens inserted into the sequence.
    pub deep: Option<DeepTokens>,
    /// Explicit position ids `[batch, len]` (after deep-token insertion); default: positions
    /// count from the number of prefix and cached keys, as HF does with `past_key_values`
    /// (with a `prefix_mask`, each row from its own number of valid prefix positions).
    pub position_ids: Option<Vec<i64>>,
    /// Return the hidden states of every layer (HF's `output_hidden_states`).
    pub output_hidden_states: bool,
    /// LM logits to compute.
    pub logits: LogitsRequest,
    /// A different set of vocabulary rows for each batch row, `[batch][k]` (the same `k` for
    /// every row): row `b`'s logits are those of its own vocabulary rows, `[batch, positions,
    /// k]`. Replaces `logits.rows` (which must then be `None`); needs logit positions.
    pub logit_rows_per_row: Option<Vec<Vec<u32>>>,
    /// Per batch row, input positions whose last hidden states to return in
    /// [`ForwardOutput::hidden_at`] (the same number for every row; shifted past deep tokens
    /// as logit positions are).
    pub hidden_at: Option<Vec<Vec<usize>>>,
    /// Additions to the backbone's biases per batch row, so that rows of different BitFit
    /// adapters (or none) share one pass on one copy of the weights. A pass of an incremental
    /// decode must repeat them (the cache keeps keys and values, not biases).
    pub bias_deltas: Option<Vec<BiasDelta>>,
    /// Training-mode dropout with this seed (encoders whose config has `hidden_dropout` or
    /// `attention_dropout` > 0; `None`: the deterministic forward pass used for evaluation).
    pub dropout: Option<u64>,
    /// The decoder side of an encoder-decoder model. The logits, hidden-state and position
    /// requests above then concern the decoder's sequence; `tokens` may be `None` in a later
    /// decoding step, whose cache already holds the encoded source.
    pub decoder: Option<DecoderInput>,
}

/// What the decoder of an encoder-decoder model takes.
#[derive(Debug, Clone)]
pub struct DecoderInput {
    /// Decoder ids (the start token first, then the target so far).
    pub tokens: TokenBatch,
    /// Soft vectors spliced into the decoder's embedded input.
    pub soft: Option<SoftEmbeddings>,
    /// One key/value prefix per decoder layer for its causal self-attention (first step only;
    /// the cache keeps it). Decoder positions continue after it, as transformers numbers them
    /// after `past_key_values`.
    pub prefixes: Option<Vec<LayerPrefix>>,
    /// Which decoder self-attention prefix positions each row attends to, `[batch, len]`.
    pub prefix_mask: Option<Vec<u8>>,
    /// One key/value prefix per decoder layer put before the encoder's keys and values in
    /// cross-attention (first step only; the cache keeps it).
    pub cross_prefixes: Option<Vec<LayerPrefix>>,
    /// Which cross-attention prefix positions each row attends to, `[batch, len]`.
    pub cross_prefix_mask: Option<Vec<u8>>,
}

impl DecoderInput {
    /// Plain decoder ids.
    pub fn new(tokens: TokenBatch) -> Self {
        Self {
            tokens,
            soft: None,
            prefixes: None,
            prefix_mask: None,
            cross_prefixes: None,
            cross_prefix_mask: None,
        }
    }
}

impl ForwardInput {
    /// A plain forward over `tokens`.
    pub fn new(tokens: TokenBatch) -> Self {
        Self {
            tokens: Some(tokens),
            ..Default::default()
        }
    }
}

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// `[batch, len, hidden]` output of the last layer (after the final norm for decoders).
    pub last_hidden: Tensor<3>,
    /// Hidden states as HF returns them: the embedding output, then each layer's output
    /// (decoders: the last entry is after the final norm). Empty unless requested.
    pub hidden_states: Vec<Tensor<3>>,
    /// `[batch, positions, rows]` logits, when requested.
    pub logits: Option<Tensor<3>>,
    /// `[batch, k, hidden]` rows of `last_hidden` at [`ForwardInput::hidden_at`], when
    /// requested.
    pub hidden_at: Option<Tensor<3>>,
    /// Key validity `[batch, len]` of the returned sequence (deep tokens included).
    pub mask: Vec<u8>,
    /// An encoder-decoder's encoder output, when this pass ran the encoder (the fields above
    /// then describe the decoder).
    pub encoder: Option<EncoderOutput>,
}

/// The encoder half of an encoder-decoder pass.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// `[batch, source len, hidden]`.
    pub last_hidden: Tensor<3>,
    /// The embedding output, then each encoder layer's output; empty unless requested.
    pub hidden_states: Vec<Tensor<3>>,
    /// Validity `[batch, source len]` (deep tokens included).
    pub mask: Vec<u8>,
}
