//! PEFT interop for PROMPT_TUNING: `adapter_config.json` with PEFT's fields and
//! `adapter_model.safetensors` holding `prompt_embeddings` `[num_virtual_tokens, token_dim]`.
//! PEFT prepends its virtual tokens to the input, so only templates that start with their
//! soft tokens can be exported.

use std::path::Path;

use serde_json::json;

use super::Adapter;
use crate::prompt::{Part, Template};
use crate::task::classification::{host_params_from_safetensors, HostParam};
use crate::train::atomic::write_atomic;
use crate::{Error, Result};

/// Writes `adapter` in PEFT's PROMPT_TUNING layout into `dir`.
pub fn export_prompt_tuning(
    adapter: &Adapter,
    num_attention_heads: usize,
    dir: &Path,
) -> Result<()> {
    let template = Template::parse(&adapter.config.template)?;
    let n = template.soft_count();
    if !matches!(template.parts.first(), Some(Part::Soft { count, .. }) if *count == n) {
        return Err(Error::InvalidInput(
            "PEFT prompt tuning prepends all virtual tokens: the template must start with its only {soft*N} slot".into(),
        ));
    }
    let (_, shape, data) = adapter
        .params
        .iter()
        .find(|p| p.0 == "prompt")
        .ok_or_else(|| Error::InvalidInput("the adapter has no soft prompt".into()))?;
    let task_type = if adapter.config.fingerprint.family == "llama"
        || adapter.config.fingerprint.family == "gemma3"
    {
        "CAUSAL_LM"
    } else {
        "FEATURE_EXTRACTION"
    };
    let config = json!({
        "auto_mapping": null,
        "base_model_name_or_path": adapter.config.base_model,
        "inference_mode": true,
        "modules_to_save": null,
        "num_attention_heads": num_attention_heads,
        "num_layers": adapter.config.fingerprint.num_layers,
        "num_transformer_submodules": 1,
        "num_virtual_tokens": shape[0],
        "peft_type": "PROMPT_TUNING",
        "peft_version": "0.21.2",
        "prompt_tuning_init": "RANDOM",
        "prompt_tuning_init_text": null,
        "revision": null,
        "task_type": task_type,
        "token_dim": shape[1],
        "tokenizer_kwargs": null,
        "tokenizer_name_or_path": null
    });
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), &bytes)
        .map_err(|e| Error::InvalidInput(e.to_string()))?;
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    let st = safetensors::serialize([("prompt_embeddings", view)], Some(meta))
        .map_err(|e| Error::InvalidInput(e.to_string()))?;
    write_atomic(&dir.join("adapter_model.safetensors"), &st)?;
    let text =
        serde_json::to_vec_pretty(&config).map_err(|e| Error::InvalidInput(e.to_string()))?;
    write_atomic(&dir.join("adapter_config.json"), &text)
}

/// Reads a PEFT PROMPT_TUNING adapter: returns the soft prompt as the `prompt` tensor.
pub fn import_prompt_tuning(dir: &Path) -> Result<HostParam> {
    let cfg_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let cfg: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::format(&cfg_path, e.to_string()))?;
    if cfg["peft_type"] != "PROMPT_TUNING" {
        return Err(Error::format(
            &cfg_path,
            format!("peft_type is {}, expected PROMPT_TUNING", cfg["peft_type"]),
        ));
    }
    let st_path = dir.join("adapter_model.safetensors");
    let bytes = std::fs::read(&st_path).map_err(|e| Error::io(&st_path, e))?;
    let params = host_params_from_safetensors(&bytes, &st_path)?;
    let (_, shape, data) = params
        .into_iter()
        .find(|p| p.0 == "prompt_embeddings")
        .ok_or_else(|| Error::format(&st_path, "no `prompt_embeddings` tensor"))?;
    if shape.len() != 2 || cfg["num_virtual_tokens"].as_u64() != Some(shape[0] as u64) {
        return Err(Error::format(
            &st_path,
            format!(
                "prompt_embeddings is {shape:?}; config says {} virtual tokens",
                cfg["num_virtual_tokens"]
            ),
        ));
    }
    Ok(("prompt".into(), shape, data))
}
