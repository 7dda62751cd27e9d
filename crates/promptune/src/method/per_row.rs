//! One forward pass for rows of different adapters.

use burn::tensor::Tensor;

use super::AdapterHooks;
use crate::backbone::{
    BackboneInfo, BiasDelta, ForwardInput, LayerPrefix, SoftEmbeddings, TokenBatch,
};
use crate::{Error, Result};

/// Fills `input` for `tokens` whose row `r` runs under `rows[r]`, the hooks of its own adapter
/// (rows of one adapter may share a reference; an adapter without hooks leaves its rows
/// plain). Row `r`'s soft tokens go to `soft_positions[r]`; prefixes of different lengths are
/// padded to the longest and masked per row, so a row attends only to its own prefix (or to
/// none), and each row's positions continue after its own prefix (an encoder-decoder's
/// decoder self-attention and cross-attention prefixes likewise, into `input.decoder`); bias deltas (BitFit) are
/// stacked per row, zero for rows whose adapter leaves a bias alone. With every row under the
/// same hooks this is [`AdapterHooks::apply`].
pub fn apply_per_row(
    rows: &[&AdapterHooks],
    info: &BackboneInfo,
    tokens: &TokenBatch,
    soft_positions: &[Vec<usize>],
    input: &mut ForwardInput,
) -> Result<()> {
    let b = tokens.batch;
    if rows.len() != b || soft_positions.len() != b {
        return Err(Error::Shape(format!(
            "hooks for {} rows and soft positions for {} rows, the batch has {b}",
            rows.len(),
            soft_positions.len()
        )));
    }
    if rows.windows(2).all(|w| std::ptr::eq(w[0], w[1])) {
        return rows[0].apply(info, tokens, soft_positions, true, input);
    }
    if input.prefixes.is_some() {
        return Err(Error::InvalidInput(
            "a shared prefix cannot be combined with per-row prefixes".into(),
        ));
    }
    if let Some(site) = stack_site(rows, |h| h.prefix.as_ref())? {
        input.prefixes = Some(site.layers);
        input.prefix_mask = Some(site.mask);
        input.position_ids = info.positions_after_prefix(&tokens.mask, tokens.len, &site.lens);
    }
    // an encoder-decoder's decoder self-attention and cross-attention prefixes, per row too
    let decoder_site = stack_site(rows, |h| h.decoder_prefix.as_ref())?;
    let cross_site = stack_site(rows, |h| h.cross_prefix.as_ref())?;
    if decoder_site.is_some() || cross_site.is_some() {
        let decoder = input.decoder.as_mut().ok_or_else(|| {
            Error::InvalidInput(
                "a row's adapter has decoder prefixes: the input needs a decoder part".into(),
            )
        })?;
        if let Some(site) = decoder_site {
            decoder.prefixes = Some(site.layers);
            decoder.prefix_mask = Some(site.mask);
        }
        if let Some(site) = cross_site {
            decoder.cross_prefixes = Some(site.layers);
            decoder.cross_prefix_mask = Some(site.mask);
        }
    }
    input.bias_deltas = per_row_bias_deltas(rows)?;
    let soft_lens: Vec<usize> = rows.iter().map(|h| h.soft_len().unwrap_or(0)).collect();
    for (r, (&n, positions)) in soft_lens.iter().zip(soft_positions).enumerate() {
        if positions.len() != n {
            return Err(Error::Shape(format!(
                "row {r} has soft slots for {} tokens, its adapter has {n}",
                positions.len()
            )));
        }
    }
    let widest = soft_lens.iter().copied().max().unwrap_or(0);
    if widest > 0 {
        let like = rows
            .iter()
            .find_map(|h| h.soft.clone())
            .expect("some row has soft tokens");
        let hidden = like.dims()[1];
        let per_row = rows
            .iter()
            .zip(&soft_lens)
            .map(|(h, &n)| {
                let zeros = |len| Tensor::<2>::zeros([len, hidden], &like.device());
                let values = match &h.soft {
                    Some(v) if n == widest => v.clone(),
                    Some(v) => Tensor::cat(vec![v.clone(), zeros(widest - n)], 0),
                    None => zeros(widest),
                };
                values.unsqueeze_dim(0)
            })
            .collect();
        input.soft = Some(SoftEmbeddings {
            values: Tensor::cat(per_row, 0),
            positions: soft_positions.to_vec(),
        });
    }
    Ok(())
}

/// Each bias some row's adapter changes, as `[batch, width]` deltas (zero rows for the others).
fn per_row_bias_deltas(rows: &[&AdapterHooks]) -> Result<Option<Vec<BiasDelta>>> {
    let mut names: Vec<(&str, &Tensor<1>)> = Vec::new();
    for h in rows {
        for (name, delta) in h.bias_deltas.iter().flatten() {
            if !names.iter().any(|(n, _)| n == name) {
                names.push((name, delta));
            }
        }
    }
    if names.is_empty() {
        return Ok(None);
    }
    names
        .into_iter()
        .map(|(name, like)| {
            let [width] = like.dims();
            let per_row = rows
                .iter()
                .map(|h| {
                    let own = h
                        .bias_deltas
                        .iter()
                        .flatten()
                        .find(|(n, _)| n == name)
                        .map(|(_, d)| d.clone());
                    match own {
                        Some(d) if d.dims() == [width] => Ok(d.unsqueeze_dim(0)),
                        Some(d) => Err(Error::Shape(format!(
                            "two adapters give bias `{name}` deltas of {:?} and [{width}] values",
                            d.dims()
                        ))),
                        None => Ok(Tensor::<2>::zeros([1, width], &like.device())),
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(BiasDelta {
                name: name.to_string(),
                values: Tensor::cat(per_row, 0),
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// The rows' prefixes of one attention site, stacked on the batch.
struct StackedSite {
    /// Per layer, each row's prefix padded with zeros to the longest.
    layers: Vec<LayerPrefix>,
    /// `[batch, longest]`: 1 at a row's own positions.
    mask: Vec<u8>,
    /// Each row's prefix length (0: none).
    lens: Vec<usize>,
}

/// Each row's prefix of one attention site (`site` picks it from the hooks), stacked; `None`
/// when no row has a prefix there.
fn stack_site(
    rows: &[&AdapterHooks],
    site: fn(&AdapterHooks) -> Option<&Vec<LayerPrefix>>,
) -> Result<Option<StackedSite>> {
    let lens: Vec<usize> = rows
        .iter()
        .map(|h| {
            site(h)
                .and_then(|p| p.first())
                .map_or(0, |l| l.key.dims()[2])
        })
        .collect();
    let longest = lens.iter().copied().max().unwrap_or(0);
    let Some(like) = rows.iter().find_map(|h| site(h).filter(|p| !p.is_empty())) else {
        return Ok(None);
    };
    if longest == 0 {
        return Ok(None);
    }
    let num_layers = like.len();
    if let Some(p) = rows
        .iter()
        .filter_map(|h| site(h))
        .find(|p| p.len() != num_layers)
    {
        return Err(Error::Shape(format!(
            "two adapters' prefixes of one attention site have {} and {num_layers} layers",
            p.len()
        )));
    }
    let layers = (0..num_layers)
        .map(|l| {
            let [_, kv, _, hd] = like[l].key.dims();
            let device = like[l].key.device();
            let zeros = |len: usize| Tensor::<4>::zeros([1, kv, len, hd], &device);
            let part = |value: bool| {
                let per_row = rows
                    .iter()
                    .zip(&lens)
                    .map(|(h, &n)| {
                        let own = site(h).map(|p| if value { &p[l].value } else { &p[l].key });
                        match own {
                            Some(t) if n == longest => t.clone(),
                            Some(t) => Tensor::cat(vec![t.clone(), zeros(longest - n)], 2),
                            None => zeros(longest),
                        }
                    })
                    .collect();
                Tensor::cat(per_row, 0)
            };
            LayerPrefix {
                key: part(false),
                value: part(true),
            }
        })
        .collect();
    let mask = lens
        .iter()
        .flat_map(|&n| (0..longest).map(move |j| u8::from(j < n)))
        .collect();
    Ok(Some(StackedSite { layers, mask, lens }))
}
