//! Reads an HF `config.json` into a [`BackboneConfig`].

use std::path::Path;

use serde_json::Value;

use super::config::{BackboneConfig, Family, RopeConfig};
use crate::{Error, Result};

struct Json<'a> {
    value: &'a Value,
    path: &'a Path,
}

impl Json<'_> {
    fn err(&self, message: String) -> Error {
        Error::Config {
            path: self.path.to_path_buf(),
            message,
        }
    }

    fn usize(&self, key: &str) -> Result<usize> {
        match self.value.get(key) {
            Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                self.err(format!("`{key}` must be a non-negative integer, got {v}"))
            }),
            None => Err(self.err(format!("missing key `{key}`"))),
        }
    }

    fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => self.usize(key),
        }
    }

    fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.err(format!("`{key}` must be a number, got {v}"))),
        }
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(format!("`{key}` must be a number, got {v}"))),
        }
    }

    fn str_or<'b>(&'b self, key: &str, default: &'b str) -> &'b str {
        self.value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
    }

    fn bool_or(&self, key: &str, default: bool) -> bool {
        self.value
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(default)
    }

    fn token_ids(&self, key: &str) -> Vec<u32> {
        match self.value.get(key) {
            Some(Value::Number(n)) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_u64)
                .map(|n| n as u32)
                .collect(),
            _ => vec![],
        }
    }
}

/// Parses a rope block (`rope_parameters` or legacy `rope_theta` + `rope_scaling`).
fn rope_from(block: Option<&Value>, default_theta: f64) -> RopeConfig {
    let mut rope = RopeConfig::plain(
        block
            .and_then(|b| b.get("rope_theta"))
            .and_then(Value::as_f64)
            .unwrap_or(default_theta),
    );
    if let Some(b) = block {
        let kind = b
            .get("rope_type")
            .or_else(|| b.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let num = |k: &str, d: f64| b.get(k).and_then(Value::as_f64).unwrap_or(d);
        match kind {
            "linear" => rope.linear_factor = num("factor", 1.0),
            "llama3" => {
                rope.llama3 = Some((
                    num("factor", 8.0),
                    num("low_freq_factor", 1.0),
                    num("high_freq_factor", 4.0),
                    num("original_max_position_embeddings", 8192.0),
                ))
            }
            _ => {}
        }
    }
    rope
}

/// Reads `config.json` at `path`.
pub fn read_config(path: &Path) -> Result<BackboneConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingFile {
            path: path.into(),
            hint: "an HF model folder needs config.json".into(),
        },
        _ => Error::io(path, e),
    })?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Error::format(path, format!("invalid JSON: {e}")))?;
    parse_config(&value, path)
}

/// Parses an HF config object (`path` is used in messages).
pub fn parse_config(value: &Value, path: &Path) -> Result<BackboneConfig> {
    let model_type = value
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    // multimodal Gemma 3 keeps the text model's settings under `text_config`
    let value = match model_type {
        "gemma3" => value.get("text_config").unwrap_or(value),
        _ => value,
    };
    let j = Json { value, path };
    match model_type {
        "gpt2" => return parse_gpt2(&j),
        "bart" => return parse_bart(&j),
        "t5" => return parse_t5(&j),
        _ => {}
    }
    let family = match model_type {
        "bert" => Family::Bert,
        "roberta" | "xlm-roberta" => Family::Roberta,
        "llama" | "mistral" | "smollm" | "smollm2" => Family::Llama,
        "gemma3" | "gemma3_text" => Family::Gemma3,
        "" => return Err(j.err("missing key `model_type`".into())),
        other => return Err(Error::UnknownArchitecture(other.into())),
    };
    let hidden_size = j.usize("hidden_size")?;
    let num_heads = j.usize("num_attention_heads")?;
    let num_layers = j.usize("num_hidden_layers")?;
    // per-layer lists are built below: bound the count before anything is allocated
    super::config::check_size("num_hidden_layers", num_layers, super::config::MAX_LAYERS)
        .map_err(|e| j.err(e.to_string()))?;
    if num_heads == 0 {
        return Err(j.err("`num_attention_heads` is 0".into()));
    }
    let default_head_dim = if family == Family::Gemma3 {
        256
    } else {
        hidden_size / num_heads
    };
    let head_dim = j.usize_or("head_dim", default_head_dim)?;
    let encoder = matches!(family, Family::Bert | Family::Roberta);
    let rope_params = value
        .get("rope_parameters")
        .or_else(|| value.get("rope_scaling"));
    let (rope, rope_local, sliding_window, sliding_layers) = match family {
        Family::Bert | Family::Roberta | Family::Gpt2 | Family::Bart | Family::T5 => {
            (None, None, None, vec![false; num_layers])
        }
        Family::Llama => {
            let theta = j.f64_or("rope_theta", 10_000.0)?;
            let mut rope = rope_from(rope_params, theta);
            if rope_params.and_then(|b| b.get("rope_theta")).is_none() {
                rope.theta = theta;
            }
            (Some(rope), None, None, vec![false; num_layers])
        }
        Family::Gemma3 => {
            let global = rope_params.and_then(|p| p.get("full_attention"));
            let local = rope_params.and_then(|p| p.get("sliding_attention"));
            let mut rope = rope_from(
                global.or(value.get("rope_scaling")),
                j.f64_or("rope_theta", 1_000_000.0)?,
            );
            if global.is_none() {
                rope.theta = j.f64_or("rope_theta", 1_000_000.0)?;
            }
            let mut rope_local = rope_from(local, j.f64_or("rope_local_base_freq", 10_000.0)?);
            if local.and_then(|l| l.get("rope_theta")).is_none() {
                rope_local.theta = j.f64_or("rope_local_base_freq", 10_000.0)?;
            }
            let layers = match value.get("layer_types").and_then(Value::as_array) {
                Some(types) => types
                    .iter()
                    .map(|t| t.as_str() == Some("sliding_attention"))
                    .collect(),
                None => {
                    let pattern = j.usize_or("sliding_window_pattern", 6)?.max(1);
                    (0..num_layers).map(|i| (i + 1) % pattern != 0).collect()
                }
            };
            (
                Some(rope),
                Some(rope_local),
                Some(j.usize_or("sliding_window", 4096)?),
                layers,
            )
        }
    };
    let attention_scale = match family {
        Family::Gemma3 => 1.0 / j.f64_or("query_pre_attn_scalar", 256.0)?.sqrt(),
        _ => 1.0 / (head_dim as f64).sqrt(),
    };
    let hidden_act = match family {
        Family::Gemma3 => j.str_or(
            "hidden_activation",
            j.str_or("hidden_act", "gelu_pytorch_tanh"),
        ),
        Family::Llama => j.str_or("hidden_act", "silu"),
        _ => j.str_or("hidden_act", "gelu"),
    }
    .to_string();
    if !super::config::is_known_activation(&hidden_act) {
        return Err(j.err(format!("unsupported activation `{hidden_act}`")));
    }
    let eps_default = match family {
        Family::Bert => 1e-12,
        Family::Roberta | Family::Gpt2 | Family::Bart => 1e-5,
        Family::Llama | Family::Gemma3 | Family::T5 => 1e-6,
    };
    let norm_eps = if encoder {
        j.f64_or("layer_norm_eps", eps_default)?
    } else {
        j.f64_or("rms_norm_eps", eps_default)?
    };
    let config = BackboneConfig {
        family,
        vocab_size: j.usize("vocab_size")?,
        hidden_size,
        num_layers,
        num_heads,
        num_kv_heads: j.usize_or("num_key_value_heads", num_heads)?,
        head_dim,
        intermediate_size: j.usize("intermediate_size")?,
        max_positions: j.usize_or("max_position_embeddings", if encoder { 512 } else { 2048 })?,
        norm_eps,
        rope,
        rope_local,
        sliding_window,
        sliding_layers,
        attention_scale,
        final_logit_softcap: j.opt_f64("final_logit_softcapping")?,
        attn_logit_softcap: j.opt_f64("attn_logit_softcapping")?,
        type_vocab_size: if encoder {
            j.usize_or("type_vocab_size", 2)?
        } else {
            0
        },
        pad_token_id: j.token_ids("pad_token_id").first().copied(),
        bos_token_id: j.token_ids("bos_token_id").first().copied(),
        eos_token_ids: j.token_ids("eos_token_id"),
        tie_word_embeddings: j.bool_or(
            "tie_word_embeddings",
            matches!(family, Family::Gemma3 | Family::Bert | Family::Roberta),
        ),
        hidden_act,
        attention_bias: j.bool_or("attention_bias", false),
        hidden_dropout: if encoder {
            j.f64_or("hidden_dropout_prob", 0.1)? as f32
        } else {
            0.0
        },
        attention_dropout: if encoder {
            j.f64_or("attention_probs_dropout_prob", 0.1)? as f32
        } else {
            0.0
        },
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

/// GPT-2's `config.json` (its own key names: `n_embd`, `n_layer`, `n_head`, `n_inner`,
/// `n_positions`, `layer_norm_epsilon`, `activation_function`). Dropout is left out: like the
/// other decoders, GPT-2 trains prompts with the model deterministic.
fn parse_gpt2(j: &Json) -> Result<BackboneConfig> {
    let hidden_size = j.usize("n_embd")?;
    let num_heads = j.usize("n_head")?;
    let num_layers = j.usize("n_layer")?;
    super::config::check_size("n_layer", num_layers, super::config::MAX_LAYERS)
        .map_err(|e| j.err(e.to_string()))?;
    if num_heads == 0 {
        return Err(j.err("`n_head` is 0".into()));
    }
    let head_dim = hidden_size / num_heads;
    let intermediate_size = match j.value.get("n_inner") {
        None | Some(Value::Null) => 4 * hidden_size,
        Some(_) => j.usize("n_inner")?,
    };
    let hidden_act = j.str_or("activation_function", "gelu_new").to_string();
    if !super::config::is_known_activation(&hidden_act) {
        return Err(j.err(format!("unsupported activation `{hidden_act}`")));
    }
    if j.bool_or("scale_attn_by_inverse_layer_idx", false) {
        return Err(j.err("`scale_attn_by_inverse_layer_idx` is not supported".into()));
    }
    let attention_scale = if j.bool_or("scale_attn_weights", true) {
        1.0 / (head_dim as f64).sqrt()
    } else {
        1.0
    };
    let config = BackboneConfig {
        vocab_size: j.usize("vocab_size")?,
        hidden_size,
        num_layers,
        num_heads,
        num_kv_heads: num_heads,
        head_dim,
        intermediate_size,
        max_positions: j.usize_or("n_positions", 1024)?,
        norm_eps: j.f64_or("layer_norm_epsilon", 1e-5)?,
        attention_scale,
        pad_token_id: j.token_ids("pad_token_id").first().copied(),
        bos_token_id: j.token_ids("bos_token_id").first().copied(),
        eos_token_ids: j.token_ids("eos_token_id"),
        tie_word_embeddings: j.bool_or("tie_word_embeddings", true),
        hidden_act,
        attention_bias: true,
        ..BackboneConfig::plain(Family::Gpt2, num_layers)
    };
    config.validate()?;
    Ok(config)
}

/// BART's `config.json` (`d_model`, `encoder_layers`/`decoder_layers`, `*_attention_heads`,
/// `*_ffn_dim`, `max_position_embeddings`, `scale_embedding`, `decoder_start_token_id`). Both
/// stacks must share their widths and head counts (every released BART does); LayerNorm's
/// epsilon is PyTorch's default, as BART never sets it.
fn parse_bart(j: &Json) -> Result<BackboneConfig> {
    let hidden_size = j.usize("d_model")?;
    let num_layers = j.usize("encoder_layers")?;
    let decoder_layers = j.usize("decoder_layers")?;
    for (key, n) in [
        ("encoder_layers", num_layers),
        ("decoder_layers", decoder_layers),
    ] {
        super::config::check_size(key, n, super::config::MAX_LAYERS)
            .map_err(|e| j.err(e.to_string()))?;
        if n == 0 {
            return Err(j.err(format!(
                "`{key}` is 0: a BART model needs both an encoder and a decoder"
            )));
        }
    }
    let num_heads = j.usize("encoder_attention_heads")?;
    let intermediate_size = j.usize("encoder_ffn_dim")?;
    for (key, value, enc) in [
        (
            "decoder_attention_heads",
            j.usize("decoder_attention_heads")?,
            num_heads,
        ),
        (
            "decoder_ffn_dim",
            j.usize("decoder_ffn_dim")?,
            intermediate_size,
        ),
    ] {
        if value != enc {
            return Err(j.err(format!(
                "`{key}` = {value} differs from the encoder's {enc}: encoder and decoder stacks \
                 of different shapes are not supported"
            )));
        }
    }
    if num_heads == 0 {
        return Err(j.err("`encoder_attention_heads` is 0".into()));
    }
    for key in ["add_final_layer_norm", "normalize_before"] {
        if j.bool_or(key, false) {
            return Err(j.err(format!(
                "`{key}` (mBART's pre-LayerNorm layout) is not supported; BART's is"
            )));
        }
    }
    let head_dim = hidden_size / num_heads;
    let hidden_act = j.str_or("activation_function", "gelu").to_string();
    if !super::config::is_known_activation(&hidden_act) {
        return Err(j.err(format!("unsupported activation `{hidden_act}`")));
    }
    let config = BackboneConfig {
        vocab_size: j.usize("vocab_size")?,
        hidden_size,
        num_layers,
        num_heads,
        num_kv_heads: num_heads,
        head_dim,
        intermediate_size,
        max_positions: j.usize_or("max_position_embeddings", 1024)?,
        attention_scale: 1.0 / (head_dim as f64).sqrt(),
        pad_token_id: j.token_ids("pad_token_id").first().copied(),
        bos_token_id: j.token_ids("bos_token_id").first().copied(),
        eos_token_ids: j.token_ids("eos_token_id"),
        tie_word_embeddings: j.bool_or("tie_word_embeddings", true),
        hidden_act,
        attention_bias: true,
        decoder_layers,
        decoder_start_token_id: j.token_ids("decoder_start_token_id").first().copied(),
        scale_embedding: j.bool_or("scale_embedding", false),
        ..BackboneConfig::plain(Family::Bart, num_layers)
    };
    config.validate()?;
    Ok(config)
}

/// T5's `config.json` (`d_model`, `d_kv`, `d_ff`, `num_layers`, `num_decoder_layers`,
/// `num_heads`, `relative_attention_*`, `feed_forward_proj` = `relu` (v1.0) or `gated-gelu`
/// (v1.1, Flan)). The decoder output is scaled before a tied LM head as transformers decides:
/// `scale_decoder_outputs` where a config has it, else unless `tie_word_embeddings` is false.
fn parse_t5(j: &Json) -> Result<BackboneConfig> {
    use super::config::{check_size, RelativeAttention, MAX_LAYERS};
    let hidden_size = j.usize("d_model")?;
    let num_layers = j.usize("num_layers")?;
    let decoder_layers = j.usize_or("num_decoder_layers", num_layers)?;
    for (key, n) in [
        ("num_layers", num_layers),
        ("num_decoder_layers", decoder_layers),
    ] {
        check_size(key, n, MAX_LAYERS).map_err(|e| j.err(e.to_string()))?;
        if n == 0 {
            return Err(j.err(format!(
                "`{key}` is 0: a T5 model needs both an encoder and a decoder"
            )));
        }
    }
    let num_heads = j.usize("num_heads")?;
    if num_heads == 0 {
        return Err(j.err("`num_heads` is 0".into()));
    }
    let proj = j.str_or("feed_forward_proj", "relu");
    let parts: Vec<&str> = proj.split('-').collect();
    let gated = parts.len() == 2 && parts[0] == "gated";
    if parts.len() > 2 || (parts.len() == 2 && !gated) {
        return Err(j.err(format!(
            "`feed_forward_proj` = `{proj}` is neither `ACT` nor `gated-ACT`"
        )));
    }
    let hidden_act = match proj {
        "gated-gelu" => "gelu_new",
        _ => parts[parts.len() - 1],
    }
    .to_string();
    if !super::config::is_known_activation(&hidden_act) {
        return Err(j.err(format!("unsupported activation `{hidden_act}`")));
    }
    let num_buckets = j.usize_or("relative_attention_num_buckets", 32)?;
    let max_distance = j.usize_or("relative_attention_max_distance", 128)?;
    if !(4..=4096).contains(&num_buckets) || max_distance <= num_buckets / 2 {
        return Err(j.err(format!(
            "relative attention of {num_buckets} buckets up to distance {max_distance}: \
             needs 4 to 4096 buckets and a distance beyond half of them"
        )));
    }
    let tie_word_embeddings = j.bool_or("tie_word_embeddings", true);
    let pad = j.token_ids("pad_token_id").first().copied().or(Some(0));
    let config = BackboneConfig {
        vocab_size: j.usize("vocab_size")?,
        hidden_size,
        num_layers,
        num_heads,
        num_kv_heads: num_heads,
        head_dim: j.usize("d_kv")?,
        intermediate_size: j.usize("d_ff")?,
        max_positions: j.usize_or("n_positions", 512)?,
        norm_eps: j.f64_or("layer_norm_epsilon", 1e-6)?,
        pad_token_id: pad,
        eos_token_ids: j.token_ids("eos_token_id"),
        tie_word_embeddings,
        hidden_act,
        decoder_layers,
        decoder_start_token_id: j
            .token_ids("decoder_start_token_id")
            .first()
            .copied()
            .or(pad),
        relative_attention: Some(RelativeAttention {
            num_buckets,
            max_distance,
        }),
        gated_ffn: gated,
        scale_decoder_outputs: j.bool_or("scale_decoder_outputs", tie_word_embeddings),
        ..BackboneConfig::plain(Family::T5, num_layers)
    };
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `config.json` of HF's `gpt2` (GPT-2 small), as published.
    const GPT2_SMALL: &str = r#"{
      "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
      "attn_pdrop": 0.1, "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256,
      "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2",
      "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024,
      "resid_pdrop": 0.1, "summary_activation": null, "summary_first_dropout": 0.1,
      "summary_proj_to_labels": true, "summary_type": "cls_index", "summary_use_proj": true,
      "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
      "vocab_size": 50257
    }"#;

    #[test]
    fn gpt2_small_reads_with_its_own_key_names() {
        let value: Value = serde_json::from_str(GPT2_SMALL).unwrap();
        let c = parse_config(&value, Path::new("config.json")).unwrap();
        assert_eq!(c.family, Family::Gpt2);
        assert_eq!(
            (
                c.hidden_size,
                c.num_layers,
                c.num_heads,
                c.num_kv_heads,
                c.head_dim
            ),
            (768, 12, 12, 12, 64)
        );
        assert_eq!(
            (c.intermediate_size, c.max_positions, c.vocab_size),
            (3072, 1024, 50257)
        );
        assert!(c.tie_word_embeddings && c.rope.is_none());
        assert_eq!(c.hidden_act, "gelu_new");
        assert_eq!(c.eos_token_ids, [50256]);
        assert!((c.attention_scale - 0.125).abs() < 1e-12);
        // a missing width is named by its GPT-2 key
        let mut broken = value.clone();
        broken.as_object_mut().unwrap().remove("n_embd");
        let err = parse_config(&broken, Path::new("config.json")).unwrap_err();
        assert!(err.to_string().contains("n_embd"), "{err}");
    }

    /// `google/flan-t5-small`'s `config.json` (v1.1 layout: gated GELU, its own LM head, more
    /// decoder than encoder layers), as published.
    const FLAN_T5_SMALL: &str = r#"{
      "architectures": ["T5ForConditionalGeneration"], "d_ff": 1024, "d_kv": 64, "d_model": 512,
      "decoder_start_token_id": 0, "dense_act_fn": "gelu_new", "dropout_rate": 0.1,
      "eos_token_id": 1, "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0,
      "is_encoder_decoder": true, "is_gated_act": true, "layer_norm_epsilon": 1e-06,
      "model_type": "t5", "n_positions": 512, "num_decoder_layers": 8, "num_heads": 6,
      "num_layers": 8, "output_past": true, "pad_token_id": 0,
      "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32,
      "tie_word_embeddings": false, "use_cache": true, "vocab_size": 32128
    }"#;

    #[test]
    fn t5_configs_read_with_their_own_key_names() {
        let value: Value = serde_json::from_str(FLAN_T5_SMALL).unwrap();
        let c = parse_config(&value, Path::new("config.json")).unwrap();
        assert_eq!(c.family, Family::T5);
        assert_eq!(
            (c.hidden_size, c.num_heads, c.head_dim, c.intermediate_size),
            (512, 6, 64, 1024)
        );
        assert_eq!((c.num_layers, c.decoder_layers), (8, 8));
        assert!(c.gated_ffn && !c.tie_word_embeddings && !c.scale_decoder_outputs);
        assert_eq!(c.hidden_act, "gelu_new");
        assert_eq!(c.attention_scale, 1.0);
        assert_eq!(c.decoder_start_token_id, Some(0));
        // v1.0 (t5-small): ReLU, tied head scaled, six layers each
        let mut v10 = value.clone();
        let o = v10.as_object_mut().unwrap();
        for key in [
            "feed_forward_proj",
            "tie_word_embeddings",
            "num_decoder_layers",
        ] {
            o.remove(key);
        }
        o.insert("num_layers".into(), 6.into());
        let c = parse_config(&v10, Path::new("config.json")).unwrap();
        assert!(!c.gated_ffn && c.tie_word_embeddings && c.scale_decoder_outputs);
        assert_eq!((c.hidden_act.as_str(), c.decoder_layers), ("relu", 6));
        // what transformers 5 writes for a v1.1 model: tied, not scaled
        let mut v5 = value.clone();
        v5["tie_word_embeddings"] = true.into();
        v5["scale_decoder_outputs"] = false.into();
        let c = parse_config(&v5, Path::new("config.json")).unwrap();
        assert!(c.tie_word_embeddings && !c.scale_decoder_outputs);
        // a malformed activation and impossible buckets are named
        for (key, bad, says) in [
            (
                "feed_forward_proj",
                Value::from("double-gated-gelu"),
                "feed_forward_proj",
            ),
            ("relative_attention_num_buckets", Value::from(2), "buckets"),
            ("num_decoder_layers", Value::from(0), "decoder"),
        ] {
            let mut broken = value.clone();
            broken[key] = bad;
            let err = parse_config(&broken, Path::new("config.json")).unwrap_err();
            assert!(err.to_string().contains(says), "{key}: {err}");
        }
    }
}
