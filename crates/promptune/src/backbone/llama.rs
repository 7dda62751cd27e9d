//! Llama-style decoders (RMSNorm before attention and MLP, SwiGLU, RoPE, GQA): HF's
//! `LlamaForCausalLM` names, also what the GGUF reader maps `llama` tensors to.

use burn::tensor::Device;

use super::decoder::{Decoder, DecoderParts, DecoderReader, LayerNorms};
use crate::checkpoint::config::BackboneConfig;
use crate::checkpoint::weights::WeightSource;
use crate::Result;

/// Reads a Llama decoder's weights for `config` from `source`.
pub fn load(config: BackboneConfig, source: &dyn WeightSource, device: &Device) -> Result<Decoder> {
    let h = config.hidden_size;
    let mut r = DecoderReader::open(&config, source, device)?;
    let embed = r.embedding()?;
    let mut layers = Vec::with_capacity(config.num_layers);
    for i in 0..config.num_layers {
        let p = format!("layers.{i}.");
        let norms = LayerNorms {
            attn_in: r.ld.vector(&format!("{p}input_layernorm.weight"), h)?,
            attn_out: None,
            mlp_in: r
                .ld
                .vector(&format!("{p}post_attention_layernorm.weight"), h)?,
            mlp_out: None,
            qk: None,
        };
        layers.push(r.layer(i, norms)?);
    }
    let final_norm = r.ld.vector("norm.weight", h)?;
    let lm_head = r.lm_head()?;
    let parts = DecoderParts {
        embed,
        embed_scale: None,
        layers,
        final_norm,
        lm_head,
        num_parameters: r.ld.count,
    };
    Decoder::assemble(config, parts)
}
