//! Shared steps around the family-specific layers: input validation (so tensor code never
//! panics on a bad shape), splicing soft embeddings, inserting deep tokens, default positions
//! and gathering the positions where logits are wanted.

use burn::tensor::{Device, Int, Tensor};

use super::hooks::{
    DecoderInput, DeepTokens, ForwardInput, LayerPrefix, LogitPositions, SoftEmbeddings, TokenBatch,
};
use super::kv_cache::KvCache;
use super::layers::{float_tensor, int_tensor};
use crate::checkpoint::config::BackboneConfig;
use crate::{Error, Result};

fn shape_err<T>(msg: String) -> Result<T> {
    Err(Error::Shape(msg))
}

/// Checks every input against the model sizes before any tensor operation runs.
pub(crate) fn validate(
    cfg: &BackboneConfig,
    output_vocab: usize,
    input: &ForwardInput,
    cache: Option<&KvCache>,
    past: usize,
) -> Result<()> {
    let Some(tokens) = &input.tokens else {
        return Err(Error::InvalidInput("forward needs token ids".into()));
    };
    let (b, t) = (tokens.batch, tokens.len);
    if b == 0 || t == 0 {
        return Err(Error::InvalidInput("empty input: no tokens to run".into()));
    }
    if tokens.ids.len() != b * t || tokens.mask.len() != b * t {
        return shape_err(format!(
            "token batch of {b}x{t} holds {} ids and {} mask entries",
            tokens.ids.len(),
            tokens.mask.len()
        ));
    }
    if let Some(bad) = tokens.ids.iter().find(|&&i| i as usize >= cfg.vocab_size) {
        return shape_err(format!(
            "token id {bad} is outside the model vocabulary of {}",
            cfg.vocab_size
        ));
    }
    if let Some(types) = &tokens.token_types {
        if types.len() != b * t {
            return shape_err(format!(
                "{} token type ids for a {b}x{t} batch",
                types.len()
            ));
        }
        if let Some(bad) = types
            .iter()
            .find(|&&i| i as usize >= cfg.type_vocab_size.max(1))
        {
            return shape_err(format!(
                "token type {bad} is outside the {} types of the model",
                cfg.type_vocab_size
            ));
        }
    }
    let batch_ok = |n: usize| n == 1 || n == b;
    if let Some(given) = &input.input_embeds {
        let dims = given.dims();
        if dims != [b, t, cfg.hidden_size] {
            return shape_err(format!(
                "input embeddings are {dims:?}; expected [{b}, {t}, {}] (batch, tokens, hidden)",
                cfg.hidden_size
            ));
        }
    }
    if let Some(soft) = &input.soft {
        let [sb, n, h] = soft.values.dims();
        if !batch_ok(sb) || h != cfg.hidden_size {
            return shape_err(format!(
                "soft embeddings are [{sb}, {n}, {h}]; expected [1 or {b}, n, {}]",
                cfg.hidden_size
            ));
        }
        if soft.positions.len() != b {
            return shape_err(format!(
                "soft embedding positions given for {} rows, batch has {b}",
                soft.positions.len()
            ));
        }
        for row in &soft.positions {
            // shared values: every row places all of them; per-row values: up to its own row
            if sb == 1 && row.len() != n {
                return shape_err(format!(
                    "a row places {} soft vectors, {n} were given",
                    row.len()
                ));
            }
            if row.len() > n {
                return shape_err(format!(
                    "a row places {} soft vectors, its row of values holds {n}",
                    row.len()
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for &p in row {
                if p >= t || !seen.insert(p) {
                    return shape_err(format!(
                        "soft position {p} is out of range or repeated (sequence length {t})"
                    ));
                }
            }
        }
    }
    let mut prefix_len = 0;
    if let Some(prefixes) = &input.prefixes {
        if prefixes.len() != cfg.num_layers {
            return shape_err(format!(
                "{} key/value prefixes for {} layers",
                prefixes.len(),
                cfg.num_layers
            ));
        }
        if cache.is_some_and(|c| !c.is_empty()) {
            return Err(Error::InvalidInput(
                "prefixes go in the first step only; the cache already holds them".into(),
            ));
        }
        prefix_len = prefixes[0].key.dims()[2];
        for (l, p) in prefixes.iter().enumerate() {
            let want = [cfg.num_kv_heads, prefix_len, cfg.head_dim];
            for (what, dims) in [("key", p.key.dims()), ("value", p.value.dims())] {
                if !batch_ok(dims[0]) || dims[1..] != want {
                    return shape_err(format!(
                        "layer {l} prefix {what} is {dims:?}; expected [1 or {b}, {}, {prefix_len}, {}] (kv heads, prefix length, head dim)",
                        cfg.num_kv_heads, cfg.head_dim
                    ));
                }
            }
        }
    }
    if let Some(mask) = &input.prefix_mask {
        if input.prefixes.is_none() {
            return shape_err("a prefix mask was given without prefixes".into());
        }
        if mask.len() != b * prefix_len {
            return shape_err(format!(
                "prefix mask holds {} entries; expected {b} rows x {prefix_len} prefix positions",
                mask.len()
            ));
        }
    }
    let mut deep_len = 0;
    if let Some(deep) = &input.deep {
        if deep.layers.len() != cfg.num_layers {
            return shape_err(format!(
                "deep tokens given for {} layers, model has {}",
                deep.layers.len(),
                cfg.num_layers
            ));
        }
        if deep.layers[0].is_none() {
            return shape_err("deep tokens need an entry for layer 0 (the insertion)".into());
        }
        deep_len = deep.len();
        if deep.at > t {
            return shape_err(format!(
                "deep tokens inserted at {} past the sequence length {t}",
                deep.at
            ));
        }
        for (l, d) in deep.layers.iter().enumerate() {
            if let Some(d) = d {
                let [db, n, h] = d.dims();
                if !batch_ok(db) || n != deep_len || h != cfg.hidden_size {
                    return shape_err(format!("layer {l} deep tokens are [{db}, {n}, {h}]; expected [1 or {b}, {deep_len}, {}]", cfg.hidden_size));
                }
            }
        }
    }
    if let Some(c) = cache {
        if !c.is_empty() && c.batch() != b {
            return shape_err(format!("cache holds {} rows, input has {b}", c.batch()));
        }
        if c.num_layers() != cfg.num_layers {
            return shape_err(format!(
                "cache made for {} layers, model has {}",
                c.num_layers(),
                cfg.num_layers
            ));
        }
    }
    let total = past + prefix_len + t + deep_len;
    if total > cfg.max_positions {
        return shape_err(format!(
            "sequence of {total} positions (prefix {prefix_len}, cached {past}, tokens {t}, deep {deep_len}) exceeds the model's {}",
            cfg.max_positions
        ));
    }
    if let Some(pos) = &input.position_ids {
        if pos.len() != b * (t + deep_len) {
            return shape_err(format!(
                "{} position ids for {b} rows of {} positions",
                pos.len(),
                t + deep_len
            ));
        }
        if pos
            .iter()
            .any(|&p| p < 0 || p as usize >= cfg.max_positions)
        {
            return shape_err(format!("position ids must lie in 0..{}", cfg.max_positions));
        }
    }
    if input.logits.positions != LogitPositions::None && output_vocab == 0 {
        return Err(Error::InvalidInput(
            "logits requested but the checkpoint has no LM head".into(),
        ));
    }
    if let LogitPositions::At(rows) = &input.logits.positions {
        check_row_positions("logit positions", rows, b, t)?;
    }
    if let Some(rows) = &input.hidden_at {
        check_row_positions("hidden-state positions", rows, b, t)?;
    }
    if let Some(rows) = &input.logits.rows {
        if rows.is_empty() {
            return Err(Error::InvalidInput("empty list of vocabulary rows".into()));
        }
        check_vocab_rows(rows, output_vocab)?;
    }
    if let Some(rows) = &input.logit_rows_per_row {
        if input.logits.positions == LogitPositions::None {
            return Err(Error::InvalidInput(
                "per-row vocabulary rows were given but no logit positions".into(),
            ));
        }
        if input.logits.rows.is_some() {
            return Err(Error::InvalidInput(
                "vocabulary rows given both for every row and per row".into(),
            ));
        }
        let k = rows.first().map(Vec::len).unwrap_or(0);
        if rows.len() != b || k == 0 || rows.iter().any(|r| r.len() != k) {
            return shape_err(format!(
                "per-row vocabulary rows must give the same number (at least one) for each of {b} rows"
            ));
        }
        for row in rows {
            check_vocab_rows(row, output_vocab)?;
        }
    }
    Ok(())
}

/// Per-row positions: one list for each of `batch` rows, all of the same non-zero length,
/// each position below `len`.
fn check_row_positions(what: &str, rows: &[Vec<usize>], batch: usize, len: usize) -> Result<()> {
    let k = rows.first().map(Vec::len).unwrap_or(0);
    if rows.len() != batch
        || rows
            .iter()
            .any(|r| r.len() != k || r.iter().any(|&p| p >= len))
        || k == 0
    {
        return shape_err(format!("{what} must give the same number of in-range positions (< {len}) for each of {batch} rows"));
    }
    Ok(())
}

/// Every vocabulary row lies inside the LM head.
fn check_vocab_rows(rows: &[u32], output_vocab: usize) -> Result<()> {
    match rows.iter().find(|&&r| r as usize >= output_vocab.max(1)) {
        Some(bad) => shape_err(format!(
            "vocabulary row {bad} is outside the LM head of {output_vocab} rows"
        )),
        None => Ok(()),
    }
}

/// Where the keys of a decoder step come from.
pub(crate) struct StepKeys {
    /// Validity of the new positions `[B, T]`, deep tokens included.
    pub seq_mask: Vec<u8>,
    /// Validity of every key `[B, S]`: prefix slots, cached keys, then the new ones.
    pub keys_valid: Vec<u8>,
    /// Prefix slots at the start of the keys: given now, or cached in the first step.
    pub prefix_slots: usize,
    /// Keys before the new ones (prefix and cache).
    pub past: usize,
}

/// The keys a decoder step attends over, from `input`'s tokens, deep tokens and prefixes and
/// what `cache` holds.
pub(crate) fn step_keys(input: &ForwardInput, cache: Option<&KvCache>) -> StepKeys {
    let tokens = input.tokens.as_ref().expect("validated");
    let b = tokens.batch;
    let seq_mask = sequence_mask(tokens, input.deep.as_ref());
    let prefix_len = input
        .prefixes
        .as_ref()
        .map(|p| p[0].key.dims()[2])
        .unwrap_or(0);
    let filled = cache.filter(|c| !c.is_empty());
    let cached = filled.map(|c| c.mask());
    let keys_valid = key_mask(
        &seq_mask,
        b,
        cached,
        prefix_len,
        input.prefix_mask.as_deref(),
    );
    StepKeys {
        seq_mask,
        keys_valid,
        prefix_slots: filled.map(|c| c.prefix_len()).unwrap_or(prefix_len),
        past: prefix_len + cached.map(|c| c.len() / b).unwrap_or(0),
    }
}

/// The keys and values decoder layer `index` attends over, `[B, KV, S, D]`: its prefix
/// (expanded to the batch), the cached ones, then the new `k` and `v`; stored back into
/// `cache` for the next step when there is one.
pub(crate) fn join_past(
    k: Tensor<4>,
    v: Tensor<4>,
    prefix: Option<&LayerPrefix>,
    index: usize,
    cache: Option<&mut KvCache>,
) -> (Tensor<4>, Tensor<4>) {
    let b = k.dims()[0];
    let mut keys = Vec::with_capacity(3);
    let mut values = Vec::with_capacity(3);
    if let Some(p) = prefix {
        keys.push(expand_batch(p.key.clone(), b));
        values.push(expand_batch(p.value.clone(), b));
    }
    if let Some((ck, cv)) = cache.as_ref().and_then(|c| c.layer(index)) {
        keys.push(ck.clone());
        values.push(cv.clone());
    }
    let (k, v) = if keys.is_empty() {
        (k, v)
    } else {
        keys.push(k);
        values.push(v);
        (Tensor::cat(keys, 2), Tensor::cat(values, 2))
    };
    if let Some(c) = cache {
        c.set_layer(index, k.clone(), v.clone());
    }
    (k, v)
}

/// Repeats a batch-1 tensor to `b` rows.
pub(crate) fn expand_batch<const D: usize>(t: Tensor<D>, b: usize) -> Tensor<D> {
    if t.dims()[0] == b {
        t
    } else {
        t.repeat_dim(0, b)
    }
}

/// What the first layer takes, `[B, L, H]`: `input_embeds`, or the token ids embedded by
/// `embed`, with the soft vectors spliced in and layer 0's deep tokens inserted.
pub(crate) fn input_vectors(
    input: &ForwardInput,
    embed: impl FnOnce(&TokenBatch) -> Tensor<3>,
    device: &Device,
) -> Tensor<3> {
    let tokens = input.tokens.as_ref().expect("validated");
    let mut x = match &input.input_embeds {
        Some(given) => given.clone(),
        None => embed(tokens),
    };
    if let Some(soft) = &input.soft {
        x = splice_soft(x, soft, device);
    }
    if let Some(d) = &input.deep {
        x = insert_deep(x, d);
    }
    x
}

/// Replaces the embeddings at the soft positions: `emb * keep + onehot @ values`, which keeps
/// the gradient path to `values`. A row that places `k < n` vectors selects the first `k` of
/// its row of values (its one-hot rows have no entry for the others).
pub(crate) fn splice_soft(emb: Tensor<3>, soft: &SoftEmbeddings, device: &Device) -> Tensor<3> {
    let [b, t, _] = emb.dims();
    let n = soft.values.dims()[1];
    let mut select = vec![0f32; b * t * n];
    let mut keep = vec![1f32; b * t];
    for (row, positions) in soft.positions.iter().enumerate() {
        for (k, &p) in positions.iter().enumerate() {
            select[(row * t + p) * n + k] = 1.0;
            keep[row * t + p] = 0.0;
        }
    }
    let select = float_tensor(select, [b, t, n], device);
    let keep = float_tensor(keep, [b, t, 1], device);
    let values = expand_batch(soft.values.clone(), b);
    emb * keep + select.matmul(values)
}

/// Inserts layer 0's deep tokens into `x` before index `at`.
pub(crate) fn insert_deep(x: Tensor<3>, deep: &DeepTokens) -> Tensor<3> {
    let [b, t, _] = x.dims();
    let Some(tokens) = deep.layers[0].clone() else {
        return x;
    };
    let tokens = expand_batch(tokens, b);
    let mut parts = Vec::with_capacity(3);
    if deep.at > 0 {
        parts.push(x.clone().narrow(1, 0, deep.at));
    }
    parts.push(tokens);
    if deep.at < t {
        parts.push(x.narrow(1, deep.at, t - deep.at));
    }
    Tensor::cat(parts, 1)
}

/// Overwrites the deep-token slots with layer `layer`'s tokens, when it has its own.
pub(crate) fn overwrite_deep(x: Tensor<3>, deep: Option<&DeepTokens>, layer: usize) -> Tensor<3> {
    let Some(deep) = deep else { return x };
    if layer == 0 {
        return x;
    }
    let Some(Some(tokens)) = deep.layers.get(layer) else {
        return x;
    };
    let [b, l, _] = x.dims();
    let n = tokens.dims()[1];
    let tokens = expand_batch(tokens.clone(), b);
    let mut parts = Vec::with_capacity(3);
    if deep.at > 0 {
        parts.push(x.clone().narrow(1, 0, deep.at));
    }
    parts.push(tokens);
    if deep.at + n < l {
        parts.push(x.narrow(1, deep.at + n, l - deep.at - n));
    }
    Tensor::cat(parts, 1)
}

/// Validity of the sequence after deep-token insertion, `[B, L]`.
pub(crate) fn sequence_mask(tokens: &TokenBatch, deep: Option<&DeepTokens>) -> Vec<u8> {
    let n = deep.map(DeepTokens::len).unwrap_or(0);
    if n == 0 {
        return tokens.mask.clone();
    }
    let at = deep.map(|d| d.at).unwrap_or(0);
    let mut out = Vec::with_capacity(tokens.batch * (tokens.len + n));
    for row in tokens.mask.chunks(tokens.len) {
        out.extend_from_slice(&row[..at]);
        out.extend(std::iter::repeat_n(1u8, n));
        out.extend_from_slice(&row[at..]);
    }
    out
}

/// `start + arange(len)` for every row, one start per row.
pub(crate) fn default_positions(len: usize, starts: &[usize]) -> Vec<i64> {
    starts
        .iter()
        .flat_map(|&start| (0..len).map(move |i| (start + i) as i64))
        .collect()
}

/// Per row, the default position of the first new token: the `past` keys before it, less the
/// masked ones among the first `prefix_slots` (prefix slots a row does not use take no
/// position). `keys_valid` is the key validity `[B, S]` of [`key_mask`].
pub(crate) fn row_starts(
    keys_valid: &[u8],
    batch: usize,
    past: usize,
    prefix_slots: usize,
) -> Vec<usize> {
    let keys = keys_valid.len() / batch;
    keys_valid
        .chunks(keys)
        .map(|row| past - row[..prefix_slots].iter().filter(|&&v| v == 0).count())
        .collect()
}

/// Prepends the prefix validity (`prefix_mask`'s row, or `prefix` ones without one) and the
/// cached mask to the sequence mask: the key validity `[B, S]`.
pub(crate) fn key_mask(
    seq_mask: &[u8],
    batch: usize,
    cached: Option<&[u8]>,
    prefix: usize,
    prefix_mask: Option<&[u8]>,
) -> Vec<u8> {
    let len = seq_mask.len() / batch;
    let cached_len = cached.map(|c| c.len() / batch).unwrap_or(0);
    let mut out = Vec::with_capacity(batch * (prefix + cached_len + len));
    for b in 0..batch {
        match prefix_mask {
            Some(m) => out.extend(
                m[b * prefix..(b + 1) * prefix]
                    .iter()
                    .map(|&v| u8::from(v != 0)),
            ),
            None => out.extend(std::iter::repeat_n(1u8, prefix)),
        }
        if let Some(c) = cached {
            out.extend_from_slice(&c[b * cached_len..(b + 1) * cached_len]);
        }
        out.extend_from_slice(&seq_mask[b * len..(b + 1) * len]);
    }
    out
}

/// Resolves the logit request into per-row indices of the (deep-extended) sequence,
/// or `None` for every position.
pub(crate) fn logit_rows(
    input: &ForwardInput,
    seq_mask: &[u8],
    batch: usize,
) -> Option<Vec<Vec<usize>>> {
    let len = seq_mask.len() / batch;
    match &input.logits.positions {
        LogitPositions::None | LogitPositions::All => None,
        LogitPositions::Last => Some(
            seq_mask
                .chunks(len)
                .map(|row| vec![row.iter().rposition(|&m| m != 0).unwrap_or(len - 1)])
                .collect(),
        ),
        LogitPositions::At(rows) => Some(past_deep(input, rows)),
    }
}

/// Input positions of each row moved to the (deep-extended) sequence: those at or after the
/// insertion point shift past the deep tokens.
fn past_deep(input: &ForwardInput, rows: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let (at, n) = input
        .deep
        .as_ref()
        .map(|d| (d.at, d.len()))
        .unwrap_or((0, 0));
    let shift = |p: usize| if n > 0 && p >= at { p + n } else { p };
    rows.iter()
        .map(|r| r.iter().map(|&p| shift(p)).collect())
        .collect()
}

/// The last hidden states at the positions of [`ForwardInput::hidden_at`], `[B, K, H]`.
pub(crate) fn hidden_at(
    input: &ForwardInput,
    last_hidden: &Tensor<3>,
    device: &Device,
) -> Option<Tensor<3>> {
    let rows = input.hidden_at.as_ref()?;
    Some(gather_rows(
        last_hidden.clone(),
        &past_deep(input, rows),
        device,
    ))
}

/// Logits of the selected hidden states `[B, K, H]` against the vocabulary rows the request
/// names (`table` is the `[vocab, H]` output matrix, `bias` its optional bias): `[B, K, R]`,
/// from shared rows (`logits.rows`, or all) or from each batch row's own rows.
pub(crate) fn vocab_logits(
    selected: Tensor<3>,
    table: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    input: &ForwardInput,
    device: &Device,
) -> Tensor<3> {
    let [b, k, h] = selected.dims();
    let rows_index = |rows: Vec<i64>| {
        let n = rows.len();
        int_tensor(rows, [n], device)
    };
    if let Some(per_row) = &input.logit_rows_per_row {
        let r = per_row[0].len();
        let idx = rows_index(per_row.iter().flatten().map(|&v| v as i64).collect());
        let weights = table.clone().select(0, idx.clone()).reshape([b, r, h]);
        let logits = selected.matmul(weights.swap_dims(1, 2));
        return match bias {
            Some(bias) => logits + bias.clone().select(0, idx).reshape([b, 1, r]),
            None => logits,
        };
    }
    let (table, bias) = match &input.logits.rows {
        Some(rows) => {
            let idx = rows_index(rows.iter().map(|&v| v as i64).collect());
            (
                table.clone().select(0, idx.clone()),
                bias.map(|bias| bias.clone().select(0, idx)),
            )
        }
        None => (table.clone(), bias.cloned()),
    };
    let logits = selected.reshape([b * k, h]).matmul(table.transpose());
    let logits = match bias {
        Some(bias) => logits + bias.unsqueeze(),
        None => logits,
    };
    let r = logits.dims()[1];
    logits.reshape([b, k, r])
}

/// Gathers `hidden[b, positions[b][k]]` into `[B, K, H]`.
pub(crate) fn gather_rows(
    hidden: Tensor<3>,
    positions: &[Vec<usize>],
    device: &Device,
) -> Tensor<3> {
    let [b, _, h] = hidden.dims();
    let k = positions[0].len();
    let idx: Vec<i64> = positions
        .iter()
        .flat_map(|r| r.iter().flat_map(|&p| std::iter::repeat_n(p as i64, h)))
        .collect();
    let idx: Tensor<3, Int> = int_tensor(idx, [b, k, h], device);
    hidden.gather(1, idx)
}

/// The encoder half of an encoder-decoder `input`: its tokens and hooks, nothing asked of the
/// output (the requests concern the decoder).
pub(crate) fn encoder_view(input: &ForwardInput) -> ForwardInput {
    ForwardInput {
        tokens: input.tokens.clone(),
        input_embeds: input.input_embeds.clone(),
        soft: input.soft.clone(),
        prefixes: input.prefixes.clone(),
        prefix_mask: input.prefix_mask.clone(),
        deep: input.deep.clone(),
        output_hidden_states: input.output_hidden_states,
        dropout: input.dropout,
        ..Default::default()
    }
}

/// The decoder half of an encoder-decoder `input` as a decoder-only pass would take it: the
/// decoder's tokens, soft vectors and self-attention prefixes, with `input`'s requests of the
/// output.
pub(crate) fn decoder_view(input: &ForwardInput, decoder: &DecoderInput) -> ForwardInput {
    ForwardInput {
        tokens: Some(decoder.tokens.clone()),
        soft: decoder.soft.clone(),
        prefixes: decoder.prefixes.clone(),
        prefix_mask: decoder.prefix_mask.clone(),
        position_ids: input.position_ids.clone(),
        output_hidden_states: input.output_hidden_states,
        logits: input.logits.clone(),
        logit_rows_per_row: input.logit_rows_per_row.clone(),
        hidden_at: input.hidden_at.clone(),
        dropout: input.dropout,
        ..Default::default()
    }
}

/// Checks an encoder-decoder pass (`cfg` has a decoder stack): the encoder's input in a first
/// step only, the decoder's against the decoder stack and the cache, cross-attention prefixes
/// against the decoder layers, every batch the same size.
pub(crate) fn validate_encoder_decoder(
    cfg: &BackboneConfig,
    output_vocab: usize,
    input: &ForwardInput,
    cache: Option<&KvCache>,
) -> Result<()> {
    let decoder_cfg = cfg.decoder_stack().expect("an encoder-decoder config");
    let Some(decoder) = &input.decoder else {
        if cache.is_some() {
            return Err(Error::InvalidInput(
                "an encoder-decoder model decodes with a cache only when given decoder input"
                    .into(),
            ));
        }
        if input.logits.positions != LogitPositions::None || input.logit_rows_per_row.is_some() {
            return Err(Error::InvalidInput(
                "logits come from the decoder: give decoder input to an encoder-decoder model"
                    .into(),
            ));
        }
        return validate(cfg, 0, input, None, 0);
    };
    let encoded = cache.is_some_and(KvCache::has_cross);
    let batch =
        match (&input.tokens, encoded) {
            (Some(_), true) => return Err(Error::InvalidInput(
                "the cache already holds the encoded source: later steps take decoder tokens only"
                    .into(),
            )),
            (Some(t), false) => {
                validate(cfg, 0, &encoder_view(input), None, 0)?;
                t.batch
            }
            (None, true) => cache.map(KvCache::batch).unwrap_or(0),
            (None, false) => {
                return Err(Error::InvalidInput(
                    "the first step of an encoder-decoder model needs the source tokens".into(),
                ))
            }
        };
    if decoder.tokens.batch != batch {
        return shape_err(format!(
            "decoder input has {} rows, the source {batch}",
            decoder.tokens.batch
        ));
    }
    if decoder.cross_prefixes.is_some() {
        if encoded {
            return Err(Error::InvalidInput(
                "cross-attention prefixes go in the first step only; the cache already holds them"
                    .into(),
            ));
        }
        let cross = ForwardInput {
            tokens: Some(decoder.tokens.clone()),
            prefixes: decoder.cross_prefixes.clone(),
            prefix_mask: decoder.cross_prefix_mask.clone(),
            ..Default::default()
        };
        validate(&decoder_cfg, 0, &cross, None, 0)
            .map_err(|e| Error::Shape(format!("cross-attention: {e}")))?;
    } else if decoder.cross_prefix_mask.is_some() {
        return shape_err("a cross-attention prefix mask was given without prefixes".into());
    }
    let past = cache.map(KvCache::len).unwrap_or(0);
    validate(
        &decoder_cfg,
        output_vocab,
        &decoder_view(input, decoder),
        cache,
        past,
    )
}
