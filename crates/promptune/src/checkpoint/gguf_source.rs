//! GGUF files seen as HF checkpoints: the llama.cpp tensor names are translated to HF names,
//! llama's Q/K rows are put back in HF's rotate-half order, Gemma's norm weights (stored by
//! llama.cpp as `1 + w`) get HF's offset form, and GPT-2's projections (stored transposed, as
//! PyTorch linear layers) get back their `Conv1D` layout — so model code knows one convention
//! only.

use std::collections::BTreeMap;
use std::path::Path;

use super::config::{BackboneConfig, Family, RopeConfig};
use super::gguf::GgufFile;
use super::weights::{HostTensor, WeightSource};
use crate::{Error, Result};

/// A GGUF file exposing its tensors under HF names.
pub struct GgufSource {
    file: GgufFile,
    family: Family,
    /// HF name → GGUF name.
    names: BTreeMap<String, String>,
    num_heads: usize,
    num_kv_heads: usize,
}

fn layer_map(family: Family) -> Vec<(&'static str, &'static str)> {
    let mut m = vec![
        ("self_attn.q_proj.weight", "attn_q.weight"),
        ("self_attn.k_proj.weight", "attn_k.weight"),
        ("self_attn.v_proj.weight", "attn_v.weight"),
        ("self_attn.o_proj.weight", "attn_output.weight"),
        ("self_attn.q_proj.bias", "attn_q.bias"),
        ("self_attn.k_proj.bias", "attn_k.bias"),
        ("self_attn.v_proj.bias", "attn_v.bias"),
        ("mlp.gate_proj.weight", "ffn_gate.weight"),
        ("mlp.up_proj.weight", "ffn_up.weight"),
        ("mlp.down_proj.weight", "ffn_down.weight"),
        ("input_layernorm.weight", "attn_norm.weight"),
    ];
    match family {
        Family::Gemma3 => m.extend([
            (
                "post_attention_layernorm.weight",
                "post_attention_norm.weight",
            ),
            ("pre_feedforward_layernorm.weight", "ffn_norm.weight"),
            ("post_feedforward_layernorm.weight", "post_ffw_norm.weight"),
            ("self_attn.q_norm.weight", "attn_q_norm.weight"),
            ("self_attn.k_norm.weight", "attn_k_norm.weight"),
        ]),
        _ => m.push(("post_attention_layernorm.weight", "ffn_norm.weight")),
    }
    m
}

/// Reads the architecture and hyper-parameters from the GGUF metadata.
pub fn gguf_config(file: &GgufFile) -> Result<BackboneConfig> {
    let arch = file.architecture()?.to_string();
    let family = match arch.as_str() {
        "llama" | "mistral" => Family::Llama,
        "gemma3" => Family::Gemma3,
        "gpt2" => Family::Gpt2,
        other => return Err(Error::UnknownArchitecture(format!("{other} (GGUF)"))),
    };
    let gpt2 = family == Family::Gpt2;
    let key = |k: &str| format!("{arch}.{k}");
    let hidden = file.get_u32(&key("embedding_length"))? as usize;
    let heads = file.get_u32(&key("attention.head_count"))? as usize;
    let kv_heads = file
        .opt_u32(&key("attention.head_count_kv"))?
        .map(|v| v as usize)
        .unwrap_or(heads);
    let layers = file.get_u32(&key("block_count"))? as usize;
    // per-layer lists are built below: bound the count, and check it against the tensors
    // the file holds, before anything is allocated
    super::config::check_size("block_count", layers, super::config::MAX_LAYERS)
        .map_err(|e| Error::format(file.path(), e.to_string()))?;
    if layers > 0
        && file
            .tensor_info(&format!("blk.{}.attn_norm.weight", layers - 1))
            .is_none()
    {
        return Err(Error::format(
            file.path(),
            format!(
                "block_count is {layers} but the file holds no blk.{}.attn_norm.weight",
                layers - 1
            ),
        ));
    }
    if heads == 0 {
        return Err(Error::format(file.path(), "attention.head_count is 0"));
    }
    let head_dim = match file.opt_u32(&key("attention.key_length"))? {
        Some(d) => d as usize,
        None => file
            .opt_u32(&key("rope.dimension_count"))?
            .map(|d| d as usize)
            .unwrap_or(hidden / heads),
    };
    let vocab = match file.opt_u32(&key("vocab_size"))? {
        Some(v) => v as usize,
        None => match file.tensor_info("token_embd.weight") {
            Some(info) => *info.shape().first().unwrap_or(&0),
            None => {
                return Err(Error::MissingTensor {
                    name: "token_embd.weight".into(),
                    path: file.path().into(),
                })
            }
        },
    };
    let theta = file.opt_f32(&key("rope.freq_base"))?.map(f64::from);
    let gemma = family == Family::Gemma3;
    let window = file
        .opt_u32(&key("attention.sliding_window"))?
        .map(|w| w as usize);
    let sliding_layers: Vec<bool> = if gemma {
        (0..layers).map(|i| (i + 1) % 6 != 0).collect()
    } else {
        vec![false; layers]
    };
    let u32_id = |k: &str| file.opt_u32(k).ok().flatten();
    let config = BackboneConfig {
        family,
        vocab_size: vocab,
        hidden_size: hidden,
        num_layers: layers,
        num_heads: heads,
        num_kv_heads: kv_heads,
        head_dim,
        intermediate_size: file.get_u32(&key("feed_forward_length"))? as usize,
        max_positions: file
            .opt_u32(&key("context_length"))?
            .map(|v| v as usize)
            .unwrap_or(2048),
        norm_eps: if gpt2 {
            file.opt_f32(&key("attention.layer_norm_epsilon"))?
                .map(f64::from)
                .unwrap_or(1e-5)
        } else {
            file.opt_f32(&key("attention.layer_norm_rms_epsilon"))?
                .map(f64::from)
                .unwrap_or(1e-6)
        },
        rope: (!gpt2).then(|| {
            RopeConfig::plain(theta.unwrap_or(if gemma { 1_000_000.0 } else { 10_000.0 }))
        }),
        rope_local: gemma.then(|| RopeConfig::plain(10_000.0)),
        sliding_window: if gemma {
            Some(window.unwrap_or(512))
        } else {
            None
        },
        sliding_layers,
        attention_scale: 1.0 / (head_dim as f64).sqrt(),
        final_logit_softcap: file
            .opt_f32(&key("final_logit_softcapping"))?
            .map(f64::from),
        attn_logit_softcap: file.opt_f32(&key("attn_logit_softcapping"))?.map(f64::from),
        type_vocab_size: 0,
        pad_token_id: u32_id("tokenizer.ggml.padding_token_id"),
        bos_token_id: u32_id("tokenizer.ggml.bos_token_id"),
        eos_token_ids: u32_id("tokenizer.ggml.eos_token_id").into_iter().collect(),
        tie_word_embeddings: file.tensor_info("output.weight").is_none(),
        hidden_act: match family {
            Family::Gemma3 => "gelu_pytorch_tanh",
            Family::Gpt2 => "gelu_new",
            _ => "silu",
        }
        .into(),
        attention_bias: gpt2 || file.tensor_info("blk.0.attn_q.bias").is_some(),
        hidden_dropout: 0.0,
        attention_dropout: 0.0,
        decoder_layers: 0,
        decoder_start_token_id: None,
        scale_embedding: false,
        relative_attention: None,
        gated_ffn: false,
        scale_decoder_outputs: false,
    };
    config.validate()?;
    Ok(config)
}

impl GgufSource {
    /// Opens a GGUF file and builds its name map.
    pub fn open(path: &Path) -> Result<(Self, BackboneConfig)> {
        let file = GgufFile::open(path)?;
        let config = gguf_config(&file)?;
        let mut names = if config.family == Family::Gpt2 {
            gpt2_names(config.num_layers)
        } else {
            llama_names(&config)
        };
        names.retain(|_, gg| file.tensor_info(gg).is_some());
        let source = Self {
            file,
            family: config.family,
            names,
            num_heads: config.num_heads,
            num_kv_heads: config.num_kv_heads,
        };
        Ok((source, config))
    }

    /// The underlying file (metadata, tensor types).
    pub fn file(&self) -> &GgufFile {
        &self.file
    }
}

/// HF names → GGUF names of a Llama or Gemma 3 decoder.
fn llama_names(config: &BackboneConfig) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    names.insert(
        "model.embed_tokens.weight".to_string(),
        "token_embd.weight".to_string(),
    );
    names.insert("model.norm.weight".into(), "output_norm.weight".into());
    names.insert("lm_head.weight".into(), "output.weight".into());
    for i in 0..config.num_layers {
        for (hf, gg) in layer_map(config.family) {
            names.insert(format!("model.layers.{i}.{hf}"), format!("blk.{i}.{gg}"));
        }
    }
    names
}

/// HF names (a bare `GPT2Model`'s) → GGUF names of a GPT-2 decoder.
fn gpt2_names(layers: usize) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for (hf, gg) in [
        ("wte.weight", "token_embd.weight"),
        ("wpe.weight", "position_embd.weight"),
        ("ln_f.weight", "output_norm.weight"),
        ("ln_f.bias", "output_norm.bias"),
        ("lm_head.weight", "output.weight"),
    ] {
        names.insert(hf.to_string(), gg.to_string());
    }
    for i in 0..layers {
        for (hf, gg) in [
            ("ln_1", "attn_norm"),
            ("attn.c_attn", "attn_qkv"),
            ("attn.c_proj", "attn_output"),
            ("ln_2", "ffn_norm"),
            ("mlp.c_fc", "ffn_up"),
            ("mlp.c_proj", "ffn_down"),
        ] {
            for part in ["weight", "bias"] {
                names.insert(format!("h.{i}.{hf}.{part}"), format!("blk.{i}.{gg}.{part}"));
            }
        }
    }
    names
}

/// Undoes llama.cpp's interleaving of Q/K rows: GGUF row order (head, pair, half) back to
/// HF's (head, half, pair).
fn unpermute(t: HostTensor, heads: usize) -> HostTensor {
    let (rows, cols) = (t.shape[0], t.shape[1]);
    let per_head = rows / heads;
    let half = per_head / 2;
    let mut out = vec![0f32; t.data.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let src = h * per_head + i * 2 + j;
                let dst = h * per_head + j * half + i;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&t.data[src * cols..(src + 1) * cols]);
            }
        }
    }
    HostTensor {
        shape: t.shape,
        data: out,
    }
}

impl WeightSource for GgufSource {
    fn tensor(&self, name: &str) -> Result<HostTensor> {
        let gg = self.names.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.into(),
            path: self.file.path().into(),
        })?;
        let (shape, data) = self.file.tensor_f32(gg)?;
        let t = HostTensor { shape, data };
        Ok(match self.family {
            Family::Llama if gg.ends_with("attn_q.weight") && t.shape.len() == 2 => {
                unpermute(t, self.num_heads)
            }
            Family::Llama if gg.ends_with("attn_k.weight") && t.shape.len() == 2 => {
                unpermute(t, self.num_kv_heads)
            }
            Family::Gemma3 if gg.contains("norm") => HostTensor {
                shape: t.shape,
                data: t.data.into_iter().map(|w| w - 1.0).collect(),
            },
            // llama.cpp stores GPT-2's Conv1D weights as linear layers ([out, in])
            Family::Gpt2
                if t.shape.len() == 2
                    && ["attn_qkv.", "attn_output.", "ffn_up.", "ffn_down."]
                        .iter()
                        .any(|p| gg.contains(p)) =>
            {
                t.transposed()
            }
            _ => t,
        })
    }

    fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    fn names(&self) -> Vec<String> {
        self.names.keys().cloned().collect()
    }

    fn origin(&self) -> String {
        self.file.path().display().to_string()
    }
}
