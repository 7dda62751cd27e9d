//! Gradient clipping by the global norm, as torch's `clip_grad_norm_` (and so HF's Trainer and
//! PEFT's examples) does it: the L2 norm is taken over the gradients of all trainable tensors
//! together, and when it exceeds the limit every gradient is scaled by `max / (norm + 1e-6)`.
//! burn's own clipping works tensor by tensor, which changes the balance between a head's large
//! early gradients and a prompt's small ones; it stays available ([`ClipMode::PerTensor`]).

use burn::module::{Module, ModuleVisitor, Param};
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

/// Clips each parameter's gradient of `module` to the norm `max_norm` on its own; returns
/// the global norm before clipping.
pub fn clip_per_tensor<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f32) -> f64 {
    let norm = global_norm(module, grads);
    let mut visitor = ClipEach {
        grads,
        max_norm: max_norm as f64,
    };
    module.visit(&mut visitor);
    norm
}

/// Scales each gradient it visits down to `max_norm` when its own norm is larger.
struct ClipEach<'a> {
    grads: &'a mut GradientsParams,
    max_norm: f64,
}

impl ModuleVisitor for ClipEach<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            let norm =
                (crate::backbone::layers::to_vec(g.clone().powi_scalar(2).sum())[0] as f64).sqrt();
            let g = if norm > self.max_norm {
                g * (self.max_norm / (norm + 1e-6)) as f32
            } else {
                g
            };
            self.grads.register(param.id, g);
        }
    }
}

/// Sums the squared gradient values of every parameter it visits.
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: f64,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.powi_scalar(2).sum();
            self.sum += crate::backbone::layers::to_vec(s)[0] as f64;
        }
    }
}

/// Multiplies the gradient of every parameter it visits by `factor`.
struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f32,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g * self.factor);
        }
    }
}

/// The global L2 norm of the gradients of `module`'s parameters.
pub fn global_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    let mut visitor = SquaredNorm { grads, sum: 0.0 };
    module.visit(&mut visitor);
    visitor.sum.sqrt()
}

/// Clips `grads` to the global norm `max_norm` (torch's `clip_grad_norm_`); returns the norm
/// before clipping.
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f32) -> f64 {
    let norm = global_norm(module, grads);
    let factor = max_norm as f64 / (norm + 1e-6);
    if factor < 1.0 {
        let mut visitor = Scale {
            grads,
            factor: factor as f32,
        };
        module.visit(&mut visitor);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::layers::{float_tensor, to_vec};
    use burn::module::ParamId;
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
