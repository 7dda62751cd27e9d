//! Folding the MLP away: what inference and adapters keep of a prefix.

use burn::tensor::Device;

use super::Prefix;
use super::{EMBEDDING, MLP_IN_BIAS, MLP_IN_WEIGHT, MLP_OUT_BIAS, MLP_OUT_WEIGHT};
use crate::backbone::layers::to_vec;
use crate::params::{HostTensor, Trainables};
use crate::Result;

/// Replaces a reparametrised prefix in `named` by its projected matrix `[n, width]` under
/// [`EMBEDDING`] (the direct form, which PEFT saves as `prompt_embeddings`); other tensors
/// and a direct prefix pass through unchanged. Computed on `device` with the same ops as
/// training, so the folded prefix gives the same logits.
pub fn fold(named: &[HostTensor], device: &Device) -> Result<Vec<HostTensor>> {
    let mlp_names = [MLP_IN_WEIGHT, MLP_IN_BIAS, MLP_OUT_WEIGHT, MLP_OUT_BIAS];
    if !named.iter().any(|p| mlp_names.contains(&p.name.as_str())) {
        return Ok(named.to_vec());
    }
    let prefix_only: Vec<HostTensor> = named
        .iter()
        .filter(|p| p.name == EMBEDDING || mlp_names.contains(&p.name.as_str()))
        .cloned()
        .collect();
    let params = Trainables::from_host(&prefix_only, device)?;
    let prefix = Prefix::from_params(&params)?.ok_or_else(|| {
        crate::Error::InvalidInput(format!("a prefix MLP without its embedding `{EMBEDDING}`"))
    })?;
    let matrix = prefix.matrix();
    let shape = matrix.dims().to_vec();
    let folded = HostTensor::new(EMBEDDING, shape, to_vec(matrix));
    let mut out: Vec<HostTensor> = named
        .iter()
        .filter(|p| p.name != EMBEDDING && !mlp_names.contains(&p.name.as_str()))
        .cloned()
        .collect();
    out.push(folded);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
