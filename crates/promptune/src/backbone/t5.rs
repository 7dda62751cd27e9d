//! T5 encoder-decoders (Raffel et al. 2020): no position embeddings but a bucketed relative
//! position bias added to the attention scores (learned in each stack's first layer,
//! bidirectional in the encoder, causal in the decoder, shared by all its layers), unscaled
//! attention without biases, RMS norms without a mean before each sub-layer, a ReLU (v1.0) or
//! gated-GELU (v1.1, Flan) feed-forward layer, and an LM head tied to the embedding (the
//! decoder output then scaled by hidden^-0.5) or its own. HF's `T5ForConditionalGeneration`
//! names.
//!
//! Prompt hooks reach all three attention sites as in [`super::bart`]. Against the relative
//! bias a prefix stands where transformers puts `past_key_values`: its slots are the first
//! positions of the row and the tokens follow them, so each token sees the prefix keys at
//! their distance; a row's unused prefix slots take no position.

use burn::tensor::{Bool, Device, Int, Tensor};

use super::attention::{attend, attend_biased, build_mask, split_heads, MaskSpec};
use super::hooks::{EncoderOutput, ForwardInput, ForwardOutput, LayerPrefix};
use super::kv_cache::KvCache;
use super::layers::{activate, embed, int_tensor, rms_norm, Linear};
use super::loader::{Bias, WeightLoader};
use super::prepare;
use super::seq2seq::{decoder_logits, CrossKeys};
use super::tensors::{visit_linear, TensorSlot};
use super::{AttentionSite, BackboneInfo, FamilyModel, PrefixPositions};
use crate::checkpoint::config::{BackboneConfig, RelativeAttention};
use crate::checkpoint::weights::WeightSource;
use crate::{Error, Result};

/// The feed-forward layer of a block.
#[derive(Debug, Clone)]
enum FeedForward {
    /// `wo(act(wi x))` (v1.0).
    Plain { wi: Linear, wo: Linear },
    /// `wo(act(wi_0 x) * wi_1 x)` (v1.1), `wi_0` and `wi_1` side by side in `wi`.
    Gated { wi: Linear, wo: Linear },
}

/// A decoder block's attention to the encoder output.
#[derive(Debug, Clone)]
struct CrossAttention {
    norm: Tensor<1>,
    q: Linear,
    /// Keys and values side by side (`[h, 2 inner]`).
    kv: Linear,
    o: Linear,
}

/// One block of either stack.
#[derive(Debug, Clone)]
struct Block {
    attn_norm: Tensor<1>,
    /// Queries, keys and values side by side (`[h, 3 inner]`).
    qkv: Linear,
    o: Linear,
    /// Decoder blocks only.
    cross: Option<CrossAttention>,
    ffn_norm: Tensor<1>,
    ffn: FeedForward,
}

/// One stack: its blocks, its relative position bias `[buckets, heads]`, its final norm.
#[derive(Debug, Clone)]
struct Stack {
    blocks: Vec<Block>,
    relative_bias: Tensor<2>,
    final_norm: Tensor<1>,
}

/// A T5 encoder-decoder with its LM head.
#[derive(Debug, Clone)]
pub struct T5 {
    config: BackboneConfig,
    relative: RelativeAttention,
    /// `[vocab, hidden]` token embedding shared by both stacks (`shared`).
    embed: Tensor<2>,
    encoder: Stack,
    decoder: Stack,
    /// `[vocab, hidden]` output head when not tied to the embedding.
    lm_head: Option<Tensor<2>>,
    num_parameters: usize,
}

/// Reads a T5 model's weights for `config` from `source`.
pub fn load(config: BackboneConfig, source: &dyn WeightSource, device: &Device) -> Result<T5> {
    let missing = |name: &str| Error::MissingTensor {
        name: name.into(),
        path: source.origin().into(),
    };
    let relative = config
        .relative_attention
        .ok_or_else(|| Error::Shape("a T5 config needs its relative attention buckets".into()))?;
    if !source.contains("shared.weight") {
        return Err(missing("shared.weight"));
    }
    if !source.contains("decoder.block.0.layer.0.SelfAttention.q.weight") {
        return Err(missing(
            "decoder.block.0.layer.0.SelfAttention.q.weight (T5's decoder: an encoder-only \
             checkpoint cannot decode)",
        ));
    }
    let (h, inner, ff, vocab) = (
        config.hidden_size,
        config.num_heads * config.head_dim,
        config.intermediate_size,
        config.vocab_size,
    );
    let mut ld = WeightLoader::new(source, "", device);
    let embed = ld.matrix("shared.weight", vocab, h)?;
    let stack = |ld: &mut WeightLoader, name: &str, layers: usize| -> Result<Stack> {
        let mut blocks = Vec::with_capacity(layers);
        for i in 0..layers {
            let p = format!("{name}.block.{i}.layer");
            let proj = |ld: &mut WeightLoader, n: &str, out: usize, inp: usize| {
                ld.linear(n, out, inp, Bias::IfPresent)
            };
            let sa = format!("{p}.0.SelfAttention");
            let qkv = Linear::fuse(vec![
                proj(ld, &format!("{sa}.q"), inner, h)?,
                proj(ld, &format!("{sa}.k"), inner, h)?,
                proj(ld, &format!("{sa}.v"), inner, h)?,
            ]);
            let o = proj(ld, &format!("{sa}.o"), h, inner)?;
            let attn_norm = ld.vector(&format!("{p}.0.layer_norm.weight"), h)?;
            let (cross, f) = if name == "decoder" {
                let ca = format!("{p}.1.EncDecAttention");
                let cross = CrossAttention {
                    norm: ld.vector(&format!("{p}.1.layer_norm.weight"), h)?,
                    q: proj(ld, &format!("{ca}.q"), inner, h)?,
                    kv: Linear::fuse(vec![
                        proj(ld, &format!("{ca}.k"), inner, h)?,
                        proj(ld, &format!("{ca}.v"), inner, h)?,
                    ]),
                    o: proj(ld, &format!("{ca}.o"), h, inner)?,
                };
                (Some(cross), format!("{p}.2"))
            } else {
                (None, format!("{p}.1"))
            };
            let ffn = if config.gated_ffn {
                FeedForward::Gated {
                    wi: Linear::fuse(vec![
                        proj(ld, &format!("{f}.DenseReluDense.wi_0"), ff, h)?,
                        proj(ld, &format!("{f}.DenseReluDense.wi_1"), ff, h)?,
                    ]),
                    wo: proj(ld, &format!("{f}.DenseReluDense.wo"), h, ff)?,
                }
            } else {
                FeedForward::Plain {
                    wi: proj(ld, &format!("{f}.DenseReluDense.wi"), ff, h)?,
                    wo: proj(ld, &format!("{f}.DenseReluDense.wo"), h, ff)?,
                }
            };
            blocks.push(Block {
                attn_norm,
                qkv,
                o,
                cross,
                ffn_norm: ld.vector(&format!("{f}.layer_norm.weight"), h)?,
                ffn,
            });
        }
        Ok(Stack {
            blocks,
            relative_bias: ld.matrix(
                &format!("{name}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
                relative.num_buckets,
                config.num_heads,
            )?,
            final_norm: ld.vector(&format!("{name}.final_layer_norm.weight"), h)?,
        })
    };
    let encoder = stack(&mut ld, "encoder", config.num_layers)?;
    let decoder = stack(&mut ld, "decoder", config.decoder_layers)?;
    let lm_head = if config.tie_word_embeddings {
        None
    } else if source.contains("lm_head.weight") {
        Some(ld.matrix("lm_head.weight", vocab, h)?)
    } else {
        return Err(missing("lm_head.weight"));
    };
    Ok(T5 {
        num_parameters: ld.count,
        config,
        relative,
        embed,
        encoder,
        decoder,
        lm_head,
    })
}

/// T5's bucket of a key at `relative` positions from its query (transformers'
/// `_relative_position_bucket`, the logarithmic part in f32 as it computes it).
fn bucket(relative: i64, bidirectional: bool, rel: RelativeAttention) -> i64 {
    let mut buckets = rel.num_buckets as i64;
    let mut out = 0;
    let distance = if bidirectional {
        buckets /= 2;
        if relative > 0 {
            out += buckets;
        }
        relative.abs()
    } else {
        -relative.min(0)
    };
    let exact = buckets / 2;
    if distance < exact {
        return out + distance;
    }
    let log_ratio = (distance as f32 / exact as f32).ln()
        / ((rel.max_distance as f64 / exact as f64).ln() as f32)
        * (buckets - exact) as f32;
    out + (exact + log_ratio as i64).min(buckets - 1)
}

impl T5 {
    /// The relative position bias `[B, H, T, S]` of `queries` new positions over keys of
    /// validity `keys_valid` (`[B, S]`), the first `prefix_slots` of them prefix slots: each
    /// key's place is its index, less the unused prefix slots before it.
    fn position_bias(
        &self,
        table: &Tensor<2>,
        keys_valid: &[u8],
        batch: usize,
        queries: usize,
        prefix_slots: usize,
        bidirectional: bool,
    ) -> Tensor<4> {
        let keys = keys_valid.len() / batch;
        let past = keys - queries;
        let mut buckets = Vec::with_capacity(batch * queries * keys);
        for row in keys_valid.chunks(keys) {
            let mut skipped = 0i64;
            let place: Vec<i64> = (0..keys)
                .map(|j| {
                    if j > 0 && j <= prefix_slots.min(keys) && row[j - 1] == 0 {
                        skipped += 1;
                    }
                    j as i64 - skipped
                })
                .collect();
            for i in 0..queries {
                let q = place[past + i];
                buckets.extend(
                    place
                        .iter()
                        .map(|&k| bucket(k - q, bidirectional, self.relative)),
                );
            }
        }
        let device = table.device();
        let heads = self.config.num_heads;
        embed(table, int_tensor(buckets, [batch, queries * keys], &device))
            .reshape([batch, queries, keys, heads])
            .permute([0, 3, 1, 2])
    }

    /// Self-attention of one block over `x` (normalised), its keys joined with a prefix and
    /// the cache, the relative bias added.
    #[allow(clippy::too_many_arguments)]
    fn self_attention(
        &self,
        block: &Block,
        x: Tensor<3>,
        mask: &Tensor<4, Bool>,
        bias: &Tensor<4>,
        prefix: Option<&LayerPrefix>,
        index: usize,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let heads = self.config.num_heads;
        let qkv = split_heads(block.qkv.forward(x), 3 * heads);
        let q = qkv.clone().narrow(1, 0, heads);
        let k = qkv.clone().narrow(1, heads, heads);
        let v = qkv.narrow(1, 2 * heads, heads);
        let (k, v) = prepare::join_past(k, v, prefix, index, cache);
        block.o.forward(attend_biased(q, k, v, mask, bias, 1.0))
    }

    fn feed_forward(&self, ffn: &FeedForward, x: Tensor<3>) -> Tensor<3> {
        let act = &self.config.hidden_act;
        match ffn {
            FeedForward::Plain { wi, wo } => wo.forward(activate(act, wi.forward(x))),
            FeedForward::Gated { wi, wo } => {
                let both = wi.forward(x);
                let n = self.config.intermediate_size;
                let gate = activate(act, both.clone().narrow(2, 0, n));
                wo.forward(gate * both.narrow(2, n, n))
            }
        }
    }

    fn norm(&self, x: Tensor<3>, weight: &Tensor<1>) -> Tensor<3> {
        rms_norm(x, weight, self.config.norm_eps)
    }

    fn embed_ids(&self, tokens: &super::TokenBatch, device: &Device) -> Tensor<3> {
        let ids = int_tensor(
            tokens.ids.iter().map(|&i| i as i64).collect(),
            [tokens.batch, tokens.len],
            device,
        );
        embed(&self.embed, ids)
    }

    /// The encoder over `input`'s tokens and hooks (validated).
    fn encode(&self, input: &ForwardInput) -> EncoderOutput {
        let device = self.embed.device();
        let mut x = prepare::input_vectors(input, |t| self.embed_ids(t, &device), &device);
        let deep = input.deep.as_ref();
        let prepare::StepKeys {
            seq_mask,
            keys_valid,
            prefix_slots: prefix_len,
            ..
        } = prepare::step_keys(input, None);
        let b = input.tokens.as_ref().expect("validated").batch;
        let len = seq_mask.len() / b;
        let spec = MaskSpec {
            causal: false,
            window: None,
            prefix_slots: prefix_len,
        };
        let mask = build_mask(b, len, &keys_valid, spec, &device);
        let bias = self.position_bias(
            &self.encoder.relative_bias,
            &keys_valid,
            b,
            len,
            prefix_len,
            true,
        );
        let mut hidden_states = Vec::new();
        for (i, block) in self.encoder.blocks.iter().enumerate() {
            x = prepare::overwrite_deep(x, deep, i);
            if input.output_hidden_states {
                hidden_states.push(x.clone());
            }
            let prefix = input.prefixes.as_ref().map(|p| &p[i]);
            let h = self.norm(x.clone(), &block.attn_norm);
            x = x + self.self_attention(block, h, &mask, &bias, prefix, i, None);
            let h = self.norm(x.clone(), &block.ffn_norm);
            x = x + self.feed_forward(&block.ffn, h);
        }
        let x = self.norm(x, &self.encoder.final_norm);
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
        let device = self.embed.device();
        let Some(decoder) = &input.decoder else {
            let encoded = self.encode(input);
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
        let view = prepare::decoder_view(input, decoder);
        let b = decoder.tokens.batch;
        let encoded = input.tokens.is_some().then(|| self.encode(input));
        let cross = match &encoded {
            Some(e) => {
                let kv: Vec<&Linear> = self
                    .decoder
                    .blocks
                    .iter()
                    .map(|l| &l.cross.as_ref().expect("decoder blocks attend").kv)
                    .collect();
                CrossKeys::compute(e, decoder, &kv, cfg.num_heads, cache.as_deref_mut())
            }
            None => CrossKeys::cached(
                cache
                    .as_deref()
                    .expect("validated: the cache holds the source"),
                self.decoder.blocks.len(),
            ),
        };

        let mut x = prepare::input_vectors(&view, |t| self.embed_ids(t, &device), &device);
        let prepare::StepKeys {
            seq_mask,
            keys_valid,
            prefix_slots,
            ..
        } = prepare::step_keys(&view, cache.as_deref());
        let len = seq_mask.len() / b;
        let spec = MaskSpec {
            causal: true,
            window: None,
            prefix_slots,
        };
        let self_mask = build_mask(b, len, &keys_valid, spec, &device);
        let bias = self.position_bias(
            &self.decoder.relative_bias,
            &keys_valid,
            b,
            len,
            prefix_slots,
            false,
        );
        let cross_mask = cross.mask(b, len, &device);

        let mut hidden_states = Vec::new();
        for (i, block) in self.decoder.blocks.iter().enumerate() {
            if input.output_hidden_states {
                hidden_states.push(x.clone());
            }
            let prefix = decoder.prefixes.as_ref().map(|p| &p[i]);
            let h = self.norm(x.clone(), &block.attn_norm);
            x = x + self.self_attention(
                block,
                h,
                &self_mask,
                &bias,
                prefix,
                i,
                cache.as_deref_mut(),
            );
            let ca = block.cross.as_ref().expect("decoder blocks attend");
            let h = self.norm(x.clone(), &ca.norm);
            let q = split_heads(ca.q.forward(h), cfg.num_heads);
            let (k, v) = cross.layers[i].clone();
            x = x + ca.o.forward(attend(q, k, v, &cross_mask, 1.0, None));
            let h = self.norm(x.clone(), &block.ffn_norm);
            x = x + self.feed_forward(&block.ffn, h);
        }
        let x = self.norm(x, &self.decoder.final_norm);
        if input.output_hidden_states {
            hidden_states.push(x.clone());
        }
        if let Some(c) = cache {
            c.set_prefix_len(prefix_slots);
            c.set_mask(b, keys_valid);
        }
        let scaled = if cfg.scale_decoder_outputs {
            x.clone() * (cfg.hidden_size as f32).powf(-0.5)
        } else {
            x.clone()
        };
        let logits = decoder_logits(
            &view,
            &scaled,
            &seq_mask,
            self.lm_head.as_ref().unwrap_or(&self.embed),
            None,
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

fn visit_stack(name: &str, stack: &mut Stack, f: &mut dyn FnMut(&str, TensorSlot)) {
    f(
        &format!("{name}.relative_bias"),
        TensorSlot::Matrix(&mut stack.relative_bias),
    );
    for (i, b) in stack.blocks.iter_mut().enumerate() {
        let p = format!("{name}.layer.{i}");
        f(
            &format!("{p}.attn_norm.weight"),
            TensorSlot::Vector(&mut b.attn_norm),
        );
        visit_linear(&format!("{p}.qkv"), &mut b.qkv, f);
        visit_linear(&format!("{p}.o"), &mut b.o, f);
        if let Some(c) = &mut b.cross {
            f(
                &format!("{p}.cross_norm.weight"),
                TensorSlot::Vector(&mut c.norm),
            );
            visit_linear(&format!("{p}.cross_q"), &mut c.q, f);
            visit_linear(&format!("{p}.cross_kv"), &mut c.kv, f);
            visit_linear(&format!("{p}.cross_o"), &mut c.o, f);
        }
        f(
            &format!("{p}.ffn_norm.weight"),
            TensorSlot::Vector(&mut b.ffn_norm),
        );
        let (FeedForward::Plain { wi, wo } | FeedForward::Gated { wi, wo }) = &mut b.ffn;
        visit_linear(&format!("{p}.wi"), wi, f);
        visit_linear(&format!("{p}.wo"), wo, f);
    }
    f(
        &format!("{name}.final_norm.weight"),
        TensorSlot::Vector(&mut stack.final_norm),
    );
}

impl FamilyModel for T5 {
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
        visit_stack("encoder", &mut self.encoder, f);
        visit_stack("decoder", &mut self.decoder, f);
        if let Some(h) = &mut self.lm_head {
            f("lm_head.weight", TensorSlot::Matrix(h));
        }
    }

    fn embed(&self, idx: Tensor<1, Int>) -> Tensor<2> {
        self.embed.clone().select(0, idx)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// transformers' buckets for T5's defaults (32 buckets, distance 128), computed by
    /// `T5Attention._relative_position_bucket`.
    #[test]
    fn buckets_follow_transformers() {
        let rel = RelativeAttention {
            num_buckets: 32,
            max_distance: 128,
        };
        let bidirectional: Vec<i64> = [-200, -128, -100, -20, -9, -8, -7, -1, 0, 1, 7, 8, 20, 200]
            .iter()
            .map(|&r| bucket(r, true, rel))
            .collect();
        assert_eq!(
            bidirectional,
            [15, 15, 15, 10, 8, 8, 7, 1, 0, 17, 23, 24, 26, 31]
        );
        let causal: Vec<i64> = [-200, -100, -16, -15, -1, 0, 5]
            .iter()
            .map(|&r| bucket(r, false, rel))
            .collect();
        assert_eq!(causal, [31, 30, 16, 15, 1, 0, 0]);
    }
}
