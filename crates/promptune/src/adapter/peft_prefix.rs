//! PEFT interop for PREFIX_TUNING: `adapter_config.json` with PEFT's fields and
//! `adapter_model.safetensors` holding `prompt_embeddings` `[num_virtual_tokens, num_layers *
//! 2 * token_dim]`, the projected prefix in PEFT's layout (see
//! [`crate::method::prefix_tuning::layout`]). For models with key/value heads PEFT sets
//! `token_dim = kv_heads * head_dim` and `num_attention_heads = kv_heads`; so do we.
//!
//! The export is written with `prefix_projection: false`: our adapters hold the folded prefix,
//! which is exactly PEFT's direct parametrisation, so PEFT loads it for inference and for
//! further training alike (PEFT cannot load a flattened prefix into an MLP).
//! `encoder_hidden_size` takes PEFT's default (`token_dim`).

use std::path::Path;

use serde_json::json;

use super::{peft_files, Adapter};
use crate::backbone::{AttentionSite, BackboneInfo};
use crate::method::prefix_tuning::{fold, PrefixSite, EMBEDDING};
use crate::params::HostTensor;
use crate::{Error, Result};

/// Writes a prefix-tuning `adapter` for a model of config `model` in PEFT's PREFIX_TUNING
/// layout into `dir`.
pub fn export_prefix_tuning(adapter: &Adapter, model: &BackboneInfo, dir: &Path) -> Result<()> {
    if adapter.config.method != "prefix_tuning" {
        return Err(Error::InvalidInput(format!(
            "a `{}` adapter is not a prefix-tuning one",
            adapter.config.method
        )));
    }
    if adapter.params.iter().any(|p| p.name.starts_with("head.")) {
        return Err(Error::InvalidInput(
            "PEFT's PREFIX_TUNING has no classification head: only verbalizer adapters export"
                .into(),
        ));
    }
    let folded = fold(&adapter.params, &burn::tensor::Device::flex())?;
    // an encoder-decoder's PEFT prefix is its decoder self-attention's (`placement = "peft"`)
    let encoder_decoder = model.has_site(AttentionSite::Cross);
    let site = if encoder_decoder {
        PrefixSite::Decoder
    } else {
        PrefixSite::Main
    };
    if let Some(other) = folded
        .iter()
        .find(|t| t.name.starts_with("prefix.") && t.name != site.name(EMBEDDING))
    {
        return Err(Error::InvalidInput(format!(
            "PEFT's PREFIX_TUNING holds one prefix, in {}; this adapter also has `{}` \
             (train with placement = \"peft\" to export)",
            site.describe(),
            other.name
        )));
    }
    let prefix = crate::params::find(&folded, &site.name(EMBEDDING))
        .ok_or_else(|| Error::InvalidInput("the adapter has no prefix".into()))?;
    let (shape, data) = (&prefix.shape, &prefix.data);
    let want = site.shape(model);
    if shape.len() != 2 || shape[1] != want.width() {
        return Err(Error::Shape(format!(
            "the adapter's prefix is {shape:?}; this model needs [n, {}] ({} layers x 2 x {} key/value heads x {} head dim)",
            want.width(),
            want.num_layers,
            want.kv_heads,
            want.head_dim
        )));
    }
    let token_dim = want.kv_dim();
    let data = &if encoder_decoder {
        seq2seq_to_peft(data, want.num_layers, token_dim)?
    } else {
        data.clone()
    };
    let config = json!({
        "auto_mapping": null,
        "base_model_name_or_path": adapter.config.base_model,
        "encoder_hidden_size": token_dim,
        "inference_mode": true,
        "init_weights": null,
        "modules_to_save": null,
        "num_attention_heads": want.kv_heads,
        "num_layers": want.num_layers,
        "num_transformer_submodules": if encoder_decoder { 2 } else { 1 },
        "num_virtual_tokens": shape[0],
        "peft_type": "PREFIX_TUNING",
        "peft_version": "0.21.2",
        "prefix_projection": false,
        "revision": null,
        "task_type": super::peft::task_type(model),
        "token_dim": token_dim
    });
    peft_files::write(dir, &config, shape, data)
}

/// The PEFT layer whose keys and values decoder layer `layer` of an encoder-decoder sees.
///
/// PEFT 0.21 (`get_prompt`) doubles the `2 * layers` key/value blocks of `prompt_embeddings`
/// (`torch.cat([p, p], dim=2)`) and hands each layer four consecutive blocks as its
/// self-attention and cross-attention cache, then drops the cross-attention part. Decoder
/// layer `i` so gets the blocks of layer `2i mod layers`: with an even layer count, layers `i`
/// and `i + layers / 2` share one prefix and the odd layers' blocks are never read.
pub fn peft_seq2seq_source_layer(layer: usize, layers: usize) -> usize {
    (2 * layer) % layers.max(1)
}

/// A PEFT seq2seq prefix matrix rearranged so that each decoder layer's block holds what
/// PEFT feeds that layer ([`peft_seq2seq_source_layer`]).
fn seq2seq_from_peft(data: &[f32], layers: usize, token_dim: usize) -> Vec<f32> {
    let block = 2 * token_dim;
    let width = layers * block;
    let mut out = vec![0f32; data.len()];
    for (row_in, row_out) in data.chunks(width).zip(out.chunks_mut(width)) {
        for l in 0..layers {
            let src = peft_seq2seq_source_layer(l, layers) * block;
            row_out[l * block..(l + 1) * block].copy_from_slice(&row_in[src..src + block]);
        }
    }
    out
}

/// The inverse of [`seq2seq_from_peft`] where one exists: the decoder layers PEFT ties must
/// hold equal prefixes; the blocks PEFT never reads are written as zeros.
fn seq2seq_to_peft(data: &[f32], layers: usize, token_dim: usize) -> Result<Vec<f32>> {
    let block = 2 * token_dim;
    let width = layers * block;
    let mut out = vec![0f32; data.len()];
    for (row_in, row_out) in data.chunks(width).zip(out.chunks_mut(width)) {
        for l in 0..layers {
            let dst = peft_seq2seq_source_layer(l, layers);
            let first = (0..l).find(|&k| peft_seq2seq_source_layer(k, layers) == dst);
            let mine = &row_in[l * block..(l + 1) * block];
            if let Some(k) = first {
                if row_in[k * block..(k + 1) * block] != *mine {
                    return Err(Error::InvalidInput(format!(
                        "PEFT feeds decoder layers {k} and {l} one prefix (its seq2seq layout \
                         ties layer i to i + {}); this adapter's differ, so PEFT would run \
                         another model",
                        layers / 2
                    )));
                }
            }
            row_out[dst * block..(dst + 1) * block].copy_from_slice(mine);
        }
    }
    Ok(out)
}

/// What a PEFT PREFIX_TUNING adapter says about the model it was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeftPrefixInfo {
    /// Prefix length.
    pub num_virtual_tokens: usize,
    /// Layers.
    pub num_layers: usize,
    /// Key/value heads (PEFT's `num_attention_heads` after its GQA adjustment).
    pub num_attention_heads: usize,
    /// `kv_heads * head_dim`.
    pub token_dim: usize,
    /// Made for an encoder-decoder (SEQ_2_SEQ_LM, `num_transformer_submodules` 2): the prefix
    /// of its decoder self-attention.
    pub encoder_decoder: bool,
}

impl PeftPrefixInfo {
    /// Fails, naming both, when the adapter does not fit `model`.
    pub fn check(&self, model: &BackboneInfo) -> Result<()> {
        if self.encoder_decoder != model.has_site(AttentionSite::Cross) {
            return Err(Error::InvalidInput(format!(
                "the PEFT prefix is for {} model; {} is {}",
                if self.encoder_decoder {
                    "an encoder-decoder (SEQ_2_SEQ_LM)"
                } else {
                    "a decoder-only or encoder"
                },
                model.family,
                if model.has_site(AttentionSite::Cross) {
                    "an encoder-decoder"
                } else {
                    "not an encoder-decoder"
                }
            )));
        }
        let want = self.site().shape(model);
        if self.num_layers != want.num_layers
            || self.num_attention_heads != want.kv_heads
            || self.token_dim != want.kv_dim()
        {
            return Err(Error::Shape(format!(
                "the PEFT prefix is for {} layers x {} key/value heads (token_dim {}); the model has {} layers x {} key/value heads x {} head dim",
                self.num_layers,
                self.num_attention_heads,
                self.token_dim,
                want.num_layers,
                want.kv_heads,
                want.head_dim
            )));
        }
        Ok(())
    }
}

impl PeftPrefixInfo {
    /// Where the prefix goes: an encoder-decoder's decoder self-attention, else every layer.
    pub fn site(&self) -> PrefixSite {
        if self.encoder_decoder {
            PrefixSite::Decoder
        } else {
            PrefixSite::Main
        }
    }
}

/// Reads a PEFT PREFIX_TUNING adapter: the prefix as our [`EMBEDDING`] tensor `[n, layers *
/// 2 * token_dim]` (an encoder-decoder's as `prefix.decoder.embedding`) and the sizes its
/// config records.
pub fn import_prefix_tuning(dir: &Path) -> Result<(HostTensor, PeftPrefixInfo)> {
    let files = peft_files::read(dir, "PREFIX_TUNING")?;
    let (cfg_path, cfg, st_path) = (&files.config_path, &files.config, &files.tensor_path);
    let field = |k: &str| -> Result<usize> {
        cfg[k]
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| Error::format(cfg_path, format!("`{k}` is missing or not a number")))
    };
    let info = PeftPrefixInfo {
        num_virtual_tokens: field("num_virtual_tokens")?,
        num_layers: field("num_layers")?,
        num_attention_heads: field("num_attention_heads")?,
        token_dim: field("token_dim")?,
        encoder_decoder: match cfg["num_transformer_submodules"].as_u64().unwrap_or(1) {
            1 => false,
            2 => true,
            n => {
                return Err(Error::format(
                    cfg_path,
                    format!("num_transformer_submodules {n}: PEFT writes 1 or 2"),
                ))
            }
        },
    };
    let (shape, data) = (files.shape, files.data);
    let width = info.num_layers * 2 * info.token_dim;
    if shape != [info.num_virtual_tokens, width] {
        return Err(Error::format(
            st_path,
            format!(
                "prompt_embeddings is {shape:?}; the config says [{}, {width}] ({} virtual tokens, {} layers x 2 x token_dim {})",
                info.num_virtual_tokens, info.num_virtual_tokens, info.num_layers, info.token_dim
            ),
        ));
    }
    if info.num_attention_heads == 0 || !info.token_dim.is_multiple_of(info.num_attention_heads) {
        return Err(Error::format(
            cfg_path,
            format!(
                "token_dim {} is not a multiple of num_attention_heads {}",
                info.token_dim, info.num_attention_heads
            ),
        ));
    }
    let data = if info.encoder_decoder {
        seq2seq_from_peft(&data, info.num_layers, info.token_dim)
    } else {
        data
    };
    Ok((
        HostTensor::new(info.site().name(EMBEDDING), shape, data),
        info,
    ))
}
