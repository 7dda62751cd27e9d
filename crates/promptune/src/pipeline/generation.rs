//! The user journey of a generation task (table-to-text, summarisation): a source template,
//! a target template, the loss on the target tokens, and decoding scored by BLEU, NIST,
//! ROUGE and CIDEr against every reference of a source.
//!
//! ```toml
//! model = "models/smollm2-135m"
//! output_dir = "runs/e2e-prefix"
//! task = "generation"
//! template = "{source}"            # the source; {soft} slots for prompt tuning
//! [generation]
//! target = "{target}"
//! separator = "\n"
//! num_beams = 5
//! [method]
//! kind = "prefix_tuning"
//! num_virtual_tokens = 10
//! [data.train]
//! path = "e2e-nlg/train.csv"
//! format = "e2e"
//! limit = 2000
//! ```

use std::sync::Arc;

use burn::tensor::Device;
use serde_json::json;

use super::{adapter_config_for, pad_id_of, peak_rss_mib, TaskConfig, TrainReport};
use crate::adapter::Adapter;
use crate::backbone::Backbone;
use crate::data::generation::read_generation_examples;
use crate::data::{DataSpec, Example};
use crate::method::{self, AdapterHooks, InitContext};
use crate::model::Model;
use crate::params::Trainables;
use crate::task::generation::{
    evaluate_generation, EncodedPair, GenerationConfig, GenerationEncoder, GenerationEvaluation,
    GenerationItems, GenerationObjective,
};
use crate::task::TaskKind;
use crate::train::atomic::write_atomic;
use crate::train::trainer::{fit, TrainObserver};
use crate::{Error, Result};

/// The prefix positions `params` put in front of the source's stack and of an
/// encoder-decoder's decoder.
pub fn prefix_lens(params: &Trainables, backbone: &Backbone) -> Result<[usize; 2]> {
    let hooks = AdapterHooks::of(params, &backbone.info())?;
    let decoder = hooks
        .decoder_prefix
        .as_ref()
        .and_then(|p| p.first())
        .map_or(0, |l| l.key.dims()[2]);
    Ok([hooks.prefix_len(), decoder])
}

/// The encoder of a generation adapter or task on `model`.
pub fn generation_encoder(
    model: &Model,
    template: &str,
    config: &GenerationConfig,
    max_len: usize,
    prefix_lens: [usize; 2],
) -> Result<GenerationEncoder> {
    GenerationEncoder::new(
        &model.backbone,
        &model.tokenizer,
        template,
        config,
        max_len,
        prefix_lens,
    )
}

/// Training pairs of examples: those with a target (an example without one is an error).
fn pairs(
    encoder: &GenerationEncoder,
    examples: &[Example],
    what: &str,
) -> Result<Vec<EncodedPair>> {
    examples
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if !encoder.has_target(&e.fields) {
                return Err(Error::InvalidInput(format!(
                    "{what} example {} has no target (fields {:?})",
                    i + 1,
                    e.fields.keys().collect::<Vec<_>>()
                )));
            }
            encoder.encode_pair(&e.fields)
        })
        .collect()
}

/// Scores of a generation evaluation as JSON (all sources, then each subset).
pub fn generation_json(e: &GenerationEvaluation) -> serde_json::Value {
    let mut v = match &e.scores {
        Some(s) => serde_json::to_value(s).unwrap_or_default(),
        None => json!({}),
    };
    if !e.subsets.is_empty() {
        v["subsets"] = serde_json::to_value(&e.subsets).unwrap_or_default();
    }
    v["tokens_per_second"] = json!(e.tokens_per_second);
    v["items_per_second"] = json!(e.items_per_second);
    v
}

/// The examples of a data spec of a generation task.
fn read(spec: &DataSpec) -> Result<Vec<Example>> {
    read_generation_examples(spec)
}

/// [`super::run_train_observed`] for a generation task.
pub(crate) fn train_generation(
    config: &TaskConfig,
    resume: bool,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<TrainReport> {
    config.validate()?;
    let model = Arc::new(Model::load(&config.model, device)?);
    let backbone = &model.backbone;
    let pad_id = pad_id_of(&model);
    let gen = &config.generation;
    let train_spec = config
        .data
        .train
        .as_ref()
        .ok_or_else(|| Error::InvalidInput("[data.train] is missing".into()))?;
    // the prefix a method puts in front of each stack, for the context budget
    let n = config.method.prefix_len();
    let planned = [
        n,
        if backbone.config().decoder_layers > 0 {
            n
        } else {
            0
        },
    ];
    let encoder = generation_encoder(&model, &config.template, gen, config.max_len, planned)?;
    let train = pairs(&encoder, &read(train_spec)?, "training")?;
    let dev = match &config.data.dev {
        Some(spec) => {
            let examples = read(spec)?;
            let items = GenerationItems::group(&encoder, &examples)?;
            if !items.has_references() {
                return Err(Error::InvalidInput(format!(
                    "{}: every dev source needs a reference",
                    spec.path.display()
                )));
            }
            Some((pairs(&encoder, &examples, "dev")?, items))
        }
        None => None,
    };
    let longest = train
        .iter()
        .map(|p| p.source.ids.len() + p.target.len())
        .max()
        .unwrap_or(0);
    let init = config.method.initial_tensors(&InitContext {
        backbone,
        tokenizer: &model.tokenizer,
        template: Some(encoder.template()),
        label_words: &[],
        longest_input: longest,
        seed: config.train.seed,
    })?;
    if init.is_empty() {
        return Err(Error::InvalidInput(
            "nothing to train: the source template has no {soft} slots and the method trains \
             no tensor"
                .into(),
        ));
    }
    let initial = Trainables::from_host(&init, device)?;
    let trainable_parameters = initial.num_trainable();
    let decoding = gen.options(encoder.stop_tokens())?;
    let objective = GenerationObjective {
        backbone,
        encoder: &encoder,
        train: &train,
        dev: dev.as_ref().map(|(p, i)| (p.as_slice(), i)),
        decoding: decoding.clone(),
        select_by: gen.select_by,
        pad_id,
        eval_batch_size: config.train.eval_batch_size,
        dropout: config.train.dropout,
    };
    let initial_dev_metric = if dev.is_some() {
        objective_metric(&objective, &initial)?
    } else {
        None
    };
    let out = &config.output_dir;
    let outcome = fit(
        &objective,
        init,
        &config.train,
        out,
        resume,
        device,
        observer,
    )?;
    let mut adapter_cfg = adapter_config_for(config, &model, Vec::new());
    adapter_cfg.num_virtual_tokens = match config.method.prefix_len() {
        0 => encoder.template().soft_count(),
        n => n,
    };
    let adapter = Adapter {
        config: adapter_cfg,
        params: method::adapter_tensors(&outcome.best, device)?,
    };
    let adapter_dir = out.join("adapter");
    adapter.save(&adapter_dir)?;
    let final_eval = match &dev {
        Some((_, items)) => {
            let best = Trainables::from_host(&outcome.best, device)?;
            let e = evaluate_generation(
                backbone,
                &best,
                &encoder,
                items,
                &decoding,
                config.train.eval_batch_size,
                &mut |_, _| {},
            )?;
            write_generations(out, items, &e)?;
            Some(e)
        }
        None => None,
    };
    let report = TrainReport {
        task: TaskKind::Generation,
        metric: objective_name(gen).into(),
        trainable_parameters,
        backbone_parameters: backbone.num_parameters(),
        train_examples: train.len(),
        initial_dev_metric,
        best_dev_metric: outcome.best_metric,
        final_dev_scores: final_eval.as_ref().map(generation_json),
        initial_dev_accuracy: None,
        best_dev_accuracy: None,
        final_dev_accuracy: None,
        final_dev_macro_f1: None,
        steps: outcome.steps,
        seconds_per_step: outcome.seconds_per_step,
        dev_examples_per_second: final_eval.as_ref().map(|e| e.items_per_second),
        peak_rss_mib: peak_rss_mib(),
        adapter_dir,
    };
    report.write(out)?;
    Ok(report)
}

fn objective_metric(o: &GenerationObjective, params: &Trainables) -> Result<Option<f64>> {
    crate::task::Objective::dev_metric(o, params)
}

fn objective_name(gen: &GenerationConfig) -> &'static str {
    match gen.select_by {
        crate::task::generation::SelectBy::Loss => "neg_dev_loss",
        crate::task::generation::SelectBy::Bleu => "dev_bleu",
    }
}

/// Writes the dev generations as `dev_generations.jsonl` (source fields, generation,
/// references), atomically.
fn write_generations(
    out: &std::path::Path,
    items: &GenerationItems,
    e: &GenerationEvaluation,
) -> Result<()> {
    let mut text = String::new();
    for (i, g) in e.generations.iter().enumerate() {
        let line = json!({
            "source": items.fields[i],
            "generation": g,
            "references": items.references[i],
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    write_atomic(&out.join("dev_generations.jsonl"), text.as_bytes())
}

/// The lines and scores of a generation adapter on a data file: one line per distinct source
/// (its fields, the generation, the references), scores when every source has references.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_generation(
    model: &Model,
    params: &Trainables,
    template: &str,
    config: &GenerationConfig,
    max_len: usize,
    spec: &DataSpec,
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Option<serde_json::Value>, Vec<serde_json::Value>)> {
    let encoder = generation_encoder(
        model,
        template,
        config,
        max_len,
        prefix_lens(params, &model.backbone)?,
    )?;
    let examples = read(spec)?;
    let items = GenerationItems::group(&encoder, &examples)?;
    let opts = config.options(encoder.stop_tokens())?;
    let e = evaluate_generation(
        &model.backbone,
        params,
        &encoder,
        &items,
        &opts,
        batch_size,
        progress,
    )?;
    let lines = e
        .generations
        .iter()
        .enumerate()
        .map(|(i, g)| {
            json!({
                "source": items.fields[i],
                "generation": g,
                "references": items.references[i],
            })
        })
        .collect();
    let scores = e.scores.is_some().then(|| generation_json(&e));
    Ok((scores, lines))
}
