//! Trainable tensors by name: the host form ([`HostTensor`], what adapters and checkpoints
//! store) and the device form ([`Trainables`], the one burn module every method, head and
//! unfrozen backbone weight trains in).
//!
//! A tensor's name says who owns it (`prompt`, `prefix.*`, `p_tuning.*`, `head.*`,
//! `tag_head.*`, `span_head.*`, `backbone.*`): each method reads its own tensors by name, so
//! adding a method adds names, not fields. The burn parameter id of a tensor is a hash of its
//! name, so optimiser state saved in a checkpoint maps back onto the same tensors on resume.

use burn::module::{Module, Param, ParamId};
use burn::tensor::{Device, Tensor};

use crate::backbone::layers::{float_tensor, to_vec};
use crate::{Error, Result};

/// A named f32 tensor on the host (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Owner-prefixed name, e.g. `prefix.embedding`.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor named `name`.
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self {
            name: name.into(),
            shape,
            data,
        }
    }

    /// The dimensions of a 2-D tensor whose data fills its shape.
    pub fn matrix_dims(&self) -> Result<[usize; 2]> {
        match self.shape.as_slice() {
            [a, b] if a * b == self.data.len() => Ok([*a, *b]),
            _ => Err(Error::Shape(format!(
                "`{}` must be 2-D, got {:?} holding {} values",
                self.name,
                self.shape,
                self.data.len()
            ))),
        }
    }

    /// The length of a 1-D tensor whose data fills its shape.
    pub fn vector_len(&self) -> Result<usize> {
        match self.shape.as_slice() {
            [a] if *a == self.data.len() => Ok(*a),
            _ => Err(Error::Shape(format!(
                "`{}` must be 1-D, got {:?} holding {} values",
                self.name,
                self.shape,
                self.data.len()
            ))),
        }
    }
}

/// Finds `name` in `tensors`.
pub fn find<'a>(tensors: &'a [HostTensor], name: &str) -> Option<&'a HostTensor> {
    tensors.iter().find(|t| t.name == name)
}

/// Writes named host tensors as safetensors bytes (f32).
pub fn to_safetensors(tensors: &[HostTensor]) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| Error::Serialize(format!("tensor `{}`: {e}", t.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| Error::Serialize(e.to_string()))
}

/// Reads named f32 tensors from safetensors bytes (`path` for messages), sorted by name.
pub fn from_safetensors(bytes: &[u8], path: &std::path::Path) -> Result<Vec<HostTensor>> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| Error::format(path, format!("not a valid safetensors file ({e})")))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(Error::format(
                path,
                format!("tensor `{name}` is {:?}, expected F32", view.dtype()),
            ));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push(HostTensor::new(name, view.shape().to_vec(), data));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The burn parameter id of a tensor name (FNV-1a): stable across runs and processes.
pub fn param_id(name: &str) -> ParamId {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in name.as_bytes() {
        hash ^= *b as u64;
        hash = hash.wrapping_mul(0x100000001b3);
    }
    ParamId::from(hash)
}

/// A trainable parameter named `name` (requiring gradients on an autodiff device).
pub fn named_param<const D: usize>(
    name: &str,
    data: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Param<Tensor<D>> {
    let t = float_tensor(data, shape, device);
    let t = if device.is_autodiff() {
        t.require_grad()
    } else {
        t
    };
    Param::initialized(param_id(name), t)
}

/// Tensors of one rank with their names.
pub type Named<'a, const D: usize> = Vec<(&'a str, Tensor<D>)>;

/// Every trainable tensor of a run: one burn module, vectors and matrices by name (sorted).
#[derive(Module, Debug)]
pub struct Trainables {
    vectors: Vec<Param<Tensor<1>>>,
    matrices: Vec<Param<Tensor<2>>>,
    #[module(skip)]
    vector_names: Vec<String>,
    #[module(skip)]
    matrix_names: Vec<String>,
}

impl Trainables {
    /// Nothing to train (zero-shot scoring).
    pub fn empty() -> Self {
        Self {
            vectors: Vec::new(),
            matrices: Vec::new(),
            vector_names: Vec::new(),
            matrix_names: Vec::new(),
        }
    }

    /// Builds the parameters from host tensors (1-D or 2-D, names unique); on an autodiff
    /// device they require gradients.
    pub fn from_host(tensors: &[HostTensor], device: &Device) -> Result<Self> {
        let mut sorted: Vec<&HostTensor> = tensors.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = sorted.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(Error::InvalidInput(format!(
                "tensor `{}` is given twice",
                w[0].name
            )));
        }
        let mut out = Self::empty();
        for t in sorted {
            match t.shape.len() {
                1 => {
                    let n = t.vector_len()?;
                    out.vectors
                        .push(named_param(&t.name, t.data.clone(), [n], device));
                    out.vector_names.push(t.name.clone());
                }
                2 => {
                    let dims = t.matrix_dims()?;
                    out.matrices
                        .push(named_param(&t.name, t.data.clone(), dims, device));
                    out.matrix_names.push(t.name.clone());
                }
                _ => {
                    return Err(Error::Shape(format!(
                        "tensor `{}` has shape {:?}; trainable tensors are 1-D or 2-D",
                        t.name, t.shape
                    )))
                }
            }
        }
        Ok(out)
    }

    /// Host copies of every tensor, sorted by name.
    pub fn to_host(&self) -> Vec<HostTensor> {
        let vectors = self.vector_names.iter().zip(&self.vectors).map(|(n, p)| {
            let v = p.val();
            HostTensor::new(n.clone(), v.dims().to_vec(), to_vec(v))
        });
        let matrices = self.matrix_names.iter().zip(&self.matrices).map(|(n, p)| {
            let v = p.val();
            HostTensor::new(n.clone(), v.dims().to_vec(), to_vec(v))
        });
        let mut out: Vec<HostTensor> = vectors.chain(matrices).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Number of trainable values.
    pub fn num_trainable(&self) -> usize {
        self.num_params()
    }

    /// True when nothing trains.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty() && self.matrices.is_empty()
    }

    /// The 2-D tensor `name` (gradients flow back to it).
    pub fn matrix(&self, name: &str) -> Option<Tensor<2>> {
        let i = self.matrix_names.iter().position(|n| n == name)?;
        Some(self.matrices[i].val())
    }

    /// The 1-D tensor `name` (gradients flow back to it).
    pub fn vector(&self, name: &str) -> Option<Tensor<1>> {
        let i = self.vector_names.iter().position(|n| n == name)?;
        Some(self.vectors[i].val())
    }

    /// The dimensions of tensor `name`, if present.
    pub fn dims(&self, name: &str) -> Option<Vec<usize>> {
        self.matrix(name)
            .map(|m| m.dims().to_vec())
            .or_else(|| self.vector(name).map(|v| v.dims().to_vec()))
    }

    /// Every tensor name, vectors then matrices.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vector_names
            .iter()
            .chain(&self.matrix_names)
            .map(String::as_str)
    }

    /// Whether a tensor name starts with `prefix`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.names().any(|n| n.starts_with(prefix))
    }

    /// The 1-D and 2-D tensors whose names start with `prefix`, with the prefix cut off.
    pub fn with_prefix<'a>(&'a self, prefix: &str) -> (Named<'a, 1>, Named<'a, 2>) {
        let vectors = self
            .vector_names
            .iter()
            .zip(&self.vectors)
            .filter_map(|(n, p)| n.strip_prefix(prefix).map(|s| (s, p.val())))
            .collect();
        let matrices = self
            .matrix_names
            .iter()
            .zip(&self.matrices)
            .filter_map(|(n, p)| n.strip_prefix(prefix).map(|s| (s, p.val())))
            .collect();
        (vectors, matrices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_safetensors_and_the_module() {
        let device = Device::flex();
        let named = vec![
            HostTensor::new("prefix.embedding", vec![2, 3], vec![1., 2., 3., 4., 5., 6.]),
            HostTensor::new("head.bias", vec![2], vec![0.5, -0.5]),
        ];
        let bytes = to_safetensors(&named).unwrap();
        let back = from_safetensors(&bytes, std::path::Path::new("x")).unwrap();
        assert_eq!(back[0], named[1]);
        assert_eq!(back[1], named[0]);
        let t = Trainables::from_host(&named, &device).unwrap();
        assert_eq!(t.num_trainable(), 8);
        assert_eq!(t.to_host(), back);
        assert_eq!(t.dims("prefix.embedding"), Some(vec![2, 3]));
        assert!(t.has_prefix("head."));
    }

    #[test]
    fn ids_follow_names_and_bad_tensors_are_refused() {
        assert_eq!(param_id("prompt"), param_id("prompt"));
        assert_ne!(param_id("prompt"), param_id("head.bias"));
        let device = Device::flex();
        let dup = vec![
            HostTensor::new("a", vec![1], vec![0.0]),
            HostTensor::new("a", vec![1], vec![0.0]),
        ];
        assert!(Trainables::from_host(&dup, &device).is_err());
        let short = vec![HostTensor::new("a", vec![2, 2], vec![0.0; 3])];
        assert!(Trainables::from_host(&short, &device).is_err());
        let cube = vec![HostTensor::new("a", vec![1, 1, 1], vec![0.0])];
        assert!(Trainables::from_host(&cube, &device).is_err());
    }
}
