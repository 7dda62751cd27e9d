//! Resolves a model spec to a local path: an existing folder or file, a hub id already in a
//! local cache, or (when the network allows) a download.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Returns the local path for `spec`.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let looks_like_id = spec.split('/').count() == 2 && !spec.starts_with('.') && !spec.ends_with(".gguf");
    if !looks_like_id {
        return Err(Error::MissingFile {
            path: path.into(),
            hint: "give an HF model folder, a .gguf file, or a hub id such as HuggingFaceTB/SmolLM2-135M".into(),
        });
    }
    Err(Error::Hub(format!(
        "`{spec}` is not a local path and the model hub could not be reached (offline?). \
         Download the model elsewhere and pass its folder (config.json + model.safetensors + tokenizer.json) \
         or a .gguf file, e.g. `promptune generate ./models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf`; \
         `scripts/fetch-models.sh` fetches the default models"
    )))
}
