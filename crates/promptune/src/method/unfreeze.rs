//! Training the backbone's own weights: BitFit (Ben Zaken et al. 2022: only the bias terms)
//! and full fine-tuning (every weight), alone or next to any prompt method and head.
//!
//! The trained tensors live in the task's trainable parts as `backbone.<name>` (names of
//! [`crate::backbone::tensors`]); before each forward pass they are put into a copy of the
//! backbone ([`effective_backbone`]; the copy shares every other weight). BitFit on a
//! model whose linear layers have no bias (Llama, Gemma) gives each linear layer a zero bias,
//! which leaves the model's outputs unchanged at the start. Adapters store exactly the
//! trained tensors: the biases for BitFit, the whole model for full fine-tuning.

use std::collections::HashMap;

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::{AdapterHooks, Method};
use crate::backbone::layers::to_vec;
use crate::backbone::tensors::is_bias;
use crate::backbone::BackboneInfo;
use crate::backbone::{Backbone, TensorSlot};
use crate::params::{HostTensor, Trainables};
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

/// The `[method]` settings of `kind = "bitfit"`, `"full"` and `"none"`: none of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnfreezeOnly {}

impl UnfreezeOnly {
    /// The keys of this config.
    pub const FIELDS: &'static [&'static str] = &[];
}

/// Host copies of the weights `unfreeze` trains, named `backbone.<name>`, in the backbone's
/// order.
pub fn initial_tensors(backbone: &Backbone, unfreeze: Unfreeze) -> Vec<HostTensor> {
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
            TensorSlot::Vector(t) => {
                out.push(HostTensor::new(full, t.dims().to_vec(), to_vec(t.clone())))
            }
            TensorSlot::Matrix(t) => {
                out.push(HostTensor::new(full, t.dims().to_vec(), to_vec(t.clone())))
            }
            TensorSlot::MissingBias(_, width) if unfreeze == Unfreeze::Biases => {
                out.push(HostTensor::new(full, vec![width], vec![0.0; width]))
            }
            TensorSlot::MissingBias(..) | TensorSlot::RowBias(..) => {}
        }
    });
    out
}

/// The backbone `params` run on: `backbone` itself, or a copy holding the unfrozen weights
/// they train (BitFit, full fine-tuning); the copy shares every other weight.
pub fn effective_backbone<'a>(
    params: &Trainables,
    backbone: &'a Backbone,
) -> Result<std::borrow::Cow<'a, Backbone>> {
    let (vectors, matrices) = params.with_prefix(PREFIX);
    if vectors.is_empty() && matrices.is_empty() {
        return Ok(std::borrow::Cow::Borrowed(backbone));
    }
    Ok(std::borrow::Cow::Owned(apply(backbone, vectors, matrices)?))
}

/// A copy of `backbone` with the given weights (names without [`PREFIX`]) put in.
fn apply(
    backbone: &Backbone,
    vectors: Vec<(&str, Tensor<1>)>,
    matrices: Vec<(&str, Tensor<2>)>,
) -> Result<Backbone> {
    let mut vectors: HashMap<&str, Tensor<1>> = vectors.into_iter().collect();
    let mut matrices: HashMap<&str, Tensor<2>> = matrices.into_iter().collect();
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
            TensorSlot::RowBias(..) => {}
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

/// What `params`' trained biases add to the model's own, per bias name (names without
/// [`PREFIX`]), for the per-row bias hook ([`crate::backbone::ForwardInput::bias_deltas`]): how
/// a BitFit adapter runs on the shared backbone, next to other adapters in one batch. `None`
/// when `params` train other backbone weights (full fine-tuning) or a bias without a per-row
/// slot (an LM head's output bias); empty when they train none.
pub fn bias_deltas(
    params: &Trainables,
    backbone: &Backbone,
) -> Result<Option<Vec<(String, Tensor<1>)>>> {
    let (vectors, matrices) = params.with_prefix(PREFIX);
    if !matrices.is_empty() {
        return Ok(None);
    }
    let mut trained: HashMap<&str, Tensor<1>> = vectors.into_iter().collect();
    let mut base: HashMap<String, Option<Tensor<1>>> = HashMap::new();
    let mut with_rows: Vec<String> = Vec::new();
    // a shallow copy: visiting needs `&mut`, the tensors are shared
    let mut copy = backbone.clone();
    copy.visit_tensors(&mut |name, slot| match slot {
        TensorSlot::Vector(t) if trained.contains_key(name) => {
            base.insert(name.to_string(), Some(t.clone()));
        }
        TensorSlot::MissingBias(_, _) if trained.contains_key(name) => {
            base.insert(name.to_string(), None);
        }
        TensorSlot::RowBias(..) if trained.contains_key(name) => with_rows.push(name.to_string()),
        _ => {}
    });
    let mut out = Vec::with_capacity(with_rows.len());
    for name in with_rows {
        let value = trained
            .remove(name.as_str())
            .expect("collected from `trained`");
        let delta = match base.get(&name) {
            Some(Some(b)) if b.dims() == value.dims() => value - b.clone(),
            Some(None) => value,
            Some(Some(b)) => {
                return Err(Error::Shape(format!(
                    "backbone tensor `{name}` is {:?} in the model but {:?} in the trained parts",
                    b.dims(),
                    value.dims()
                )))
            }
            None => return Ok(None),
        };
        out.push((name, delta));
    }
    // what is left has no per-row slot (or is not in this model: `effective_backbone` says so)
    Ok(trained.is_empty().then_some(out))
}

/// The registry entry of `bitfit`, `full` (and weights unfrozen beside any method): the
/// `backbone.*` tensors replace the model's own in [`effective_backbone`], which checks their
/// names and shapes against the model's; no hooks.
pub struct UnfrozenWeights;

impl Method for UnfrozenWeights {
    fn kind(&self) -> &'static str {
        "unfreeze"
    }

    fn owns(&self, name: &str) -> bool {
        name.starts_with(PREFIX)
    }

    fn contribute(
        &self,
        _params: &Trainables,
        _info: &BackboneInfo,
        _hooks: &mut AdapterHooks,
    ) -> Result<()> {
        Ok(())
    }
}
