//! The training loop: AdamW with warm-up and decay, gradient clipping and accumulation,
//! length-bucketed batches, periodic evaluation with early stopping and a kept best state,
//! atomic checkpoints that an interrupted run resumes from, a progress bar, a JSONL log and
//! a curve plot.
//!
//! Runs are reproducible: the batch order depends only on (seed, epoch), and a resumed run
//! skips exactly the batches already consumed, so it ends with the same parameters.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::atomic::write_atomic;
use super::clip::{clip, ClipMode};
use super::metrics::{accuracy, macro_f1, MetricsLog};
use super::schedule::{learning_rate, Decay};
use crate::backbone::{Backbone, PaddingSide};
use crate::data::batching::{bucketed_batches, length_sorted_batches};
use crate::prompt::{EncodedPrompt, Verbalizer};
use crate::task::batch::{batch_seed, collate};
use crate::task::classification::{
    cross_entropy, host_params_from_safetensors, host_params_to_safetensors, label_logits_after,
    predictions, HostParam, Pooling, TrainableParts,
};
use crate::task::shared_prefix::SharedPrefix;
use crate::{Error, Result};

/// Every training setting (the `[train]` table of a task config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Examples per forward pass.
    pub batch_size: usize,
    /// Forward passes per optimizer step.
    pub grad_accum: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// Stop after this many optimizer steps (overrides `epochs` when smaller).
    pub max_steps: Option<usize>,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// Decay after the warm-up.
    pub decay: Decay,
    /// Clip the gradients to this L2 norm (`None` = no clipping), as `clip` says.
    pub max_grad_norm: Option<f32>,
    /// Per tensor (default) or by the global norm (torch's `clip_grad_norm_`): see
    /// [`super::clip::ClipMode`].
    pub clip: ClipMode,
    /// Evaluate on the dev set every N optimizer steps (0 = at the end of each epoch only).
    pub eval_every: usize,
    /// Stop after this many evaluations without improvement (`None` = never).
    pub early_stopping_patience: Option<usize>,
    /// Write a resumable checkpoint every N optimizer steps (0 = only at the end).
    pub checkpoint_every: usize,
    /// Seed for initialisation and batch order.
    pub seed: u64,
    /// Length bucketing: sort within groups of `bucket_factor` batches. 1 (the default) is a
    /// plain shuffle, as HF's Trainer. Larger factors pad less, but batches of similar length
    /// change what a loss averaged over tokens weighs: P-Tuning v2 on CoNLL NER lost 3 entity-F1
    /// points with 4 (58.2 against 61.1, same seed).
    pub bucket_factor: usize,
    /// Batch size for evaluation and prediction.
    pub eval_batch_size: usize,
    /// Train with the model's own dropout (HF `hidden_dropout_prob` and
    /// `attention_probs_dropout_prob`: BERT-family encoders; the decoders here have none), as
    /// transformers does in training mode; `false` trains on the deterministic forward pass.
    pub dropout: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            lr: 3e-2,
            weight_decay: 0.0,
            batch_size: 16,
            grad_accum: 1,
            epochs: 1,
            max_steps: None,
            warmup_steps: 0,
            decay: Decay::Linear,
            max_grad_norm: Some(1.0),
            clip: ClipMode::default(),
            eval_every: 0,
            early_stopping_patience: None,
            checkpoint_every: 0,
            seed: 42,
            bucket_factor: 1,
            eval_batch_size: 32,
            dropout: true,
        }
    }
}

impl TrainConfig {
    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidInput(format!("train config: {m}")));
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return bad("batch sizes must be at least 1");
        }
        if self.grad_accum == 0 || self.bucket_factor == 0 {
            return bad("grad_accum and bucket_factor must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr must be a positive number");
        }
        if self.epochs == 0 && self.max_steps.is_none() {
            return bad("epochs must be at least 1");
        }
        Ok(())
    }
}

/// What is classified and how labels are read.
pub struct ClassificationTask<'a> {
    /// The frozen model.
    pub backbone: &'a Backbone,
    /// Label words (LM readout), or `None` for a head.
    pub verbalizer: Option<&'a Verbalizer>,
    /// Number of labels.
    pub num_labels: usize,
    /// Id used for padding.
    pub pad_id: u32,
    /// Padding side.
    pub padding: PaddingSide,
    /// What a head reads.
    pub pooling: Pooling,
}

/// Encoded examples with gold labels.
#[derive(Clone, Copy)]
pub struct Labelled<'a> {
    /// Prompts.
    pub prompts: &'a [EncodedPrompt],
    /// Gold label per prompt.
    pub labels: &'a [usize],
}

/// Predictions on a data set.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Arg-max label per example.
    pub predictions: Vec<usize>,
    /// Softmax over labels per example.
    pub scores: Vec<Vec<f32>>,
    /// Accuracy (when gold labels were given).
    pub accuracy: Option<f64>,
    /// Macro-F1 (when gold labels were given).
    pub macro_f1: Option<f64>,
    /// Scoring throughput.
    pub examples_per_second: f64,
}

/// Scores `prompts` with `parts` (no gradients are recorded).
pub fn evaluate(
    task: &ClassificationTask,
    parts: &TrainableParts,
    prompts: &[EncodedPrompt],
    gold: Option<&[usize]>,
    batch_size: usize,
) -> Result<Evaluation> {
    if prompts.is_empty() {
        return Err(Error::InvalidInput(
            "nothing to evaluate: no examples".into(),
        ));
    }
    let parts = burn::module::Module::valid(parts);
    let start = Instant::now();
    // The parts are fixed here, so the shared prefix of the whole set is run once.
    let all: Vec<&EncodedPrompt> = prompts.iter().collect();
    let shared = shared_prefix(task, &parts, &all)?;
    let lengths: Vec<usize> = prompts.iter().map(|p| p.ids.len()).collect();
    let mut preds = vec![0; prompts.len()];
    let mut scores = vec![Vec::new(); prompts.len()];
    for idx in length_sorted_batches(&lengths, batch_size) {
        let refs: Vec<&EncodedPrompt> = idx.iter().map(|&i| &prompts[i]).collect();
        let logits = batch_logits(task, &parts, &refs, shared.as_ref(), None)?;
        let (p, s) = predictions(logits);
        for ((i, p), s) in idx.into_iter().zip(p).zip(s) {
            preds[i] = p;
            scores[i] = s;
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let (acc, f1) = match gold {
        Some(g) => (
            Some(accuracy(&preds, g)),
            Some(macro_f1(&preds, g, task.num_labels)),
        ),
        None => (None, None),
    };
    Ok(Evaluation {
        predictions: preds,
        scores,
        accuracy: acc,
        macro_f1: f1,
        examples_per_second: prompts.len() as f64 / secs,
    })
}

/// The tokens all `prompts` start with, run once (see [`SharedPrefix`]); only with a
/// verbalizer, since a head reads the whole sequence.
fn shared_prefix(
    task: &ClassificationTask,
    parts: &TrainableParts,
    prompts: &[&EncodedPrompt],
) -> Result<Option<SharedPrefix>> {
    match task.verbalizer {
        Some(_) => SharedPrefix::compute(task.backbone, parts, prompts),
        None => Ok(None),
    }
}

/// Label logits `[prompts, labels]` for prompts that all start with `shared` (their rest is
/// padded on the right after it), or for whole prompts; `dropout`: training-mode dropout seed.
fn batch_logits(
    task: &ClassificationTask,
    parts: &TrainableParts,
    prompts: &[&EncodedPrompt],
    shared: Option<&SharedPrefix>,
    dropout: Option<u64>,
) -> Result<burn::tensor::Tensor<2>> {
    let mut batch = match shared {
        Some(s) => {
            let rests: Vec<EncodedPrompt> = prompts.iter().map(|p| s.rest(p)).collect();
            let refs: Vec<&EncodedPrompt> = rests.iter().collect();
            collate(&refs, None, task.pad_id, PaddingSide::Right)?
        }
        None => collate(prompts, None, task.pad_id, task.padding)?,
    };
    batch.dropout = dropout;
    label_logits_after(
        task.backbone,
        task.verbalizer,
        task.num_labels,
        parts,
        &batch,
        shared,
        task.pooling,
    )
}

/// Progress saved in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct TrainState {
    /// Optimizer steps done.
    step: usize,
    /// Forward batches consumed in total.
    batches_done: usize,
    best_metric: Option<f64>,
    best_step: Option<usize>,
    bad_evals: usize,
    stopped_early: bool,
}

/// The result of a training run.
pub struct TrainOutcome {
    /// Parameters at the end (on the training device).
    pub last: Vec<HostParam>,
    /// Parameters with the best dev metric (the last ones without a dev set).
    pub best: Vec<HostParam>,
    /// Best dev accuracy.
    pub best_metric: Option<f64>,
    /// Optimizer steps done.
    pub steps: usize,
    /// Mean seconds per optimizer step in this process.
    pub seconds_per_step: f64,
    /// Where the JSONL log is.
    pub metrics_path: PathBuf,
}

/// The checkpoint folder named by `out/checkpoint/latest` (written last, atomically, so a
/// kill at any moment leaves the previous complete checkpoint in force).
fn checkpoint_root(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

fn save_checkpoint(
    out: &Path,
    state: &TrainState,
    parts: &TrainableParts,
    optim_bytes: &[u8],
    best: &[HostParam],
) -> Result<()> {
    let root = checkpoint_root(out);
    let name = format!("step-{:08}", state.step);
    let dir = root.join(&name);
    write_atomic(
        &dir.join("params.safetensors"),
        &host_params_to_safetensors(&parts.to_host())?,
    )?;
    write_atomic(
        &dir.join("best.safetensors"),
        &host_params_to_safetensors(best)?,
    )?;
    write_atomic(&dir.join("optimizer.bin"), optim_bytes)?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| Error::InvalidInput(e.to_string()))?;
    write_atomic(&dir.join("state.json"), &json)?;
    write_atomic(&root.join("latest"), name.as_bytes())?;
    // older checkpoints are no longer needed
    if let Ok(entries) = std::fs::read_dir(&root) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("step-") && n != name {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

type Checkpoint = (TrainState, Vec<HostParam>, Vec<HostParam>, Vec<u8>);

fn load_checkpoint(out: &Path) -> Result<Option<Checkpoint>> {
    let root = checkpoint_root(out);
    let latest = root.join("latest");
    if !latest.exists() {
        return Ok(None);
    }
    let read = |p: PathBuf| std::fs::read(&p).map_err(|e| Error::io(p, e));
    let name = String::from_utf8_lossy(&read(latest)?).trim().to_string();
    let dir = root.join(name);
    let state_path = dir.join("state.json");
    let state: TrainState = serde_json::from_slice(&read(state_path.clone())?)
        .map_err(|e| Error::format(&state_path, e.to_string()))?;
    let params = host_params_from_safetensors(
        &read(dir.join("params.safetensors"))?,
        &dir.join("params.safetensors"),
    )?;
    let best = host_params_from_safetensors(
        &read(dir.join("best.safetensors"))?,
        &dir.join("best.safetensors"),
    )?;
    Ok(Some((
        state,
        params,
        best,
        read(dir.join("optimizer.bin"))?,
    )))
}

/// What the training loop needs from a task: a loss over chosen training examples and a dev
/// metric. Classification ([`ClassificationObjective`]), token tagging and extractive QA
/// ([`crate::task::nlu`]) implement it.
pub trait Objective {
    /// Length in tokens of each training example (for length-bucketed batches).
    fn train_lengths(&self) -> Vec<usize>;
    /// Mean loss over the training examples `idx` (gradients reach `parts`).
    fn loss(&self, parts: &TrainableParts, idx: &[usize]) -> Result<burn::tensor::Tensor<1>>;
    /// Whether there is a dev set.
    fn has_dev(&self) -> bool;
    /// The dev metric of `parts` (higher is better), `None` without a dev set.
    fn dev_metric(&self, parts: &TrainableParts) -> Result<Option<f64>>;
    /// Name of the dev metric in logs.
    fn metric_name(&self) -> &'static str;
}

/// Label classification: cross-entropy of label logits; dev accuracy.
pub struct ClassificationObjective<'a> {
    /// Model and readout.
    pub task: &'a ClassificationTask<'a>,
    /// Training examples.
    pub train: Labelled<'a>,
    /// Dev examples.
    pub dev: Option<Labelled<'a>>,
    /// Batch size for dev scoring.
    pub eval_batch_size: usize,
    /// Train with the model's dropout.
    pub dropout: bool,
}

impl Objective for ClassificationObjective<'_> {
    fn train_lengths(&self) -> Vec<usize> {
        self.train.prompts.iter().map(|p| p.ids.len()).collect()
    }

    fn loss(&self, parts: &TrainableParts, idx: &[usize]) -> Result<burn::tensor::Tensor<1>> {
        let refs: Vec<&EncodedPrompt> = idx.iter().map(|&i| &self.train.prompts[i]).collect();
        let gold: Vec<usize> = idx.iter().map(|&i| self.train.labels[i]).collect();
        // recomputed per batch: the prefix states carry this step's gradient
        let shared = shared_prefix(self.task, parts, &refs)?;
        let seed = self.dropout.then(|| batch_seed(idx));
        let logits = batch_logits(self.task, parts, &refs, shared.as_ref(), seed)?;
        Ok(cross_entropy(logits, &gold))
    }

    fn has_dev(&self) -> bool {
        self.dev.is_some()
    }

    fn dev_metric(&self, parts: &TrainableParts) -> Result<Option<f64>> {
        match self.dev {
            Some(d) => Ok(evaluate(
                self.task,
                parts,
                d.prompts,
                Some(d.labels),
                self.eval_batch_size,
            )?
            .accuracy),
            None => Ok(None),
        }
    }

    fn metric_name(&self) -> &'static str {
        "accuracy"
    }
}

/// Trains `init` on `train`, evaluating on `dev` (see [`fit`]).
#[allow(clippy::too_many_arguments)]
pub fn train(
    task: &ClassificationTask,
    init: Vec<HostParam>,
    train: Labelled,
    dev: Option<Labelled>,
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    device: &Device,
) -> Result<TrainOutcome> {
    let objective = ClassificationObjective {
        task,
        train,
        dev,
        eval_batch_size: cfg.eval_batch_size,
        dropout: cfg.dropout,
    };
    fit(&objective, init, cfg, out, resume, device)
}

/// Trains `init` on `objective`'s training examples, evaluating its dev metric; writes
/// `metrics.jsonl`, `curves.svg` and the resumable `checkpoint/` under `out`. With `resume`,
/// continues from the checkpoint there.
pub fn fit(
    objective: &dyn Objective,
    init: Vec<HostParam>,
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    device: &Device,
) -> Result<TrainOutcome> {
    cfg.validate()?;
    let lengths = objective.train_lengths();
    if lengths.is_empty() {
        return Err(Error::InvalidInput("the training set is empty".into()));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let ad = device.clone().autodiff();
    let batches_per_epoch = lengths.len().div_ceil(cfg.batch_size);
    let steps_per_epoch = batches_per_epoch.div_ceil(cfg.grad_accum);
    let total_steps = cfg
        .max_steps
        .unwrap_or(usize::MAX)
        .min(steps_per_epoch * cfg.epochs.max(1));

    // clipping is done before the step, per tensor or globally: see train::clip
    let mut optim = AdamWConfig::new()
        .with_weight_decay(cfg.weight_decay as f32)
        .with_epsilon(1e-8)
        .init();
    let metrics_path = out.join("metrics.jsonl");

    let (mut state, mut parts, mut best, mut log) = match (resume, load_checkpoint(out)?) {
        (true, Some((state, params, best, optim_bytes))) => {
            optim = optim
                .from_bytes(burn::tensor::Bytes::from_bytes_vec(optim_bytes))
                .map_err(|e| {
                    Error::format(checkpoint_root(out), format!("optimizer state: {e:?}"))
                })?;
            (
                state,
                TrainableParts::from_host(&params, &ad)?,
                best,
                MetricsLog::append(&metrics_path)?,
            )
        }
        (true, None) => {
            return Err(Error::InvalidInput(format!(
                "--resume: no checkpoint in {}",
                out.display()
            )))
        }
        (false, _) => {
            let state = TrainState {
                step: 0,
                batches_done: 0,
                best_metric: None,
                best_step: None,
                bad_evals: 0,
                stopped_early: false,
            };
            (
                state,
                TrainableParts::from_host(&init, &ad)?,
                init.clone(),
                MetricsLog::create(&metrics_path)?,
            )
        }
    };

    let bar = indicatif::ProgressBar::new(total_steps as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps [{elapsed}<{eta}] {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(state.step as u64);

    let has_dev = objective.has_dev();
    let metric_name = objective.metric_name();

    let mut train_seconds = 0f64;
    let mut step_started = Instant::now();
    let steps_at_start = state.step;
    let mut accumulator = GradientsAccumulator::<TrainableParts>::new();
    let mut pending = 0usize;
    let mut loss_sum = 0f64;
    let mut examples = 0usize;
    'epochs: for epoch in 0..cfg.epochs.max(1) {
        let order = bucketed_batches(&lengths, cfg.batch_size, cfg.seed, epoch, cfg.bucket_factor);
        for (b, idx) in order.iter().enumerate() {
            let global = epoch * batches_per_epoch + b;
            if global < state.batches_done {
                continue;
            }
            if state.step >= total_steps || state.stopped_early {
                break 'epochs;
            }
            let loss = objective.loss(&parts, idx)?;
            let loss = if cfg.grad_accum > 1 {
                loss.div_scalar(cfg.grad_accum as f64)
            } else {
                loss
            };
            let loss_value =
                crate::backbone::layers::to_vec(loss.clone())[0] as f64 * cfg.grad_accum as f64;
            if !loss_value.is_finite() {
                return Err(Error::InvalidInput(format!(
                    "loss became {loss_value} at step {}: lower the learning rate",
                    state.step
                )));
            }
            let grads = GradientsParams::from_grads(loss.backward(), &parts);
            accumulator.accumulate(&parts, grads);
            pending += 1;
            state.batches_done = global + 1;
            loss_sum += loss_value;
            examples += idx.len();
            let end_of_epoch = b + 1 == order.len();
            if pending < cfg.grad_accum && !end_of_epoch {
                continue;
            }
            let lr = learning_rate(cfg.lr, state.step, cfg.warmup_steps, total_steps, cfg.decay);
            let mut grads = accumulator.grads();
            let grad_norm = clip(&parts, &mut grads, cfg.max_grad_norm, cfg.clip);
            parts = optim.step(lr, parts, grads);
            state.step += 1;
            train_seconds += step_started.elapsed().as_secs_f64();
            let mean_loss = loss_sum / pending as f64;
            pending = 0;
            loss_sum = 0.0;
            let rate = examples as f64 / train_seconds.max(1e-9);
            bar.set_position(state.step as u64);
            bar.set_message(format!("loss {mean_loss:.4} lr {lr:.2e} {rate:.1} ex/s"));
            log.log(&json!({ "step": state.step, "epoch": epoch, "loss": mean_loss, "grad_norm": grad_norm, "lr": lr, "examples_per_second": rate }))?;

            let eval_now = has_dev
                && ((cfg.eval_every > 0 && state.step % cfg.eval_every == 0)
                    || end_of_epoch
                    || state.step == total_steps);
            if eval_now {
                if let Some(metric) = objective.dev_metric(&parts)? {
                    log.log(&json!({ "step": state.step, "dev_metric": metric, "metric_name": metric_name }))?;
                    bar.println(format!(
                        "step {}: dev {metric_name} {metric:.4}",
                        state.step
                    ));
                    if state.best_metric.is_none_or(|b| metric > b) {
                        state.best_metric = Some(metric);
                        state.best_step = Some(state.step);
                        state.bad_evals = 0;
                        best = parts.to_host();
                    } else {
                        state.bad_evals += 1;
                        if cfg
                            .early_stopping_patience
                            .is_some_and(|p| state.bad_evals >= p)
                        {
                            state.stopped_early = true;
                            log.log(&json!({ "step": state.step, "event": "early_stop" }))?;
                        }
                    }
                }
            }
            if cfg.checkpoint_every > 0 && state.step % cfg.checkpoint_every == 0 {
                let bytes = optim
                    .into_bytes()
                    .map_err(|e| Error::InvalidInput(format!("saving optimizer state: {e:?}")))?;
                save_checkpoint(
                    out,
                    &state,
                    &parts,
                    &bytes,
                    if has_dev { &best } else { &[] },
                )?;
            }
            // evaluation and checkpointing are not training time
            step_started = Instant::now();
        }
    }
    bar.finish_and_clear();
    let last = parts.to_host();
    if !has_dev {
        best = last.clone();
    }
    let bytes = optim
        .into_bytes()
        .map_err(|e| Error::InvalidInput(format!("saving optimizer state: {e:?}")))?;
    save_checkpoint(out, &state, &parts, &bytes, &best)?;
    let steps_here = (state.step - steps_at_start).max(1);
    let records = super::plot::read_metrics(&metrics_path)?;
    if records.iter().any(|r| r.get("loss").is_some()) {
        super::plot::plot_curves(&records, &out.join("curves.svg"))?;
    }
    Ok(TrainOutcome {
        last,
        best,
        best_metric: state.best_metric,
        steps: state.step,
        seconds_per_step: train_seconds / steps_here as f64,
        metrics_path,
    })
}
