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
/// none), and each row's positions continue after its own prefix; bias deltas (BitFit) are
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
    let lens: Vec<usize> = rows.iter().map(|h| h.prefix_len()).collect();
    let longest = lens.iter().copied().max().unwrap_or(0);
    if longest > 0 {
        let layers = (0..info.num_layers)
            .map(|l| {
                let pad = |t: Option<&Tensor<4>>, n: usize| -> Tensor<4> {
                    let zeros = |len: usize, like: &Tensor<4>| {
                        let [_, kv, _, hd] = like.dims();
                        Tensor::<4>::zeros([1, kv, len, hd], &like.device())
                    };
                    let like = rows
                        .iter()
                        .find_map(|h| h.prefix.as_ref().map(|p| p[l].key.clone()))
                        .expect("some row has a prefix");
                    match t {
                        Some(t) if n == longest => t.clone(),
                        Some(t) => Tensor::cat(vec![t.clone(), zeros(longest - n, &like)], 2),
                        None => zeros(longest, &like),
                    }
                };
                let part = |value: bool| {
                    let per_row = rows
                        .iter()
                        .zip(&lens)
                        .map(|(h, &n)| {
                            let layer = h.prefix.as_ref().map(|p| &p[l]);
                            pad(layer.map(|p| if value { &p.value } else { &p.key }), n)
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
        input.prefixes = Some(layers);
        input.prefix_mask = Some(
            lens.iter()
                .flat_map(|&n| (0..longest).map(move |j| u8::from(j < n)))
                .collect(),
        );
        input.position_ids = info.positions_after_prefix(&tokens.mask, tokens.len, &lens);
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
