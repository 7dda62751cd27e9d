//! Weight and config loading: HF folders (config.json + safetensors) and GGUF files. What a
//! checkpoint says about its model is a [`BackboneConfig`]; the backbone builds itself from it
//! ([`crate::backbone::load_backbone`]).

pub mod config;
pub mod dequant;
pub mod gguf;
pub mod gguf_source;
pub mod hf_config;
pub mod hub;
pub mod safetensors_source;
pub mod weights;

use std::path::Path;

pub use config::{BackboneConfig, Family, RopeConfig};

use crate::{Error, Result};
use weights::WeightSource;

/// Opens the weights and config at `path`: a `.gguf` file or an HF model folder.
pub fn open_weights(path: &Path) -> Result<(Box<dyn WeightSource>, BackboneConfig)> {
    if !path.exists() {
        return Err(Error::MissingFile {
            path: path.into(),
            hint: "give an HF model folder (config.json + model.safetensors) or a .gguf file"
                .into(),
        });
    }
    if path.is_dir() {
        let config = hf_config::read_config(&path.join("config.json"))?;
        let source = safetensors_source::SafetensorsSource::open_dir(path)?;
        Ok((Box::new(source), config))
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        let (source, config) = gguf_source::GgufSource::open(path)?;
        Ok((Box::new(source), config))
    } else {
        Err(Error::format(
            path,
            "not a model: expected an HF folder or a .gguf file",
        ))
    }
}
