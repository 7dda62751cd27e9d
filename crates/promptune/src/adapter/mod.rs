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
use crate::method::MethodConfig;
use crate::params::{from_safetensors, to_safetensors, HostTensor};
use crate::prompt::VerbalizerSpec;
use crate::task::classification::{Pooling, Readout};
use crate::task::generation::GenerationConfig;
use crate::task::{QaConfig, TaskKind};
use crate::train::atomic::write_atomic;
use crate::{Error, Result};

/// The adapter format version this promptune writes and reads.
pub const ADAPTER_VERSION: u32 = 1;

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
        let info = backbone.info();
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
            family: info.family.to_string(),
            hidden_size: info.hidden_size,
            num_layers: info.num_layers,
            vocab_size: info.vocab_size,
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
    /// The `[method] kind` that trained it (`prompt_tuning`, `prefix_tuning`, ...).
    pub method: String,
    /// The model spec it was trained on (informational).
    pub base_model: String,
    /// The base model's identity.
    pub fingerprint: Fingerprint,
    /// What the adapter predicts (older adapters: classification).
    #[serde(default)]
    pub task: TaskKind,
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
    pub pooling: Pooling,
    /// Label names in index order.
    pub labels: Vec<String>,
    /// Label words (verbalizer readout).
    pub verbalizer: Option<VerbalizerSpec>,
    /// Soft tokens (prefix tuning: the prefix length).
    pub num_virtual_tokens: usize,
    /// Windows and span decoding (question answering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qa: Option<QaConfig>,
    /// Target, separator and decoding (generation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationConfig>,
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
        if config.version != ADAPTER_VERSION {
            return Err(Error::format(
                &cfg_path,
                format!(
                    "format version {} is not one this promptune reads (version {ADAPTER_VERSION}){}",
                    config.version,
                    if config.version > ADAPTER_VERSION {
                        ": it was written by a newer promptune"
                    } else {
                        ""
                    }
                ),
            ));
        }
        if !MethodConfig::KINDS.contains(&config.method.as_str()) {
            return Err(Error::format(
                &cfg_path,
                format!(
                    "unknown method `{}` (known: {})",
                    config.method,
                    MethodConfig::KINDS.join(", ")
                ),
            ));
        }
        Ok(config)
    }
}

/// A saved adapter: its config and tensors.
#[derive(Debug, Clone)]
pub struct Adapter {
    /// Settings.
    pub config: AdapterConfig,
    /// Tensors, named by their owner (`prompt`, `prefix.embedding`, `head.weight`, ...).
    pub params: Vec<HostTensor>,
}

impl Adapter {
    /// Writes `adapter_config.json` and `adapter.safetensors` into `dir` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json =
            serde_json::to_vec_pretty(&self.config).map_err(|e| Error::Serialize(e.to_string()))?;
        write_atomic(
            &dir.join("adapter.safetensors"),
            &to_safetensors(&self.params)?,
        )?;
        write_atomic(&dir.join("adapter_config.json"), &json)
    }

    /// Reads an adapter folder.
    pub fn load(dir: &Path) -> Result<Self> {
        let config = AdapterConfig::load(dir)?;
        let st_path = dir.join("adapter.safetensors");
        let bytes = std::fs::read(&st_path).map_err(|e| Error::io(&st_path, e))?;
        let params = from_safetensors(&bytes, &st_path)?;
        let adapter = Self { config, params };
        adapter.check_tensors(&st_path)?;
        Ok(adapter)
    }

    /// Fails, naming the tensor, on NaN or infinite values, and when the tensors its method
    /// trains are missing (a soft-prompt method with soft tokens, a prefix, unfrozen weights).
    fn check_tensors(&self, path: &Path) -> Result<()> {
        if let Some(t) = self
            .params
            .iter()
            .find(|t| t.data.iter().any(|v| !v.is_finite()))
        {
            return Err(Error::format(
                path,
                format!("tensor `{}` holds NaN or infinite values", t.name),
            ));
        }
        let c = &self.config;
        let owners: &[&str] = match c.method.as_str() {
            "prompt_tuning" | "p_tuning" if c.num_virtual_tokens > 0 => {
                &["prompt_tuning", "p_tuning"]
            }
            "prefix_tuning" => &["prefix_tuning"],
            "bitfit" | "full" => &["unfreeze"],
            _ => &[],
        };
        let owned = |t: &HostTensor| {
            crate::method::REGISTRY
                .iter()
                .any(|m| owners.contains(&m.kind()) && m.owns(&t.name))
        };
        if !owners.is_empty() && !self.params.iter().any(owned) {
            return Err(Error::format(
                path,
                format!(
                    "a `{}` adapter without its trained tensors (it holds {:?})",
                    c.method,
                    self.params
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                ),
            ));
        }
        Ok(())
    }

    /// Fails, naming both models, when this adapter was trained on another base model (its
    /// tensors are checked against the model by the methods when they are loaded).
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
        Ok(())
    }
}
