//! The decoder-only skeleton shared by the Llama ([`super::llama`]) and Gemma 3
//! ([`super::gemma3`]) families: RMSNorm, gated MLP, RoPE and grouped-query attention, with the
//! optional parts a family switches on when it loads its weights (norms after attention and MLP,
//! RMS-normed queries and keys, a scaled embedding, sliding-window layers with their own RoPE).
//! Each family file reads its own checkpoint names; nothing here asks which family it is.

use burn::tensor::{Device, Int, Tensor};

use super::attention::{attend, build_mask, group_mask, split_heads, MaskSpec, Rope};
use super::hooks::{ForwardInput, ForwardOutput};
use super::kv_cache::KvCache;
use super::layers::{activate, embed, int_tensor, rms_norm, Linear};
use super::loader::{Bias, WeightLoader};
use super::prepare;
use super::tensors::{visit_linear, visit_optional, TensorSlot};
use crate::checkpoint::config::BackboneConfig;
use crate::checkpoint::weights::{resolve_prefix, WeightSource};
use crate::{Error, Result};

/// One decoder layer.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    /// Query, key and value projections side by side (`[h, (H + 2 KV) * head_dim]`).
    qkv: Linear,
    o: Linear,
    /// Gate and up projections side by side (`[h, 2 * intermediate]`).
    gate_up: Linear,
    down: Linear,
    attn_in_norm: Tensor<1>,
    attn_out_norm: Option<Tensor<1>>,
    mlp_in_norm: Tensor<1>,
    mlp_out_norm: Option<Tensor<1>>,
    q_norm: Option<Tensor<1>>,
    k_norm: Option<Tensor<1>>,
}

/// The norms of one layer, as a family reads them.
#[derive(Debug, Clone)]
pub(crate) struct LayerNorms {
    /// Before attention.
    pub attn_in: Tensor<1>,
    /// After attention, before the residual add (Gemma's sandwich norm).
    pub attn_out: Option<Tensor<1>>,
    /// Before the MLP.
    pub mlp_in: Tensor<1>,
    /// After the MLP, before the residual add.
    pub mlp_out: Option<Tensor<1>>,
    /// RMS norms of each query and key head.
    pub qk: Option<(Tensor<1>, Tensor<1>)>,
}

/// A Llama or Gemma 3 decoder with its LM head.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// Sizes and options.
    pub config: BackboneConfig,
    /// `[vocab, hidden]` token embedding.
    pub embed: Tensor<2>,
    /// Gemma multiplies embeddings by sqrt(hidden).
    pub embed_scale: Option<f32>,
    layers: Vec<DecoderLayer>,
    final_norm: Tensor<1>,
    /// `[vocab, hidden]` output head when not tied to the embedding.
    lm_head: Option<Tensor<2>>,
    rope: Rope,
    rope_local: Option<Rope>,
    num_parameters: usize,
}

/// Reads a decoder's weights: the parts every family has in common, under the model prefix
/// found in the checkpoint. A family file adds its own norms.
pub(crate) struct DecoderReader<'a> {
    /// The loader, relative to the model prefix.
    pub ld: WeightLoader<'a>,
    source: &'a dyn WeightSource,
    config: &'a BackboneConfig,
}

impl<'a> DecoderReader<'a> {
    /// Finds the model prefix (`model.`, a multimodal wrapper's, or none).
    pub fn open(
        config: &'a BackboneConfig,
        source: &'a dyn WeightSource,
        device: &Device,
    ) -> Result<Self> {
        let candidates = [
            "model.",
            "model.language_model.",
            "language_model.model.",
            "",
        ];
        let prefix =
            resolve_prefix(source, &candidates, "embed_tokens.weight").ok_or_else(|| {
                Error::MissingTensor {
                    name: "model.embed_tokens.weight".into(),
                    path: source.origin().into(),
                }
            })?;
        Ok(Self {
            ld: WeightLoader::new(source, prefix, device),
            source,
            config,
        })
    }

    /// The `[vocab, hidden]` token embedding.
    pub fn embedding(&mut self) -> Result<Tensor<2>> {
        let full = format!("{}embed_tokens.weight", self.ld.prefix());
        self.ld
            .matrix(&full, self.config.vocab_size, self.config.hidden_size)
    }

    /// Layer `i`'s attention and MLP projections (HF names), joined with the family's `norms`.
    pub fn layer(&mut self, i: usize, norms: LayerNorms) -> Result<DecoderLayer> {
        let c = self.config;
        let (h, hd, inter) = (c.hidden_size, c.head_dim, c.intermediate_size);
        let (q_out, kv_out) = (c.num_heads * hd, c.num_kv_heads * hd);
        let bias = if c.attention_bias {
            Bias::Required
        } else {
            Bias::IfPresent
        };
        let p = format!("layers.{i}.");
        let ld = &mut self.ld;
        let q = ld.linear(&format!("{p}self_attn.q_proj"), q_out, h, bias)?;
        let k = ld.linear(&format!("{p}self_attn.k_proj"), kv_out, h, bias)?;
        let v = ld.linear(&format!("{p}self_attn.v_proj"), kv_out, h, bias)?;
        let o = ld.linear(&format!("{p}self_attn.o_proj"), h, q_out, Bias::IfPresent)?;
        let gate = ld.linear(&format!("{p}mlp.gate_proj"), inter, h, Bias::IfPresent)?;
        let up = ld.linear(&format!("{p}mlp.up_proj"), inter, h, Bias::IfPresent)?;
        let down = ld.linear(&format!("{p}mlp.down_proj"), h, inter, Bias::IfPresent)?;
        let (q_norm, k_norm) = match norms.qk {
            Some((q, k)) => (Some(q), Some(k)),
            None => (None, None),
        };
        Ok(DecoderLayer {
            qkv: Linear::fuse(vec![q, k, v]),
            o,
            gate_up: Linear::fuse(vec![gate, up]),
            down,
            attn_in_norm: norms.attn_in,
            attn_out_norm: norms.attn_out,
            mlp_in_norm: norms.mlp_in,
            mlp_out_norm: norms.mlp_out,
            q_norm,
            k_norm,
        })
    }

    /// The separate LM head, or `None` when it is tied to the embedding.
    pub fn lm_head(&mut self) -> Result<Option<Tensor<2>>> {
        let c = self.config;
        if c.tie_word_embeddings {
            Ok(None)
        } else if self.source.contains("lm_head.weight") {
            Ok(Some(self.ld.matrix(
                "lm_head.weight",
                c.vocab_size,
                c.hidden_size,
            )?))
        } else {
            Err(Error::MissingTensor {
                name: "lm_head.weight".into(),
                path: self.source.origin().into(),
            })
        }
    }
}

/// What a family file hands over to build a [`Decoder`].
pub(crate) struct DecoderParts {
    pub embed: Tensor<2>,
    pub embed_scale: Option<f32>,
    pub layers: Vec<DecoderLayer>,
    pub final_norm: Tensor<1>,
    pub lm_head: Option<Tensor<2>>,
    pub num_parameters: usize,
}

impl Decoder {
    /// Assembles a decoder from its weights; RoPE tables come from `config`.
    pub(crate) fn assemble(config: BackboneConfig, parts: DecoderParts) -> Result<Self> {
        let hd = config.head_dim;
        let rope = Rope::new(
            config
                .rope
                .as_ref()
                .ok_or_else(|| Error::Shape("decoder config without RoPE".into()))?,
            hd,
        );
        let rope_local = config.rope_local.as_ref().map(|r| Rope::new(r, hd));
        Ok(Self {
            num_parameters: parts.num_parameters,
            config,
            embed: parts.embed,
            embed_scale: parts.embed_scale,
            layers: parts.layers,
            final_norm: parts.final_norm,
            lm_head: parts.lm_head,
            rope,
            rope_local,
        })
    }

    /// Parameters read from the checkpoint.
    pub fn num_parameters(&self) -> usize {
        self.num_parameters
    }

    /// Calls `f` on every weight with its name (see [`super::tensors`]); linear layers
    /// without a bias show a [`TensorSlot::MissingBias`].
    pub fn visit_tensors(&mut self, f: &mut dyn FnMut(&str, TensorSlot)) {
        f("embed", TensorSlot::Matrix(&mut self.embed));
        for (i, l) in self.layers.iter_mut().enumerate() {
            visit_linear(&format!("layer.{i}.qkv"), &mut l.qkv, f);
            visit_linear(&format!("layer.{i}.o"), &mut l.o, f);
            visit_linear(&format!("layer.{i}.gate_up"), &mut l.gate_up, f);
            visit_linear(&format!("layer.{i}.down"), &mut l.down, f);
            f(
                &format!("layer.{i}.attn_in_norm.weight"),
                TensorSlot::Vector(&mut l.attn_in_norm),
            );
            visit_optional(
                &format!("layer.{i}.attn_out_norm.weight"),
                &mut l.attn_out_norm,
                f,
            );
            f(
                &format!("layer.{i}.mlp_in_norm.weight"),
                TensorSlot::Vector(&mut l.mlp_in_norm),
            );
            visit_optional(
                &format!("layer.{i}.mlp_out_norm.weight"),
                &mut l.mlp_out_norm,
                f,
            );
            visit_optional(&format!("layer.{i}.q_norm.weight"), &mut l.q_norm, f);
            visit_optional(&format!("layer.{i}.k_norm.weight"), &mut l.k_norm, f);
        }
        f(
            "final_norm.weight",
            TensorSlot::Vector(&mut self.final_norm),
        );
        if let Some(h) = &mut self.lm_head {
            f("lm_head.weight", TensorSlot::Matrix(h));
        }
    }

    /// Forward pass; inputs were validated by [`super::Backbone::forward`].
    pub fn forward(&self, input: &ForwardInput, mut cache: Option<&mut KvCache>) -> ForwardOutput {
        let cfg = &self.config;
        let tokens = input.tokens.as_ref().expect("validated");
        let device = self.embed.device();
        let (b, t) = (tokens.batch, tokens.len);
        let ids = int_tensor(
            tokens.ids.iter().map(|&i| i as i64).collect(),
            [b, t],
            &device,
        );
        let mut x = match &input.input_embeds {
            Some(given) => given.clone(),
            None => {
                let x = embed(&self.embed, ids);
                match self.embed_scale {
                    Some(s) => x.mul_scalar(s),
                    None => x,
                }
            }
        };
        if let Some(soft) = &input.soft {
            x = prepare::splice_soft(x, soft, &device);
        }
        let deep = input.deep.as_ref();
        if let Some(d) = deep {
            x = prepare::insert_deep(x, d);
        }
        let prepare::StepKeys {
            seq_mask,
            keys_valid,
            prefix_slots,
            past,
        } = prepare::step_keys(input, cache.as_deref());
        let len = seq_mask.len() / b;
        let positions = input.position_ids.clone().unwrap_or_else(|| {
            let starts = prepare::row_starts(&keys_valid, b, past, prefix_slots);
            prepare::default_positions(len, &starts)
        });

        let global_mask = build_mask(
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
        let local_mask = cfg
            .sliding_window
            .filter(|_| cfg.sliding_layers.iter().any(|&s| s))
            .map(|w| {
                build_mask(
                    b,
                    len,
                    &keys_valid,
                    MaskSpec {
                        causal: true,
                        window: Some(w),
                        prefix_slots,
                    },
                    &device,
                )
            });
        let rep = cfg.num_heads / cfg.num_kv_heads;
        let global_mask = group_mask(global_mask, rep);
        let local_mask = local_mask.map(|m| group_mask(m, rep));
        let (cos, sin) = self.rope.tables(&positions, b, &device);
        let local_tables = self
            .rope_local
            .as_ref()
            .map(|r| r.tables(&positions, b, &device));

        let mut hidden_states = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            x = prepare::overwrite_deep(x, deep, i);
            if input.output_hidden_states {
                hidden_states.push(x.clone());
            }
            let sliding = cfg.sliding_layers[i];
            let (mask, (c, s)) = match (sliding, &local_mask, &local_tables) {
                (true, Some(m), Some(tabs)) => (m, (&tabs.0, &tabs.1)),
                (true, Some(m), None) => (m, (&cos, &sin)),
                _ => (&global_mask, (&cos, &sin)),
            };
            let prefix = input.prefixes.as_ref().map(|p| &p[i]);
            x = self.layer_forward(layer, i, x, mask, c, s, prefix, cache.as_deref_mut());
        }
        let x = rms_norm(x, &self.final_norm, cfg.norm_eps);
        if input.output_hidden_states {
            hidden_states.push(x.clone());
        }
        if let Some(c) = cache {
            c.set_prefix_len(prefix_slots);
            c.set_mask(b, keys_valid);
        }
        let logits = self.logits(input, &x, &seq_mask, b, &device);
        ForwardOutput {
            hidden_at: prepare::hidden_at(input, &x, &device),
            last_hidden: x,
            hidden_states,
            logits,
            mask: seq_mask,
            encoder: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn layer_forward(
        &self,
        layer: &DecoderLayer,
        index: usize,
        x: Tensor<3>,
        mask: &burn::tensor::Tensor<4, burn::tensor::Bool>,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        prefix: Option<&super::hooks::LayerPrefix>,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let cfg = &self.config;
        let eps = cfg.norm_eps;
        let h = rms_norm(x.clone(), &layer.attn_in_norm, eps);
        let (heads, kv_heads) = (cfg.num_heads, cfg.num_kv_heads);
        // [B, T, (H + 2 KV) * D] -> [B, H + 2 KV, T, D]; q, k and v are views into it.
        let qkv = split_heads(layer.qkv.forward(h), heads + 2 * kv_heads);
        let mut q = qkv.clone().narrow(1, 0, heads);
        let mut k = qkv.clone().narrow(1, heads, kv_heads);
        let v = qkv.narrow(1, heads + kv_heads, kv_heads);
        if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
            q = rms_norm(q, qn, eps);
            k = rms_norm(k, kn, eps);
        }
        let q = Rope::apply(q, cos, sin);
        let k = Rope::apply(k, cos, sin);
        let (k, v) = prepare::join_past(k, v, prefix, index, cache);
        let attn = attend(q, k, v, mask, cfg.attention_scale, cfg.attn_logit_softcap);
        let mut attn = layer.o.forward(attn);
        if let Some(n) = &layer.attn_out_norm {
            attn = rms_norm(attn, n, eps);
        }
        let x = x + attn;
        let h = rms_norm(x.clone(), &layer.mlp_in_norm, eps);
        let gate_up = layer.gate_up.forward(h);
        let inter = cfg.intermediate_size;
        let act = activate(&cfg.hidden_act, gate_up.clone().narrow(2, 0, inter))
            * gate_up.narrow(2, inter, inter);
        let mut mlp = layer.down.forward(act);
        if let Some(n) = &layer.mlp_out_norm {
            mlp = rms_norm(mlp, n, eps);
        }
        x + mlp
    }

    fn logits(
        &self,
        input: &ForwardInput,
        x: &Tensor<3>,
        seq_mask: &[u8],
        b: usize,
        device: &Device,
    ) -> Option<Tensor<3>> {
        if input.logits.positions == super::hooks::LogitPositions::None {
            return None;
        }
        let selected = match prepare::logit_rows(input, seq_mask, b) {
            Some(rows) => prepare::gather_rows(x.clone(), &rows, device),
            None => x.clone(),
        };
        let head = self.lm_head.as_ref().unwrap_or(&self.embed);
        let logits = prepare::vocab_logits(selected, head, None, input, device);
        Some(match self.config.final_logit_softcap {
            Some(cap) => logits.div_scalar(cap).tanh().mul_scalar(cap),
            None => logits,
        })
    }
}

impl super::FamilyModel for Decoder {
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
        Decoder::num_parameters(self)
    }

    fn visit_tensors(&mut self, f: &mut dyn FnMut(&str, TensorSlot)) {
        Decoder::visit_tensors(self, f)
    }

    fn embed(&self, idx: Tensor<1, Int>) -> Tensor<2> {
        let rows = self.embed.clone().select(0, idx);
        match self.embed_scale {
            Some(s) => rows.mul_scalar(s),
            None => rows,
        }
    }

    fn forward(&self, input: &ForwardInput, cache: Option<&mut KvCache>) -> ForwardOutput {
        Decoder::forward(self, input, cache)
    }

    fn pool(&self, _last_hidden: &Tensor<3>) -> Option<Tensor<2>> {
        None
    }

    fn info(&self) -> super::BackboneInfo {
        use super::{AttentionSite, BackboneInfo, PrefixPositions};
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

    fn boxed_clone(&self) -> Box<dyn super::FamilyModel> {
        Box::new(self.clone())
    }
}
