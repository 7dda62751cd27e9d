//! Folding the MLP away: what inference and adapters keep of a prefix.

use burn::tensor::Device;

use super::{Prefix, PrefixSite};
use super::{EMBEDDING, MLP_IN_BIAS, MLP_IN_WEIGHT, MLP_OUT_BIAS, MLP_OUT_WEIGHT};
use crate::backbone::layers::to_vec;
use crate::params::{HostTensor, Trainables};
use crate::Result;

/// Replaces a reparametrised prefix in `named` by its projected matrix `[n, width]` under
/// [`EMBEDDING`] (the direct form, which PEFT saves as `prompt_embeddings`); other tensors
/// and a direct prefix pass through unchanged. Computed on `device` with the same ops as
/// training, so the folded prefix gives the same logits.
pub fn fold(named: &[HostTensor], device: &Device) -> Result<Vec<HostTensor>> {
    let mut out = named.to_vec();
    for site in PrefixSite::ALL {
        out = fold_site(&out, site, device)?;
    }
    Ok(out)
}

/// [`fold`] for the prefix of one site.
fn fold_site(named: &[HostTensor], site: PrefixSite, device: &Device) -> Result<Vec<HostTensor>> {
    let embedding = site.name(EMBEDDING);
    let mlp_names =
        [MLP_IN_WEIGHT, MLP_IN_BIAS, MLP_OUT_WEIGHT, MLP_OUT_BIAS].map(|n| site.name(n));
    if !named.iter().any(|p| mlp_names.contains(&p.name)) {
        return Ok(named.to_vec());
    }
    let mine = |p: &&HostTensor| p.name == embedding || mlp_names.contains(&p.name);
    let prefix_only: Vec<HostTensor> = named.iter().filter(mine).cloned().collect();
    let params = Trainables::from_host(&prefix_only, device)?;
    let prefix = Prefix::from_params_at(&params, site)?.ok_or_else(|| {
        crate::Error::InvalidInput(format!("a prefix MLP without its embedding `{embedding}`"))
    })?;
    let matrix = prefix.matrix();
    let shape = matrix.dims().to_vec();
    let folded = HostTensor::new(embedding.clone(), shape, to_vec(matrix));
    let mut out: Vec<HostTensor> = named.iter().filter(|p| !mine(p)).cloned().collect();
    out.push(folded);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
