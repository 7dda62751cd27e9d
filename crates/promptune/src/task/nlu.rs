//! P-Tuning v2's NLU tasks beside classification: token tagging (NER) and extractive QA.
//! The input is the plain text (no template); the method's deep prompts (prefix tuning), its
//! unfrozen weights (BitFit, full fine-tuning) and a task head are what trains.

use std::collections::HashMap;
use std::time::Instant;

use burn::tensor::Tensor;

use super::batch::batch_seed;
use super::extractive_qa::{
    decode_predictions, qa_batch, span_loss, DecodeOptions, QaWindow, SpanHead, SpanPrediction,
};
use super::tagging::{
    argmax_tags, masked_cross_entropy, tagging_batch, EncodedTagging, TagEncoder, TokenTaggingHead,
};
use super::Objective;
use crate::backbone::layers::{dropout, to_vec};
use crate::backbone::{Backbone, ForwardInput, TokenBatch};
use crate::data::batching::length_sorted_batches;
use crate::data::conll::TaggedSentence;
use crate::data::squad::QaExample;
use crate::method::unfreeze::effective_backbone;
use crate::method::AdapterHooks;
use crate::metrics::span::{span_scores, SpanScores};
use crate::metrics::squad::{evaluate_squad, SquadScores};
use crate::params::Trainables;
use crate::{Error, Result};

/// Last hidden states `[B, T, H]` of `tokens` under the parameters' prefix and unfrozen
/// weights, with training-mode dropout when `dropout` gives a seed. Soft tokens have no place
/// in a template-free input, so a soft prompt or a P-Tuning encoder is refused.
pub fn hidden_states(
    backbone: &Backbone,
    params: &Trainables,
    tokens: TokenBatch,
    dropout: Option<u64>,
) -> Result<Tensor<3>> {
    let backbone = &*effective_backbone(params, backbone)?;
    let info = backbone.info();
    let hooks = AdapterHooks::of(params, &info)?;
    if hooks.soft.is_some() {
        return Err(Error::InvalidInput(
            "token tagging and QA read the plain input: use prefix tuning (deep prompts), BitFit or full fine-tuning, not soft input tokens".into(),
        ));
    }
    let mut input = ForwardInput::new(tokens.clone());
    input.dropout = dropout;
    hooks.apply(&info, &tokens, &[], false, &mut input)?;
    Ok(backbone.forward(&input, None)?.last_hidden)
}

/// Token tagging: masked cross-entropy on first sub-tokens; dev entity F1.
pub struct TaggingObjective<'a> {
    /// The model.
    pub backbone: &'a Backbone,
    /// Tags and sub-token alignment.
    pub encoder: &'a TagEncoder,
    /// Training sentences, encoded with their labels.
    pub train: &'a [EncodedTagging],
    /// Dev sentences (gold tags) and their encodings.
    pub dev: Option<(&'a [TaggedSentence], &'a [EncodedTagging])>,
    /// Padding id.
    pub pad_id: u32,
    /// Batch size for dev scoring.
    pub eval_batch_size: usize,
    /// Train with the model's dropout (also before the head, as HF's token classifiers).
    pub dropout: bool,
}

/// Predicted tags of a tagged corpus.
#[derive(Debug, Clone)]
pub struct TaggingEvaluation {
    /// One tag per word per sentence.
    pub tags: Vec<Vec<String>>,
    /// Strict entity-span scores against the gold tags, when given.
    pub scores: Option<SpanScores>,
    /// Scoring throughput.
    pub sentences_per_second: f64,
}

/// Tags every sentence of `encoded` (word level: each word's first sub-token); scores them
/// against `gold` when given.
pub fn evaluate_tagging(
    backbone: &Backbone,
    params: &Trainables,
    encoder: &TagEncoder,
    encoded: &[EncodedTagging],
    gold: Option<&[TaggedSentence]>,
    pad_id: u32,
    batch_size: usize,
) -> Result<TaggingEvaluation> {
    let quiet = &mut |_, _| {};
    evaluate_tagging_observed(
        backbone, params, encoder, encoded, gold, pad_id, batch_size, quiet,
    )
}

/// [`evaluate_tagging`], telling `progress` after each batch how many sentences of how many
/// are tagged.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_tagging_observed(
    backbone: &Backbone,
    params: &Trainables,
    encoder: &TagEncoder,
    encoded: &[EncodedTagging],
    gold: Option<&[TaggedSentence]>,
    pad_id: u32,
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<TaggingEvaluation> {
    if encoded.is_empty() {
        return Err(Error::InvalidInput("nothing to tag: no sentences".into()));
    }
    let params = burn::module::Module::valid(params);
    let head = TokenTaggingHead::from_params(&params)?.ok_or_else(|| {
        Error::InvalidInput("token tagging needs a tag head in the trained parameters".into())
    })?;
    let start = Instant::now();
    let lengths: Vec<usize> = encoded.iter().map(|e| e.ids.len()).collect();
    let mut tags = vec![Vec::new(); encoded.len()];
    let mut done = 0;
    for idx in length_sorted_batches(&lengths, batch_size.max(1)) {
        let rows: Vec<EncodedTagging> = idx.iter().map(|&i| encoded[i].clone()).collect();
        let (tokens, _) = tagging_batch(&rows, pad_id)?;
        let logits = head.forward(hidden_states(backbone, &params, tokens, None)?)?;
        let n = idx.len();
        for (i, predicted) in idx.into_iter().zip(argmax_tags(logits)) {
            tags[i] = encoder.word_tags(&encoded[i], &predicted)?;
        }
        done += n;
        progress(done, encoded.len());
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let scores = match gold {
        Some(g) => {
            let gold_tags: Vec<&[String]> = g.iter().map(|s| s.tags.as_slice()).collect();
            Some(span_scores(&gold_tags, &tags)?)
        }
        None => None,
    };
    Ok(TaggingEvaluation {
        tags,
        scores,
        sentences_per_second: encoded.len() as f64 / secs,
    })
}

impl Objective for TaggingObjective<'_> {
    fn train_lengths(&self) -> Vec<usize> {
        self.train.iter().map(|e| e.ids.len()).collect()
    }

    fn loss(&self, params: &Trainables, idx: &[usize]) -> Result<Tensor<1>> {
        let head = TokenTaggingHead::from_params(params)?
            .ok_or_else(|| Error::InvalidInput("token tagging needs a tag head".into()))?;
        let rows: Vec<EncodedTagging> = idx.iter().map(|&i| self.train[i].clone()).collect();
        let (tokens, labels) = tagging_batch(&rows, self.pad_id)?;
        let seed = self.dropout.then(|| batch_seed(idx));
        let mut hidden = hidden_states(self.backbone, params, tokens, seed)?;
        if let Some(seed) = seed {
            let p = self.backbone.config().hidden_dropout;
            hidden = dropout(hidden, p, seed ^ 0x7a66);
        }
        masked_cross_entropy(head.forward(hidden)?, &labels)
    }

    fn has_dev(&self) -> bool {
        self.dev.is_some()
    }

    fn dev_metric(&self, params: &Trainables) -> Result<Option<f64>> {
        let Some((gold, encoded)) = self.dev else {
            return Ok(None);
        };
        let eval = evaluate_tagging(
            self.backbone,
            params,
            self.encoder,
            encoded,
            Some(gold),
            self.pad_id,
            self.eval_batch_size,
        )?;
        Ok(eval.scores.map(|s| s.micro.f1))
    }

    fn metric_name(&self) -> &'static str {
        "entity_f1"
    }
}

/// Extractive QA: start/end cross-entropy over windows; dev SQuAD F1.
pub struct QaObjective<'a> {
    /// The model.
    pub backbone: &'a Backbone,
    /// Labelled training windows.
    pub train: &'a [QaWindow],
    /// Dev questions and their windows.
    pub dev: Option<(&'a [QaExample], &'a [QaWindow])>,
    /// Span decoding.
    pub decode: DecodeOptions,
    /// Padding id.
    pub pad_id: u32,
    /// Batch size for dev scoring.
    pub eval_batch_size: usize,
    /// Train with the model's dropout (HF's QA head reads the hidden states undropped).
    pub dropout: bool,
}

/// Answers to a set of questions.
#[derive(Debug, Clone)]
pub struct QaEvaluation {
    /// Best span per question (`None`: no valid span; scored as the empty answer).
    pub answers: Vec<Option<SpanPrediction>>,
    /// Exact match and F1 against the gold answers, when the questions have them.
    pub scores: Option<SquadScores>,
    /// Questions answered per second.
    pub questions_per_second: f64,
}

/// Answers `examples` from their `windows` (as [`super::extractive_qa::QaEncoder`] made
/// them); scores EM/F1 when every example has gold answers and `score` is set.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_qa(
    backbone: &Backbone,
    params: &Trainables,
    examples: &[QaExample],
    windows: &[QaWindow],
    decode: &DecodeOptions,
    pad_id: u32,
    batch_size: usize,
    score: bool,
) -> Result<QaEvaluation> {
    let quiet = &mut |_, _| {};
    evaluate_qa_observed(
        backbone, params, examples, windows, decode, pad_id, batch_size, score, quiet,
    )
}

/// [`evaluate_qa`], telling `progress` after each batch how many windows of how many are read.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_qa_observed(
    backbone: &Backbone,
    params: &Trainables,
    examples: &[QaExample],
    windows: &[QaWindow],
    decode: &DecodeOptions,
    pad_id: u32,
    batch_size: usize,
    score: bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<QaEvaluation> {
    if examples.is_empty() || windows.is_empty() {
        return Err(Error::InvalidInput(
            "nothing to answer: no questions".into(),
        ));
    }
    let params = burn::module::Module::valid(params);
    let head = SpanHead::from_params(&params)?.ok_or_else(|| {
        Error::InvalidInput("extractive QA needs a span head in the trained parameters".into())
    })?;
    let start = Instant::now();
    let lengths: Vec<usize> = windows.iter().map(|w| w.ids.len()).collect();
    let mut starts = vec![Vec::new(); windows.len()];
    let mut ends = vec![Vec::new(); windows.len()];
    let mut done = 0;
    for idx in length_sorted_batches(&lengths, batch_size.max(1)) {
        let rows: Vec<&QaWindow> = idx.iter().map(|&i| &windows[i]).collect();
        let (tokens, _) = qa_batch(&rows, pad_id)?;
        let t = tokens.len;
        let (s, e) = head.forward(hidden_states(backbone, &params, tokens, None)?)?;
        let (s, e) = (to_vec(s), to_vec(e));
        let n = idx.len();
        for (k, i) in idx.into_iter().enumerate() {
            starts[i] = s[k * t..(k + 1) * t].to_vec();
            ends[i] = e[k * t..(k + 1) * t].to_vec();
        }
        done += n;
        progress(done, windows.len());
    }
    let answers = decode_predictions(examples, windows, &starts, &ends, decode)?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let scores = if score {
        let predicted: HashMap<String, String> = examples
            .iter()
            .zip(&answers)
            .map(|(ex, a)| {
                let text = a.as_ref().map(|a| a.text.clone()).unwrap_or_default();
                (ex.id.clone(), text)
            })
            .collect();
        Some(evaluate_squad(examples, &predicted)?)
    } else {
        None
    };
    Ok(QaEvaluation {
        answers,
        scores,
        questions_per_second: examples.len() as f64 / secs,
    })
}

impl Objective for QaObjective<'_> {
    fn train_lengths(&self) -> Vec<usize> {
        self.train.iter().map(|w| w.ids.len()).collect()
    }

    fn loss(&self, params: &Trainables, idx: &[usize]) -> Result<Tensor<1>> {
        let head = SpanHead::from_params(params)?
            .ok_or_else(|| Error::InvalidInput("extractive QA needs a span head".into()))?;
        let rows: Vec<&QaWindow> = idx.iter().map(|&i| &self.train[i]).collect();
        let (tokens, labels) = qa_batch(&rows, self.pad_id)?;
        let (starts, ends) = labels
            .ok_or_else(|| Error::InvalidInput("a training window has no answer label".into()))?;
        let mask = tokens.mask.clone();
        let seed = self.dropout.then(|| batch_seed(idx));
        let (s, e) = head.forward(hidden_states(self.backbone, params, tokens, seed)?)?;
        span_loss(s, e, &starts, &ends, Some(&mask))
    }

    fn has_dev(&self) -> bool {
        self.dev.is_some()
    }

    fn dev_metric(&self, params: &Trainables) -> Result<Option<f64>> {
        let Some((examples, windows)) = self.dev else {
            return Ok(None);
        };
        let eval = evaluate_qa(
            self.backbone,
            params,
            examples,
            windows,
            &self.decode,
            self.pad_id,
            self.eval_batch_size,
            true,
        )?;
        Ok(eval.scores.map(|s| s.f1))
    }

    fn metric_name(&self) -> &'static str {
        "f1"
    }
}
