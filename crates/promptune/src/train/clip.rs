//! Gradient clipping, per tensor or by the global norm. The global mode is torch's
//! `clip_grad_norm_` (and so HF's Trainer and PEFT's examples): the L2 norm is taken over the
//! gradients of all trainable tensors together, and when it exceeds the limit every gradient is
//! scaled by `max / (norm + 1e-6)`. Per tensor (as burn's own clipping) each gradient is scaled
//! by its own norm, which changes the balance between a head's large early gradients and a
//! prompt's small ones.

use std::collections::HashMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// How `max_grad_norm` is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipMode {
    /// Each trainable tensor's gradient on its own (as burn's clipping). The default: P-Tuning's
    /// MLP encoder on SmolLM2 SST-2 at lr 1e-2 trains to 79-82% with it and collapses to one
    /// class with global clipping (two seeds) or none.
    #[default]
    PerTensor,
    /// All gradients together by their global norm, as torch's `clip_grad_norm_` (HF, PEFT).
    Global,
}

/// Clips `grads` to `max_norm` (no clipping for `None`) as `mode` says; returns the global norm
/// before clipping. Each gradient's norm is computed once.
pub fn clip<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: Option<f32>,
    mode: ClipMode,
) -> f64 {
    let squares = squared_norms(module, grads);
    let norm = squares.values().sum::<f64>().sqrt();
    let Some(max) = max_norm.map(f64::from) else {
        return norm;
    };
    let factors: HashMap<ParamId, f32> = match mode {
        ClipMode::Global if max / (norm + 1e-6) < 1.0 => {
            let factor = (max / (norm + 1e-6)) as f32;
            squares.keys().map(|&id| (id, factor)).collect()
        }
        ClipMode::Global => HashMap::new(),
        ClipMode::PerTensor => squares
            .iter()
            .map(|(&id, &sq)| (id, sq.sqrt()))
            .filter(|&(_, n)| n > max)
            .map(|(id, n)| (id, (max / (n + 1e-6)) as f32))
            .collect(),
    };
    if !factors.is_empty() {
        module.visit(&mut Scale { grads, factors });
    }
    norm
}

/// The global L2 norm of the gradients of `module`'s parameters.
pub fn global_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    squared_norms(module, grads).values().sum::<f64>().sqrt()
}

/// Clips `grads` to the global norm `max_norm` (torch's `clip_grad_norm_`); returns the norm
/// before clipping.
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f32) -> f64 {
    clip(module, grads, Some(max_norm), ClipMode::Global)
}

/// Clips each parameter's gradient of `module` to the norm `max_norm` on its own; returns
/// the global norm before clipping.
pub fn clip_per_tensor<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f32) -> f64 {
    clip(module, grads, Some(max_norm), ClipMode::PerTensor)
}

/// The sum of squared gradient values of each parameter of `module` that has a gradient.
fn squared_norms<M: Module>(module: &M, grads: &GradientsParams) -> HashMap<ParamId, f64> {
    let mut visitor = SquaredNorms {
        grads,
        squares: HashMap::new(),
    };
    module.visit(&mut visitor);
    visitor.squares
}

struct SquaredNorms<'a> {
    grads: &'a GradientsParams,
    squares: HashMap<ParamId, f64>,
}

impl ModuleVisitor for SquaredNorms<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = crate::backbone::layers::to_vec(g.powi_scalar(2).sum())[0] as f64;
            self.squares.insert(param.id, s);
        }
    }
}

/// Multiplies the gradient of each listed parameter by its factor.
struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factors: HashMap<ParamId, f32>,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(&factor) = self.factors.get(&param.id) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, g * factor);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::layers::{float_tensor, to_vec};
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Two {
        a: Param<Tensor<2>>,
        b: Param<Tensor<1>>,
    }

    #[test]
    fn clips_all_gradients_by_one_global_factor() {
        let d = Device::flex().autodiff();
        let two = Two {
            a: Param::initialized(
                ParamId::from(1),
                float_tensor(vec![1.0, 2.0], [1, 2], &d).require_grad(),
            ),
            b: Param::initialized(
                ParamId::from(2),
                float_tensor(vec![3.0], [1], &d).require_grad(),
            ),
        };
        // gradients (3, 0) for a and (4) for b: global norm 5; per tensor 3 and 4
        let loss =
            (two.a.val() * float_tensor(vec![3.0, 0.0], [1, 2], &d)).sum() + two.b.val() * 4.0;
        let mut grads = GradientsParams::from_grads(loss.sum().backward(), &two);
        assert!((global_norm(&two, &grads) - 5.0).abs() < 1e-6);
        let norm = clip_global_norm(&two, &mut grads, 1.0);
        assert!((norm - 5.0).abs() < 1e-6);
        let a = to_vec(grads.get::<2>(two.a.id).unwrap());
        let b = to_vec(grads.get::<1>(two.b.id).unwrap());
        assert!(
            (a[0] - 0.6).abs() < 1e-5 && a[1] == 0.0 && (b[0] - 0.8).abs() < 1e-5,
            "{a:?} {b:?}"
        );
        // per tensor: a's gradient (norm 3) is cut to 1, b's (4) to 1
        let loss2 =
            (two.a.val() * float_tensor(vec![3.0, 0.0], [1, 2], &d)).sum() + two.b.val() * 4.0;
        let mut each = GradientsParams::from_grads(loss2.sum().backward(), &two);
        assert!((clip_per_tensor(&two, &mut each, 1.0) - 5.0).abs() < 1e-6);
        let a2 = to_vec(each.get::<2>(two.a.id).unwrap());
        let b2 = to_vec(each.get::<1>(two.b.id).unwrap());
        assert!(
            (a2[0] - 1.0).abs() < 1e-5 && (b2[0] - 1.0).abs() < 1e-5,
            "{a2:?} {b2:?}"
        );
        // under the limit nothing changes
        let before = to_vec(grads.get::<2>(two.a.id).unwrap());
        clip_global_norm(&two, &mut grads, 10.0);
        assert_eq!(to_vec(grads.get::<2>(two.a.id).unwrap()), before);
    }
}
