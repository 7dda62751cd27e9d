//! A ready-to-use model: the frozen backbone plus its tokenizer, loaded from an HF folder,
//! a GGUF file or a hub id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use std::sync::Arc;

use tokenizers::Tokenizer;

use crate::backbone::Backbone;
use crate::checkpoint::{
    gguf_source::GgufSource, hf_config, safetensors_source::SafetensorsSource,
};
use crate::{checkpoint, tokenizer, Error, Result};

/// Where the weights came from and how they are stored.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The resolved local path (folder or .gguf file).
    pub path: PathBuf,
    /// `safetensors` or `gguf`.
    pub format: &'static str,
    /// Storage type (F32, BF16, Q4_K...) → number of tensors.
    pub tensor_types: BTreeMap<String, usize>,
}

/// A frozen backbone with its tokenizer.
pub struct Model {
    /// The network.
    pub backbone: Backbone,
    /// Text ↔ ids.
    pub tokenizer: Arc<Tokenizer>,
    /// Provenance.
    pub info: ModelInfo,
}

impl Model {
    /// Loads `spec` (a folder, a `.gguf` file, or a hub id such as `HuggingFaceTB/SmolLM2-135M`).
    pub fn load(spec: &str, device: &Device) -> Result<Self> {
        let path = checkpoint::hub::resolve(spec)?;
        Self::load_path(&path, device)
    }

    /// Loads a local folder or `.gguf` file.
    pub fn load_path(path: &Path, device: &Device) -> Result<Self> {
        if !path.exists() {
            return Err(Error::MissingFile {
                path: path.into(),
                hint: "give an HF model folder (config.json + model.safetensors + tokenizer.json) or a .gguf file".into(),
            });
        }
        let is_gguf = path.is_file()
            && path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        let (backbone, tokenizer, format, tensor_types) = if is_gguf {
            let (source, config) = GgufSource::open(path)?;
            let tokenizer = tokenizer::from_gguf::tokenizer_from_gguf(source.file())?;
            let mut types = BTreeMap::new();
            for info in source.file().tensor_infos() {
                *types.entry(info.ggml_type.name().to_string()).or_insert(0) += 1;
            }
            (
                Backbone::load(config, &source, device)?,
                tokenizer,
                "gguf",
                types,
            )
        } else if path.is_dir() {
            let config = hf_config::read_config(&path.join("config.json"))?;
            let source = SafetensorsSource::open_dir(path)?;
            let tokenizer = tokenizer::load_tokenizer_file(path, None)?;
            let mut types = BTreeMap::new();
            for (_, dtype, _) in source.describe() {
                *types.entry(dtype).or_insert(0) += 1;
            }
            (
                Backbone::load(config, &source, device)?,
                tokenizer,
                "safetensors",
                types,
            )
        } else {
            return Err(Error::format(
                path,
                "not a model: expected an HF folder or a .gguf file",
            ));
        };
        tokenizer::check_vocab(&tokenizer, backbone.config().vocab_size)?;
        let tokenizer = Arc::new(tokenizer);
        Ok(Self {
            backbone,
            tokenizer,
            info: ModelInfo {
                path: path.into(),
                format,
                tensor_types,
            },
        })
    }

    /// Token ids of `text` (with the model's special tokens when `special` is set).
    pub fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, special)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids` (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }
}

/// Loads the weights at `path` without a tokenizer (tests, benchmarks).
pub fn load_backbone(path: &Path, device: &Device) -> Result<Backbone> {
    crate::backbone::load_backbone(path, device)
}
