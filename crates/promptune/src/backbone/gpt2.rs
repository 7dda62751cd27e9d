//! GPT-2 decoders (Radford et al. 2019): learned absolute positions added to the token
//! embeddings, pre-LayerNorm blocks with biases, one fused query/key/value projection, a GELU
//! MLP, and the LM head tied to the token embedding. HF's `GPT2LMHeadModel` names; its
//! `Conv1D` layers already store `W` as `[in, out]`.

use burn::tensor::{Bool, Device, Int, Tensor};

use super::attention::{attend, build_mask, split_heads, MaskSpec};
use super::hooks::{ForwardInput, ForwardOutput, LayerPrefix, LogitPositions};
use super::kv_cache::KvCache;
use super::layers::{activate, embed, int_tensor, Linear, Norm};
use super::loader::WeightLoader;
use super::prepare;
use super::tensors::{visit_linear, visit_norm, TensorSlot};
use super::{AttentionSite, BackboneInfo, FamilyModel, PrefixPositions};
use crate::checkpoint::config::BackboneConfig;
use crate::checkpoint::weights::{resolve_prefix, WeightSource};
use crate::{Error, Result};

/// One GPT-2 block.
#[derive(Debug, Clone)]
struct Block {
    attn_norm: Norm,
    /// Queries, keys and values side by side (`[h, 3 h]`).
    qkv: Linear,
    o: Linear,
    mlp_norm: Norm,
    up: Linear,
    down: Linear,
}

/// A GPT-2 decoder with its (tied) LM head.
#[derive(Debug, Clone)]
pub struct Gpt2 {
    config: BackboneConfig,
    /// `[vocab, hidden]` token embedding (`wte`).
    embed: Tensor<2>,
    /// `[max_positions, hidden]` position embedding (`wpe`).
    positions: Tensor<2>,
    blocks: Vec<Block>,
    final_norm: Norm,
    /// `[vocab, hidden]` output head when not tied to the embedding.
    lm_head: Option<Tensor<2>>,
    num_parameters: usize,
}

/// Reads a GPT-2 decoder's weights for `config` from `source` (a `GPT2LMHeadModel`, whose
/// names start with `transformer.`, or a bare `GPT2Model`).
pub fn load(config: BackboneConfig, source: &dyn WeightSource, device: &Device) -> Result<Gpt2> {
    let prefix = resolve_prefix(source, &["transformer.", ""], "wte.weight").ok_or_else(|| {
        Error::MissingTensor {
            name: "transformer.wte.weight".into(),
            path: source.origin().into(),
        }
    })?;
    let (h, inter) = (config.hidden_size, config.intermediate_size);
    let mut ld = WeightLoader::new(source, prefix.clone(), device);
    let embed = ld.matrix(&format!("{prefix}wte.weight"), config.vocab_size, h)?;
    let positions = ld.matrix(&format!("{prefix}wpe.weight"), config.max_positions, h)?;
    let mut blocks = Vec::with_capacity(config.num_layers);
    for i in 0..config.num_layers {
        let p = format!("h.{i}.");
        blocks.push(Block {
            attn_norm: ld.layer_norm(&format!("{p}ln_1"), h)?,
            qkv: ld.conv1d(&format!("{p}attn.c_attn"), h, 3 * h)?,
            o: ld.conv1d(&format!("{p}attn.c_proj"), h, h)?,
            mlp_norm: ld.layer_norm(&format!("{p}ln_2"), h)?,
            up: ld.conv1d(&format!("{p}mlp.c_fc"), h, inter)?,
            down: ld.conv1d(&format!("{p}mlp.c_proj"), inter, h)?,
        });
    }
    let final_norm = ld.layer_norm("ln_f", h)?;
    let lm_head = if config.tie_word_embeddings {
        None
    } else if source.contains("lm_head.weight") {
        Some(ld.matrix("lm_head.weight", config.vocab_size, h)?)
    } else {
        return Err(Error::MissingTensor {
            name: "lm_head.weight".into(),
            path: source.origin().into(),
        });
    };
    Ok(Gpt2 {
        num_parameters: ld.count,
        config,
        embed,
        positions,
        blocks,
        final_norm,
        lm_head,
    })
}

/// Per row, the position of each of the last `len` keys: how many valid keys precede it.
fn real_token_positions(keys_valid: &[u8], batch: usize, len: usize) -> Vec<i64> {
    let keys = keys_valid.len() / batch;
    keys_valid
        .chunks(keys)
        .flat_map(|row| {
            let before: i64 = row[..keys - len].iter().map(|&v| i64::from(v)).sum();
            row[keys - len..].iter().scan(before, |count, &v| {
                let here = *count;
                *count += i64::from(v);
                Some(here)
            })
        })
        .collect()
}

impl Gpt2 {
    /// Forward pass; inputs were validated by [`super::Backbone::forward`].
    fn run(&self, input: &ForwardInput, mut cache: Option<&mut KvCache>) -> ForwardOutput {
        let cfg = &self.config;
        let tokens = input.tokens.as_ref().expect("validated");
        let device = self.embed.device();
        let b = tokens.batch;
        let ids = |t: &super::TokenBatch| {
            let ids = t.ids.iter().map(|&i| i as i64).collect();
            embed(&self.embed, int_tensor(ids, [b, t.len], &device))
        };
        let mut x = prepare::input_vectors(input, ids, &device);
        let deep = input.deep.as_ref();
        let prepare::StepKeys {
            seq_mask,
            keys_valid,
            prefix_slots,
            ..
        } = prepare::step_keys(input, cache.as_deref());
        let len = seq_mask.len() / b;
        // learned absolute positions must not move with padding: by default each token's
        // position is the number of real keys before it (prefix, cached and new), as HF's
        // `generate` numbers a padded GPT-2 batch
        let positions = input
            .position_ids
            .clone()
            .unwrap_or_else(|| real_token_positions(&keys_valid, b, len));
        // learned positions: the embedding of each position is added to its token's
        x = x + embed(&self.positions, int_tensor(positions, [b, len], &device));
        let mask = build_mask(
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

        let mut hidden_states = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            x = prepare::overwrite_deep(x, deep, i);
            if input.output_hidden_states {
                hidden_states.push(x.clone());
            }
            let prefix = input.prefixes.as_ref().map(|p| &p[i]);
            x = self.block_forward(block, i, x, &mask, prefix, cache.as_deref_mut());
        }
        let x = self.final_norm.forward(x, cfg.norm_eps);
        if input.output_hidden_states {
            hidden_states.push(x.clone());
        }
        if let Some(c) = cache {
            c.set_prefix_len(prefix_slots);
            c.set_mask(b, keys_valid);
        }
        let logits = (input.logits.positions != LogitPositions::None).then(|| {
            let selected = match prepare::logit_rows(input, &seq_mask, b) {
                Some(rows) => prepare::gather_rows(x.clone(), &rows, &device),
                None => x.clone(),
            };
            let head = self.lm_head.as_ref().unwrap_or(&self.embed);
            prepare::vocab_logits(selected, head, None, input, &device)
        });
        ForwardOutput {
            hidden_at: prepare::hidden_at(input, &x, &device),
            last_hidden: x,
            hidden_states,
            logits,
            mask: seq_mask,
            encoder: None,
        }
    }

    fn block_forward(
        &self,
        block: &Block,
        index: usize,
        x: Tensor<3>,
        mask: &Tensor<4, Bool>,
        prefix: Option<&LayerPrefix>,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let cfg = &self.config;
        let heads = cfg.num_heads;
        let h = block.attn_norm.forward(x.clone(), cfg.norm_eps);
        // [B, T, 3 H D] -> [B, 3 H, T, D]; q, k and v are views into it
        let qkv = split_heads(block.qkv.forward(h), 3 * heads);
        let q = qkv.clone().narrow(1, 0, heads);
        let k = qkv.clone().narrow(1, heads, heads);
        let v = qkv.narrow(1, 2 * heads, heads);
        let (k, v) = prepare::join_past(k, v, prefix, index, cache);
        let attn = attend(q, k, v, mask, cfg.attention_scale, None);
        let x = x + block.o.forward(attn);
        let h = block.mlp_norm.forward(x.clone(), cfg.norm_eps);
        let up = activate(&cfg.hidden_act, block.up.forward(h));
        x + block.down.forward(up)
    }
}

impl FamilyModel for Gpt2 {
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
        f("positions", TensorSlot::Matrix(&mut self.positions));
        for (i, l) in self.blocks.iter_mut().enumerate() {
            visit_norm(&format!("layer.{i}.attn_norm"), &mut l.attn_norm, f);
            visit_linear(&format!("layer.{i}.qkv"), &mut l.qkv, f);
            visit_linear(&format!("layer.{i}.o"), &mut l.o, f);
            visit_norm(&format!("layer.{i}.mlp_norm"), &mut l.mlp_norm, f);
            visit_linear(&format!("layer.{i}.up"), &mut l.up, f);
            visit_linear(&format!("layer.{i}.down"), &mut l.down, f);
        }
        visit_norm("final_norm", &mut self.final_norm, f);
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
            AttentionSite::DecoderSelf,
            PrefixPositions::CountRealTokens,
        )
    }

    fn caches_keys(&self) -> bool {
        true
    }

    fn boxed_clone(&self) -> Box<dyn FamilyModel> {
        Box::new(self.clone())
    }
}
