//! BART encoder-decoders (Lewis et al. 2020): one token embedding shared by encoder, decoder
//! and LM head (optionally scaled by sqrt(hidden)), learned positions offset by 2 in each
//! stack, a LayerNorm on the embeddings, post-LayerNorm blocks with biases, and a decoder that
//! attends to the encoder's output; the LM head adds `final_logits_bias`. HF's
//! `BartForConditionalGeneration` names (a bare `BartModel` loads too).
//!
//! Prompt hooks reach all three attention sites, each optional and of its own length: the
//! [`ForwardInput`]'s prefixes go to encoder self-attention, [`DecoderInput::prefixes`] to
//! decoder self-attention and [`DecoderInput::cross_prefixes`] before the encoder's keys in
//! cross-attention (Li & Liang's placement; PEFT reaches decoder self-attention only). As in
//! transformers, encoder positions count from 0 whatever the padding, and decoder positions
//! continue after the cached keys, a decoder prefix included (what transformers does with
//! `past_key_values`).

use burn::tensor::{Bool, Device, Int, Tensor};

use super::attention::{attend, build_mask, split_heads, MaskSpec};
use super::hooks::{EncoderOutput, ForwardInput, ForwardOutput, LayerPrefix};
use super::kv_cache::KvCache;
use super::layers::{activate, embed, int_tensor, Linear, Norm};
use super::loader::{Bias, WeightLoader};
use super::prepare;
use super::seq2seq::{decoder_logits, CrossKeys};
use super::tensors::{visit_linear, visit_norm, TensorSlot};
use super::{AttentionSite, BackboneInfo, FamilyModel, PrefixPositions};
use crate::checkpoint::config::BackboneConfig;
use crate::checkpoint::weights::{resolve_prefix, WeightSource};
use crate::{Error, Result};

/// BART's learned position tables start at row 2 (a leftover of fairseq's padding offset).
const POSITION_OFFSET: i64 = 2;

/// A self-attention's projections.
#[derive(Debug, Clone)]
struct SelfAttention {
    /// Queries, keys and values side by side (`[h, 3 h]`).
    qkv: Linear,
    o: Linear,
}

impl SelfAttention {
    /// Attention of `x` over its own keys, joined with a prefix and the cache.
    fn forward(
        &self,
        x: Tensor<3>,
        mask: &Tensor<4, Bool>,
        prefix: Option<&LayerPrefix>,
        index: usize,
        cache: Option<&mut KvCache>,
        cfg: &BackboneConfig,
    ) -> Tensor<3> {
        let heads = cfg.num_heads;
        let qkv = split_heads(self.qkv.forward(x), 3 * heads);
        let q = qkv.clone().narrow(1, 0, heads);
        let k = qkv.clone().narrow(1, heads, heads);
        let v = qkv.narrow(1, 2 * heads, heads);
        let (k, v) = prepare::join_past(k, v, prefix, index, cache);
        self.o
            .forward(attend(q, k, v, mask, cfg.attention_scale, None))
    }
}

/// One encoder block: self-attention, then the feed-forward layer, each followed by a norm.
#[derive(Debug, Clone)]
struct EncoderLayer {
    attn: SelfAttention,
    attn_norm: Norm,
    fc1: Linear,
    fc2: Linear,
    ffn_norm: Norm,
}

/// One decoder block: causal self-attention, cross-attention, feed-forward, each followed by
/// a norm.
#[derive(Debug, Clone)]
struct DecoderLayer {
    attn: SelfAttention,
    self_norm: Norm,
    cross_q: Linear,
    /// Cross-attention keys and values side by side (`[h, 2 h]`).
    cross_kv: Linear,
    cross_o: Linear,
    cross_norm: Norm,
    fc1: Linear,
    fc2: Linear,
    ffn_norm: Norm,
}

/// A BART encoder-decoder with its LM head.
#[derive(Debug, Clone)]
pub struct Bart {
    config: BackboneConfig,
    /// `[vocab, hidden]` token embedding shared by both stacks (`shared`).
    embed: Tensor<2>,
    /// Multiplier of the token embeddings (sqrt(hidden) with `scale_embedding`, else 1).
    embed_scale: f32,
    /// `[max_positions + 2, hidden]` learned positions of each stack.
    encoder_positions: Tensor<2>,
    decoder_positions: Tensor<2>,
    encoder_embed_norm: Norm,
    decoder_embed_norm: Norm,
    encoder: Vec<EncoderLayer>,
    decoder: Vec<DecoderLayer>,
    /// `[vocab, hidden]` output head when not tied to the embedding.
    lm_head: Option<Tensor<2>>,
    /// `[vocab]` added to every logit (a buffer: not counted as a parameter).
    final_logits_bias: Option<Tensor<1>>,
    num_parameters: usize,
}

/// Reads a BART model's weights for `config` from `source`.
pub fn load(config: BackboneConfig, source: &dyn WeightSource, device: &Device) -> Result<Bart> {
    let prefix = resolve_prefix(source, &["model.", ""], "shared.weight").ok_or_else(|| {
        Error::MissingTensor {
            name: "model.shared.weight".into(),
            path: source.origin().into(),
        }
    })?;
    if !source.contains(&format!("{prefix}decoder.layers.0.self_attn.q_proj.weight")) {
        return Err(Error::MissingTensor {
            name: format!("{prefix}decoder.layers.0.self_attn.q_proj.weight (BART's decoder)"),
            path: source.origin().into(),
        });
    }
    let (h, inter, vocab) = (
        config.hidden_size,
        config.intermediate_size,
        config.vocab_size,
    );
    let table = config.max_positions + POSITION_OFFSET as usize;
    let mut ld = WeightLoader::new(source, prefix.clone(), device);
    let embed = ld.matrix(&format!("{prefix}shared.weight"), vocab, h)?;
    let encoder_positions =
        ld.matrix(&format!("{prefix}encoder.embed_positions.weight"), table, h)?;
    let decoder_positions =
        ld.matrix(&format!("{prefix}decoder.embed_positions.weight"), table, h)?;
    let encoder_embed_norm = ld.layer_norm("encoder.layernorm_embedding", h)?;
    let decoder_embed_norm = ld.layer_norm("decoder.layernorm_embedding", h)?;
    let attention = |ld: &mut WeightLoader, p: &str| -> Result<[Linear; 4]> {
        Ok(["q_proj", "k_proj", "v_proj", "out_proj"]
            .map(|n| ld.linear(&format!("{p}.{n}"), h, h, Bias::Required))
            .into_iter()
            .collect::<Result<Vec<_>>>()?
            .try_into()
            .expect("four projections"))
    };
    let mut encoder = Vec::with_capacity(config.num_layers);
    for i in 0..config.num_layers {
        let p = format!("encoder.layers.{i}");
        let [q, k, v, o] = attention(&mut ld, &format!("{p}.self_attn"))?;
        encoder.push(EncoderLayer {
            attn: SelfAttention {
                qkv: Linear::fuse(vec![q, k, v]),
                o,
            },
            attn_norm: ld.layer_norm(&format!("{p}.self_attn_layer_norm"), h)?,
            fc1: ld.linear(&format!("{p}.fc1"), inter, h, Bias::Required)?,
            fc2: ld.linear(&format!("{p}.fc2"), h, inter, Bias::Required)?,
            ffn_norm: ld.layer_norm(&format!("{p}.final_layer_norm"), h)?,
        });
    }
    let mut decoder = Vec::with_capacity(config.decoder_layers);
    for i in 0..config.decoder_layers {
        let p = format!("decoder.layers.{i}");
        let [q, k, v, o] = attention(&mut ld, &format!("{p}.self_attn"))?;
        let self_norm = ld.layer_norm(&format!("{p}.self_attn_layer_norm"), h)?;
        let [cq, ck, cv, co] = attention(&mut ld, &format!("{p}.encoder_attn"))?;
        decoder.push(DecoderLayer {
            attn: SelfAttention {
                qkv: Linear::fuse(vec![q, k, v]),
                o,
            },
            self_norm,
            cross_q: cq,
            cross_kv: Linear::fuse(vec![ck, cv]),
            cross_o: co,
            cross_norm: ld.layer_norm(&format!("{p}.encoder_attn_layer_norm"), h)?,
            fc1: ld.linear(&format!("{p}.fc1"), inter, h, Bias::Required)?,
            fc2: ld.linear(&format!("{p}.fc2"), h, inter, Bias::Required)?,
            ffn_norm: ld.layer_norm(&format!("{p}.final_layer_norm"), h)?,
        });
    }
    let lm_head = if config.tie_word_embeddings {
        None
    } else if source.contains("lm_head.weight") {
        Some(ld.matrix("lm_head.weight", vocab, h)?)
    } else {
        return Err(Error::MissingTensor {
            name: "lm_head.weight".into(),
            path: source.origin().into(),
        });
    };
    let final_logits_bias = if source.contains("final_logits_bias") {
        let bias = ld.matrix("final_logits_bias", 1, vocab)?.reshape([vocab]);
        ld.count -= vocab;
        Some(bias)
    } else {
        None
    };
    let embed_scale = if config.scale_embedding {
        (h as f32).sqrt()
    } else {
        1.0
    };
    Ok(Bart {
        num_parameters: ld.count,
        config,
        embed,
        embed_scale,
        encoder_positions,
        decoder_positions,
        encoder_embed_norm,
        decoder_embed_norm,
        encoder,
        decoder,
        lm_head,
        final_logits_bias,
    })
}

impl Bart {
    /// Token embeddings as the first layer of either stack sees them.
    fn embed_ids(&self, tokens: &super::TokenBatch, device: &Device) -> Tensor<3> {
        let ids = int_tensor(
            tokens.ids.iter().map(|&i| i as i64).collect(),
            [tokens.batch, tokens.len],
            device,
        );
        let x = embed(&self.embed, ids);
        if self.embed_scale == 1.0 {
            x
        } else {
            x * self.embed_scale
        }
    }

    /// Adds the learned positions `[B, L]` (before the offset) and normalises.
    fn add_positions(
        &self,
        x: Tensor<3>,
        table: &Tensor<2>,
        norm: &Norm,
        positions: Vec<i64>,
        device: &Device,
    ) -> Tensor<3> {
        let [b, l, _] = x.dims();
        let positions = positions.into_iter().map(|p| p + POSITION_OFFSET).collect();
        let x = x + embed(table, int_tensor(positions, [b, l], device));
        norm.forward(x, self.config.norm_eps)
    }

    /// The encoder over `input`'s tokens and hooks (validated).
    fn encode(&self, input: &ForwardInput) -> EncoderOutput {
        let cfg = &self.config;
        let device = self.embed.device();
        let x = prepare::input_vectors(input, |t| self.embed_ids(t, &device), &device);
        let deep = input.deep.as_ref();
        let prepare::StepKeys {
            seq_mask,
            keys_valid,
            prefix_slots,
            ..
        } = prepare::step_keys(input, None);
        let b = input.tokens.as_ref().expect("validated").batch;
        let len = seq_mask.len() / b;
        // transformers numbers the encoder's positions 0.. whatever the padding or prefix
        let positions = prepare::default_positions(len, &vec![0; b]);
        let mut x = self.add_positions(
            x,
            &self.encoder_positions,
            &self.encoder_embed_norm,
            positions,
            &device,
        );
        let mask = build_mask(
            b,
            len,
            &keys_valid,
            MaskSpec {
                causal: false,
                window: None,
                prefix_slots,
            },
            &device,
        );
        let mut hidden_states = Vec::new();
        for (i, layer) in self.encoder.iter().enumerate() {
            x = prepare::overwrite_deep(x, deep, i);
            if input.output_hidden_states {
                hidden_states.push(x.clone());
            }
            let prefix = input.prefixes.as_ref().map(|p| &p[i]);
            let attn = layer.attn.forward(x.clone(), &mask, prefix, i, None, cfg);
            x = layer.attn_norm.forward(x + attn, cfg.norm_eps);
            let up = activate(&cfg.hidden_act, layer.fc1.forward(x.clone()));
            x = layer
                .ffn_norm
                .forward(x + layer.fc2.forward(up), cfg.norm_eps);
        }
        if input.output_hidden_states {
            hidden_states.push(x.clone());
        }
        EncoderOutput {
            last_hidden: x,
            hidden_states,
            mask: seq_mask,
        }
    }

    /// Forward pass; inputs were validated by [`super::Backbone::forward`].
    fn run(&self, input: &ForwardInput, mut cache: Option<&mut KvCache>) -> ForwardOutput {
        let Some(decoder) = &input.decoder else {
            let encoded = self.encode(input);
            let device = self.embed.device();
            return ForwardOutput {
                hidden_at: prepare::hidden_at(input, &encoded.last_hidden, &device),
                last_hidden: encoded.last_hidden,
                hidden_states: encoded.hidden_states,
                logits: None,
                mask: encoded.mask,
                encoder: None,
            };
        };
        let cfg = &self.config;
        let device = self.embed.device();
        let view = prepare::decoder_view(input, decoder);
        let tokens = &decoder.tokens;
        let b = tokens.batch;

        // the source: encoded now (first step), or its keys read back from the cache
        let encoded = input.tokens.is_some().then(|| self.encode(input));
        let cross = match &encoded {
            Some(e) => {
                let kv: Vec<&Linear> = self.decoder.iter().map(|l| &l.cross_kv).collect();
                CrossKeys::compute(e, decoder, &kv, cfg.num_heads, cache.as_deref_mut())
            }
            None => CrossKeys::cached(
                cache
                    .as_deref()
                    .expect("validated: the cache holds the source"),
                self.decoder.len(),
            ),
        };

        let x = prepare::input_vectors(&view, |t| self.embed_ids(t, &device), &device);
        let prepare::StepKeys {
            seq_mask,
            keys_valid,
            prefix_slots,
            past,
        } = prepare::step_keys(&view, cache.as_deref());
        let len = seq_mask.len() / b;
        let positions = view.position_ids.clone().unwrap_or_else(|| {
            let starts = prepare::row_starts(&keys_valid, b, past, prefix_slots);
            prepare::default_positions(len, &starts)
        });
        let mut x = self.add_positions(
            x,
            &self.decoder_positions,
            &self.decoder_embed_norm,
            positions,
            &device,
        );
        let self_mask = build_mask(
            b,
            len,
            &keys_valid,
            MaskSpec {
                causal: true,
                window: None,
                prefix_slots,
            },
            &device,
        );
        let cross_mask = cross.mask(b, len, &device);

        let mut hidden_states = Vec::new();
        for (i, layer) in self.decoder.iter().enumerate() {
            if input.output_hidden_states {
                hidden_states.push(x.clone());
            }
            let prefix = decoder.prefixes.as_ref().map(|p| &p[i]);
            let attn =
                layer
                    .attn
                    .forward(x.clone(), &self_mask, prefix, i, cache.as_deref_mut(), cfg);
            x = layer.self_norm.forward(x + attn, cfg.norm_eps);
            let q = split_heads(layer.cross_q.forward(x.clone()), cfg.num_heads);
            let (k, v) = cross.layers[i].clone();
            let attn = attend(q, k, v, &cross_mask, cfg.attention_scale, None);
            x = layer
                .cross_norm
                .forward(x + layer.cross_o.forward(attn), cfg.norm_eps);
            let up = activate(&cfg.hidden_act, layer.fc1.forward(x.clone()));
            x = layer
                .ffn_norm
                .forward(x + layer.fc2.forward(up), cfg.norm_eps);
        }
        if input.output_hidden_states {
            hidden_states.push(x.clone());
        }
        if let Some(c) = cache {
            c.set_prefix_len(prefix_slots);
            c.set_mask(b, keys_valid);
        }
        let logits = decoder_logits(
            &view,
            &x,
            &seq_mask,
            self.lm_head.as_ref().unwrap_or(&self.embed),
            self.final_logits_bias.as_ref(),
            &device,
        );
        ForwardOutput {
            hidden_at: prepare::hidden_at(&view, &x, &device),
            last_hidden: x,
            hidden_states,
            logits,
            mask: seq_mask,
            encoder: encoded,
        }
    }
}

impl FamilyModel for Bart {
    fn config(&self) -> &BackboneConfig {
        &self.config
    }

    fn device(&self) -> Device {
        self.embed.device()
    }

    fn output_vocab(&self) -> usize {
        self.config.vocab_size
    }

    fn num_parameters(&self) -> usize {
        self.num_parameters
    }

    fn visit_tensors(&mut self, f: &mut dyn FnMut(&str, TensorSlot)) {
        f("embed", TensorSlot::Matrix(&mut self.embed));
        f(
            "encoder.positions",
            TensorSlot::Matrix(&mut self.encoder_positions),
        );
        f(
            "decoder.positions",
            TensorSlot::Matrix(&mut self.decoder_positions),
        );
        visit_norm("encoder.embed_norm", &mut self.encoder_embed_norm, f);
        visit_norm("decoder.embed_norm", &mut self.decoder_embed_norm, f);
        for (i, l) in self.encoder.iter_mut().enumerate() {
            let p = format!("encoder.layer.{i}");
            visit_linear(&format!("{p}.qkv"), &mut l.attn.qkv, f);
            visit_linear(&format!("{p}.o"), &mut l.attn.o, f);
            visit_norm(&format!("{p}.attn_norm"), &mut l.attn_norm, f);
            visit_linear(&format!("{p}.fc1"), &mut l.fc1, f);
            visit_linear(&format!("{p}.fc2"), &mut l.fc2, f);
            visit_norm(&format!("{p}.ffn_norm"), &mut l.ffn_norm, f);
        }
        for (i, l) in self.decoder.iter_mut().enumerate() {
            let p = format!("decoder.layer.{i}");
            visit_linear(&format!("{p}.qkv"), &mut l.attn.qkv, f);
            visit_linear(&format!("{p}.o"), &mut l.attn.o, f);
            visit_norm(&format!("{p}.self_norm"), &mut l.self_norm, f);
            visit_linear(&format!("{p}.cross_q"), &mut l.cross_q, f);
            visit_linear(&format!("{p}.cross_kv"), &mut l.cross_kv, f);
            visit_linear(&format!("{p}.cross_o"), &mut l.cross_o, f);
            visit_norm(&format!("{p}.cross_norm"), &mut l.cross_norm, f);
            visit_linear(&format!("{p}.fc1"), &mut l.fc1, f);
            visit_linear(&format!("{p}.fc2"), &mut l.fc2, f);
            visit_norm(&format!("{p}.ffn_norm"), &mut l.ffn_norm, f);
        }
        if let Some(h) = &mut self.lm_head {
            f("lm_head.weight", TensorSlot::Matrix(h));
        }
    }

    fn embed(&self, idx: Tensor<1, Int>) -> Tensor<2> {
        let x = self.embed.clone().select(0, idx);
        if self.embed_scale == 1.0 {
            x
        } else {
            x * self.embed_scale
        }
    }

    fn forward(&self, input: &ForwardInput, cache: Option<&mut KvCache>) -> ForwardOutput {
        self.run(input, cache)
    }

    fn pool(&self, _last_hidden: &Tensor<3>) -> Option<Tensor<2>> {
        None
    }

    fn info(&self) -> BackboneInfo {
        BackboneInfo::of(
            &self.config,
            self.config.vocab_size,
            AttentionSite::EncoderSelf,
            PrefixPositions::Default,
        )
    }

    fn caches_keys(&self) -> bool {
        true
    }

    fn boxed_clone(&self) -> Box<dyn FamilyModel> {
        Box::new(self.clone())
    }
}
