//! Memory-mapped safetensors checkpoints, single-file or sharded
//! (`model.safetensors.index.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{tensor::Metadata, Dtype, SafeTensors};

use super::weights::{HostTensor, WeightSource};
use crate::{Error, Result};

struct Shard {
    path: PathBuf,
    mmap: Mmap,
    header_len: usize,
    metadata: Metadata,
}

/// The tensors of one or more safetensors files.
pub struct SafetensorsSource {
    shards: Vec<Shard>,
    /// tensor name → shard index.
    index: BTreeMap<String, usize>,
    origin: String,
}

impl SafetensorsSource {
    /// Opens `model.safetensors` or the shards listed in `model.safetensors.index.json` in `dir`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        if single.exists() {
            Self::open_files(&[single], dir)
        } else if index.exists() {
            let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::format(&index, format!("invalid JSON: {e}")))?;
            let map = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::format(&index, "no `weight_map` object"))?;
            let mut files: Vec<PathBuf> = map
                .values()
                .filter_map(|v| v.as_str())
                .map(|f| dir.join(f))
                .collect();
            files.sort();
            files.dedup();
            Self::open_files(&files, dir)
        } else {
            Err(Error::MissingFile {
                path: single,
                hint: "an HF model folder needs model.safetensors or model.safetensors.index.json"
                    .into(),
            })
        }
    }

    /// Opens the given files as one checkpoint.
    pub fn open_files(files: &[PathBuf], origin: &Path) -> Result<Self> {
        let mut shards = Vec::new();
        let mut index = BTreeMap::new();
        for path in files {
            let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            // SAFETY: the file is opened read-only and treated as immutable for the life of the map.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            let (header_len, metadata) = SafeTensors::read_metadata(&mmap)
                .map_err(|e| Error::format(path, format!("not a valid safetensors file ({e})")))?;
            for name in metadata.tensors().keys() {
                index.insert(name.clone(), shards.len());
            }
            shards.push(Shard {
                path: path.clone(),
                mmap,
                header_len,
                metadata,
            });
        }
        Ok(Self {
            shards,
            index,
            origin: origin.display().to_string(),
        })
    }

    /// Name → (dtype, shape) of every tensor, for `inspect`.
    pub fn describe(&self) -> Vec<(String, String, Vec<usize>)> {
        self.index
            .iter()
            .filter_map(|(name, &s)| {
                let info = self.shards[s].metadata.info(name)?;
                Some((
                    name.clone(),
                    format!("{:?}", info.dtype),
                    info.shape.clone(),
                ))
            })
            .collect()
    }
}

fn decode(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        _ => return None,
    })
}

impl WeightSource for SafetensorsSource {
    fn tensor(&self, name: &str) -> Result<HostTensor> {
        let &s = self.index.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.into(),
            path: self.origin.clone().into(),
        })?;
        let shard = &self.shards[s];
        let info = shard
            .metadata
            .info(name)
            .ok_or_else(|| Error::format(&shard.path, format!("index lists `{name}`")))?;
        let start = 8 + shard.header_len + info.data_offsets.0;
        let end = 8 + shard.header_len + info.data_offsets.1;
        let bytes = shard.mmap.get(start..end).ok_or_else(|| {
            Error::format(
                &shard.path,
                format!("tensor `{name}` lies past the end of the file"),
            )
        })?;
        let data = decode(info.dtype, bytes).ok_or_else(|| {
            Error::format(
                &shard.path,
                format!(
                    "tensor `{name}` has dtype {:?}; only F32, F16, BF16, F64 are read",
                    info.dtype
                ),
            )
        })?;
        Ok(HostTensor {
            shape: info.shape.clone(),
            data,
        })
    }

    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    fn names(&self) -> Vec<String> {
        self.index.keys().cloned().collect()
    }

    fn origin(&self) -> String {
        self.origin.clone()
    }
}
