//! Token classification (NER with IOB2 tags), as P-Tuning v2 and HF's `run_ner` do it: the
//! words of a [`TaggedSentence`] are encoded as a pre-tokenized sequence with the model's
//! special tokens, only the FIRST sub-token of each word carries the word's label (every
//! other position is ignored by the loss, HF's `-100`), and predictions are read back at the
//! same first sub-tokens, one tag per word, ready for [`crate::metrics::span::span_scores`].
//!
//! [`TokenTaggingHead`] maps the last hidden state `[B, T, H]` to tag logits `[B, T, tags]`;
//! [`masked_cross_entropy`] is the mean cross-entropy over the labelled positions only.
//! Shapes and label ids are checked on the host before any tensor op runs: bad input is an
//! error, never a panic.

use std::collections::HashMap;

use burn::tensor::{activation, Device, Int, Tensor};
use tokenizers::utils::truncation::{
    truncate_encodings, TruncationDirection, TruncationParams, TruncationStrategy,
};
use tokenizers::{PostProcessor, Tokenizer};

use super::head::HeadNames;
use crate::backbone::layers::{float_tensor, int_tensor, to_vec};
use crate::backbone::TokenBatch;
use crate::data::conll::{TaggedSentence, OUTSIDE};
use crate::params::{HostTensor, Trainables};
use crate::prompt::MAX_CHARS_PER_TOKEN;
use crate::{Error, Result};

/// The label id of positions the loss ignores, as PyTorch's `CrossEntropyLoss` default.
pub const IGNORE_INDEX: i64 = -100;

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

/// One encoded sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedTagging {
    /// Token ids, special tokens included (`[CLS] … [SEP]` for BERT).
    pub ids: Vec<u32>,
    /// Segment ids (all 0 for a single sequence).
    pub type_ids: Vec<u32>,
    /// 1 for every token (no padding here; see [`tagging_batch`]).
    pub attention_mask: Vec<u8>,
    /// Per token: the tag id of its word on the word's first sub-token, `None` elsewhere
    /// (special tokens, continuation pieces, and every token when encoding without tags).
    pub labels: Vec<Option<usize>>,
    /// Per token: the index of the word it comes from (`None` for special tokens).
    pub word_ids: Vec<Option<usize>>,
    /// Number of words of the input sentence.
    pub num_words: usize,
    /// True when the sentence was cut at `max_len`: the words whose first sub-token was cut
    /// off get no label and are predicted as `O` by [`TagEncoder::word_tags`].
    pub truncated: bool,
}

impl EncodedTagging {
    /// The labels as HF writes them: the tag id, or [`IGNORE_INDEX`] (-100).
    pub fn label_ids(&self) -> Vec<i64> {
        self.labels
            .iter()
            .map(|l| l.map_or(IGNORE_INDEX, |t| t as i64))
            .collect()
    }

    /// Position of each word's first sub-token (`None` for a word that produced no token or
    /// was truncated away).
    pub fn first_token_of_words(&self) -> Vec<Option<usize>> {
        first_tokens(&self.word_ids, self.num_words)
    }
}

/// Position of the first token of each of `num_words` words.
fn first_tokens(word_ids: &[Option<usize>], num_words: usize) -> Vec<Option<usize>> {
    let mut first = vec![None; num_words];
    for (i, w) in word_ids.iter().enumerate() {
        if let Some(w) = *w {
            if w < num_words && first[w].is_none() {
                first[w] = Some(i);
            }
        }
    }
    first
}

/// Encodes sentences for one tokenizer and tag set.
#[derive(Debug, Clone)]
pub struct TagEncoder {
    /// The tokenizer, without truncation or padding.
    tokenizer: Tokenizer,
    /// Special tokens added around a single sequence.
    specials: usize,
    tags: Vec<String>,
    index: HashMap<String, usize>,
    max_len: usize,
}

impl TagEncoder {
    /// `tags` lists the tag names in id order (e.g. [`crate::data::conll::tag_set`] of the
    /// training file); `max_len` counts the special tokens too.
    ///
    /// Errors: an empty or repeated tag, or a `max_len` that leaves no room beside the
    /// tokenizer's special tokens.
    pub fn new(tokenizer: &Tokenizer, tags: &[String], max_len: usize) -> Result<Self> {
        if tags.is_empty() {
            return Err(Error::InvalidInput(
                "token tagging needs at least one tag".into(),
            ));
        }
        let mut index = HashMap::new();
        for (i, t) in tags.iter().enumerate() {
            if t.is_empty() {
                return Err(Error::InvalidInput(format!("tag {i} is empty")));
            }
            if index.insert(t.clone(), i).is_some() {
                return Err(Error::InvalidInput(format!("tag `{t}` is listed twice")));
            }
        }
        let specials = tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        if max_len <= specials {
            return Err(Error::InvalidInput(format!(
                "max_len {max_len} leaves no room for words beside the {specials} special tokens"
            )));
        }
        // Truncation is done in `encode_words`, not by the tokenizer: tokenizers 0.23.2 takes
        // an early exit when truncation is set on it (see `extractive_qa::QaEncoder::new`);
        // encoding in full and cutting here keeps `truncated` exact.
        let mut tokenizer = tokenizer.clone();
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(tok_err)?;
        Ok(Self {
            tokenizer,
            specials,
            tags: tags.to_vec(),
            index,
            max_len,
        })
    }

    /// The tag names, in id order.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The longest encoding, special tokens included.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The id of `tag`.
    pub fn tag_id(&self, tag: &str) -> Option<usize> {
        self.index.get(tag).copied()
    }

    /// Encodes a tagged sentence: ids, mask, first-sub-token labels and word ids.
    ///
    /// Errors: a sentence whose tags and tokens differ in number, a tag outside the tag set,
    /// or a tokenizer failure.
    pub fn encode(&self, sentence: &TaggedSentence) -> Result<EncodedTagging> {
        if sentence.tags.len() != sentence.tokens.len() {
            return Err(Error::InvalidInput(format!(
                "a sentence has {} tokens but {} tags",
                sentence.tokens.len(),
                sentence.tags.len()
            )));
        }
        let tag_ids = sentence
            .tags
            .iter()
            .map(|t| {
                self.tag_id(t).ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "tag `{t}` is not in the tag set ({})",
                        self.tags.join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut enc = self.encode_words(&sentence.tokens)?;
        for (i, first) in enc.first_token_of_words().into_iter().enumerate() {
            if let Some(p) = first {
                enc.labels[p] = Some(tag_ids[i]);
            }
        }
        Ok(enc)
    }

    /// Encodes words without tags (prediction): every label is `None`.
    pub fn encode_words<S: AsRef<str>>(&self, words: &[S]) -> Result<EncodedTagging> {
        if words.is_empty() {
            return Err(Error::InvalidInput("a sentence without words".into()));
        }
        let num_words = words.len();
        // a sentence or a word far past max_len is cut before it is tokenized (no word is
        // less than one token in real text, nor 64 characters per token), to the same tokens
        let limit = self.max_len.saturating_mul(MAX_CHARS_PER_TOKEN);
        let kept = &words[..num_words.min(limit)];
        let words: Vec<&str> = kept
            .iter()
            .map(|w| {
                let w = w.as_ref();
                match w.char_indices().nth(limit) {
                    Some((end, _)) => &w[..end],
                    None => w,
                }
            })
            .collect();
        let cut_words = kept.len() < num_words;
        let enc = self.tokenizer.encode(words, false).map_err(tok_err)?;
        let room = self.max_len - self.specials;
        let truncated = enc.len() > room || cut_words;
        let params = TruncationParams {
            direction: TruncationDirection::Right,
            max_length: room,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        };
        let (enc, _) = truncate_encodings(enc, None, &params).map_err(tok_err)?;
        let mut enc = self
            .tokenizer
            .post_process(enc, None, true)
            .map_err(tok_err)?;
        enc.take_overflowing();
        let word_ids: Vec<Option<usize>> = enc
            .get_word_ids()
            .iter()
            .zip(enc.get_special_tokens_mask())
            .map(|(w, &special)| {
                if special == 1 {
                    None
                } else {
                    w.map(|w| w as usize)
                }
            })
            .collect();
        if word_ids.iter().flatten().any(|&w| w >= num_words) {
            return Err(Error::Tokenizer(
                "the tokenizer gave a word index beyond the sentence".into(),
            ));
        }
        let n = enc.len();
        Ok(EncodedTagging {
            ids: enc.get_ids().to_vec(),
            type_ids: enc.get_type_ids().to_vec(),
            attention_mask: vec![1; n],
            labels: vec![None; n],
            word_ids,
            num_words,
            truncated,
        })
    }

    /// One tag per word from per-token predicted tag ids (`predicted[i]` for token `i`; it may
    /// be longer than the encoding, e.g. a padded row): each word takes the prediction at its
    /// first sub-token, a word without one (truncated away, or no token at all) gets `O`.
    ///
    /// Errors: fewer predictions than tokens, or a tag id outside the tag set.
    pub fn word_tags(&self, enc: &EncodedTagging, predicted: &[usize]) -> Result<Vec<String>> {
        word_tag_ids(enc, predicted, self.tags.len())?
            .into_iter()
            .map(|t| match t {
                Some(t) => Ok(self.tags[t].clone()),
                None => Ok(OUTSIDE.to_string()),
            })
            .collect()
    }
}

/// One predicted tag id per word (first sub-token), `None` for words without a token; see
/// [`TagEncoder::word_tags`].
pub fn word_tag_ids(
    enc: &EncodedTagging,
    predicted: &[usize],
    num_tags: usize,
) -> Result<Vec<Option<usize>>> {
    if predicted.len() < enc.ids.len() {
        return Err(Error::Shape(format!(
            "{} predictions for a sentence of {} tokens",
            predicted.len(),
            enc.ids.len()
        )));
    }
    enc.first_token_of_words()
        .into_iter()
        .map(|first| match first {
            Some(p) if predicted[p] < num_tags => Ok(Some(predicted[p])),
            Some(p) => Err(Error::InvalidInput(format!(
                "predicted tag id {} at token {p} is outside the {num_tags} tags",
                predicted[p]
            ))),
            None => Ok(None),
        })
        .collect()
}

/// Pads encoded sentences on the right into a batch (ids, mask, segment ids) and the
/// matching row-major `[batch, len]` labels (`None` on padding).
pub fn tagging_batch(
    encoded: &[EncodedTagging],
    pad_id: u32,
) -> Result<(TokenBatch, Vec<Option<usize>>)> {
    let seqs: Vec<Vec<u32>> = encoded.iter().map(|e| e.ids.clone()).collect();
    let mut batch = TokenBatch::pad(&seqs, pad_id, crate::backbone::PaddingSide::Right)?;
    let len = batch.len;
    let mut types = Vec::with_capacity(encoded.len() * len);
    let mut labels = Vec::with_capacity(encoded.len() * len);
    for e in encoded {
        types.extend_from_slice(&e.type_ids);
        types.extend(std::iter::repeat_n(0, len - e.type_ids.len()));
        labels.extend_from_slice(&e.labels);
        labels.extend(std::iter::repeat_n(None, len - e.labels.len()));
    }
    batch.token_types = Some(types);
    Ok((batch, labels))
}

/// A linear layer from the last hidden state to tag logits, trained with the prompt (read
/// from its tensors [`TAG_HEAD`]; gradients flow back to them).
#[derive(Debug, Clone)]
pub struct TokenTaggingHead {
    /// `[hidden, tags]`.
    pub weight: Tensor<2>,
    /// `[tags]`.
    pub bias: Tensor<1>,
}

/// Host names of the token-classification head.
pub const TAG_HEAD: HeadNames = HeadNames {
    weight: "tag_head.weight",
    bias: "tag_head.bias",
};

/// The seed salt of the tagging and span heads' initial weights.
pub(crate) const LINEAR_HEAD_SALT: u64 = 0x7a66;

/// `[B, T, H] x [H, O] + [O]` after checking the widths.
pub(crate) fn linear_3d(
    hidden: Tensor<3>,
    weight: Tensor<2>,
    bias: Tensor<1>,
    what: &str,
) -> Result<Tensor<3>> {
    let [b, t, h] = hidden.dims();
    let [wh, o] = weight.dims();
    if h != wh {
        return Err(Error::Shape(format!(
            "{what}: hidden states are {h} wide, the head expects {wh}"
        )));
    }
    if bias.dims()[0] != o {
        return Err(Error::Shape(format!(
            "{what}: bias has {} values for {o} outputs",
            bias.dims()[0]
        )));
    }
    if b * t == 0 {
        return Err(Error::Shape(format!(
            "{what}: empty hidden states [{b}, {t}, {h}]"
        )));
    }
    let y = hidden.reshape([b * t, h]).matmul(weight) + bias.unsqueeze::<2>();
    Ok(y.reshape([b, t, o]))
}

impl TokenTaggingHead {
    /// A head with small deterministic-random weights (seeded) and zero bias.
    pub fn init(hidden: usize, num_tags: usize, seed: u64, device: &Device) -> Self {
        let w = TAG_HEAD.fresh(hidden, num_tags, seed ^ LINEAR_HEAD_SALT, device);
        Self {
            weight: w.weight,
            bias: w.bias,
        }
    }

    /// The initial host tensors of [`TokenTaggingHead::init`].
    pub fn initial(hidden: usize, num_tags: usize, seed: u64) -> Vec<HostTensor> {
        TAG_HEAD.initial(hidden, num_tags, seed ^ LINEAR_HEAD_SALT)
    }

    /// The head in `params`, if any.
    pub fn from_params(params: &Trainables) -> Result<Option<Self>> {
        Ok(TAG_HEAD.read(params)?.map(|w| Self {
            weight: w.weight,
            bias: w.bias,
        }))
    }

    /// Number of tags.
    pub fn num_tags(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Tag logits `[B, T, tags]` from the last hidden state `[B, T, H]`.
    pub fn forward(&self, last_hidden: Tensor<3>) -> Result<Tensor<3>> {
        linear_3d(
            last_hidden,
            self.weight.clone(),
            self.bias.clone(),
            "token tagging head",
        )
    }
}

/// Mean cross-entropy of `logits` `[B, T, C]` over the positions with a label; `labels` is
/// row-major `[B, T]`, `None` (HF's -100) where the loss ignores the position.
///
/// Errors: labels that do not match `B x T`, a label `>= C`, or no labelled position at all
/// (the mean would be 0/0).
pub fn masked_cross_entropy(logits: Tensor<3>, labels: &[Option<usize>]) -> Result<Tensor<1>> {
    let [b, t, c] = logits.dims();
    if labels.len() != b * t {
        return Err(Error::Shape(format!(
            "{} labels for logits [{b}, {t}, {c}] (expected {})",
            labels.len(),
            b * t
        )));
    }
    if let Some((i, l)) = labels
        .iter()
        .enumerate()
        .find_map(|(i, l)| l.filter(|&l| l >= c).map(|l| (i, l)))
    {
        return Err(Error::InvalidInput(format!(
            "label {l} at position {i} is outside the {c} classes"
        )));
    }
    let count = labels.iter().flatten().count();
    if count == 0 {
        return Err(Error::InvalidInput(
            "no labelled position in the batch: the masked loss is undefined".into(),
        ));
    }
    let device = logits.device();
    let idx: Tensor<2, Int> = int_tensor(
        labels.iter().map(|l| l.unwrap_or(0) as i64).collect(),
        [b * t, 1],
        &device,
    );
    let keep = float_tensor(
        labels
            .iter()
            .map(|l| if l.is_some() { 1.0 } else { 0.0 })
            .collect(),
        [b * t],
        &device,
    );
    let logp = activation::log_softmax(logits.reshape([b * t, c]), 1);
    let picked = logp.gather(1, idx).reshape([b * t]);
    Ok((picked * keep).sum().neg().div_scalar(count as f32))
}

/// Arg-max tag id of every position of `logits` `[B, T, C]`, one vector per row (ties go to
/// the lower id).
pub fn argmax_tags(logits: Tensor<3>) -> Vec<Vec<usize>> {
    let [_, t, c] = logits.dims();
    let values = to_vec(logits);
    if c == 0 || t == 0 {
        return Vec::new();
    }
    values
        .chunks(t * c)
        .map(|row| row.chunks(c).map(argmax).collect())
        .collect()
}

/// Index of the largest value (the first one on ties; NaN never wins).
pub(crate) fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] || values[best].is_nan() {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_tokenizer() -> Tokenizer {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tokenizers/bert-base-uncased/tokenizer.json");
        Tokenizer::from_file(path).expect("fixture tokenizer")
    }

    fn tags() -> Vec<String> {
        ["O", "B-LOC", "B-PER", "I-PER"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn first_subword_carries_the_label() {
        let enc = TagEncoder::new(&words_tokenizer(), &tags(), 64).unwrap();
        let s = TaggedSentence {
            tokens: vec!["Schwarzenegger".into(), "visited".into(), "Zurich".into()],
            tags: vec!["B-PER".into(), "O".into(), "B-LOC".into()],
        };
        let e = enc.encode(&s).unwrap();
        assert!(!e.truncated);
        assert_eq!(e.word_ids.first(), Some(&None));
        assert_eq!(e.word_ids.last(), Some(&None));
        let first = e.first_token_of_words();
        assert_eq!(first[0], Some(1));
        // the long name splits into several pieces; only the first is labelled
        let pieces = e.word_ids.iter().filter(|w| **w == Some(0)).count();
        assert!(pieces > 1, "expected a multi-piece word, got {pieces}");
        for (i, w) in e.word_ids.iter().enumerate() {
            let expect = match *w {
                Some(w) if first[w] == Some(i) => Some(enc.tag_id(&s.tags[w]).unwrap()),
                _ => None,
            };
            assert_eq!(e.labels[i], expect, "token {i}");
        }
        let ids = e.label_ids();
        assert_eq!(ids[0], IGNORE_INDEX);
        assert_eq!(ids[1], 2);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let tk = words_tokenizer();
        assert!(TagEncoder::new(&tk, &[], 8).is_err());
        assert!(TagEncoder::new(&tk, &tags(), 2).is_err());
        let enc = TagEncoder::new(&tk, &tags(), 8).unwrap();
        let bad = TaggedSentence {
            tokens: vec!["a".into()],
            tags: vec!["B-ORG".into()],
        };
        assert!(enc.encode(&bad).is_err());
        let e = enc.encode_words(&["a", "b"]).unwrap();
        assert!(enc.word_tags(&e, &[0, 0]).is_err());
        assert!(enc.word_tags(&e, &[0, 9, 0, 0]).is_err());
    }

    #[test]
    fn argmax_rows() {
        let d = Device::flex();
        let logits = float_tensor(vec![0.0, 1.0, 3.0, 2.0, 5.0, 5.0, 0.0, -1.0], [2, 2, 2], &d);
        assert_eq!(argmax_tags(logits), vec![vec![1, 0], vec![0, 0]]);
    }
}
