//! One predictor for every task: a trained adapter on a shared model, which scores and
//! predicts a data file (sentences, tagged sentences or questions) the way its task reads it.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;
use serde_json::json;

use super::mixed::TemplatePrefix;
use super::nlu::{qa_json, read_questions, read_tagged, tagging_json};
use super::{check_params, load_params, pad_id_of, Prepared};
use crate::adapter::{Adapter, AdapterConfig};
use crate::backbone::layers::to_vec;
use crate::backbone::PaddingSide;
use crate::data::squad::QaExample;
use crate::data::{length_sorted_batches, read_examples, DataSpec, Example};
use crate::generate::{continue_with, GenerateOptions};
use crate::method::unfreeze::effective_backbone;
use crate::method::AdapterHooks;
use crate::metrics::classification::{accuracy, macro_f1};
use crate::model::Model;
use crate::params::Trainables;
use crate::prompt::EncodedPrompt;
use crate::task::batch::collate;
use crate::task::classification::{evaluate, label_logits_after, predictions, Evaluation};
use crate::task::extractive_qa::{QaEncoder, SpanPrediction};
use crate::task::generation::GenerationEncoder;
use crate::task::nlu::{evaluate_qa_observed, evaluate_tagging_observed};
use crate::task::shared_prefix::SharedPrefix;
use crate::task::tagging::TagEncoder;
use crate::task::TaskKind;
use crate::{Error, Result};
use std::collections::BTreeMap;

/// The hooks of `params` on the model's own weights: everything the adapter changes, BitFit's
/// biases as per-row deltas included; `None` when it changes other backbone weights (full
/// fine-tuning), whose rows then need a backbone of their own.
fn shared_hooks(params: &Trainables, model: &Model) -> Result<Option<AdapterHooks>> {
    let params = burn::module::Module::valid(params);
    let bias_deltas = if params.has_prefix(crate::method::unfreeze::PREFIX) {
        match crate::method::unfreeze::bias_deltas(&params, &model.backbone)? {
            Some(deltas) => Some(deltas),
            None => return Ok(None),
        }
    } else {
        None
    };
    let mut hooks = AdapterHooks::of(&params, &model.backbone.info())?;
    hooks.bias_deltas = bias_deltas;
    Ok(Some(hooks))
}

/// What [`Predictor::predict`] says about one example.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Arg-max label index.
    pub label: usize,
    /// Softmax over the labels.
    pub scores: Vec<f32>,
    /// Raw label logits, before the softmax: with a verbalizer, the LM logits of the label
    /// words' first tokens at the answer position (a label with several words: their mean);
    /// with a head, its outputs.
    pub logits: Vec<f32>,
}

/// What [`Predictor::run`] gives for a data file, whatever the task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRun {
    /// The task's scores against the file's gold labels, tags or answers, with the number of
    /// items and the throughput; `None` when the file holds no gold (unlabelled sentences).
    pub scores: Option<serde_json::Value>,
    /// One JSON object per sentence or question, in file order: classification gives the
    /// fields, the label, the scores and the logits by label; tagging the words, gold and
    /// predicted tags; QA the id, question, answer text, start character and score.
    pub lines: Vec<serde_json::Value>,
    /// What the caller should hear about (inputs cut at `max_len`, say).
    pub warnings: Vec<String>,
}

/// A trained adapter on a model, which other predictors may share, ready to score and
/// predict examples of its task.
pub struct Predictor {
    model: Arc<Model>,
    config: AdapterConfig,
    params: Trainables,
    /// The classification template and verbalizer (or head), for a classification adapter.
    classification: Option<Prepared>,
    /// What the adapter puts into the backbone's hooks, computed once (a prefix's MLP run,
    /// its keys and values folded), when it needs no backbone copy of its own: what lets its
    /// rows share a forward pass with other adapters' ([`super::mixed::classify_mixed`]).
    hooks: Option<AdapterHooks>,
    /// A decoder classifier's constant prompt start (soft prompt and leading template words)
    /// run once, for mixed batches.
    template_prefix: Option<TemplatePrefix>,
    /// A tagging, QA or generation adapter's input encoder, built once (each holds its own
    /// tokenizer copy, set for its task: building one per request cost a tokenizer clone).
    encoder: Option<TaskEncoder>,
}

/// The input encoder of an adapter's task, when it is not classification's [`Prepared`].
enum TaskEncoder {
    Tag(TagEncoder),
    Qa(QaEncoder),
    Generation(GenerationEncoder),
}

impl TaskEncoder {
    /// The encoder `config`'s task reads its inputs with on `model` (`params` give a
    /// generation adapter's prefix lengths); `None` for classification.
    fn of(config: &AdapterConfig, model: &Model, params: &Trainables) -> Result<Option<Self>> {
        Ok(match (config.task, &config.generation) {
            (TaskKind::Classification, _) => None,
            (TaskKind::TokenClassification, _) => Some(Self::Tag(TagEncoder::new(
                &model.tokenizer,
                &config.labels,
                config.max_len,
            )?)),
            (TaskKind::QuestionAnswering, _) => Some(Self::Qa(QaEncoder::new(
                &model.tokenizer,
                config.max_len,
                config.qa.unwrap_or_default().doc_stride,
            )?)),
            (TaskKind::Generation, Some(g)) => {
                Some(Self::Generation(super::generation::generation_encoder(
                    model,
                    &config.template,
                    g,
                    config.max_len,
                    super::generation::prefix_lens(params, &model.backbone)?,
                )?))
            }
            (TaskKind::Generation, None) => {
                return Err(Error::InvalidInput(
                    "a generation adapter's config needs its `generation` settings".into(),
                ))
            }
        })
    }
}

impl Predictor {
    /// Loads `adapter_dir` onto `model_spec` (default: the model it was trained on).
    pub fn load(adapter_dir: &Path, model_spec: Option<&str>, device: &Device) -> Result<Self> {
        let adapter = Adapter::load(adapter_dir)?;
        let base = &adapter.config.base_model;
        let model = match (model_spec, Model::load(model_spec.unwrap_or(base), device)) {
            (_, Ok(model)) => model,
            // a relative path is relative to where training ran, not to the adapter
            (None, Err(e)) if Path::new(base).is_relative() && !Path::new(base).exists() => {
                return Err(Error::InvalidInput(format!(
                    "the adapter's base model `{base}` cannot be loaded from here ({e}); a \
                     relative path is relative to where the adapter was trained: give the \
                     model with --model PATH"
                )))
            }
            (_, Err(e)) => return Err(e),
        };
        Self::with_model(adapter, Arc::new(model), device)
    }

    /// Puts `adapter` on a loaded model, which other predictors may share.
    pub fn with_model(adapter: Adapter, model: Arc<Model>, device: &Device) -> Result<Self> {
        adapter.check_base(&model.backbone, &model.tokenizer)?;
        let c = &adapter.config;
        let classification = match c.task {
            TaskKind::Classification => {
                let mut prepared = Prepared::new(
                    model.clone(),
                    &c.template,
                    c.max_len,
                    Some(c.padding),
                    c.readout,
                    c.verbalizer.as_ref(),
                    &c.labels,
                )?;
                prepared.pooling = c.pooling;
                Some(prepared)
            }
            TaskKind::TokenClassification | TaskKind::QuestionAnswering | TaskKind::Generation => {
                None
            }
        };
        let params = load_params(&adapter.params, &model.backbone, device)?;
        let hooks = shared_hooks(&params, &model)?;
        let template_prefix = match (&classification, &hooks) {
            (Some(prepared), Some(hooks)) => TemplatePrefix::of(prepared, &params, hooks)?,
            _ => None,
        };
        let encoder = TaskEncoder::of(&adapter.config, &model, &params)?;
        Ok(Self {
            model,
            config: adapter.config,
            params,
            classification,
            hooks,
            template_prefix,
            encoder,
        })
    }

    /// The task the adapter was trained for.
    pub fn task(&self) -> TaskKind {
        self.config.task
    }

    /// Class names (classification) or tag names (token classification), in index order;
    /// empty for QA.
    pub fn labels(&self) -> &[String] {
        &self.config.labels
    }

    /// The adapter's settings.
    pub fn config(&self) -> &AdapterConfig {
        &self.config
    }

    /// The trained values.
    pub fn params(&self) -> &Trainables {
        &self.params
    }

    /// Replaces the trained values (a checkpoint's, say), checked against the model as
    /// loading checks them.
    pub fn set_params(&mut self, params: Trainables) -> Result<()> {
        check_params(&params, &self.model.backbone)?;
        self.hooks = shared_hooks(&params, &self.model)?;
        self.template_prefix = match (&self.classification, &self.hooks) {
            (Some(prepared), Some(hooks)) => TemplatePrefix::of(prepared, &params, hooks)?,
            _ => None,
        };
        self.encoder = TaskEncoder::of(&self.config, &self.model, &params)?;
        self.params = params;
        Ok(())
    }

    /// The shared model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The source encoder of a generation adapter.
    pub fn generation_encoder(&self) -> Result<&GenerationEncoder> {
        match &self.encoder {
            Some(TaskEncoder::Generation(e)) => Ok(e),
            _ => Err(self.not_a(TaskKind::Generation)),
        }
    }

    /// The word encoder of a tagging adapter.
    pub(crate) fn tag_encoder(&self) -> Result<&TagEncoder> {
        match &self.encoder {
            Some(TaskEncoder::Tag(e)) => Ok(e),
            _ => Err(self.not_a(TaskKind::TokenClassification)),
        }
    }

    /// The question/context encoder of an extractive-QA adapter.
    fn qa_encoder(&self) -> Result<&QaEncoder> {
        match &self.encoder {
            Some(TaskEncoder::Qa(e)) => Ok(e),
            _ => Err(self.not_a(TaskKind::QuestionAnswering)),
        }
    }

    fn not_a(&self, wanted: TaskKind) -> Error {
        Error::InvalidInput(format!(
            "this is a {:?} adapter, not a {wanted:?} adapter",
            self.config.task
        ))
    }

    /// Generates for one source (the fields of the adapter's source template) under a
    /// generation adapter, handing each new token to `on_token` as it is chosen; returns the
    /// new tokens (its [`GenerationEncoder::decode`] gives the text, cut at stop strings).
    pub fn generate_streaming(
        &self,
        fields: &BTreeMap<String, String>,
        opts: &GenerateOptions,
        on_token: &mut dyn FnMut(u32) -> Result<()>,
    ) -> Result<Vec<u32>> {
        let encoder = self.generation_encoder()?;
        let source = encoder.encode_source(fields)?;
        // the hooks computed at load run on the shared weights; an adapter that brings weights
        // of its own (full fine-tuning) runs on a copy holding them
        let own;
        let (backbone, hooks) = match &self.hooks {
            Some(hooks) => (std::borrow::Cow::Borrowed(&self.model.backbone), hooks),
            None => {
                let params = burn::module::Module::valid(&self.params);
                let backbone = effective_backbone(&params, &self.model.backbone)?;
                own = AdapterHooks::of(&params, &backbone.info())?;
                (backbone, &own)
            }
        };
        continue_with(
            &backbone,
            hooks,
            &source.ids,
            &source.soft_positions,
            opts,
            on_token,
        )
    }

    /// The hooks computed at load time, when the adapter can run on the shared weights (all but
    /// full fine-tuning).
    pub(crate) fn shared_hooks(&self) -> Option<&AdapterHooks> {
        self.hooks.as_ref()
    }

    /// How many leading prompt tokens (soft prompt and template words) were run once at load
    /// for mixed batches (0: none).
    pub fn cached_prompt_tokens(&self) -> usize {
        self.template_prefix.as_ref().map_or(0, TemplatePrefix::len)
    }

    /// The cached start of the adapter's prompts, when it has one.
    pub(crate) fn template_prefix(&self) -> Option<&TemplatePrefix> {
        self.template_prefix.as_ref()
    }

    /// The template and verbalizer (or head) of a classification adapter.
    pub(crate) fn prepared(&self) -> Option<&Prepared> {
        self.classification.as_ref()
    }

    /// The fields a classification or generation adapter's source template reads.
    pub fn fields(&self) -> Result<Vec<String>> {
        let template = crate::prompt::Template::parse(&self.config.template)?;
        Ok(template.fields().into_iter().map(str::to_string).collect())
    }

    /// An error when a classification input is longer than the adapter reads (`predict`
    /// cuts its longest field instead): for a server that refuses what it would not read.
    pub fn check_length(&self, fields: &BTreeMap<String, String>) -> Result<()> {
        let prepared = self.classifier("check_length")?;
        match prepared.encoder.overflow(fields)? {
            Some(n) => Err(Error::InvalidInput(format!(
                "the input makes a prompt of {n} tokens; this adapter reads at most {}",
                prepared.encoder.max_len()
            ))),
            None => Ok(()),
        }
    }

    /// Tags sentences, each a list of words, with a token-classification adapter: one tag per
    /// word (words past `max_len` are tagged O, as `predict` tags them), and per sentence
    /// whether it was cut.
    pub fn tag(
        &self,
        sentences: &[Vec<String>],
        batch_size: usize,
    ) -> Result<(Vec<Vec<String>>, Vec<bool>)> {
        self.require(TaskKind::TokenClassification)?;
        let encoder = self.tag_encoder()?;
        let enc = sentences
            .iter()
            .map(|s| encoder.encode_words(s))
            .collect::<Result<Vec<_>>>()?;
        let e = evaluate_tagging_observed(
            &self.model.backbone,
            &self.params,
            encoder,
            &enc,
            None,
            pad_id_of(&self.model),
            batch_size.max(1),
            &mut |_, _| {},
        )?;
        Ok((e.tags, enc.iter().map(|e| e.truncated).collect()))
    }

    /// Answers questions about their contexts with an extractive-QA adapter: the best span of
    /// each (`None`: no valid span). The questions' gold answers are not read.
    pub fn answer(
        &self,
        questions: &[QaExample],
        batch_size: usize,
    ) -> Result<Vec<Option<SpanPrediction>>> {
        self.require(TaskKind::QuestionAnswering)?;
        let qa = self.config.qa.unwrap_or_default();
        let encoder = self.qa_encoder()?;
        let windows = encoder.encode_examples(questions)?;
        let e = evaluate_qa_observed(
            &self.model.backbone,
            &self.params,
            questions,
            &windows,
            &qa.decode(),
            pad_id_of(&self.model),
            batch_size.max(1),
            false,
            &mut |_, _| {},
        )?;
        Ok(e.answers)
    }

    /// An error unless the adapter was trained for `task`.
    fn require(&self, task: TaskKind) -> Result<()> {
        if self.config.task != task {
            return Err(self.not_a(task));
        }
        Ok(())
    }

    /// The encoder of a classification adapter.
    fn classifier(&self, what: &str) -> Result<&Prepared> {
        self.classification.as_ref().ok_or_else(|| {
            Error::InvalidInput(format!(
                "{what} reads labelled sentences; this is a {:?} adapter: use Predictor::run",
                self.config.task
            ))
        })
    }

    /// Scores classification examples (gold labels used for metrics when all are present).
    pub fn evaluate(&self, examples: &[Example], batch_size: usize) -> Result<Evaluation> {
        let prepared = self.classifier("evaluate")?;
        let (prompts, gold) = prepared.encode(examples)?;
        evaluate(
            &prepared.task(),
            &self.params,
            &prompts,
            gold.as_deref(),
            batch_size,
        )
    }

    /// Per classification example: the arg-max label, the softmax scores and the raw label
    /// logits. Scored as [`Predictor::evaluate`] scores (length-sorted batches, the shared
    /// prefix of a decoder's prompts run once).
    pub fn predict(&self, examples: &[Example], batch_size: usize) -> Result<Vec<Prediction>> {
        self.predict_observed(examples, batch_size, &mut |_, _| {})
    }

    /// [`Predictor::predict`], telling `progress` after each batch how many examples of how
    /// many are scored.
    pub fn predict_observed(
        &self,
        examples: &[Example],
        batch_size: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<Prediction>> {
        let prepared = self.classifier("predict")?;
        let (prompts, _) = prepared.encode(examples)?;
        if prompts.is_empty() {
            return Err(Error::InvalidInput(
                "nothing to predict: no examples".into(),
            ));
        }
        let task = prepared.task();
        let params = burn::module::Module::valid(&self.params);
        let lengths: Vec<usize> = prompts.iter().map(|p| p.ids.len()).collect();
        let mut out: Vec<Option<Prediction>> = vec![None; prompts.len()];
        let mut done = 0;
        for idx in length_sorted_batches(&lengths, batch_size.max(1)) {
            let refs: Vec<&EncodedPrompt> = idx.iter().map(|&i| &prompts[i]).collect();
            let shared = match task.verbalizer {
                Some(_) => SharedPrefix::compute(task.backbone, &params, &refs)?,
                None => None,
            };
            let batch = match &shared {
                Some(s) => {
                    let rests: Vec<EncodedPrompt> = refs.iter().map(|p| s.rest(p)).collect();
                    let rest_refs: Vec<&EncodedPrompt> = rests.iter().collect();
                    collate(&rest_refs, None, task.pad_id, PaddingSide::Right)?
                }
                None => collate(&refs, None, task.pad_id, task.padding)?,
            };
            let logits = label_logits_after(
                task.backbone,
                task.verbalizer,
                task.num_labels,
                &params,
                &batch,
                shared.as_ref(),
                task.pooling,
            )?;
            let raw = to_vec(logits.clone());
            let (labels, scores) = predictions(logits);
            let rows = raw.chunks(task.num_labels.max(1));
            for (((i, label), scores), row) in idx.into_iter().zip(labels).zip(scores).zip(rows) {
                out[i] = Some(Prediction {
                    label,
                    scores,
                    logits: row.to_vec(),
                });
                done += 1;
            }
            progress(done, prompts.len());
        }
        out.into_iter()
            .map(|p| {
                p.ok_or_else(|| Error::Internal("an example was left out of every batch".into()))
            })
            .collect()
    }

    /// Reads `spec` as the adapter's task reads data (labelled sentences, a CoNLL file, a
    /// SQuAD file), predicts every item in one pass and scores the predictions against the
    /// gold the file holds.
    pub fn run(&self, spec: &DataSpec, batch_size: usize) -> Result<TaskRun> {
        self.run_observed(spec, batch_size, &mut |_, _| {})
    }

    /// [`Predictor::run`], telling `progress` after each batch how many items (examples,
    /// sentences, QA windows) of how many are done.
    pub fn run_observed(
        &self,
        spec: &DataSpec,
        batch_size: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<TaskRun> {
        let batch_size = batch_size.max(1);
        let c = &self.config;
        let backbone = &self.model.backbone;
        match c.task {
            TaskKind::Classification => {
                let examples = read_examples(spec, &c.labels)?;
                let started = Instant::now();
                let preds = self.predict_observed(&examples, batch_size, progress)?;
                let rate = examples.len() as f64 / started.elapsed().as_secs_f64().max(1e-9);
                let by_label = |values: &[f32]| -> serde_json::Map<String, serde_json::Value> {
                    c.labels
                        .iter()
                        .zip(values)
                        .map(|(l, v)| (l.clone(), json!(v)))
                        .collect()
                };
                let lines = examples
                    .iter()
                    .zip(&preds)
                    .map(|(e, p)| {
                        json!({
                            "fields": e.fields,
                            "label": c.labels[p.label],
                            "scores": by_label(&p.scores),
                            "logits": by_label(&p.logits),
                        })
                    })
                    .collect();
                let gold: Option<Vec<usize>> = examples.iter().map(|e| e.label).collect();
                let scores = gold.map(|gold| {
                    let pred: Vec<usize> = preds.iter().map(|p| p.label).collect();
                    json!({
                        "examples": examples.len(),
                        "accuracy": accuracy(&pred, &gold),
                        "macro_f1": macro_f1(&pred, &gold, c.labels.len()),
                        "examples_per_second": rate,
                    })
                });
                Ok(TaskRun {
                    scores,
                    lines,
                    warnings: Vec::new(),
                })
            }
            TaskKind::TokenClassification => {
                let encoder = self.tag_encoder()?;
                let gold = read_tagged(spec, Some(&c.labels))?;
                let enc = gold
                    .iter()
                    .map(|s| encoder.encode_words(&s.tokens))
                    .collect::<Result<Vec<_>>>()?;
                let e = evaluate_tagging_observed(
                    backbone,
                    &self.params,
                    encoder,
                    &enc,
                    Some(&gold),
                    pad_id_of(&self.model),
                    batch_size,
                    progress,
                )?;
                // words past max_len get no prediction of their own (tagged O): say so
                let lines = gold
                    .iter()
                    .zip(&e.tags)
                    .zip(&enc)
                    .map(|((s, t), enc)| {
                        json!({ "tokens": s.tokens, "gold": s.tags, "tags": t, "truncated": enc.truncated })
                    })
                    .collect();
                let truncated = enc.iter().filter(|e| e.truncated).count();
                let scores = e.scores.is_some().then(|| {
                    let mut s = tagging_json(&e);
                    s["truncated_sentences"] = json!(truncated);
                    s
                });
                Ok(TaskRun {
                    scores,
                    lines,
                    warnings: (truncated > 0)
                        .then(|| {
                            format!(
                                "{truncated} sentence(s) longer than max_len = {}: their words \
                                 past it are tagged O (lines marked \"truncated\")",
                                c.max_len
                            )
                        })
                        .into_iter()
                        .collect(),
                })
            }
            TaskKind::QuestionAnswering => {
                let qa = c.qa.unwrap_or_default();
                let encoder = self.qa_encoder()?;
                let questions = read_questions(spec)?;
                let windows = encoder.encode_examples(&questions)?;
                let e = evaluate_qa_observed(
                    backbone,
                    &self.params,
                    &questions,
                    &windows,
                    &qa.decode(),
                    pad_id_of(&self.model),
                    batch_size,
                    true,
                    progress,
                )?;
                let lines = questions
                    .iter()
                    .zip(&e.answers)
                    .map(|(q, a)| {
                        json!({
                            "id": q.id,
                            "question": q.question,
                            "answer": a.as_ref().map(|a| a.text.clone()).unwrap_or_default(),
                            "start_char": a.as_ref().map(|a| a.start_char),
                            "score": a.as_ref().map(|a| a.score),
                        })
                    })
                    .collect();
                let scores = e.scores.is_some().then(|| qa_json(&e));
                Ok(TaskRun {
                    scores,
                    lines,
                    warnings: Vec::new(),
                })
            }
            TaskKind::Generation => {
                let generation = c.generation.clone().unwrap_or_default();
                let (scores, lines) = super::generation::run_generation(
                    &self.model,
                    &self.params,
                    &c.template,
                    &generation,
                    c.max_len,
                    spec,
                    batch_size,
                    progress,
                )?;
                Ok(TaskRun {
                    scores,
                    lines,
                    warnings: Vec::new(),
                })
            }
        }
    }
}
