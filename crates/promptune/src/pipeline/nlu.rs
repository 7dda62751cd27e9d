//! The user journeys of P-Tuning v2's NLU tasks beside classification: token tagging (NER on
//! CoNLL files) and extractive question answering (SQuAD files). The text goes in as it is (no
//! template); what trains is the method's deep prompts (`prefix_tuning`), the backbone weights
//! it unfreezes (`bitfit`, `full`) and a task head.
//!
//! ```toml
//! model = "models/all-minilm-l6-v2"
//! output_dir = "runs/conll-minilm"
//! task = "token_classification"
//! [method]
//! kind = "prefix_tuning"
//! init = { kind = "random" }
//! [data.train]
//! path = "conll2003/train.txt"
//! limit = 2000
//! ```

use std::collections::BTreeSet;

use burn::tensor::Device;
use serde_json::json;

use super::{adapter_config_for, pad_id_of, peak_rss_mib, TaskConfig, TrainReport};
use crate::adapter::Adapter;
use crate::backbone::Backbone;
use crate::data::conll::{read_conll, tag_set, TaggedSentence};
use crate::data::squad::{read_squad, QaExample};
use crate::data::DataSpec;
use crate::method::{self, prefix_tuning, InitContext};
use crate::model::Model;
use crate::params::Trainables;
use crate::task::extractive_qa::{QaEncoder, QaWindow, SpanHead};
use crate::task::nlu::{
    evaluate_qa, evaluate_tagging, QaEvaluation, QaObjective, TaggingEvaluation, TaggingObjective,
};
use crate::task::tagging::{EncodedTagging, TagEncoder, TokenTaggingHead};
use crate::task::{Objective, TaskKind};
use crate::train::trainer::{fit, Quiet, TrainObserver};
use crate::{Error, Result};

/// Sentences of a CoNLL file (the last column holds the tags), the first `limit` of them.
pub fn read_tagged(spec: &DataSpec, known_tags: Option<&[String]>) -> Result<Vec<TaggedSentence>> {
    let mut sentences = read_conll(&spec.path, None, known_tags)?;
    if let Some(n) = spec.limit {
        sentences.truncate(n);
    }
    Ok(sentences)
}

/// Questions of a SQuAD file: those of articles `spec.articles` (file order), the first
/// `limit` of them.
pub fn read_questions(spec: &DataSpec) -> Result<Vec<QaExample>> {
    let all = read_squad(&spec.path)?;
    let mut questions = match spec.articles {
        Some([start, end]) => {
            let mut order: Vec<&str> = Vec::new();
            let mut seen = BTreeSet::new();
            for q in &all {
                if seen.insert(q.title.as_str()) {
                    order.push(q.title.as_str());
                }
            }
            if start >= end || end > order.len() {
                return Err(Error::InvalidInput(format!(
                    "{}: articles = [{start}, {end}] is not a range within its {} articles",
                    spec.path.display(),
                    order.len()
                )));
            }
            let keep: BTreeSet<&str> = order[start..end].iter().copied().collect();
            all.iter()
                .filter(|q| keep.contains(q.title.as_str()))
                .cloned()
                .collect()
        }
        None => all,
    };
    if let Some(n) = spec.limit {
        questions.truncate(n);
    }
    if questions.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{}: no questions selected",
            spec.path.display()
        )));
    }
    Ok(questions)
}

/// Tagging scores as JSON.
pub(super) fn tagging_json(e: &TaggingEvaluation) -> serde_json::Value {
    match &e.scores {
        Some(s) => json!({
            "entity_precision": s.micro.precision,
            "entity_recall": s.micro.recall,
            "entity_f1": s.micro.f1,
            "per_type_f1": s.per_type.iter().map(|(k, v)| (k.clone(), json!(v.f1))).collect::<serde_json::Map<_, _>>(),
            "sentences_per_second": e.sentences_per_second,
        }),
        None => json!({ "sentences_per_second": e.sentences_per_second }),
    }
}

/// QA scores as JSON.
pub(super) fn qa_json(e: &QaEvaluation) -> serde_json::Value {
    match &e.scores {
        Some(s) => json!({
            "exact_match": s.exact_match,
            "f1": s.f1,
            "questions": s.total,
            "unanswered": s.unanswered,
            "questions_per_second": e.questions_per_second,
        }),
        None => json!({ "questions_per_second": e.questions_per_second }),
    }
}

/// The encoder of one task on one model, with its labelled sets.
enum Encoded {
    Tagging {
        encoder: Box<TagEncoder>,
        train: Vec<EncodedTagging>,
        dev: Option<(Vec<TaggedSentence>, Vec<EncodedTagging>)>,
    },
    Qa {
        train: Vec<QaWindow>,
        dev: Option<(Vec<QaExample>, Vec<QaWindow>)>,
    },
}

/// The longest input the model takes beside a prefix of `prefix_len` positions.
fn input_budget(config: &TaskConfig, backbone: &Backbone, prefix_len: usize) -> Result<usize> {
    let max_positions = backbone.config().max_positions;
    if prefix_len > 0 {
        prefix_tuning::check_fits(prefix_len, max_positions)?;
    }
    Ok(config.max_len.min(max_positions - prefix_len))
}

/// Trains a token-tagging or QA task as `config` says (what [`super::run_train`] does for
/// these kinds); writes the adapter to `output_dir/adapter` and the report to
/// `output_dir/results.json`.
pub fn run_train_nlu(config: &TaskConfig, resume: bool, device: &Device) -> Result<TrainReport> {
    train_plain_text(config, resume, device, &mut Quiet)
}

/// [`super::run_train_observed`] for the tasks that read the plain text (tagging, QA).
pub(crate) fn train_plain_text(
    config: &TaskConfig,
    resume: bool,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<TrainReport> {
    config.validate()?;
    let kind = config.method.kind();
    if config.method.fills_soft_slots() {
        return Err(Error::InvalidInput(format!(
            "method `{kind}` fills soft input tokens; a {:?} task reads the plain text: use prefix_tuning (deep prompts, P-Tuning v2), bitfit, full or none",
            config.task
        )));
    }
    let model = Model::load(&config.model, device)?;
    let backbone = &model.backbone;
    let pad_id = pad_id_of(&model);
    let prefix_len = config.method.prefix_len();
    let max_len = input_budget(config, backbone, prefix_len)?;
    let train_spec = config
        .data
        .train
        .as_ref()
        .ok_or_else(|| Error::InvalidInput("[data.train] is missing".into()))?;
    let hidden = backbone.config().hidden_size;
    let seed = config.train.seed;

    let (encoded, head, labels) = match config.task {
        TaskKind::TokenClassification => {
            let train = read_tagged(train_spec, None)?;
            let tags = if config.labels.is_empty() {
                tag_set(&train)
            } else {
                config.labels.clone()
            };
            let encoder = TagEncoder::new(&model.tokenizer, &tags, max_len)?;
            let train_enc = train
                .iter()
                .map(|s| encoder.encode(s))
                .collect::<Result<Vec<_>>>()?;
            let dev = match &config.data.dev {
                Some(spec) => {
                    let gold = read_tagged(spec, Some(&tags))?;
                    let enc = gold
                        .iter()
                        .map(|s| encoder.encode_words(&s.tokens))
                        .collect::<Result<Vec<_>>>()?;
                    Some((gold, enc))
                }
                None => None,
            };
            let head = TokenTaggingHead::initial(hidden, tags.len(), seed);
            let encoded = Encoded::Tagging {
                encoder: Box::new(encoder),
                train: train_enc,
                dev,
            };
            (encoded, head, tags)
        }
        TaskKind::QuestionAnswering => {
            let encoder = QaEncoder::new(&model.tokenizer, max_len, config.qa.doc_stride)?;
            let train = encoder.encode_examples(&read_questions(train_spec)?)?;
            let dev = match &config.data.dev {
                Some(spec) => {
                    let questions = read_questions(spec)?;
                    let windows = encoder.encode_examples(&questions)?;
                    Some((questions, windows))
                }
                None => None,
            };
            let head = SpanHead::initial(hidden, seed);
            (Encoded::Qa { train, dev }, head, Vec::new())
        }
        TaskKind::Classification | TaskKind::Generation => {
            return Err(Error::InvalidInput(format!(
                "{:?} tasks train through pipeline::run_train",
                config.task
            )))
        }
    };

    let mut init = head;
    init.extend(config.method.initial_tensors(&InitContext {
        backbone,
        tokenizer: &model.tokenizer,
        template: None,
        label_words: &[],
        longest_input: max_len,
        seed,
    })?);
    let initial = Trainables::from_host(&init, device)?;
    let trainable_parameters = initial.num_trainable();
    let batch = config.train.eval_batch_size;
    let decode = config.qa.decode();

    let (objective, train_examples): (Box<dyn Objective + '_>, usize) = match &encoded {
        Encoded::Tagging {
            encoder,
            train,
            dev,
        } => (
            Box::new(TaggingObjective {
                backbone,
                encoder,
                train,
                dev: dev.as_ref().map(|(g, e)| (g.as_slice(), e.as_slice())),
                pad_id,
                eval_batch_size: batch,
                dropout: config.train.dropout,
            }),
            train.len(),
        ),
        Encoded::Qa { train, dev } => (
            Box::new(QaObjective {
                backbone,
                train,
                dev: dev.as_ref().map(|(q, w)| (q.as_slice(), w.as_slice())),
                decode,
                pad_id,
                eval_batch_size: batch,
                dropout: config.train.dropout,
            }),
            train.len(),
        ),
    };
    let initial_dev_metric = objective.dev_metric(&initial)?;
    let out = &config.output_dir;
    let outcome = fit(
        objective.as_ref(),
        init,
        &config.train,
        out,
        resume,
        device,
        observer,
    )?;

    let best = Trainables::from_host(&outcome.best, device)?;
    let (final_dev_scores, rate) = match &encoded {
        Encoded::Tagging {
            encoder,
            dev: Some((gold, enc)),
            ..
        } => {
            let e = evaluate_tagging(backbone, &best, encoder, enc, Some(gold), pad_id, batch)?;
            (Some(tagging_json(&e)), Some(e.sentences_per_second))
        }
        Encoded::Qa {
            dev: Some((questions, windows)),
            ..
        } => {
            let e = evaluate_qa(
                backbone, &best, questions, windows, &decode, pad_id, batch, true,
            )?;
            (Some(qa_json(&e)), Some(e.questions_per_second))
        }
        _ => (None, None),
    };
    let mut adapter_cfg = adapter_config_for(config, &model, labels);
    adapter_cfg.num_virtual_tokens = prefix_len;
    adapter_cfg.max_len = max_len;
    let adapter = Adapter {
        config: adapter_cfg,
        params: method::adapter_tensors(&outcome.best, device)?,
    };
    let adapter_dir = out.join("adapter");
    adapter.save(&adapter_dir)?;
    let report = TrainReport {
        task: config.task,
        metric: objective.metric_name().to_string(),
        initial_dev_accuracy: None,
        best_dev_accuracy: None,
        final_dev_accuracy: None,
        final_dev_macro_f1: None,
        trainable_parameters,
        backbone_parameters: backbone.num_parameters(),
        train_examples,
        initial_dev_metric,
        best_dev_metric: outcome.best_metric,
        final_dev_scores,
        steps: outcome.steps,
        seconds_per_step: outcome.seconds_per_step,
        dev_examples_per_second: rate,
        peak_rss_mib: peak_rss_mib(),
        adapter_dir,
    };
    report.write(out)?;
    Ok(report)
}
