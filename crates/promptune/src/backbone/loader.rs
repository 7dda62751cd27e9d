//! Reading one family's weights from a checkpoint: every tensor's shape checked against the
//! config before anything is built, and the parameters counted as they are read.

use burn::tensor::{Device, Tensor};

use super::layers::{float_tensor, Linear, Norm};
use crate::checkpoint::weights::WeightSource;
use crate::Result;

/// Whether a linear layer has a bias in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bias {
    /// It must have one.
    Required,
    /// It may have one (read when present).
    IfPresent,
}

/// Reads weights named relative to a prefix (absolute names where a method says so).
pub(crate) struct WeightLoader<'a> {
    source: &'a dyn WeightSource,
    prefix: String,
    device: Device,
    /// Values read so far: the checkpoint's parameter count.
    pub count: usize,
    /// Added to every vector read (Gemma stores norm weights as an offset from 1).
    pub vector_offset: f32,
}

impl<'a> WeightLoader<'a> {
    /// A loader of `source`'s tensors named `prefix` + name onto `device`.
    pub fn new(source: &'a dyn WeightSource, prefix: impl Into<String>, device: &Device) -> Self {
        Self {
            source,
            prefix: prefix.into(),
            device: device.clone(),
            count: 0,
            vector_offset: 0.0,
        }
    }

    /// The prefix names are read under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether the checkpoint holds the tensor `full` (an absolute name).
    pub fn contains(&self, full: &str) -> bool {
        self.source.contains(full)
    }

    /// The values of `full`, checked to have `shape`, counted.
    fn read(&mut self, full: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.source.tensor(full)?.expect_shape(full, shape)?;
        self.count += t.data.len();
        Ok(t.data)
    }

    /// The vector `prefix + name` of `len` values, plus [`WeightLoader::vector_offset`].
    pub fn vector(&mut self, name: &str, len: usize) -> Result<Tensor<1>> {
        let full = format!("{}{name}", self.prefix);
        let mut data = self.read(&full, &[len])?;
        if self.vector_offset != 0.0 {
            data.iter_mut().for_each(|w| *w += self.vector_offset);
        }
        Ok(float_tensor(data, [len], &self.device))
    }

    /// The matrix `full` (an absolute name) of `[rows, cols]`.
    pub fn matrix(&mut self, full: &str, rows: usize, cols: usize) -> Result<Tensor<2>> {
        let data = self.read(full, &[rows, cols])?;
        Ok(float_tensor(data, [rows, cols], &self.device))
    }

    /// The layer norm `prefix + name`: its weight and bias (`gamma` / `beta` in older
    /// checkpoints).
    pub fn layer_norm(&mut self, name: &str, len: usize) -> Result<Norm> {
        let (w, b) = if self.contains(&format!("{}{name}.gamma", self.prefix)) {
            ("gamma", "beta")
        } else {
            ("weight", "bias")
        };
        Ok(Norm::new(
            self.vector(&format!("{name}.{w}"), len)?,
            self.vector(&format!("{name}.{b}"), len)?,
        ))
    }

    /// The linear layer `prefix + name` stored as GPT-2's `Conv1D` does (`weight [in, out]`,
    /// `bias [out]`): already `x W + b`.
    pub fn conv1d(&mut self, name: &str, inp: usize, out: usize) -> Result<Linear> {
        let full = format!("{}{name}.weight", self.prefix);
        let w = self.read(&full, &[inp, out])?;
        let weight = float_tensor(w, [inp, out], &self.device);
        let bias = self.read(&format!("{}{name}.bias", self.prefix), &[out])?;
        Ok(Linear::new(
            weight,
            Some(float_tensor(bias, [out], &self.device)),
        ))
    }

    /// The linear layer `prefix + name` stored as PyTorch does (`weight [out, in]`, `bias
    /// [out]`), kept as `x W + b` with `W [in, out]`.
    pub fn linear(&mut self, name: &str, out: usize, inp: usize, bias: Bias) -> Result<Linear> {
        let full = format!("{}{name}.weight", self.prefix);
        let w = self
            .source
            .tensor(&full)?
            .expect_shape(&full, &[out, inp])?
            .transposed();
        self.count += out * inp;
        let weight = float_tensor(w.data, [inp, out], &self.device);
        let bias_name = format!("{}{name}.bias", self.prefix);
        let bias = if bias == Bias::Required || self.source.contains(&bias_name) {
            let data = self.read(&bias_name, &[out])?;
            Some(float_tensor(data, [out], &self.device))
        } else {
            None
        };
        Ok(Linear::new(weight, bias))
    }
}
