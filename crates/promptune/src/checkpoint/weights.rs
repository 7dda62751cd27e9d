//! A uniform way for model code to read named f32 tensors, whatever the file format.
//!
//! Names are always HF names (`model.layers.0.self_attn.q_proj.weight`); format adapters
//! translate them (see [`super::gguf_source`]).

use crate::{Error, Result};

/// A tensor read to the host as f32, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Checks the shape, naming the tensor on mismatch.
    pub fn expect_shape(self, name: &str, shape: &[usize]) -> Result<Self> {
        if self.shape != shape {
            return Err(Error::Shape(format!(
                "tensor `{name}` has shape {:?}, the config implies {:?}",
                self.shape, shape
            )));
        }
        Ok(self)
    }

    /// Transposes a 2-D tensor (`[out, in]` as PyTorch stores a linear weight → `[in, out]`).
    pub fn transposed(self) -> Self {
        let (rows, cols) = (self.shape[0], self.shape[1]);
        let mut out = vec![0f32; rows * cols];
        const BLOCK: usize = 64;
        for r0 in (0..rows).step_by(BLOCK) {
            for c0 in (0..cols).step_by(BLOCK) {
                for r in r0..(r0 + BLOCK).min(rows) {
                    for c in c0..(c0 + BLOCK).min(cols) {
                        out[c * rows + r] = self.data[r * cols + c];
                    }
                }
            }
        }
        Self {
            shape: vec![cols, rows],
            data: out,
        }
    }
}

/// Something that holds named tensors (a safetensors folder, a GGUF file).
pub trait WeightSource {
    /// Reads tensor `name` as f32.
    fn tensor(&self, name: &str) -> Result<HostTensor>;
    /// True when the source holds `name`.
    fn contains(&self, name: &str) -> bool;
    /// All tensor names (HF naming).
    fn names(&self) -> Vec<String>;
    /// Where the weights come from, for messages.
    fn origin(&self) -> String;
}

/// Finds the first of several candidate prefixes under which `suffix` exists
/// (checkpoints save `bert.`, `model.`, `language_model.model.`... in front of the same names).
pub fn resolve_prefix(
    source: &dyn WeightSource,
    candidates: &[&str],
    suffix: &str,
) -> Option<String> {
    candidates
        .iter()
        .find(|p| source.contains(&format!("{p}{suffix}")))
        .map(|p| p.to_string())
}
