//! Continuations of several prompts, each under its own adapter and its own decoding settings,
//! in one batched pass per step: what a server batching generation requests of different
//! adapters needs (each row's soft prompt, prefix or BitFit biases go in through the per-row
//! hooks; the cache keeps each row's prefix mask).

use rand::{rngs::StdRng, SeedableRng};

use super::{
    check_options, continue_with, last_logits, left_padded_positions, next_token,
    one_token_per_row, GenerateOptions,
};
use crate::backbone::{AttentionSite, Backbone, ForwardInput, KvCache, PaddingSide, TokenBatch};
use crate::method::{apply_per_row, AdapterHooks};
use crate::{Error, Result};

/// One prompt of a mixed generation batch.
#[derive(Debug, Clone, Copy)]
pub struct MixedRow<'a> {
    /// The adapter's hooks (rows of one adapter may share them).
    pub hooks: &'a AdapterHooks,
    /// The prompt's ids (placeholders where its soft tokens go).
    pub prompt: &'a [u32],
    /// Where the prompt's soft tokens go.
    pub soft_positions: &'a [usize],
    /// The row's own decoding settings.
    pub opts: &'a GenerateOptions,
}

/// Continues every row's prompt under its own hooks and settings, handing each new token to
/// `on_token(row, id)` as it is chosen; returns per row its new tokens, or the error that
/// ended it (one from `on_token`, such as [`Error::Stopped`] when a client leaves, ends only
/// that row). A decoder runs the rows in one left-padded batch, each row numbered by its own
/// prefix and real tokens and sampled with its own seed, so that each gets what it gets alone
/// ([`continue_with`]); rows with beam search, an encoder-decoder, or rows that could not
/// share the context without cutting one short run one after another.
pub fn generate_mixed(
    backbone: &Backbone,
    rows: &[MixedRow],
    on_token: &mut dyn FnMut(usize, u32) -> Result<()>,
) -> Vec<Result<Vec<u32>>> {
    let mut results: Vec<Option<Result<Vec<u32>>>> = (0..rows.len()).map(|_| None).collect();
    let mut together = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        if let Err(e) = check_options(row.opts) {
            results[r] = Some(Err(e));
        } else if row.prompt.is_empty() {
            results[r] = Some(Err(Error::InvalidInput(
                "empty prompt: nothing to continue".into(),
            )));
        } else if row.opts.num_beams == 1 && row.opts.max_new_tokens > 0 {
            together.push(r);
        }
    }
    if together.len() < 2 {
        together.clear();
    }
    if !together.is_empty() {
        let picked: Vec<MixedRow> = together.iter().map(|&r| rows[r]).collect();
        let mut emitted = false;
        let mut own = |i: usize, id: u32| {
            emitted = true;
            on_token(together[i], id)
        };
        match decode_together(backbone, &picked, &mut own) {
            Ok(outcomes) => {
                for (&r, outcome) in together.iter().zip(outcomes) {
                    results[r] = Some(outcome);
                }
            }
            // refused before any token (rows that do not fit the context together, a bad
            // hook): each row alone; after tokens went out, the rows end with the failure
            Err(e) if emitted => {
                for &r in &together {
                    results[r] = Some(Err(Error::Internal(format!(
                        "the batch failed while generating: {e}"
                    ))));
                }
            }
            Err(_) => {}
        }
    }
    for (r, row) in rows.iter().enumerate() {
        if results[r].is_none() {
            let mut own = |id: u32| on_token(r, id);
            results[r] = Some(continue_with(
                backbone,
                row.hooks,
                row.prompt,
                row.soft_positions,
                row.opts,
                &mut own,
            ));
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every row was run"))
        .collect()
}

/// The batched decode of [`generate_mixed`]: every row in one left-padded batch, one pass
/// per step. Errors (before any token) unless the model is a decoder, every row is greedy or
/// sampled (no beams) with a non-empty prompt, and the rows' longest prefix, longest prompt and
/// most new tokens fit the context together.
pub fn decode_together(
    backbone: &Backbone,
    rows: &[MixedRow],
    on_token: &mut dyn FnMut(usize, u32) -> Result<()>,
) -> Result<Vec<Result<Vec<u32>>>> {
    let info = backbone.info();
    let cfg = backbone.config();
    if !info.causal || info.has_site(AttentionSite::Cross) {
        return Err(Error::InvalidInput(format!(
            "{} is not a decoder: its rows decode one by one",
            info.family
        )));
    }
    for row in rows {
        check_options(row.opts)?;
        if row.opts.num_beams > 1 || row.prompt.is_empty() {
            return Err(Error::InvalidInput(
                "rows with beam search or an empty prompt decode alone".into(),
            ));
        }
    }
    let needed = rows.iter().map(|r| r.hooks.prefix_len()).max().unwrap_or(0)
        + rows.iter().map(|r| r.prompt.len()).max().unwrap_or(0)
        + rows
            .iter()
            .map(|r| r.opts.max_new_tokens)
            .max()
            .unwrap_or(0);
    if needed > info.max_positions {
        return Err(Error::InvalidInput(format!(
            "the rows need {needed} positions together; the context holds {}",
            info.max_positions
        )));
    }
    if rows.iter().all(|r| r.opts.max_new_tokens == 0) {
        return Ok(rows.iter().map(|_| Ok(Vec::new())).collect());
    }
    let pad = cfg.pad_token_id.unwrap_or(0);
    let b = rows.len();
    let prompts: Vec<Vec<u32>> = rows.iter().map(|r| r.prompt.to_vec()).collect();
    let tokens = TokenBatch::pad(&prompts, pad, PaddingSide::Left)?;
    let shifted: Vec<Vec<usize>> = rows
        .iter()
        .map(|r| {
            let shift = tokens.len - r.prompt.len();
            r.soft_positions.iter().map(|&i| i + shift).collect()
        })
        .collect();
    let hooks: Vec<&AdapterHooks> = rows.iter().map(|r| r.hooks).collect();
    let mut first = ForwardInput::new(tokens.clone());
    apply_per_row(&hooks, &info, &tokens, &shifted, &mut first)?;
    // BitFit rows' deltas go into a copy's weights once: later steps take no hooks
    let folded = match first.bias_deltas.take() {
        Some(deltas) => Some(backbone.with_bias_deltas(&deltas, Some(b))?),
        None => None,
    };
    let backbone = folded.as_ref().unwrap_or(backbone);
    // each row numbered after its own prefix
    let offsets: Vec<i64> = rows.iter().map(|r| r.hooks.prefix_len() as i64).collect();
    let mut positions = left_padded_positions(&tokens, &offsets);
    let mut next_position: Vec<i64> = rows
        .iter()
        .zip(&offsets)
        .map(|(r, &o)| o + r.prompt.len() as i64)
        .collect();
    let eos: Vec<Vec<u32>> = rows
        .iter()
        .map(|r| r.opts.ends(&cfg.eos_token_ids))
        .collect();
    let mut rngs: Vec<StdRng> = rows
        .iter()
        .map(|r| StdRng::seed_from_u64(r.opts.seed))
        .collect();
    let mut sequences = prompts.clone();
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut ended: Vec<Option<Error>> = (0..b).map(|_| None).collect();
    // a row asked for no tokens is done before it starts
    let mut done: Vec<bool> = rows.iter().map(|r| r.opts.max_new_tokens == 0).collect();
    let mut cache = KvCache::new(info.num_layers);
    let mut input = first;
    loop {
        input.position_ids = Some(positions.clone());
        let logits = last_logits(backbone, input, &mut cache)?;
        let mut next_tokens = Vec::with_capacity(b);
        for (r, logits) in logits.into_iter().enumerate() {
            if done[r] {
                next_tokens.push(pad);
                continue;
            }
            let opts = rows[r].opts;
            let next = next_token(
                logits,
                &sequences[r],
                out[r].len(),
                &eos[r],
                opts,
                &mut rngs[r],
            );
            let Some(next) = next else {
                done[r] = true;
                next_tokens.push(pad);
                continue;
            };
            out[r].push(next);
            sequences[r].push(next);
            next_tokens.push(next);
            if let Err(e) = on_token(r, next) {
                ended[r] = Some(e);
                done[r] = true;
            } else if out[r].len() >= opts.max_new_tokens {
                done[r] = true;
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        positions = next_position.clone();
        next_position.iter_mut().for_each(|p| *p += 1);
        input = ForwardInput::new(one_token_per_row(next_tokens));
    }
    Ok(out
        .into_iter()
        .zip(ended)
        .map(|(tokens, e)| match e {
            Some(e) => Err(e),
            None => Ok(tokens),
        })
        .collect())
}
