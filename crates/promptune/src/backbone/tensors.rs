//! Named access to a backbone's weights, for the methods that unfreeze some of them: BitFit
//! (the bias terms) and full fine-tuning (everything).
//!
//! Names are ours (the fused layouts: `layer.3.qkv.bias` is the query, key and value biases
//! side by side), stable across loads of the same checkpoint. A linear layer without a bias
//! (Llama, Gemma) shows a [`TensorSlot::MissingBias`], so BitFit can give it a zero-initialised
//! one, which leaves the model's function unchanged until trained.

use burn::tensor::Tensor;

use super::layers::{Linear, Norm};

/// One weight of the backbone, mutable.
pub enum TensorSlot<'a> {
    /// A vector (biases, norm weights).
    Vector(&'a mut Tensor<1>),
    /// A matrix (linear weights, embedding tables).
    Matrix(&'a mut Tensor<2>),
    /// A linear layer's absent bias, with the width it would have.
    MissingBias(&'a mut Option<Tensor<1>>, usize),
    /// The per-row companion of the bias just visited under the same name (`[batch or 1,
    /// width]`, added to it row by row; [`super::ForwardInput::bias_deltas`]), with its width.
    /// Only linear layers and layer norms have one; walks that read or replace weights skip it.
    RowBias(&'a mut Option<Tensor<2>>, usize),
}

/// Calls `f` on every tensor slot of `layer` (`name.weight`, `name.bias`).
pub(crate) fn visit_linear(name: &str, layer: &mut Linear, f: &mut dyn FnMut(&str, TensorSlot)) {
    f(
        &format!("{name}.weight"),
        TensorSlot::Matrix(&mut layer.weight),
    );
    let width = layer.out_features();
    let bias = format!("{name}.bias");
    match &mut layer.bias {
        Some(b) => f(&bias, TensorSlot::Vector(b)),
        None => f(&bias, TensorSlot::MissingBias(&mut layer.bias, width)),
    }
    f(&bias, TensorSlot::RowBias(&mut layer.row_bias, width));
}

/// Calls `f` on an optional vector (`None` is skipped).
pub(crate) fn visit_optional(
    name: &str,
    t: &mut Option<Tensor<1>>,
    f: &mut dyn FnMut(&str, TensorSlot),
) {
    if let Some(t) = t {
        f(name, TensorSlot::Vector(t));
    }
}

/// Calls `f` on a layer norm's slots (`name.weight`, `name.bias`).
pub(crate) fn visit_norm(name: &str, norm: &mut Norm, f: &mut dyn FnMut(&str, TensorSlot)) {
    f(
        &format!("{name}.weight"),
        TensorSlot::Vector(&mut norm.weight),
    );
    let bias = format!("{name}.bias");
    let width = norm.bias.dims()[0];
    f(&bias, TensorSlot::Vector(&mut norm.bias));
    f(&bias, TensorSlot::RowBias(&mut norm.row_bias, width));
}

/// Whether `name` is a bias term (what BitFit trains).
pub fn is_bias(name: &str) -> bool {
    name.ends_with(".bias")
}
