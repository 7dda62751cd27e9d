//! What a method may know about a backbone: sizes, attention sites, input modality and how
//! positions continue after a prefix. Methods and tasks ask this, never the family.

use serde::Serialize;

/// Where a model attends, so a method can put prefixes into each kind of attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionSite {
    /// Bidirectional self-attention of an encoder.
    EncoderSelf,
    /// Causal self-attention of a decoder.
    DecoderSelf,
    /// A decoder's attention to an encoder's output.
    Cross,
}

/// What the model's first layer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Token ids through an embedding table, or vectors in their place
    /// ([`super::ForwardInput::input_embeds`]).
    Tokens,
}

/// How the positions of the real tokens continue after a key/value prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefixPositions {
    /// The backbone's own default (encoders count positions past the prefix).
    Default,
    /// Every row's real tokens are numbered from the prefix length on, whatever the padding,
    /// as transformers numbers an unpadded input given `past_key_values` (what PEFT runs). A
    /// decoder's prefix keys carry no rotary position, so a query's score against them depends
    /// on its absolute position: padding must not shift it.
    CountRealTokens,
}

/// The sizes and behaviour of a loaded backbone, as methods see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackboneInfo {
    /// Family name (for messages and fingerprints only; never branch on it).
    pub family: &'static str,
    /// Transformer layers (of the encoder, in an encoder-decoder model).
    pub num_layers: usize,
    /// Decoder layers of an encoder-decoder model (each with a self- and a cross-attention),
    /// 0 elsewhere.
    pub decoder_layers: usize,
    /// Width of the residual stream (soft tokens have this width).
    pub hidden_size: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (prefixes have this many).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Longest sequence, prefix included.
    pub max_positions: usize,
    /// Rows of the input embedding.
    pub vocab_size: usize,
    /// Rows of the LM head (0 without one).
    pub output_vocab: usize,
    /// Whether attention is causal (decoders).
    pub causal: bool,
    /// The attention sites the model has (prefixes can go into each).
    pub sites: Vec<AttentionSite>,
    /// What the first layer takes.
    pub modality: Modality,
    /// How positions continue after a prefix.
    pub prefix_positions: PrefixPositions,
    /// Dropout on hidden states in training (HF `hidden_dropout_prob`; heads drop out what
    /// they read with it too).
    pub hidden_dropout: f32,
}

impl BackboneInfo {
    /// The info of a model of `config` whose layers each attend at `site` (an encoder-decoder
    /// model: pass [`AttentionSite::EncoderSelf`]; its decoder's sites are added), with an LM
    /// head of `output_vocab` rows, whose positions continue after a prefix as
    /// `prefix_positions` says.
    pub(crate) fn of(
        config: &super::BackboneConfig,
        output_vocab: usize,
        site: AttentionSite,
        prefix_positions: PrefixPositions,
    ) -> Self {
        let mut sites = vec![site];
        if config.decoder_layers > 0 {
            sites.extend([AttentionSite::DecoderSelf, AttentionSite::Cross]);
        }
        Self {
            family: config.family.name(),
            num_layers: config.num_layers,
            decoder_layers: config.decoder_layers,
            hidden_size: config.hidden_size,
            num_heads: config.num_heads,
            num_kv_heads: config.num_kv_heads,
            head_dim: config.head_dim,
            max_positions: config.max_positions,
            vocab_size: config.vocab_size,
            output_vocab,
            causal: site == AttentionSite::DecoderSelf,
            sites,
            modality: Modality::Tokens,
            prefix_positions,
            hidden_dropout: config.hidden_dropout,
        }
    }

    /// Whether the model has attention site `site`.
    pub fn has_site(&self, site: AttentionSite) -> bool {
        self.sites.contains(&site)
    }

    /// Keys (or values) of one layer and position: `kv_heads * head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    /// Explicit position ids `[batch, len]` for rows of `mask` (`[batch, len]`, 1 = real
    /// token) behind prefixes of `prefix_lens[row]` positions, or `None` when the backbone's
    /// default positions are right.
    pub fn positions_after_prefix(
        &self,
        mask: &[u8],
        len: usize,
        prefix_lens: &[usize],
    ) -> Option<Vec<i64>> {
        match self.prefix_positions {
            PrefixPositions::Default => None,
            PrefixPositions::CountRealTokens => {
                let mut positions = Vec::with_capacity(mask.len());
                for (row, &n) in mask.chunks(len.max(1)).zip(prefix_lens) {
                    let mut real = 0;
                    for &m in row {
                        positions.push((n + real) as i64);
                        real += usize::from(m != 0);
                    }
                }
                Some(positions)
            }
        }
    }
}
