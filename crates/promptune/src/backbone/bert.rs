//! BERT and RoBERTa encoders, with the masked-LM head when the checkpoint has one.

use burn::tensor::{activation, Device, Int, Tensor};

use super::attention::{attend, attend_with_dropout, build_mask, split_heads, MaskSpec};
use super::hooks::{ForwardInput, ForwardOutput, LayerPrefix, LogitPositions};
use super::layers::{activate, dropout, embed, int_tensor, Linear, Norm};
use super::loader::{Bias, WeightLoader};
use super::prepare;
use super::tensors::{visit_linear, visit_norm, TensorSlot};
use crate::checkpoint::config::{BackboneConfig, Family};
use crate::checkpoint::weights::{resolve_prefix, WeightSource};
use crate::{Error, Result};

#[derive(Debug, Clone)]
struct EncoderLayer {
    /// Query, key and value projections side by side (`[h, 3 h]`).
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    intermediate: Linear,
    output: Linear,
    out_norm: Norm,
}

/// The masked-LM head: dense, activation, layer norm, then the (tied) decoder and its bias.
#[derive(Debug, Clone)]
pub struct MlmHead {
    dense: Linear,
    norm: Norm,
    /// `[vocab, hidden]`; `None` = tied to the word embeddings.
    decoder: Option<Tensor<2>>,
    bias: Tensor<1>,
}

/// A BERT-family encoder.
#[derive(Debug, Clone)]
pub struct Encoder {
    /// Sizes and options.
    pub config: BackboneConfig,
    /// `[vocab, hidden]`.
    pub word_embeddings: Tensor<2>,
    position_embeddings: Tensor<2>,
    token_type_embeddings: Tensor<2>,
    embed_norm: Norm,
    layers: Vec<EncoderLayer>,
    /// Dense + tanh over the first token, when present.
    pub pooler: Option<Linear>,
    /// The MLM head, when present.
    pub mlm: Option<MlmHead>,
    num_parameters: usize,
}

impl Encoder {
    /// Reads the weights (HF names) for `config` from `source`.
    pub fn load(
        config: BackboneConfig,
        source: &dyn WeightSource,
        device: &Device,
    ) -> Result<Self> {
        let candidates = ["", "bert.", "roberta.", "model."];
        let p = resolve_prefix(source, &candidates, "embeddings.word_embeddings.weight")
            .ok_or_else(|| Error::MissingTensor {
                name: "embeddings.word_embeddings.weight".into(),
                path: source.origin().into(),
            })?;
        let (h, ff) = (config.hidden_size, config.intermediate_size);
        let mut ld = WeightLoader::new(source, "", device);
        let word_embeddings = ld.matrix(
            &format!("{p}embeddings.word_embeddings.weight"),
            config.vocab_size,
            h,
        )?;
        let position_embeddings = ld.matrix(
            &format!("{p}embeddings.position_embeddings.weight"),
            config.max_positions,
            h,
        )?;
        let token_type_embeddings = ld.matrix(
            &format!("{p}embeddings.token_type_embeddings.weight"),
            config.type_vocab_size,
            h,
        )?;
        let embed_norm = ld.layer_norm(&format!("{p}embeddings.LayerNorm"), h)?;
        let mut layers = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let l = format!("{p}encoder.layer.{i}.");
            layers.push(EncoderLayer {
                qkv: Linear::fuse(vec![
                    ld.linear(&format!("{l}attention.self.query"), h, h, Bias::Required)?,
                    ld.linear(&format!("{l}attention.self.key"), h, h, Bias::Required)?,
                    ld.linear(&format!("{l}attention.self.value"), h, h, Bias::Required)?,
                ]),
                attn_out: ld.linear(&format!("{l}attention.output.dense"), h, h, Bias::Required)?,
                attn_norm: ld.layer_norm(&format!("{l}attention.output.LayerNorm"), h)?,
                intermediate: ld.linear(
                    &format!("{l}intermediate.dense"),
                    ff,
                    h,
                    Bias::Required,
                )?,
                output: ld.linear(&format!("{l}output.dense"), h, ff, Bias::Required)?,
                out_norm: ld.layer_norm(&format!("{l}output.LayerNorm"), h)?,
            });
        }
        let pooler = if source.contains(&format!("{p}pooler.dense.weight")) {
            Some(ld.linear(&format!("{p}pooler.dense"), h, h, Bias::Required)?)
        } else {
            None
        };
        let mlm = Self::load_mlm(&mut ld, &config)?;
        Ok(Self {
            num_parameters: ld.count,
            config,
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embed_norm,
            layers,
            pooler,
            mlm,
        })
    }

    fn load_mlm(ld: &mut WeightLoader, config: &BackboneConfig) -> Result<Option<MlmHead>> {
        let h = config.hidden_size;
        let v = config.vocab_size;
        let (dense, norm, bias, decoder) = if ld.contains("cls.predictions.transform.dense.weight")
        {
            let bias = if ld.contains("cls.predictions.bias") {
                "cls.predictions.bias"
            } else {
                "cls.predictions.decoder.bias"
            };
            (
                "cls.predictions.transform.dense",
                "cls.predictions.transform.LayerNorm",
                bias,
                "cls.predictions.decoder.weight",
            )
        } else if ld.contains("lm_head.dense.weight") {
            let bias = if ld.contains("lm_head.bias") {
                "lm_head.bias"
            } else {
                "lm_head.decoder.bias"
            };
            (
                "lm_head.dense",
                "lm_head.layer_norm",
                bias,
                "lm_head.decoder.weight",
            )
        } else {
            return Ok(None);
        };
        let dense = ld.linear(dense, h, h, Bias::Required)?;
        let norm = ld.layer_norm(norm, h)?;
        let bias = ld.vector(bias, v)?;
        let decoder = if !config.tie_word_embeddings && ld.contains(decoder) {
            Some(ld.matrix(decoder, v, h)?)
        } else {
            None
        };
        Ok(Some(MlmHead {
            dense,
            norm,
            decoder,
            bias,
        }))
    }

    /// Parameters read from the checkpoint.
    pub fn num_parameters(&self) -> usize {
        self.num_parameters
    }

    /// Calls `f` on every weight with its name (see [`super::tensors`]).
    pub fn visit_tensors(&mut self, f: &mut dyn FnMut(&str, TensorSlot)) {
        f(
            "embeddings.word",
            TensorSlot::Matrix(&mut self.word_embeddings),
        );
        f(
            "embeddings.position",
            TensorSlot::Matrix(&mut self.position_embeddings),
        );
        f(
            "embeddings.token_type",
            TensorSlot::Matrix(&mut self.token_type_embeddings),
        );
        visit_norm("embeddings.norm", &mut self.embed_norm, f);
        for (i, l) in self.layers.iter_mut().enumerate() {
            visit_linear(&format!("layer.{i}.qkv"), &mut l.qkv, f);
            visit_linear(&format!("layer.{i}.attn_out"), &mut l.attn_out, f);
            visit_norm(&format!("layer.{i}.attn_norm"), &mut l.attn_norm, f);
            visit_linear(&format!("layer.{i}.intermediate"), &mut l.intermediate, f);
            visit_linear(&format!("layer.{i}.output"), &mut l.output, f);
            visit_norm(&format!("layer.{i}.out_norm"), &mut l.out_norm, f);
        }
        if let Some(p) = &mut self.pooler {
            visit_linear("pooler", p, f);
        }
        if let Some(m) = &mut self.mlm {
            visit_linear("mlm.dense", &mut m.dense, f);
            visit_norm("mlm.norm", &mut m.norm, f);
            if let Some(d) = &mut m.decoder {
                f("mlm.decoder.weight", TensorSlot::Matrix(d));
            }
            f("mlm.decoder.bias", TensorSlot::Vector(&mut m.bias));
        }
    }

    /// Position ids as HF computes them without explicit ones: BERT counts from the number of
    /// prefix keys; RoBERTa counts real tokens past the padding id. `starts` gives that number
    /// for each row (its valid prefix positions).
    fn positions(&self, input: &ForwardInput, starts: &[usize]) -> Vec<i64> {
        let tokens = input.tokens.as_ref().expect("validated");
        if self.config.family != Family::Roberta {
            return prepare::default_positions(tokens.len, starts);
        }
        let pad = self.config.pad_token_id.unwrap_or(1) as i64;
        let mut out = Vec::with_capacity(tokens.ids.len());
        for (ids, &past) in tokens.ids.chunks(tokens.len).zip(starts) {
            let mut count = 0i64;
            for &id in ids {
                if id as i64 != pad {
                    count += 1;
                    out.push(count + past as i64 + pad);
                } else {
                    out.push(pad);
                }
            }
        }
        out
    }

    /// Forward pass; inputs were validated by [`super::Backbone::forward`].
    pub fn forward(&self, input: &ForwardInput) -> ForwardOutput {
        let cfg = &self.config;
        let tokens = input.tokens.as_ref().expect("validated");
        let device = self.word_embeddings.device();
        let (b, t) = (tokens.batch, tokens.len);
        let prefix_len = input
            .prefixes
            .as_ref()
            .map(|p| p[0].key.dims()[2])
            .unwrap_or(0);
        let ids = int_tensor(
            tokens.ids.iter().map(|&i| i as i64).collect(),
            [b, t],
            &device,
        );
        let mut x = match &input.input_embeds {
            Some(given) => given.clone(),
            None => embed(&self.word_embeddings, ids),
        };
        if let Some(soft) = &input.soft {
            x = prepare::splice_soft(x, soft, &device);
        }
        let deep = input.deep.as_ref();
        let n_deep = deep.map(|d| d.len()).unwrap_or(0);
        let seq_mask = prepare::sequence_mask(tokens, deep);
        let len = seq_mask.len() / b;
        let keys_valid =
            prepare::key_mask(&seq_mask, b, None, prefix_len, input.prefix_mask.as_deref());
        let positions = match &input.position_ids {
            // explicit positions cover the deep-extended sequence; the embedding sees the tokens'
            Some(p) if n_deep > 0 => {
                let at = deep.map(|d| d.at).unwrap_or(0);
                p.chunks(t + n_deep)
                    .flat_map(|row| row[..at].iter().chain(&row[at + n_deep..]).copied())
                    .collect()
            }
            Some(p) => p.clone(),
            None => self.positions(
                input,
                &prepare::row_starts(&keys_valid, b, prefix_len, prefix_len),
            ),
        };
        let pos = int_tensor(positions, [b, t], &device);
        let types: Vec<i64> = match &tokens.token_types {
            Some(tt) => tt.iter().map(|&i| i as i64).collect(),
            None => vec![0; b * t],
        };
        let types = int_tensor(types, [b, t], &device);
        x = x + embed(&self.position_embeddings, pos) + embed(&self.token_type_embeddings, types);
        x = self.embed_norm.forward(x, cfg.norm_eps);
        // training-mode dropout, as HF applies it: after the embeddings, on the attention
        // probabilities, and after each attention-output and feed-forward-output projection
        let site_seed = |seed: u64, site: u64| seed.wrapping_mul(0x9e37_79b9).wrapping_add(site);
        let drop = |x: Tensor<3>, site: u64| match input.dropout {
            Some(seed) if cfg.hidden_dropout > 0.0 => {
                dropout(x, cfg.hidden_dropout, site_seed(seed, site))
            }
            _ => x,
        };
        x = drop(x, 0);
        if let Some(d) = deep {
            x = prepare::insert_deep(x, d);
        }
        let mask = build_mask(
            b,
            len,
            &keys_valid,
            MaskSpec {
                causal: false,
                window: None,
                prefix_slots: prefix_len,
            },
            &device,
        );
        let mut hidden_states = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            x = prepare::overwrite_deep(x, deep, i);
            if input.output_hidden_states {
                hidden_states.push(x.clone());
            }
            let prefix = input.prefixes.as_ref().map(|p| &p[i]);
            let sites = (2 * i as u64 + 1, 2 * i as u64 + 2);
            let attention_dropout = match input.dropout {
                Some(seed) if cfg.attention_dropout > 0.0 => Some(site_seed(seed, 1000 + i as u64)),
                _ => None,
            };
            x = self.layer_forward(layer, x, &mask, prefix, attention_dropout, |y, k| {
                drop(y, if k == 0 { sites.0 } else { sites.1 })
            });
        }
        if input.output_hidden_states {
            hidden_states.push(x.clone());
        }
        let logits = self.mlm_logits(input, &x, &seq_mask, b, &device);
        ForwardOutput {
            hidden_at: prepare::hidden_at(input, &x, &device),
            last_hidden: x,
            hidden_states,
            logits,
            mask: seq_mask,
            encoder: None,
        }
    }

    fn layer_forward(
        &self,
        layer: &EncoderLayer,
        x: Tensor<3>,
        mask: &Tensor<4, burn::tensor::Bool>,
        prefix: Option<&LayerPrefix>,
        attention_dropout: Option<u64>,
        drop: impl Fn(Tensor<3>, usize) -> Tensor<3>,
    ) -> Tensor<3> {
        let cfg = &self.config;
        let b = x.dims()[0];
        let heads = cfg.num_heads;
        // [B, T, 3 h] -> [B, 3 H, T, D]; q, k and v are views into it.
        let qkv = split_heads(layer.qkv.forward(x.clone()), 3 * heads);
        let q = qkv.clone().narrow(1, 0, heads);
        let mut k = qkv.clone().narrow(1, heads, heads);
        let mut v = qkv.narrow(1, 2 * heads, heads);
        if let Some(p) = prefix {
            k = Tensor::cat(vec![prepare::expand_batch(p.key.clone(), b), k], 2);
            v = Tensor::cat(vec![prepare::expand_batch(p.value.clone(), b), v], 2);
        }
        let attn = match attention_dropout {
            Some(seed) => {
                let p = cfg.attention_dropout;
                attend_with_dropout(q, k, v, mask, cfg.attention_scale, p, seed)
            }
            None => attend(q, k, v, mask, cfg.attention_scale, None),
        };
        let a = layer
            .attn_norm
            .forward(x + drop(layer.attn_out.forward(attn), 0), cfg.norm_eps);
        let i = activate(&cfg.hidden_act, layer.intermediate.forward(a.clone()));
        layer
            .out_norm
            .forward(a + drop(layer.output.forward(i), 1), cfg.norm_eps)
    }

    /// The pooler output `tanh(W h[CLS] + b)`, `[B, hidden]`; `None` without a pooler.
    pub fn pool(&self, last_hidden: &Tensor<3>) -> Option<Tensor<2>> {
        let pooler = self.pooler.as_ref()?;
        let [b, _, h] = last_hidden.dims();
        let first = last_hidden.clone().narrow(1, 0, 1).reshape([b, h]);
        Some(activation::tanh(pooler.forward(first)))
    }

    fn mlm_logits(
        &self,
        input: &ForwardInput,
        x: &Tensor<3>,
        seq_mask: &[u8],
        b: usize,
        device: &Device,
    ) -> Option<Tensor<3>> {
        if input.logits.positions == LogitPositions::None {
            return None;
        }
        let head = self.mlm.as_ref()?;
        let selected = match prepare::logit_rows(input, seq_mask, b) {
            Some(rows) => prepare::gather_rows(x.clone(), &rows, device),
            None => x.clone(),
        };
        let h = activate(&self.config.hidden_act, head.dense.forward(selected));
        let h = head.norm.forward(h, self.config.norm_eps);
        let table = head.decoder.as_ref().unwrap_or(&self.word_embeddings);
        Some(prepare::vocab_logits(
            h,
            table,
            Some(&head.bias),
            input,
            device,
        ))
    }
}

impl super::FamilyModel for Encoder {
    fn config(&self) -> &BackboneConfig {
        &self.config
    }

    fn device(&self) -> Device {
        self.word_embeddings.device()
    }

    fn output_vocab(&self) -> usize {
        self.mlm.as_ref().map_or(0, |_| self.config.vocab_size)
    }

    fn num_parameters(&self) -> usize {
        Encoder::num_parameters(self)
    }

    fn visit_tensors(&mut self, f: &mut dyn FnMut(&str, TensorSlot)) {
        Encoder::visit_tensors(self, f)
    }

    fn embed(&self, idx: Tensor<1, Int>) -> Tensor<2> {
        self.word_embeddings.clone().select(0, idx)
    }

    fn forward(&self, input: &ForwardInput, _cache: Option<&mut super::KvCache>) -> ForwardOutput {
        Encoder::forward(self, input)
    }

    fn pool(&self, last_hidden: &Tensor<3>) -> Option<Tensor<2>> {
        Encoder::pool(self, last_hidden)
    }

    fn info(&self) -> super::BackboneInfo {
        use super::{AttentionSite, BackboneInfo, PrefixPositions};
        let vocab = super::FamilyModel::output_vocab(self);
        BackboneInfo::of(
            &self.config,
            vocab,
            AttentionSite::EncoderSelf,
            PrefixPositions::Default,
        )
    }

    fn caches_keys(&self) -> bool {
        false
    }

    fn boxed_clone(&self) -> Box<dyn super::FamilyModel> {
        Box::new(self.clone())
    }
}
