//! Prompt methods. Each folder owns one method: its typed config (a variant of
//! [`MethodConfig`], the `[method]` table), its initial tensors, how its tensors fill the
//! backbone's hooks ([`Method`]), its adapter tensors under its own name prefix and, where PEFT
//! has the method, PEFT's layout (in [`crate::adapter`]).
//!
//! Adding a method: a new folder with a config type and a [`Method`] implementation, a variant
//! in [`MethodConfig`] and a line in [`REGISTRY`].

mod config;
mod hooks;
pub mod p_tuning;
mod per_row;
pub mod prefix_tuning;
pub mod prompt_tuning;
pub mod unfreeze;

use burn::tensor::Device;

pub use config::{InitContext, MethodConfig};
pub use hooks::AdapterHooks;
pub use per_row::apply_per_row;

use crate::backbone::BackboneInfo;
use crate::params::{HostTensor, Trainables};
use crate::Result;

/// What a method does with its trained tensors at run time.
pub trait Method: Sync {
    /// The `[method] kind` it is registered under.
    fn kind(&self) -> &'static str;

    /// Whether the tensor `name` belongs to this method.
    fn owns(&self, name: &str) -> bool;

    /// Checks this method's tensors in `params` against a backbone before any forward pass;
    /// by default by building its hooks once ([`Method::contribute`] checks what it reads).
    fn check(&self, params: &Trainables, info: &BackboneInfo) -> Result<()> {
        self.contribute(params, info, &mut AdapterHooks::default())
    }

    /// Adds what this method's tensors put into the backbone's hooks (soft tokens, per-layer
    /// prefixes) to `hooks`. Called only when `params` holds tensors it owns.
    fn contribute(
        &self,
        params: &Trainables,
        info: &BackboneInfo,
        hooks: &mut AdapterHooks,
    ) -> Result<()>;

    /// The tensors an adapter keeps of this method's trained `tensors` (e.g. a prefix's MLP
    /// folded into the prefixes it produces); by default all of them.
    fn adapter_tensors(
        &self,
        tensors: Vec<HostTensor>,
        _device: &Device,
    ) -> Result<Vec<HostTensor>> {
        Ok(tensors)
    }
}

/// Every method's run-time entry. `bitfit`, `full` and `unfreeze = ...` beside a prompt method
/// share the unfrozen-weights entry (`none` trains no method tensors at all).
pub static REGISTRY: [&dyn Method; 4] = [
    &prompt_tuning::PromptTuning,
    &p_tuning::PTuning,
    &prefix_tuning::PrefixTuning,
    &unfreeze::UnfrozenWeights,
];

/// The methods whose tensors `params` holds, in registry order.
pub fn active(params: &Trainables) -> Vec<&'static dyn Method> {
    REGISTRY
        .iter()
        .copied()
        .filter(|m| params.names().any(|n| m.owns(n)))
        .collect()
}

/// Checks every method's tensors in `params` against a backbone.
pub fn check(params: &Trainables, info: &BackboneInfo) -> Result<()> {
    active(params)
        .into_iter()
        .try_for_each(|m| m.check(params, info))
}

/// The tensors an adapter keeps of trained `tensors`: each method's own through
/// [`Method::adapter_tensors`], the rest (task heads) as they are; sorted by name.
pub fn adapter_tensors(tensors: &[HostTensor], device: &Device) -> Result<Vec<HostTensor>> {
    let mut rest: Vec<HostTensor> = tensors.to_vec();
    let mut out = Vec::new();
    for m in REGISTRY {
        let (mine, others): (Vec<HostTensor>, Vec<HostTensor>) =
            rest.into_iter().partition(|t| m.owns(&t.name));
        rest = others;
        if !mine.is_empty() {
            out.extend(m.adapter_tensors(mine, device)?);
        }
    }
    out.extend(rest);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
