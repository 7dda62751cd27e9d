//! SQuAD-style extractive question answering, as P-Tuning v2 and HF's `run_qa` do it.
//!
//! * Encoding ([`QaEncoder`]): question and context are encoded as a pair, question first
//!   (the question's leading white space stripped, as `run_qa` does), with character offsets.
//!   A context too long for `max_len` is split into overlapping windows: consecutive windows
//!   share `doc_stride` context tokens (the tokenizer's own truncation with
//!   `return_overflowing_tokens` and `stride`, so the windows are HF's). Each [`QaWindow`]
//!   knows which tokens are context and their character span in the context.
//! * Labels: per window, the first and last token of the (first) gold answer when the answer
//!   lies entirely inside the window's context part, else the `[CLS]` index for both (0), as
//!   `prepare_train_features` does.
//! * [`SpanHead`]: a linear layer `hidden -> 2` giving start and end logits `[B, T]`;
//!   [`span_loss`] is the mean of the start and end cross-entropies.
//! * Decoding ([`best_span`], [`decode_predictions`]): over all windows of an example, the
//!   `n_best` highest start and end logits of each window are paired; a pair counts when both
//!   tokens are context tokens, `start <= end` and it spans at most `max_answer_len` tokens;
//!   the best `start_logit + end_logit` wins and is mapped back to the context substring by
//!   the offsets (`postprocess_qa_predictions`).
//!
//! Offsets count Unicode characters, as Python's `str` and SQuAD's `answer_start` do.

use burn::tensor::{activation, Device, Int, Tensor};
use tokenizers::utils::truncation::{
    truncate_encodings, TruncationDirection, TruncationParams, TruncationStrategy,
};
use tokenizers::{Encoding, PostProcessor, Tokenizer};

use super::head::HeadNames;
use super::tagging::{linear_3d, LINEAR_HEAD_SALT};
use crate::backbone::layers::{float_tensor, int_tensor};
use crate::backbone::{PaddingSide, TokenBatch};
use crate::data::squad::QaExample;
use crate::params::{HostTensor, Trainables};
use crate::{Error, Result};

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

/// The gold span of a window, in token positions (inclusive), or the `[CLS]` index twice when
/// the answer is not (entirely) inside the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanLabel {
    /// Start token.
    pub start: usize,
    /// End token (inclusive).
    pub end: usize,
    /// Whether the answer lies inside the window (else both positions are the `[CLS]` index).
    pub in_window: bool,
}

/// One window of an encoded question + context pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QaWindow {
    /// Index of the example in the slice it was encoded from.
    pub example: usize,
    /// Index of this window among its example's windows (0 = the start of the context).
    pub window: usize,
    /// Token ids: `[CLS] question [SEP] context-part [SEP]` for BERT.
    pub ids: Vec<u32>,
    /// Segment ids (BERT: 0 for the question, 1 for the context).
    pub type_ids: Vec<u32>,
    /// 1 for every token (no padding here; see [`qa_batch`]).
    pub attention_mask: Vec<u8>,
    /// Per token: its `[start, end)` character span in the context for context tokens,
    /// `None` for question and special tokens.
    pub context_offsets: Vec<Option<(usize, usize)>>,
    /// Position of the `[CLS]` token (the label of windows without the answer).
    pub cls_index: usize,
    /// The training label, when the example had an answer to encode.
    pub label: Option<SpanLabel>,
}

impl QaWindow {
    /// Positions of the first and last context token.
    pub fn context_range(&self) -> Option<(usize, usize)> {
        let first = self.context_offsets.iter().position(Option::is_some)?;
        let last = self.context_offsets.iter().rposition(Option::is_some)?;
        Some((first, last))
    }
}

/// Encodes question + context pairs into windows for one tokenizer.
#[derive(Debug, Clone)]
pub struct QaEncoder {
    /// The tokenizer, without truncation or padding.
    tokenizer: Tokenizer,
    /// Special tokens added around a pair.
    pair_specials: usize,
    max_len: usize,
    doc_stride: usize,
}

impl QaEncoder {
    /// `max_len` counts every token of a window (question, context part, special tokens);
    /// `doc_stride` is the number of context tokens two consecutive windows share (HF's
    /// `stride`; `run_qa` uses 384 and 128).
    ///
    /// Errors: a `max_len` that leaves no room beside the special tokens, or
    /// `doc_stride >= max_len`.
    pub fn new(tokenizer: &Tokenizer, max_len: usize, doc_stride: usize) -> Result<Self> {
        let pair_specials = tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(true));
        if max_len <= pair_specials + 1 {
            return Err(Error::InvalidInput(format!(
                "max_len {max_len} leaves no room for a question and a context beside the \
                 {pair_specials} special tokens"
            )));
        }
        if doc_stride >= max_len {
            return Err(Error::InvalidInput(format!(
                "doc_stride {doc_stride} must be smaller than max_len {max_len}"
            )));
        }
        // Truncation is done here, not by the tokenizer: tokenizers 0.23.2 stops tokenizing
        // the second sequence at `max_length` tokens when `only_second` truncation is set on
        // the tokenizer (an early exit that ignores the stride), so its overflowing windows
        // miss most of a long context (a window of 64 over a 157-token context gave 2 windows
        // instead of 5; huggingface/tokenizers#2091, fix proposed in PR #2098). We encode
        // both sequences in full, cut them with the library's own `truncate_encodings` and
        // post-process: the windows of transformers' fast tokenizer (tests/task_heads.rs
        // compares with `squad_windows_hf.json`).
        let mut tokenizer = tokenizer.clone();
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(tok_err)?;
        Ok(Self {
            tokenizer,
            pair_specials,
            max_len,
            doc_stride,
        })
    }

    /// The window length limit.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The context overlap of consecutive windows.
    pub fn doc_stride(&self) -> usize {
        self.doc_stride
    }

    /// The windows of `question` + `context` without labels (prediction); `example` is
    /// copied into every window.
    ///
    /// Errors: an empty context, or a question so long that the context part of a window
    /// would not exceed `doc_stride` tokens (the tokenizer would refuse).
    pub fn encode_pair(
        &self,
        example: usize,
        question: &str,
        context: &str,
    ) -> Result<Vec<QaWindow>> {
        // run_qa: "Some of the questions have lots of whitespace on the left, which is not
        // useful and will make the truncation of the context fail"
        let question = question.trim_start();
        if context.trim().is_empty() {
            return Err(Error::InvalidInput(format!(
                "example {example}: the context is empty"
            )));
        }
        if question.is_empty() {
            return Err(Error::InvalidInput(format!(
                "example {example}: the question is empty"
            )));
        }
        let q = self
            .tokenizer
            .encode_char_offsets(question, false)
            .map_err(tok_err)?;
        let mut c = self
            .tokenizer
            .encode_char_offsets(context, false)
            .map_err(tok_err)?;
        // as `encode` of a pair does: the second sequence is encoded with type id 1 (the
        // template overrides it in the first window, the overflowing windows keep it)
        c.set_type_ids(vec![1; c.len()]);
        let (q_len, c_len) = (q.len(), c.len());
        if c_len == 0 {
            return Err(Error::InvalidInput(format!(
                "example {example}: the context has no token"
            )));
        }
        // `Encoding::truncate` asserts (panics) when the context part of a window is not
        // longer than the stride: check first.
        if q_len + c_len + self.pair_specials > self.max_len {
            let room = self.max_len.saturating_sub(q_len + self.pair_specials);
            if room <= self.doc_stride {
                return Err(Error::InvalidInput(format!(
                    "example {example}: the question takes {q_len} tokens, which leaves {room} \
                     context tokens per window of {} (need more than doc_stride {}); raise \
                     max_len or lower doc_stride",
                    self.max_len, self.doc_stride
                )));
            }
        }
        let params = TruncationParams {
            direction: TruncationDirection::Right,
            max_length: self.max_len - self.pair_specials,
            strategy: TruncationStrategy::OnlySecond,
            stride: self.doc_stride,
        };
        let (q, c) = truncate_encodings(q, Some(c), &params).map_err(tok_err)?;
        let mut enc = self.tokenizer.post_process(q, c, true).map_err(tok_err)?;
        let overflow = enc.take_overflowing();
        std::iter::once(enc)
            .chain(overflow)
            .enumerate()
            .map(|(w, e)| window_from(example, w, &e))
            .collect()
    }

    /// The windows of `example` (index `index` of its slice), labelled with its first answer.
    ///
    /// Errors: those of [`QaEncoder::encode_pair`], or an answer that does not occur in the
    /// context at its offset (the readers check this; hand-made examples may not).
    pub fn encode_example(&self, index: usize, example: &QaExample) -> Result<Vec<QaWindow>> {
        let answer = example.answers.first().ok_or_else(|| {
            Error::InvalidInput(format!(
                "question {}: no gold answer to train on",
                example.id
            ))
        })?;
        if answer.byte_range(&example.context).is_none() {
            return Err(Error::InvalidInput(format!(
                "question {}: the answer {:?} does not occur in the context at character {}",
                example.id, answer.text, answer.start_char
            )));
        }
        if answer.text.is_empty() {
            return Err(Error::InvalidInput(format!(
                "question {}: the answer is empty",
                example.id
            )));
        }
        let (start_char, end_char) = (answer.start_char, answer.end_char());
        let mut windows = self
            .encode_pair(index, &example.question, &example.context)
            .map_err(|e| match e {
                Error::InvalidInput(m) => {
                    Error::InvalidInput(format!("question {}: {m}", example.id))
                }
                other => other,
            })?;
        for w in &mut windows {
            w.label = Some(label_window(w, start_char, end_char));
        }
        Ok(windows)
    }

    /// The labelled windows of every example, in order.
    pub fn encode_examples(&self, examples: &[QaExample]) -> Result<Vec<QaWindow>> {
        let mut out = Vec::new();
        for (i, e) in examples.iter().enumerate() {
            out.extend(self.encode_example(i, e)?);
        }
        Ok(out)
    }
}

/// Builds a window from one (main or overflowing) encoding.
fn window_from(example: usize, window: usize, e: &Encoding) -> Result<QaWindow> {
    let seq = e.get_sequence_ids();
    let offsets = e.get_offsets();
    let specials = e.get_special_tokens_mask();
    let context_offsets: Vec<Option<(usize, usize)>> = (0..e.len())
        .map(|i| (seq[i] == Some(1) && specials[i] == 0).then_some(offsets[i]))
        .collect();
    if !context_offsets.iter().any(Option::is_some) {
        return Err(Error::Tokenizer(format!(
            "example {example}: window {window} holds no context token"
        )));
    }
    // the first special token is the [CLS] / <s> of the pair (0 for BERT and RoBERTa)
    let cls_index = specials.iter().position(|&s| s == 1).unwrap_or(0);
    Ok(QaWindow {
        example,
        window,
        ids: e.get_ids().to_vec(),
        type_ids: e.get_type_ids().to_vec(),
        attention_mask: vec![1; e.len()],
        context_offsets,
        cls_index,
        label: None,
    })
}

/// `prepare_train_features`' labelling of one window for the answer `[start_char, end_char)`.
fn label_window(w: &QaWindow, start_char: usize, end_char: usize) -> SpanLabel {
    let outside = SpanLabel {
        start: w.cls_index,
        end: w.cls_index,
        in_window: false,
    };
    let Some((first, last)) = w.context_range() else {
        return outside;
    };
    let off = |i: usize| w.context_offsets[i].expect("context token");
    if !(off(first).0 <= start_char && off(last).1 >= end_char) {
        return outside;
    }
    // the last context token starting at or before the answer, and the first one ending at
    // or after it (HF's two while loops)
    let start = (first..=last)
        .rev()
        .find(|&i| w.context_offsets[i].is_some_and(|o| o.0 <= start_char))
        .unwrap_or(first);
    let end = (first..=last)
        .find(|&i| w.context_offsets[i].is_some_and(|o| o.1 >= end_char))
        .unwrap_or(last);
    SpanLabel {
        start,
        end: end.max(start),
        in_window: true,
    }
}

/// The substring of `context` between two character offsets (`None` when out of range).
pub fn char_slice(context: &str, start_char: usize, end_char: usize) -> Option<&str> {
    if start_char > end_char {
        return None;
    }
    let mut bytes = context
        .char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(context.len()));
    let start = bytes.nth(start_char)?;
    let end = if end_char == start_char {
        start
    } else {
        bytes.nth(end_char - start_char - 1)?
    };
    context.get(start..end)
}

/// Gold start and end positions of the rows of a batch.
pub type SpanPositions = (Vec<usize>, Vec<usize>);

/// Pads windows on the right into a batch (ids, mask, segment ids) with their labels
/// (`None` when any window is unlabelled).
pub fn qa_batch(windows: &[&QaWindow], pad_id: u32) -> Result<(TokenBatch, Option<SpanPositions>)> {
    let seqs: Vec<Vec<u32>> = windows.iter().map(|w| w.ids.clone()).collect();
    let mut batch = TokenBatch::pad(&seqs, pad_id, PaddingSide::Right)?;
    let len = batch.len;
    let mut types = Vec::with_capacity(windows.len() * len);
    for w in windows {
        types.extend_from_slice(&w.type_ids);
        types.extend(std::iter::repeat_n(0, len - w.type_ids.len()));
    }
    batch.token_types = Some(types);
    let labels: Option<Vec<SpanLabel>> = windows.iter().map(|w| w.label).collect();
    let labels = labels.map(|l| {
        (
            l.iter().map(|s| s.start).collect(),
            l.iter().map(|s| s.end).collect(),
        )
    });
    Ok((batch, labels))
}

/// A linear layer from the last hidden state to start and end logits, trained with the
/// prompt.
/// Read from its tensors [`SPAN_HEAD`]; gradients flow back to them.
#[derive(Debug, Clone)]
pub struct SpanHead {
    /// `[hidden, 2]`: column 0 gives start logits, column 1 end logits.
    pub weight: Tensor<2>,
    /// `[2]`.
    pub bias: Tensor<1>,
}

/// Host names of the extractive-QA head.
pub const SPAN_HEAD: HeadNames = HeadNames {
    weight: "span_head.weight",
    bias: "span_head.bias",
};

impl SpanHead {
    /// A head with small deterministic-random weights (seeded) and zero bias.
    pub fn init(hidden: usize, seed: u64, device: &Device) -> Self {
        let w = SPAN_HEAD.fresh(hidden, 2, seed ^ LINEAR_HEAD_SALT, device);
        Self {
            weight: w.weight,
            bias: w.bias,
        }
    }

    /// The initial host tensors of [`SpanHead::init`].
    pub fn initial(hidden: usize, seed: u64) -> Vec<HostTensor> {
        SPAN_HEAD.initial(hidden, 2, seed ^ LINEAR_HEAD_SALT)
    }

    /// The head in `params`, if any (it must have 2 outputs).
    pub fn from_params(params: &Trainables) -> Result<Option<Self>> {
        let Some(w) = SPAN_HEAD.read(params)? else {
            return Ok(None);
        };
        if w.weight.dims()[1] != 2 {
            return Err(Error::Shape(format!(
                "`{}` must have 2 outputs (start, end), got {:?}",
                SPAN_HEAD.weight,
                w.weight.dims()
            )));
        }
        Ok(Some(Self {
            weight: w.weight,
            bias: w.bias,
        }))
    }

    /// Start and end logits, each `[B, T]`, from the last hidden state `[B, T, H]`.
    pub fn forward(&self, last_hidden: Tensor<3>) -> Result<(Tensor<2>, Tensor<2>)> {
        let [b, t, _] = last_hidden.dims();
        let [_, o] = self.weight.dims();
        if o != 2 {
            return Err(Error::Shape(format!(
                "a span head has 2 outputs (start, end), this one {o}"
            )));
        }
        let y = linear_3d(
            last_hidden,
            self.weight.clone(),
            self.bias.clone(),
            "span head",
        )?;
        let start = y.clone().slice([0..b, 0..t, 0..1]).reshape([b, t]);
        let end = y.slice([0..b, 0..t, 1..2]).reshape([b, t]);
        Ok((start, end))
    }
}

/// Mean cross-entropy of `logits` `[B, T]` against one position per row, with positions
/// where `mask` is 0 excluded from the softmax.
fn position_cross_entropy(
    logits: Tensor<2>,
    positions: &[usize],
    mask: Option<&[u8]>,
    what: &str,
) -> Result<Tensor<1>> {
    let [b, t] = logits.dims();
    if positions.len() != b {
        return Err(Error::Shape(format!(
            "{} {what} positions for {b} rows",
            positions.len()
        )));
    }
    if let Some(m) = mask {
        if m.len() != b * t {
            return Err(Error::Shape(format!(
                "a mask of {} values for logits [{b}, {t}]",
                m.len()
            )));
        }
    }
    for (r, &p) in positions.iter().enumerate() {
        if p >= t || mask.is_some_and(|m| m[r * t + p] == 0) {
            return Err(Error::InvalidInput(format!(
                "row {r}: {what} position {p} is not a real token of the {t} positions"
            )));
        }
    }
    let device = logits.device();
    let logits = match mask {
        Some(m) => {
            let add = m
                .iter()
                .map(|&v| if v == 0 { -1e9f32 } else { 0.0 })
                .collect();
            logits + float_tensor(add, [b, t], &device)
        }
        None => logits,
    };
    let idx: Tensor<2, Int> = int_tensor(
        positions.iter().map(|&p| p as i64).collect(),
        [b, 1],
        &device,
    );
    Ok(activation::log_softmax(logits, 1)
        .gather(1, idx)
        .mean()
        .neg())
}

/// `run_qa`'s loss: `(CE(start_logits, starts) + CE(end_logits, ends)) / 2`, each the mean
/// over the batch rows. `mask` (row-major `[B, T]`, 1 = real token) keeps padding out of the
/// softmax; `None` uses every position, as HF does.
///
/// Errors: logits of different shapes, position lists that do not match the rows, or a gold
/// position that is past the row or on padding.
pub fn span_loss(
    start_logits: Tensor<2>,
    end_logits: Tensor<2>,
    starts: &[usize],
    ends: &[usize],
    mask: Option<&[u8]>,
) -> Result<Tensor<1>> {
    if start_logits.dims() != end_logits.dims() {
        return Err(Error::Shape(format!(
            "start logits {:?} and end logits {:?} differ",
            start_logits.dims(),
            end_logits.dims()
        )));
    }
    let s = position_cross_entropy(start_logits, starts, mask, "start")?;
    let e = position_cross_entropy(end_logits, ends, mask, "end")?;
    Ok((s + e).div_scalar(2.0))
}

/// How spans are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Candidate start and end tokens per window (the highest logits); `run_qa`: 20.
    pub n_best: usize,
    /// Longest answer in tokens (`end - start + 1`); `run_qa`: 30.
    pub max_answer_len: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            n_best: 20,
            max_answer_len: 30,
        }
    }
}

/// A decoded answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanPrediction {
    /// The answer: the context between the start token's first and the end token's last
    /// character.
    pub text: String,
    /// Character offset of the answer in the context.
    pub start_char: usize,
    /// Character offset just past the answer.
    pub end_char: usize,
    /// `start_logit + end_logit`.
    pub score: f32,
    /// Which window (index among the example's windows) it comes from.
    pub window: usize,
    /// Start token in that window.
    pub start_token: usize,
    /// End token (inclusive) in that window.
    pub end_token: usize,
}

/// Indices of the `n` largest values, largest first (lower index first on ties; NaN last).
fn top_n(values: &[f32], n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| {
        values[b]
            .partial_cmp(&values[a])
            .unwrap_or_else(|| values[a].is_nan().cmp(&values[b].is_nan()))
            .then(a.cmp(&b))
    });
    idx.truncate(n);
    idx
}

/// The best span of one example over its windows; `logits[k]` holds the start and end logits
/// of `windows[k]` (at least as many as the window has tokens; more, e.g. padding, are
/// ignored). `None` when no candidate pair is valid (HF then answers the empty string).
///
/// Errors: a logits list that does not match the windows, or logits shorter than a window.
pub fn best_span(
    context: &str,
    windows: &[&QaWindow],
    logits: &[(&[f32], &[f32])],
    opts: &DecodeOptions,
) -> Result<Option<SpanPrediction>> {
    if windows.len() != logits.len() {
        return Err(Error::Shape(format!(
            "{} windows but {} logit pairs",
            windows.len(),
            logits.len()
        )));
    }
    let mut best: Option<SpanPrediction> = None;
    for (w, (start_logits, end_logits)) in windows.iter().zip(logits) {
        let n = w.ids.len();
        if start_logits.len() < n || end_logits.len() < n {
            return Err(Error::Shape(format!(
                "window {} has {n} tokens but {} start and {} end logits",
                w.window,
                start_logits.len(),
                end_logits.len()
            )));
        }
        let (start_logits, end_logits) = (&start_logits[..n], &end_logits[..n]);
        let starts = top_n(start_logits, opts.n_best);
        let ends = top_n(end_logits, opts.n_best);
        for &s in &starts {
            for &e in &ends {
                let (Some(so), Some(eo)) = (w.context_offsets[s], w.context_offsets[e]) else {
                    continue;
                };
                if e < s || e - s + 1 > opts.max_answer_len {
                    continue;
                }
                let score = start_logits[s] + end_logits[e];
                if best.as_ref().is_some_and(|b| b.score >= score) {
                    continue;
                }
                let Some(text) = char_slice(context, so.0, eo.1) else {
                    return Err(Error::InvalidInput(format!(
                        "window {} offsets {}..{} do not fit the context",
                        w.window, so.0, eo.1
                    )));
                };
                best = Some(SpanPrediction {
                    text: text.to_string(),
                    start_char: so.0,
                    end_char: eo.1,
                    score,
                    window: w.window,
                    start_token: s,
                    end_token: e,
                });
            }
        }
    }
    Ok(best)
}

/// The best span of every example from the logits of all windows (`start_logits[k]` and
/// `end_logits[k]` belong to `windows[k]`, which must come from encoding `examples`): one
/// prediction per example, in order (`None` where no valid span exists).
pub fn decode_predictions(
    examples: &[QaExample],
    windows: &[QaWindow],
    start_logits: &[Vec<f32>],
    end_logits: &[Vec<f32>],
    opts: &DecodeOptions,
) -> Result<Vec<Option<SpanPrediction>>> {
    if windows.len() != start_logits.len() || windows.len() != end_logits.len() {
        return Err(Error::Shape(format!(
            "{} windows but {} start and {} end logit rows",
            windows.len(),
            start_logits.len(),
            end_logits.len()
        )));
    }
    let mut per_example: Vec<Vec<usize>> = vec![Vec::new(); examples.len()];
    for (k, w) in windows.iter().enumerate() {
        per_example
            .get_mut(w.example)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "window {k} belongs to example {} of {}",
                    w.example,
                    examples.len()
                ))
            })?
            .push(k);
    }
    examples
        .iter()
        .zip(per_example)
        .map(|(ex, ks)| {
            let ws: Vec<&QaWindow> = ks.iter().map(|&k| &windows[k]).collect();
            let ls: Vec<(&[f32], &[f32])> = ks
                .iter()
                .map(|&k| (start_logits[k].as_slice(), end_logits[k].as_slice()))
                .collect();
            best_span(&ex.context, &ws, &ls, opts)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_slice_counts_characters() {
        let s = "a–b c";
        assert_eq!(char_slice(s, 0, 3), Some("a–b"));
        assert_eq!(char_slice(s, 2, 2), Some(""));
        assert_eq!(char_slice(s, 4, 5), Some("c"));
        assert_eq!(char_slice(s, 4, 6), None);
        assert_eq!(char_slice(s, 3, 2), None);
    }

    #[test]
    fn top_n_orders_by_value_then_index() {
        assert_eq!(top_n(&[1.0, 3.0, 3.0, f32::NAN, 2.0], 4), vec![1, 2, 4, 0]);
    }

    fn window(offsets: Vec<Option<(usize, usize)>>) -> QaWindow {
        let n = offsets.len();
        QaWindow {
            example: 0,
            window: 0,
            ids: vec![0; n],
            type_ids: vec![0; n],
            attention_mask: vec![1; n],
            context_offsets: offsets,
            cls_index: 0,
            label: None,
        }
    }

    #[test]
    fn labels_follow_run_qa() {
        // [CLS] q [SEP] "ab" "cd" "ef" [SEP] over context "ab cd ef"
        let w = window(vec![
            None,
            None,
            None,
            Some((0, 2)),
            Some((3, 5)),
            Some((6, 8)),
            None,
        ]);
        let l = label_window(&w, 3, 8);
        assert_eq!((l.start, l.end, l.in_window), (4, 5, true));
        // an answer starting inside a token still starts at that token
        let l = label_window(&w, 4, 5);
        assert_eq!((l.start, l.end), (4, 4));
        // not covered by the window
        let w2 = window(vec![None, Some((0, 2)), Some((3, 5)), None]);
        let l = label_window(&w2, 3, 8);
        assert_eq!((l.start, l.end, l.in_window), (0, 0, false));
    }
}
