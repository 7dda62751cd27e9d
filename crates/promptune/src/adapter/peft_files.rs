//! The two files of a PEFT adapter folder, shared by every PEFT method we read and write:
//! `adapter_config.json` and `adapter_model.safetensors` with one `prompt_embeddings` tensor.

use std::path::{Path, PathBuf};

use crate::train::atomic::write_atomic;
use crate::{Error, Result};

/// The tensor name PEFT uses for prompt-learning methods.
const TENSOR: &str = "prompt_embeddings";

/// Writes `config` and the f32 `prompt_embeddings` (`shape`, row-major `data`) into `dir`,
/// each file atomically, with the `format: pt` metadata PEFT writes.
pub(crate) fn write(
    dir: &Path,
    config: &serde_json::Value,
    shape: &[usize],
    data: &[f32],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), &bytes)
            .map_err(|e| Error::Serialize(e.to_string()))?;
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    let st = safetensors::serialize([(TENSOR, view)], Some(meta))
        .map_err(|e| Error::Serialize(e.to_string()))?;
    write_atomic(&dir.join("adapter_model.safetensors"), &st)?;
    let text = serde_json::to_vec_pretty(config).map_err(|e| Error::Serialize(e.to_string()))?;
    write_atomic(&dir.join("adapter_config.json"), &text)
}

/// An adapter folder read back: its config (checked to be `peft_type`) and its
/// `prompt_embeddings` as f32, whatever dtype PEFT saved it in (the base model's).
pub(crate) struct PeftFiles {
    pub config_path: PathBuf,
    pub config: serde_json::Value,
    pub tensor_path: PathBuf,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Reads `dir` as a PEFT adapter of `peft_type` (e.g. `PROMPT_TUNING`).
pub(crate) fn read(dir: &Path, peft_type: &str) -> Result<PeftFiles> {
    let missing = |path: PathBuf, e: std::io::Error| {
        match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingFile {
            path,
            hint: format!(
                "a PEFT {peft_type} adapter folder holds adapter_config.json and adapter_model.safetensors (save_pretrained with safe_serialization=True)"
            ),
        },
        _ => Error::io(path, e),
    }
    };
    let config_path = dir.join("adapter_config.json");
    let text =
        std::fs::read_to_string(&config_path).map_err(|e| missing(config_path.clone(), e))?;
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::format(&config_path, e.to_string()))?;
    if config["peft_type"] != peft_type {
        let kind = |t: &str| match t {
            "PROMPT_TUNING" => Some("prompt_tuning"),
            "P_TUNING" => Some("p_tuning"),
            "PREFIX_TUNING" => Some("prefix_tuning"),
            _ => None,
        };
        let found = config["peft_type"].as_str().unwrap_or_default();
        let hint = match (kind(found), kind(peft_type)) {
            (Some(theirs), Some(ours)) => format!(
                ": the task config's method.kind (`{ours}`) decides which PEFT layout is read; \
                 set method.kind = \"{theirs}\" (or --set method.kind={theirs}) for this adapter"
            ),
            _ => String::new(),
        };
        return Err(Error::format(
            &config_path,
            format!(
                "peft_type is {}, expected {peft_type}{hint}",
                config["peft_type"]
            ),
        ));
    }
    let tensor_path = dir.join("adapter_model.safetensors");
    let bytes = std::fs::read(&tensor_path).map_err(|e| missing(tensor_path.clone(), e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::format(&tensor_path, format!("not a valid safetensors file ({e})")))?;
    let view = st.tensor(TENSOR).map_err(|_| {
        Error::format(
            &tensor_path,
            format!("no `{TENSOR}` tensor (it holds {:?})", st.names()),
        )
    })?;
    let raw = view.data();
    let data: Vec<f32> = match view.dtype() {
        safetensors::Dtype::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        safetensors::Dtype::F16 => raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        safetensors::Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(Error::format(
                &tensor_path,
                format!("{TENSOR} is {other:?}; expected F32, F16 or BF16"),
            ))
        }
    };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::format(
            &tensor_path,
            format!("{TENSOR} holds a NaN or infinite value (element {i})"),
        ));
    }
    let dims: usize = view.shape().iter().product();
    if dims != data.len() {
        return Err(Error::format(
            &tensor_path,
            format!(
                "{TENSOR} is {:?} but holds {} values",
                view.shape(),
                data.len()
            ),
        ));
    }
    Ok(PeftFiles {
        config_path,
        config,
        tensor_path,
        shape: view.shape().to_vec(),
        data,
    })
}
