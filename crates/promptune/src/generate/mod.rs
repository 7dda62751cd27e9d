//! Text generation with the KV cache (greedy, top-k, top-p, beam search) and per-token
//! scoring, for decoders and encoder-decoders; prompts of different adapters in one batch
//! ([`generate_mixed`]).

mod beam;
mod mixed;
mod text;
pub use mixed::{decode_together, generate_mixed, MixedRow};
pub use text::TextStream;

use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::backbone::layers::to_vec;
use crate::backbone::{
    AttentionSite, Backbone, DecoderInput, ForwardInput, KvCache, LogitPositions, LogitsRequest,
    TokenBatch,
};
use crate::method::AdapterHooks;
use crate::model::Model;
use crate::{Error, Result};

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Sampling {
    /// Always the most likely token.
    Greedy,
    /// Sample among the `k` most likely tokens.
    TopK {
        /// Candidates kept.
        k: usize,
        /// Softmax temperature.
        temperature: f32,
    },
    /// Sample from the smallest set of tokens whose probability reaches `p` (nucleus).
    TopP {
        /// Probability mass kept.
        p: f32,
        /// Softmax temperature.
        temperature: f32,
    },
}

/// When beam search stops (transformers' `early_stopping`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    /// Once no running beam can beat the worst finished one at its current length
    /// (transformers' `False`, its default).
    #[default]
    Heuristic,
    /// As soon as `num_beams` beams have finished (`True`).
    WhenFull,
    /// Only when no running beam could win even at the length limit (`"never"`).
    Never,
}

/// Generation settings.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Upper bound on new tokens.
    pub max_new_tokens: usize,
    /// Token choice (greedy for beam search).
    pub sampling: Sampling,
    /// RNG seed for sampling.
    pub seed: u64,
    /// Stop at the model's end-of-sequence token.
    pub stop_at_eos: bool,
    /// Beams kept by beam search (1: no beam search).
    pub num_beams: usize,
    /// A finished beam's score is its log-probability over `length ^ length_penalty`.
    pub length_penalty: f32,
    /// When beam search stops.
    pub early_stopping: EarlyStopping,
    /// No n-gram of this size occurs twice in the prompt and output together (0: off).
    pub no_repeat_ngram_size: usize,
    /// No end-of-sequence token before this many new tokens.
    pub min_new_tokens: usize,
    /// More token ids that end generation as the model's end-of-sequence token does.
    pub stop_tokens: Vec<u32>,
}

impl GenerateOptions {
    /// The ids that end a sequence: the model's `eos` and [`GenerateOptions::stop_tokens`].
    fn ends(&self, eos: &[u32]) -> Vec<u32> {
        let mut ends = eos.to_vec();
        ends.extend(self.stop_tokens.iter().filter(|t| !eos.contains(t)));
        ends
    }
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 32,
            sampling: Sampling::Greedy,
            seed: 0,
            stop_at_eos: true,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            no_repeat_ngram_size: 0,
            min_new_tokens: 0,
            stop_tokens: Vec::new(),
        }
    }
}

/// Rejects decoding options that cannot work (no beams, sampling beams, bad top-k / top-p).
pub fn check_options(opts: &GenerateOptions) -> Result<()> {
    if opts.num_beams == 0 {
        return Err(Error::InvalidInput(
            "num_beams must be at least 1 (1: no beam search)".into(),
        ));
    }
    if opts.num_beams > 1 && opts.sampling != Sampling::Greedy {
        return Err(Error::InvalidInput(
            "beam search keeps the best beams: it does not sample (drop top-k / top-p)".into(),
        ));
    }
    if opts.num_beams > 256 {
        return Err(Error::InvalidInput(format!(
            "{} beams: at most 256",
            opts.num_beams
        )));
    }
    if !opts.length_penalty.is_finite() {
        return Err(Error::InvalidInput(
            "the length penalty must be finite".into(),
        ));
    }
    match opts.sampling {
        Sampling::TopK { k, temperature } if k == 0 || temperature <= 0.0 => Err(
            Error::InvalidInput("top-k needs k >= 1 and a positive temperature".into()),
        ),
        Sampling::TopP { p, temperature } if !(p > 0.0 && p <= 1.0) || temperature <= 0.0 => Err(
            Error::InvalidInput("top-p needs 0 < p <= 1 and a positive temperature".into()),
        ),
        _ => Ok(()),
    }
}

/// Picks the next token from full-vocabulary logits.
pub fn choose(logits: &[f32], sampling: &Sampling, rng: &mut StdRng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            )
            .0 as u32
    };
    let (keep, temperature) = match *sampling {
        Sampling::Greedy => return argmax(),
        Sampling::TopK { k, temperature } => (Some(k), temperature),
        Sampling::TopP { temperature, .. } => (None, temperature),
    };
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if let Some(k) = keep {
        order.truncate(k.min(order.len()));
    }
    let max = logits[order[0]];
    let mut probs: Vec<f32> = order
        .iter()
        .map(|&i| ((logits[i] - max) / temperature).exp())
        .collect();
    let total: f32 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Sampling::TopP { p, .. } = *sampling {
        let mut acc = 0.0;
        let cut = probs.iter().position(|&q| {
            acc += q;
            acc >= p
        });
        let n = cut.map(|c| c + 1).unwrap_or(probs.len());
        probs.truncate(n);
        order.truncate(n);
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|q| *q /= total);
    }
    let r: f32 = rng.random();
    let mut acc = 0.0;
    for (q, &i) in probs.iter().zip(&order) {
        acc += q;
        if r < acc {
            return i as u32;
        }
    }
    order[order.len() - 1] as u32
}

/// Continues `prompt_ids`; returns only the new tokens.
pub fn generate_ids(model: &Model, prompt_ids: &[u32], opts: &GenerateOptions) -> Result<Vec<u32>> {
    generate_ids_with(model, &AdapterHooks::default(), prompt_ids, &[], opts)
}

/// Continues `prompt_ids` under an adapter's hooks: its soft tokens replace the prompt's ids
/// at `soft_positions`, its prefixes stand in front of every layer (kept in the KV cache after
/// the first step, with positions continuing after them). Returns only the new tokens.
pub fn generate_ids_with(
    model: &Model,
    hooks: &AdapterHooks,
    prompt_ids: &[u32],
    soft_positions: &[usize],
    opts: &GenerateOptions,
) -> Result<Vec<u32>> {
    generate_ids_streaming(model, hooks, prompt_ids, soft_positions, opts, &mut |_| {
        Ok(())
    })
}

/// [`generate_ids_with`], handing each new token to `on_token` as soon as it is chosen (to
/// show the text as it comes); an error from `on_token` stops generation with that error.
pub fn generate_ids_streaming(
    model: &Model,
    hooks: &AdapterHooks,
    prompt_ids: &[u32],
    soft_positions: &[usize],
    opts: &GenerateOptions,
    on_token: &mut dyn FnMut(u32) -> Result<()>,
) -> Result<Vec<u32>> {
    continue_with(
        &model.backbone,
        hooks,
        prompt_ids,
        soft_positions,
        opts,
        on_token,
    )
}

/// Continues `prompt_ids` on `backbone` under an adapter's hooks (a decoder continues the
/// prompt; an encoder-decoder encodes it as the source and decodes from its start token);
/// each new token goes to `on_token` as it is chosen. Returns only the new tokens.
pub fn continue_with(
    backbone: &Backbone,
    hooks: &AdapterHooks,
    prompt_ids: &[u32],
    soft_positions: &[usize],
    opts: &GenerateOptions,
    on_token: &mut dyn FnMut(u32) -> Result<()>,
) -> Result<Vec<u32>> {
    check_options(opts)?;
    // BitFit's deltas go into a copy's weights: later cached steps do not apply the hooks
    let folded = hooks.fold_bias_deltas(backbone)?;
    let (backbone, hooks) = match &folded {
        Some((b, h)) => (b, h),
        None => (backbone, hooks),
    };
    if prompt_ids.is_empty() {
        return Err(Error::InvalidInput(
            "empty prompt: nothing to continue".into(),
        ));
    }
    let info = backbone.info();
    if info.has_site(AttentionSite::Cross) {
        return generate_seq2seq_with(
            backbone,
            hooks,
            prompt_ids,
            soft_positions,
            &[],
            opts,
            on_token,
        );
    }
    if !info.causal {
        return Err(Error::InvalidInput(format!(
            "{} is an encoder; generation needs a decoder",
            info.family
        )));
    }
    // the first step holds the whole prompt: one that cannot fit would end silently empty
    let needed = hooks.prefix_len() + prompt_ids.len();
    if opts.max_new_tokens > 0 && needed > info.max_positions {
        return Err(Error::InvalidInput(format!(
            "the prompt is {} tokens{}; the model's context holds {}: no room to continue \
             it, shorten the prompt",
            prompt_ids.len(),
            match hooks.prefix_len() {
                0 => String::new(),
                n => format!(" after a {n}-token prefix"),
            },
            info.max_positions
        )));
    }
    let eos = &opts.ends(&backbone.config().eos_token_ids);
    if opts.num_beams > 1 {
        let room = info.max_positions - needed;
        let mut cache = KvCache::new(info.num_layers);
        let mut step = |rows: &[Vec<u32>], origins: Option<&[usize]>| {
            if let Some(o) = origins {
                cache.select_rows(o)?;
            }
            let tokens = TokenBatch::pad(rows, 0, crate::backbone::PaddingSide::Right)?;
            let mut input = ForwardInput::new(tokens.clone());
            if origins.is_none() {
                // the prefix enters the cache once and is shared by every beam
                let soft = vec![soft_positions.to_vec(); rows.len()];
                hooks.apply(&info, &tokens, &soft, true, &mut input)?;
            }
            last_logits(backbone, input, &mut cache)
        };
        let new = beam::beam_search(
            prompt_ids,
            opts.max_new_tokens.min(room),
            eos,
            opts,
            &mut step,
        )?;
        for &t in &new {
            on_token(t)?;
        }
        return Ok(new);
    }
    let mut cache = KvCache::new(info.num_layers);
    let mut step = |tokens: &[u32]| {
        let in_front = if cache.is_empty() {
            hooks.prefix_len()
        } else {
            cache.len()
        };
        if in_front + tokens.len() > info.max_positions {
            return Ok(None);
        }
        let tokens = TokenBatch::single(tokens)?;
        let mut input = ForwardInput::new(tokens.clone());
        if cache.is_empty() {
            let soft = [soft_positions.to_vec()];
            hooks.apply(&info, &tokens, &soft, true, &mut input)?;
        }
        Ok(last_logits(backbone, input, &mut cache)?.pop())
    };
    decode_one(prompt_ids, eos, opts, on_token, &mut step)
}

/// One cached step of [`decode_one`]: the step's tokens in, the next-token logits out (`None`:
/// the step does not fit the context).
type OneStep<'a> = dyn FnMut(&[u32]) -> Result<Option<Vec<f32>>> + 'a;

/// Greedy or sampled decoding of one sequence from `prompt` (what the decoding rules see):
/// `step` runs the cached model on a step's tokens (the prompt, then each new token) and gives
/// the next-token logits, or `None` when the step no longer fits the context. Returns the new
/// tokens, each handed to `on_token` as it is chosen.
fn decode_one(
    prompt: &[u32],
    eos: &[u32],
    opts: &GenerateOptions,
    on_token: &mut dyn FnMut(u32) -> Result<()>,
    step: &mut OneStep,
) -> Result<Vec<u32>> {
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut sequence = prompt.to_vec();
    let mut out = Vec::new();
    let mut tokens = prompt.to_vec();
    for _ in 0..opts.max_new_tokens {
        let Some(logits) = step(&tokens)? else {
            break;
        };
        let Some(next) = next_token(logits, &sequence, out.len(), eos, opts, &mut rng) else {
            break;
        };
        out.push(next);
        sequence.push(next);
        on_token(next)?;
        tokens = vec![next];
    }
    Ok(out)
}

/// A row's next token under the decoding rules, or `None` when it ends the sequence.
fn next_token(
    mut logits: Vec<f32>,
    sequence: &[u32],
    generated: usize,
    eos: &[u32],
    opts: &GenerateOptions,
    rng: &mut StdRng,
) -> Option<u32> {
    beam::process(&mut logits, sequence, generated, eos, opts);
    let next = choose(&logits, &opts.sampling, rng);
    (!(opts.stop_at_eos && eos.contains(&next))).then_some(next)
}

/// Each row's next-token logits (at its last position) of one cached step.
fn last_logits(
    backbone: &Backbone,
    mut input: ForwardInput,
    cache: &mut KvCache,
) -> Result<Vec<Vec<f32>>> {
    input.logits = LogitsRequest {
        positions: LogitPositions::Last,
        rows: None,
    };
    let fwd = backbone.forward(&input, Some(cache))?;
    let logits = fwd
        .logits
        .ok_or_else(|| Error::Internal("the backbone returned no logits".into()))?;
    let vocab = logits.dims()[2];
    Ok(to_vec(logits).chunks(vocab).map(<[f32]>::to_vec).collect())
}

/// Decodes a target for `source_ids` with an encoder-decoder backbone, continuing
/// `decoder_prompt` (the model's decoder start token when empty): the source is encoded once,
/// in the first step, and the cache keeps its cross-attention keys and the decoder's own.
/// Returns only the new tokens, each handed to `on_token` as soon as it is chosen.
pub fn generate_seq2seq_ids(
    backbone: &Backbone,
    source_ids: &[u32],
    decoder_prompt: &[u32],
    opts: &GenerateOptions,
    on_token: &mut dyn FnMut(u32) -> Result<()>,
) -> Result<Vec<u32>> {
    let none = AdapterHooks::default();
    generate_seq2seq_with(
        backbone,
        &none,
        source_ids,
        &[],
        decoder_prompt,
        opts,
        on_token,
    )
}

/// [`generate_seq2seq_ids`] under an adapter's hooks: its soft tokens at `soft_positions` of
/// the source, its encoder prefix in the encoder, its decoder and cross-attention prefixes in
/// the first decoder step (then in the cache, shared by every beam).
pub fn generate_seq2seq_with(
    backbone: &Backbone,
    hooks: &AdapterHooks,
    source_ids: &[u32],
    soft_positions: &[usize],
    decoder_prompt: &[u32],
    opts: &GenerateOptions,
    on_token: &mut dyn FnMut(u32) -> Result<()>,
) -> Result<Vec<u32>> {
    check_options(opts)?;
    // BitFit's deltas go into a copy's weights: later cached steps do not apply the hooks
    let folded = hooks.fold_bias_deltas(backbone)?;
    let (backbone, hooks) = match &folded {
        Some((b, h)) => (b, h),
        None => (backbone, hooks),
    };
    let cfg = backbone.config();
    if cfg.decoder_layers == 0 {
        return Err(Error::InvalidInput(format!(
            "{} has no decoder stack: sequence-to-sequence generation needs an encoder-decoder",
            cfg.family.name()
        )));
    }
    if source_ids.is_empty() {
        return Err(Error::InvalidInput(
            "empty source: nothing to encode".into(),
        ));
    }
    if hooks.prefix_len() + source_ids.len() > cfg.max_positions {
        return Err(Error::InvalidInput(format!(
            "the source is {} tokens{}; the encoder holds {}: shorten it",
            source_ids.len(),
            match hooks.prefix_len() {
                0 => String::new(),
                n => format!(" after a {n}-token prefix"),
            },
            cfg.max_positions
        )));
    }
    let start = if decoder_prompt.is_empty() {
        vec![cfg.decoder_start_token_id.ok_or_else(|| {
            Error::InvalidInput(
                "the model's config names no `decoder_start_token_id`: give the decoder a \
                 prompt"
                    .into(),
            )
        })?]
    } else {
        decoder_prompt.to_vec()
    };
    let info = backbone.info();
    let decoder_prefix = hooks
        .decoder_prefix
        .as_ref()
        .and_then(|p| p.first())
        .map_or(0, |l| l.key.dims()[2]);
    // the first step of every row: the source (with the adapter's hooks) and the decoder's
    // start; later steps read the cache
    let first_input = |rows: &[Vec<u32>]| -> Result<ForwardInput> {
        let source = TokenBatch::pad(
            &vec![source_ids.to_vec(); rows.len()],
            0,
            crate::backbone::PaddingSide::Right,
        )?;
        let mut input = ForwardInput {
            tokens: Some(source.clone()),
            decoder: Some(DecoderInput::new(TokenBatch::pad(
                rows,
                0,
                crate::backbone::PaddingSide::Right,
            )?)),
            ..Default::default()
        };
        let soft = vec![soft_positions.to_vec(); rows.len()];
        hooks.apply(&info, &source, &soft, true, &mut input)?;
        Ok(input)
    };
    let eos = &opts.ends(&cfg.eos_token_ids);
    if opts.num_beams > 1 {
        let room = cfg
            .max_positions
            .saturating_sub(start.len() + decoder_prefix);
        let mut cache = KvCache::new(cfg.decoder_layers);
        let mut beam_step = |rows: &[Vec<u32>], origins: Option<&[usize]>| {
            let input = match origins {
                None => first_input(rows)?,
                Some(o) => {
                    cache.select_rows(o)?;
                    ForwardInput {
                        decoder: Some(DecoderInput::new(TokenBatch::pad(
                            rows,
                            0,
                            crate::backbone::PaddingSide::Right,
                        )?)),
                        ..Default::default()
                    }
                }
            };
            last_logits(backbone, input, &mut cache)
        };
        let new = beam::beam_search(
            &start,
            opts.max_new_tokens.min(room),
            eos,
            opts,
            &mut beam_step,
        )?;
        for &t in &new {
            on_token(t)?;
        }
        return Ok(new);
    }
    let mut cache = KvCache::new(cfg.decoder_layers);
    let mut decode_step = |tokens: &[u32]| {
        let in_front = if cache.is_empty() {
            decoder_prefix
        } else {
            cache.len()
        };
        if in_front + tokens.len() > cfg.max_positions {
            return Ok(None);
        }
        let input = if cache.is_empty() {
            first_input(&[tokens.to_vec()])?
        } else {
            ForwardInput {
                decoder: Some(DecoderInput::new(TokenBatch::single(tokens)?)),
                ..Default::default()
            }
        };
        Ok(last_logits(backbone, input, &mut cache)?.pop())
    };
    decode_one(&start, eos, opts, on_token, &mut decode_step)
}

/// Continues every prompt of `prompts` in one batch (decoders: left-padded, each row numbered
/// by its own real tokens, as transformers' `generate` pads a batch); returns each prompt's
/// new tokens, what it gives alone. Beam search and encoder-decoders run prompt by prompt.
pub fn generate_batch_ids(
    model: &Model,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
) -> Result<Vec<Vec<u32>>> {
    let soft = vec![Vec::new(); prompts.len()];
    generate_batch_with(
        &model.backbone,
        &AdapterHooks::default(),
        prompts,
        &soft,
        opts,
    )
}

/// [`generate_batch_ids`] on `backbone` under an adapter's hooks: prompt `i`'s soft tokens go
/// to `soft_positions[i]` (positions in the unpadded prompt); the prefix is computed once for
/// the batch and kept in the cache.
pub fn generate_batch_with(
    backbone: &Backbone,
    hooks: &AdapterHooks,
    prompts: &[Vec<u32>],
    soft_positions: &[Vec<usize>],
    opts: &GenerateOptions,
) -> Result<Vec<Vec<u32>>> {
    check_options(opts)?;
    // BitFit's deltas go into a copy's weights: later cached steps do not apply the hooks
    let folded = hooks.fold_bias_deltas(backbone)?;
    let (backbone, hooks) = match &folded {
        Some((b, h)) => (b, h),
        None => (backbone, hooks),
    };
    if prompts.iter().any(Vec::is_empty) {
        return Err(Error::InvalidInput(
            "an empty prompt in the batch: nothing to continue".into(),
        ));
    }
    if soft_positions.len() != prompts.len() {
        return Err(Error::Shape(format!(
            "soft positions for {} prompts, {} prompts",
            soft_positions.len(),
            prompts.len()
        )));
    }
    let info = backbone.info();
    if opts.num_beams > 1 || prompts.len() < 2 || !info.causal {
        return prompts
            .iter()
            .zip(soft_positions)
            .map(|(p, s)| continue_with(backbone, hooks, p, s, opts, &mut |_| Ok(())))
            .collect();
    }
    let in_front = hooks.prefix_len();
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if opts.max_new_tokens > 0 && in_front + longest > info.max_positions {
        return Err(Error::InvalidInput(format!(
            "a prompt of {longest} tokens{} does not fit the model's context of {}",
            match in_front {
                0 => String::new(),
                n => format!(" after a {n}-token prefix"),
            },
            info.max_positions
        )));
    }
    let eos = &opts.ends(&backbone.config().eos_token_ids);
    let pad = backbone.config().pad_token_id.unwrap_or(0);
    let b = prompts.len();
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut cache = KvCache::new(info.num_layers);
    let mut tokens = TokenBatch::pad(prompts, pad, crate::backbone::PaddingSide::Left)?;
    let offset = in_front as i64;
    let mut positions = left_padded_positions(&tokens, &vec![offset; b]);
    let mut real: Vec<i64> = prompts.iter().map(|p| offset + p.len() as i64).collect();
    let mut sequences: Vec<Vec<u32>> = prompts.to_vec();
    let mut out = vec![Vec::new(); b];
    let mut done = vec![false; b];
    for step in 0..opts.max_new_tokens {
        let past = if step == 0 { in_front } else { cache.len() };
        if past + tokens.len > info.max_positions {
            break;
        }
        let mut input = ForwardInput::new(tokens.clone());
        if step == 0 {
            let shifted: Vec<Vec<usize>> = prompts
                .iter()
                .zip(soft_positions)
                .map(|(p, s)| s.iter().map(|&i| i + tokens.len - p.len()).collect())
                .collect();
            hooks.apply(&info, &tokens, &shifted, true, &mut input)?;
        }
        input.position_ids = Some(positions.clone());
        let rows = last_logits(backbone, input, &mut cache)?;
        let mut next_tokens = Vec::with_capacity(b);
        for (r, logits) in rows.into_iter().enumerate() {
            if done[r] {
                next_tokens.push(pad);
                continue;
            }
            let Some(next) = next_token(logits, &sequences[r], out[r].len(), eos, opts, &mut rng)
            else {
                done[r] = true;
                next_tokens.push(pad);
                continue;
            };
            out[r].push(next);
            sequences[r].push(next);
            next_tokens.push(next);
        }
        if done.iter().all(|&d| d) {
            break;
        }
        positions = real.clone();
        real.iter_mut().for_each(|n| *n += 1);
        tokens = one_token_per_row(next_tokens);
    }
    Ok(out)
}

/// Position ids of left-padded `tokens` whose row `r` continues after `offsets[r]` positions
/// (its prefix): a real token's is the offset plus the real tokens before it; padding's is 0.
fn left_padded_positions(tokens: &TokenBatch, offsets: &[i64]) -> Vec<i64> {
    tokens
        .mask
        .chunks(tokens.len)
        .zip(offsets)
        .flat_map(|(row, &offset)| {
            row.iter().scan(0i64, move |real, &m| {
                if m == 0 {
                    return Some(0);
                }
                *real += 1;
                Some(offset + *real - 1)
            })
        })
        .collect()
}

/// The input of a cached decoding step: one new token per row.
fn one_token_per_row(ids: Vec<u32>) -> TokenBatch {
    let batch = ids.len();
    TokenBatch {
        ids,
        mask: vec![1; batch],
        token_types: None,
        batch,
        len: 1,
    }
}

/// Continues `prompt`; returns the generated text.
pub fn generate(model: &Model, prompt: &str, opts: &GenerateOptions) -> Result<String> {
    if prompt.trim().is_empty() {
        return Err(Error::InvalidInput(
            "empty prompt: nothing to continue".into(),
        ));
    }
    let ids = model.encode(prompt, true)?;
    let new = generate_ids(model, &ids, opts)?;
    model.decode(&new)
}

/// One scored token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenScore {
    /// Token id.
    pub id: u32,
    /// Token text.
    pub token: String,
    /// log p(token | previous tokens); `None` for the first token.
    pub logprob: Option<f32>,
}

/// Per-token log-probabilities of `text` under a decoder.
pub fn score(model: &Model, text: &str) -> Result<Vec<TokenScore>> {
    if text.trim().is_empty() {
        return Err(Error::InvalidInput("empty text: nothing to score".into()));
    }
    if model.backbone.config().decoder_layers > 0 {
        return Err(Error::InvalidInput(
            "an encoder-decoder model scores a target given a source: give the source too \
             (score_seq2seq, `--source`)"
                .into(),
        ));
    }
    if !model.backbone.info().causal {
        return Err(Error::InvalidInput(
            "scoring needs a decoder (causal LM)".into(),
        ));
    }
    let ids = model.encode(text, true)?;
    let mut input = ForwardInput::new(TokenBatch::single(&ids)?);
    input.logits = LogitsRequest {
        positions: LogitPositions::All,
        rows: None,
    };
    let fwd = model.backbone.forward(&input, None)?;
    let logits = fwd
        .logits
        .ok_or_else(|| Error::Internal("the backbone returned no logits".into()))?;
    let vocab = logits.dims()[2];
    let logp = to_vec(burn::tensor::activation::log_softmax(logits, 2));
    Ok(ids
        .iter()
        .enumerate()
        .map(|(i, &id)| TokenScore {
            id,
            token: model.tokenizer.id_to_token(id).unwrap_or_default(),
            logprob: (i > 0).then(|| logp[(i - 1) * vocab + id as usize]),
        })
        .collect())
}

/// Per-token log-probabilities of `target` given `source` under an encoder-decoder: the
/// decoder reads the start token and the target shifted right (as transformers' `labels`), so
/// every target token is scored.
pub fn score_seq2seq(model: &Model, source: &str, target: &str) -> Result<Vec<TokenScore>> {
    if source.trim().is_empty() || target.trim().is_empty() {
        return Err(Error::InvalidInput(
            "empty source or target: nothing to score".into(),
        ));
    }
    let cfg = model.backbone.config();
    if cfg.decoder_layers == 0 {
        return Err(Error::InvalidInput(format!(
            "{} has no decoder stack: a source is only for encoder-decoder models",
            cfg.family.name()
        )));
    }
    let start = cfg.decoder_start_token_id.ok_or_else(|| {
        Error::InvalidInput("the model's config names no `decoder_start_token_id`".into())
    })?;
    let source_ids = model.encode(source, true)?;
    let target_ids = model.encode(target, true)?;
    let mut decoder_ids = vec![start];
    decoder_ids.extend_from_slice(&target_ids[..target_ids.len() - 1]);
    let input = ForwardInput {
        tokens: Some(TokenBatch::single(&source_ids)?),
        decoder: Some(DecoderInput::new(TokenBatch::single(&decoder_ids)?)),
        logits: LogitsRequest {
            positions: LogitPositions::All,
            rows: None,
        },
        ..Default::default()
    };
    let fwd = model.backbone.forward(&input, None)?;
    let logits = fwd
        .logits
        .ok_or_else(|| Error::Internal("the backbone returned no logits".into()))?;
    let vocab = logits.dims()[2];
    let logp = to_vec(burn::tensor::activation::log_softmax(logits, 2));
    Ok(target_ids
        .iter()
        .enumerate()
        .map(|(i, &id)| TokenScore {
            id,
            token: model.tokenizer.id_to_token(id).unwrap_or_default(),
            logprob: Some(logp[i * vocab + id as usize]),
        })
        .collect())
}
