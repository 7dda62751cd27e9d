//! Training the backbone's own weights: BitFit (Ben Zaken et al. 2022: only the bias terms)
//! and full fine-tuning (every weight), alone or next to any prompt method and head.
//!
//! The trained tensors live in the task's trainable parts as `backbone.<name>` (names of
//! [`crate::backbone::tensors`]); before each forward pass they are put into a copy of the
//! backbone ([`BackboneTensors::apply`]; the copy shares every other weight). BitFit on a
//! model whose linear layers have no bias (Llama, Gemma) gives each linear layer a zero bias,
//! which leaves the model's outputs unchanged at the start. Adapters store exactly the
//! trained tensors: the biases for BitFit, the whole model for full fine-tuning.

use std::collections::HashMap;

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::backbone::layers::to_vec;
use crate::backbone::tensors::is_bias;
use crate::backbone::{Backbone, TensorSlot};
use crate::task::classification::HostParam;
use crate::{Error, Result};

/// Host names of backbone tensors start with this.
pub const PREFIX: &str = "backbone.";

/// Which backbone weights train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unfreeze {
    /// None: the backbone stays frozen (prompt methods).
    #[default]
    None,
    /// The bias terms (BitFit), a zero bias added to linear layers that have none.
    Biases,
    /// Every weight (full fine-tuning).
    All,
}

/// Host copies of the weights `unfreeze` trains, named `backbone.<name>`, in the backbone's
/// order.
pub fn initial_tensors(backbone: &Backbone, unfreeze: Unfreeze) -> Vec<HostParam> {
    let mut out = Vec::new();
    if unfreeze == Unfreeze::None {
        return out;
    }
    let mut copy = backbone.clone();
    copy.visit_tensors(&mut |name, slot| {
        let wanted = unfreeze == Unfreeze::All || is_bias(name);
        if !wanted {
            return;
        }
        let full = format!("{PREFIX}{name}");
        match slot {
            TensorSlot::Vector(t) => out.push((full, t.dims().to_vec(), to_vec(t.clone()))),
            TensorSlot::Matrix(t) => out.push((full, t.dims().to_vec(), to_vec(t.clone()))),
            TensorSlot::MissingBias(_, width) if unfreeze == Unfreeze::Biases => {
                out.push((full, vec![width], vec![0.0; width]))
            }
            TensorSlot::MissingBias(..) => {}
        }
    });
    out
}

/// Trainable backbone weights: vectors and matrices with their names.
#[derive(Module, Debug)]
pub struct BackboneTensors {
    /// 1-D weights (biases, norm scales).
    pub vectors: Vec<Param<Tensor<1>>>,
    /// 2-D weights (linear layers, embedding tables).
    pub matrices: Vec<Param<Tensor<2>>>,
    /// Names of `vectors` (without [`PREFIX`]).
    #[module(skip)]
    pub vector_names: Vec<String>,
    /// Names of `matrices` (without [`PREFIX`]).
    #[module(skip)]
    pub matrix_names: Vec<String>,
}

/// Builds a parameter with a fixed id from a host tensor.
pub type ParamMaker<'a, const D: usize> = dyn Fn(u64, &HostParam) -> Result<Param<Tensor<D>>> + 'a;

impl BackboneTensors {
    /// The `backbone.*` entries of `named` (none: `None`). Ids are numbered by name, so a
    /// resumed run maps its optimizer state back whatever order the tensors come in.
    pub fn from_host(
        named: &[HostParam],
        vector: &ParamMaker<1>,
        matrix: &ParamMaker<2>,
    ) -> Result<Option<Self>> {
        let mut mine: Vec<&HostParam> = named.iter().filter(|p| p.0.starts_with(PREFIX)).collect();
        if mine.is_empty() {
            return Ok(None);
        }
        mine.sort_by(|a, b| a.0.cmp(&b.0));
        let mut t = Self {
            vectors: Vec::new(),
            matrices: Vec::new(),
            vector_names: Vec::new(),
            matrix_names: Vec::new(),
        };
        for (i, p) in mine.into_iter().enumerate() {
            let name = p.0[PREFIX.len()..].to_string();
            match p.1.len() {
                1 => {
                    t.vectors.push(vector(i as u64, p)?);
                    t.vector_names.push(name);
                }
                2 => {
                    t.matrices.push(matrix(i as u64, p)?);
                    t.matrix_names.push(name);
                }
                _ => {
                    return Err(Error::Shape(format!(
                        "backbone tensor `{}` has shape {:?}; expected 1-D or 2-D",
                        p.0, p.1
                    )))
                }
            }
        }
        Ok(Some(t))
    }

    /// Host copies, named `backbone.<name>`.
    pub fn to_host(&self) -> Vec<HostParam> {
        let vectors = self.vector_names.iter().zip(&self.vectors).map(|(n, p)| {
            let v = p.val();
            (format!("{PREFIX}{n}"), v.dims().to_vec(), to_vec(v))
        });
        let matrices = self.matrix_names.iter().zip(&self.matrices).map(|(n, p)| {
            let v = p.val();
            (format!("{PREFIX}{n}"), v.dims().to_vec(), to_vec(v))
        });
        vectors.chain(matrices).collect()
    }

    /// Number of trained values.
    pub fn num_values(&self) -> usize {
        self.num_params()
    }

    /// A copy of `backbone` holding these tensors (gradients flow to them); every other
    /// weight is shared. Errors name a tensor the backbone does not have or whose shape
    /// differs (an adapter for another model).
    pub fn apply(&self, backbone: &Backbone) -> Result<Backbone> {
        let mut vectors: HashMap<&str, Tensor<1>> = self
            .vector_names
            .iter()
            .map(String::as_str)
            .zip(self.vectors.iter().map(Param::val))
            .collect();
        let mut matrices: HashMap<&str, Tensor<2>> = self
            .matrix_names
            .iter()
            .map(String::as_str)
            .zip(self.matrices.iter().map(Param::val))
            .collect();
        let mut copy = backbone.clone();
        let mut mismatch: Option<String> = None;
        copy.visit_tensors(&mut |name, slot| {
            let shape_error = |want: Vec<usize>, got: Vec<usize>| {
                format!("backbone tensor `{name}` is {want:?} in the model but {got:?} in the trained parts")
            };
            match slot {
                TensorSlot::Vector(t) => {
                    if let Some(v) = vectors.remove(name) {
                        if v.dims() != t.dims() {
                            mismatch.get_or_insert(shape_error(t.dims().to_vec(), v.dims().to_vec()));
                        } else {
                            *t = v;
                        }
                    }
                }
                TensorSlot::MissingBias(b, width) => {
                    if let Some(v) = vectors.remove(name) {
                        if v.dims() != [width] {
                            mismatch.get_or_insert(shape_error(vec![width], v.dims().to_vec()));
                        } else {
                            *b = Some(v);
                        }
                    }
                }
                TensorSlot::Matrix(t) => {
                    if let Some(m) = matrices.remove(name) {
                        if m.dims() != t.dims() {
                            mismatch.get_or_insert(shape_error(t.dims().to_vec(), m.dims().to_vec()));
                        } else {
                            *t = m;
                        }
                    }
                }
            }
        });
        if let Some(m) = mismatch {
            return Err(Error::Shape(m));
        }
        if let Some(name) = vectors.keys().chain(matrices.keys()).next() {
            return Err(Error::InvalidInput(format!(
                "the trained parts hold backbone tensor `{name}`, which this model does not have"
            )));
        }
        Ok(copy)
    }
}
