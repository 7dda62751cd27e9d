//! Gemma 3 text decoders: the shared decoder skeleton with sandwich norms around attention and
//! MLP, RMS-normed queries and keys, an embedding scaled by sqrt(hidden), norm weights stored as
//! an offset from 1, and sliding-window layers with their own RoPE base (from the config).

use burn::tensor::Device;

use super::decoder::{Decoder, DecoderParts, DecoderReader, LayerNorms};
use crate::checkpoint::config::BackboneConfig;
use crate::checkpoint::weights::WeightSource;
use crate::Result;

/// Reads a Gemma 3 decoder's weights for `config` from `source`.
pub fn load(config: BackboneConfig, source: &dyn WeightSource, device: &Device) -> Result<Decoder> {
    let (h, hd) = (config.hidden_size, config.head_dim);
    let mut r = DecoderReader::open(&config, source, device)?;
    let embed = r.embedding()?;
    let mut layers = Vec::with_capacity(config.num_layers);
    for i in 0..config.num_layers {
        let p = format!("layers.{i}.");
        // the projections are read plain; every norm weight is stored as (w - 1)
        r.ld.vector_offset = 1.0;
        let mut norm = |name: &str, len: usize| r.ld.vector(&format!("{p}{name}.weight"), len);
        let norms = LayerNorms {
            attn_in: norm("input_layernorm", h)?,
            attn_out: Some(norm("post_attention_layernorm", h)?),
            mlp_in: norm("pre_feedforward_layernorm", h)?,
            mlp_out: Some(norm("post_feedforward_layernorm", h)?),
            qk: Some((norm("self_attn.q_norm", hd)?, norm("self_attn.k_norm", hd)?)),
        };
        r.ld.vector_offset = 0.0;
        layers.push(r.layer(i, norms)?);
    }
    r.ld.vector_offset = 1.0;
    let final_norm = r.ld.vector("norm.weight", h)?;
    let lm_head = r.lm_head()?;
    let parts = DecoderParts {
        embed,
        embed_scale: Some((h as f32).sqrt()),
        layers,
        final_norm,
        lm_head,
        num_parameters: r.ld.count,
    };
    Decoder::assemble(config, parts)
}
