//! Folding the MLP away: what inference and adapters keep of a prefix.

use burn::tensor::Device;

use super::{EMBEDDING, MLP_IN_BIAS, MLP_IN_WEIGHT, MLP_OUT_BIAS, MLP_OUT_WEIGHT};
use crate::backbone::layers::to_vec;
use crate::task::classification::{HostParam, TrainableParts};
use crate::Result;

/// Replaces a reparametrised prefix in `named` by its projected matrix `[n, width]` under
/// [`EMBEDDING`] (the direct form, which PEFT saves as `prompt_embeddings`); other tensors
/// and a direct prefix pass through unchanged. Computed on `device` with the same ops as
/// training, so the folded prefix gives the same logits.
pub fn fold(named: &[HostParam], device: &Device) -> Result<Vec<HostParam>> {
    let mlp_names = [MLP_IN_WEIGHT, MLP_IN_BIAS, MLP_OUT_WEIGHT, MLP_OUT_BIAS];
    if !named.iter().any(|p| mlp_names.contains(&p.0.as_str())) {
        return Ok(named.to_vec());
    }
    let prefix_only: Vec<HostParam> = named
        .iter()
        .filter(|p| p.0 == EMBEDDING || mlp_names.contains(&p.0.as_str()))
        .cloned()
        .collect();
    let parts = TrainableParts::from_host(&prefix_only, device)?;
    let prefix = parts.prefix.expect("prefix tensors were given");
    let matrix = prefix.matrix();
    let shape = matrix.dims().to_vec();
    let folded = (EMBEDDING.to_string(), shape, to_vec(matrix));
    let mut out: Vec<HostParam> = named
        .iter()
        .filter(|p| p.0 != EMBEDDING && !mlp_names.contains(&p.0.as_str()))
        .cloned()
        .collect();
    out.push(folded);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
