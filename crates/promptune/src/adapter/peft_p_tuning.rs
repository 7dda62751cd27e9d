//! PEFT interop for P_TUNING: `adapter_config.json` with PEFT's `PromptEncoderConfig` fields
//! and `adapter_model.safetensors` holding `prompt_embeddings` `[num_virtual_tokens,
//! token_dim]`, the prompt encoder's output. That is what PEFT itself saves for P_TUNING (it
//! runs its encoder when saving) and loads into an inference-mode encoder, which passes the
//! embedding through; the encoder's weights stay in our own adapter only.
//!
//! PEFT prepends its virtual tokens to the input, so only templates whose soft slots all come
//! first export; anchor words between soft tokens have no PEFT equivalent.

use std::path::Path;

use burn::tensor::Device;
use serde_json::json;

use super::{peft_files, Adapter};
use crate::backbone::layers::to_vec;
use crate::backbone::BackboneInfo;
use crate::method::p_tuning::{from_params, LSTM_LAYERS};
use crate::params::Trainables;
use crate::prompt::{Part, Template};
use crate::{Error, Result};

/// Writes a p-tuning `adapter` for a model of config `model` in PEFT's P_TUNING layout into
/// `dir`.
pub fn export_p_tuning(adapter: &Adapter, model: &BackboneInfo, dir: &Path) -> Result<()> {
    if adapter.config.method != "p_tuning" {
        return Err(Error::InvalidInput(format!(
            "a `{}` adapter is not a p-tuning one",
            adapter.config.method
        )));
    }
    if adapter.params.iter().any(|p| p.name.starts_with("head.")) {
        return Err(Error::InvalidInput(
            "PEFT's P_TUNING has no classification head: only verbalizer adapters export".into(),
        ));
    }
    let template = Template::parse(&adapter.config.template)?;
    let leading = template
        .parts
        .iter()
        .take_while(|p| matches!(p, Part::Soft { .. }))
        .count();
    if template.parts[leading..]
        .iter()
        .any(|p| matches!(p, Part::Soft { .. }))
    {
        return Err(Error::InvalidInput(format!(
            "PEFT's P_TUNING prepends all its virtual tokens to the input: the template `{}` has soft slots after other text (anchor tokens), which PEFT cannot represent; only templates that start with all their {{soft}} slots export",
            adapter.config.template
        )));
    }
    let params = Trainables::from_host(&adapter.params, &Device::flex())?;
    let net = from_params(&params)?
        .ok_or_else(|| Error::InvalidInput("the adapter has no p-tuning encoder".into()))?;
    net.check(model.hidden_size)?;
    let encoder_type = net.encoder_type();
    let encoder_hidden = match (&net.lstm.first(), &net.mlp.first()) {
        (Some(d), _) => d.w_hh.dims()[0],
        (None, Some(l)) => l.weight.dims()[1],
        (None, None) => model.hidden_size,
    };
    let output = net.output();
    let shape = output.dims().to_vec();
    let data = to_vec(output);
    let encoder_num_layers = match encoder_type {
        crate::method::p_tuning::EncoderType::Lstm => LSTM_LAYERS,
        crate::method::p_tuning::EncoderType::Mlp => 2,
    };
    let config = json!({
        "auto_mapping": null,
        "base_model_name_or_path": adapter.config.base_model,
        "encoder_dropout": 0.0,
        "encoder_hidden_size": encoder_hidden,
        "encoder_num_layers": encoder_num_layers,
        "encoder_reparameterization_type": encoder_type.peft_name(),
        "inference_mode": true,
        "modules_to_save": null,
        "num_attention_heads": model.num_heads,
        "num_layers": model.num_layers,
        "num_transformer_submodules": 1,
        "num_virtual_tokens": shape[0],
        "peft_type": "P_TUNING",
        "peft_version": "0.21.2",
        "revision": null,
        "task_type": super::peft::task_type(model),
        "token_dim": shape[1]
    });
    peft_files::write(dir, &config, &shape, &data)
}
