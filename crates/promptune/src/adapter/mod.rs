//! Adapters: what training produces, saved apart from the frozen model.
//!
//! Own format (a folder): `adapter.safetensors` (f32 tensors: `prompt`, `head.weight`,
//! `head.bias`; prefix tuning: `prefix.embedding`, its MLP folded in; p-tuning: the prompt
//! encoder's weights `p_tuning.*`; task heads `tag_head.*`, `span_head.*`; BitFit / full
//! fine-tuning: the trained backbone weights `backbone.*`) and `adapter_config.json` recording
//! the task, method, template, verbalizer or head, label names, and a fingerprint of the base
//! model; loading it on another base model fails with a message naming both. [`peft`] and
//! [`peft_prefix`] convert to and from PEFT's layouts, [`peft_p_tuning`] to PEFT's P_TUNING
//! layout (P_TUNING comes in through [`peft::import_prompt_embeddings`]).

pub mod peft;
mod peft_files;
pub mod peft_p_tuning;
pub mod peft_prefix;

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::backbone::{Backbone, PaddingSide};
use crate::prompt::VerbalizerSpec;
use crate::task::classification::{
    host_params_from_safetensors, host_params_to_safetensors, HostParam, Readout,
};
use crate::train::atomic::write_atomic;
use crate::{Error, Result};

/// The identity of a base model, enough to refuse an adapter trained for another one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Model family.
    pub family: String,
    /// Residual width.
    pub hidden_size: usize,
    /// Layers.
    pub num_layers: usize,
    /// Embedding rows.
    pub vocab_size: usize,
    /// FNV-1a hash of the tokenizer's vocabulary (tokens in id order).
    pub vocab_hash: String,
}

impl Fingerprint {
    /// Fingerprint of a loaded model.
    pub fn of(backbone: &Backbone, tokenizer: &Tokenizer) -> Self {
        let cfg = backbone.config();
        let mut vocab: Vec<(u32, String)> = tokenizer
            .get_vocab(true)
            .into_iter()
            .map(|(t, i)| (i, t))
            .collect();
        vocab.sort();
        let mut hash: u64 = 0xcbf29ce484222325;
        for (id, token) in &vocab {
            for b in id.to_le_bytes().iter().chain(token.as_bytes()) {
                hash ^= *b as u64;
                hash = hash.wrapping_mul(0x100000001b3);
            }
        }
        Self {
            family: cfg.family.name().to_string(),
            hidden_size: cfg.hidden_size,
            num_layers: cfg.num_layers,
            vocab_size: cfg.vocab_size,
            vocab_hash: format!("{hash:016x}"),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} ({} layers, hidden {}, vocab {}, tokenizer {})",
            self.family, self.num_layers, self.hidden_size, self.vocab_size, self.vocab_hash
        )
    }
}

/// Everything needed to rebuild a trained prompt on its base model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    /// Always `promptune-adapter`.
    pub format: String,
    /// Format version.
    pub version: u32,
    /// `prompt_tuning` or `prefix_tuning`.
    pub method: String,
    /// The model spec it was trained on (informational).
    pub base_model: String,
    /// The base model's identity.
    pub fingerprint: Fingerprint,
    /// What the adapter predicts (older adapters: classification).
    #[serde(default)]
    pub task: crate::pipeline::TaskKind,
    /// The template source.
    pub template: String,
    /// Longest encoded prompt.
    pub max_len: usize,
    /// Padding side used.
    pub padding: PaddingSide,
    /// How labels are read.
    pub readout: Readout,
    /// What a head reads (older adapters: the pooled output).
    #[serde(default)]
    pub pooling: crate::task::classification::Pooling,
    /// Label names in index order.
    pub labels: Vec<String>,
    /// Label words (verbalizer readout).
    pub verbalizer: Option<VerbalizerSpec>,
    /// Soft tokens (prefix tuning: the prefix length).
    pub num_virtual_tokens: usize,
    /// Windows and span decoding (question answering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qa: Option<crate::pipeline::QaConfig>,
}

impl AdapterConfig {
    /// Reads `adapter_config.json` of an adapter folder.
    pub fn load(dir: &Path) -> Result<Self> {
        let cfg_path = dir.join("adapter_config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::MissingFile {
                path: cfg_path.clone(),
                hint: "an adapter folder holds adapter_config.json and adapter.safetensors".into(),
            },
            _ => Error::io(&cfg_path, e),
        })?;
        let config: AdapterConfig = serde_json::from_str(&text).map_err(|e| {
            let peft = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("peft_type").map(|t| t.to_string()));
            match peft {
                Some(t) => Error::format(
                    &cfg_path,
                    format!("this is a PEFT adapter (peft_type {t}), not a promptune one: convert it with `promptune import-peft`"),
                ),
                None => Error::format(&cfg_path, format!("not a promptune adapter config: {e}")),
            }
        })?;
        if config.format != "promptune-adapter" {
            return Err(Error::format(&cfg_path, format!("format is `{}`, expected `promptune-adapter` (PEFT adapters: convert with `promptune import-peft`)", config.format)));
        }
        Ok(config)
    }
}

/// A saved adapter: its config and tensors.
#[derive(Debug, Clone)]
pub struct Adapter {
    /// Settings.
    pub config: AdapterConfig,
    /// Tensors (`prompt`, `head.weight`, `head.bias`).
    pub params: Vec<HostParam>,
}

impl Adapter {
    /// Writes `adapter_config.json` and `adapter.safetensors` into `dir` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.config)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        write_atomic(
            &dir.join("adapter.safetensors"),
            &host_params_to_safetensors(&self.params)?,
        )?;
        write_atomic(&dir.join("adapter_config.json"), &json)
    }

    /// Reads an adapter folder.
    pub fn load(dir: &Path) -> Result<Self> {
        let config = AdapterConfig::load(dir)?;
        let st_path = dir.join("adapter.safetensors");
        let bytes = std::fs::read(&st_path).map_err(|e| Error::io(&st_path, e))?;
        let params = host_params_from_safetensors(&bytes, &st_path)?;
        Ok(Self { config, params })
    }

    /// Fails, naming both models, when this adapter was trained on another base model.
    pub fn check_base(&self, backbone: &Backbone, tokenizer: &Tokenizer) -> Result<()> {
        let here = Fingerprint::of(backbone, tokenizer);
        if here != self.config.fingerprint {
            return Err(Error::InvalidInput(format!(
                "this adapter was trained for {} = {}, but the model given is {}",
                self.config.base_model,
                self.config.fingerprint.describe(),
                here.describe()
            )));
        }
        let prompt = self.params.iter().find(|p| p.0 == "prompt");
        if let Some((_, shape, _)) = prompt {
            if shape.get(1) != Some(&backbone.config().hidden_size) {
                return Err(Error::Shape(format!(
                    "adapter prompt is {shape:?}, model hidden size {}",
                    backbone.config().hidden_size
                )));
            }
        }
        Ok(())
    }
}
