//! PEFT interop for PROMPT_TUNING: `adapter_config.json` with PEFT's fields and
//! `adapter_model.safetensors` holding `prompt_embeddings` `[num_virtual_tokens, token_dim]`.
//! PEFT prepends its virtual tokens to the input, so only templates that start with their
//! soft tokens can be exported.

use std::path::Path;

use serde_json::json;

use super::{peft_files, Adapter};
use crate::backbone::BackboneInfo;
use crate::params::HostTensor;
use crate::prompt::{Part, Template};
use crate::{Error, Result};

/// PEFT's `task_type` for a model: what its head does.
pub(crate) fn task_type(model: &BackboneInfo) -> &'static str {
    if model.has_site(crate::backbone::AttentionSite::Cross) {
        "SEQ_2_SEQ_LM"
    } else if model.causal {
        "CAUSAL_LM"
    } else {
        "FEATURE_EXTRACTION"
    }
}

/// Writes `adapter` in PEFT's layout for its method into `dir`: PREFIX_TUNING, P_TUNING or
/// PROMPT_TUNING (see [`super::peft_prefix`], [`super::peft_p_tuning`] and
/// [`export_prompt_tuning`]).
pub fn export(adapter: &Adapter, model: &BackboneInfo, dir: &Path) -> Result<()> {
    if model.has_site(crate::backbone::AttentionSite::Cross)
        && adapter.config.method != "prefix_tuning"
    {
        return Err(Error::InvalidInput(format!(
            "{} is an encoder-decoder: of PEFT's SEQ_2_SEQ_LM layouts only PREFIX_TUNING is \
             written yet",
            model.family
        )));
    }
    match adapter.config.method.as_str() {
        "prefix_tuning" => super::peft_prefix::export_prefix_tuning(adapter, model, dir),
        "p_tuning" => super::peft_p_tuning::export_p_tuning(adapter, model, dir),
        "prompt_tuning" => export_prompt_tuning(adapter, model, dir),
        other => Err(Error::InvalidInput(format!(
            "PEFT has no layout for a `{other}` adapter (PROMPT_TUNING, P_TUNING and PREFIX_TUNING export)"
        ))),
    }
}

/// Writes `adapter` in PEFT's PROMPT_TUNING layout into `dir`.
pub fn export_prompt_tuning(adapter: &Adapter, model: &BackboneInfo, dir: &Path) -> Result<()> {
    let template = Template::parse(&adapter.config.template)?;
    let n = template.soft_count();
    if !matches!(template.parts.first(), Some(Part::Soft { count, .. }) if *count == n) {
        return Err(Error::InvalidInput(
            "PEFT prompt tuning prepends all virtual tokens: the template must start with its only {soft*N} slot".into(),
        ));
    }
    let prompt = crate::params::find(&adapter.params, crate::method::prompt_tuning::PROMPT)
        .ok_or_else(|| Error::InvalidInput("the adapter has no soft prompt".into()))?;
    let (shape, data) = (&prompt.shape, &prompt.data);
    let config = json!({
        "auto_mapping": null,
        "base_model_name_or_path": adapter.config.base_model,
        "inference_mode": true,
        "modules_to_save": null,
        "num_attention_heads": model.num_heads,
        "num_layers": adapter.config.fingerprint.num_layers,
        "num_transformer_submodules": 1,
        "num_virtual_tokens": shape[0],
        "peft_type": "PROMPT_TUNING",
        "peft_version": "0.21.2",
        "prompt_tuning_init": "RANDOM",
        "prompt_tuning_init_text": null,
        "revision": null,
        "task_type": task_type(model),
        "token_dim": shape[1],
        "tokenizer_kwargs": null,
        "tokenizer_name_or_path": null
    });
    peft_files::write(dir, &config, shape, data)
}

/// Reads a PEFT PROMPT_TUNING adapter: returns the soft prompt as the `prompt` tensor.
pub fn import_prompt_tuning(dir: &Path) -> Result<HostTensor> {
    import_prompt_embeddings(dir, "PROMPT_TUNING")
}

/// Reads the `prompt_embeddings` of a PEFT adapter of `peft_type` (PROMPT_TUNING, or
/// P_TUNING, whose file holds the prompt encoder's output, which PEFT itself uses as is at
/// inference) as the `prompt` tensor.
pub fn import_prompt_embeddings(dir: &Path, peft_type: &str) -> Result<HostTensor> {
    let files = peft_files::read(dir, peft_type)?;
    let (cfg, st_path) = (&files.config, &files.tensor_path);
    let (shape, data) = (files.shape, files.data);
    if shape.len() != 2 || cfg["num_virtual_tokens"].as_u64() != Some(shape[0] as u64) {
        return Err(Error::format(
            st_path,
            format!(
                "prompt_embeddings is {shape:?}; config says {} virtual tokens",
                cfg["num_virtual_tokens"]
            ),
        ));
    }
    if let Some(dim) = cfg.get("token_dim").and_then(|d| d.as_u64()) {
        if dim as usize != shape[1] {
            return Err(Error::format(
                &files.config_path,
                format!(
                    "token_dim is {dim} but prompt_embeddings is {} wide ({shape:?})",
                    shape[1]
                ),
            ));
        }
    }
    Ok(HostTensor::new(
        crate::method::prompt_tuning::PROMPT,
        shape,
        data,
    ))
}

/// A warning when `tokenizer` puts special tokens (a BOS) before the text: PEFT prepends its
/// virtual tokens to the whole tokenized input, so it runs `[virtual, BOS, text]` where our
/// template runs `[BOS, soft, text]`, and the two score differently.
pub fn special_prefix_warning(tokenizer: &tokenizers::Tokenizer) -> Option<String> {
    let ids = |special| {
        tokenizer
            .encode("a", special)
            .map(|e| e.get_ids().to_vec())
            .ok()
    };
    let (with, without) = (ids(true)?, ids(false)?);
    let at = with
        .windows(without.len().max(1))
        .position(|w| w == without.as_slice())?;
    if at == 0 {
        return None;
    }
    let names: Vec<String> = with[..at]
        .iter()
        .map(|&i| tokenizer.id_to_token(i).unwrap_or_else(|| i.to_string()))
        .collect();
    Some(format!(
        "the tokenizer starts every input with {names:?}: PEFT puts its virtual tokens before them, promptune after them, so PEFT's scores will differ from promptune's"
    ))
}
