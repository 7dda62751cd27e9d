//! The training loop: AdamW with warm-up and decay, gradient clipping and accumulation,
//! length-bucketed batches, periodic evaluation with early stopping and a kept best state,
//! atomic checkpoints that an interrupted run resumes from and a JSONL log. It trains any
//! task's [`Objective`] over the named tensors of [`Trainables`]; what a run shows while it goes
//! (a progress bar, a server's status) is a [`TrainObserver`]'s business.
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
use super::metrics::MetricsLog;
use super::schedule::{learning_rate, Decay};
use crate::data::batching::bucketed_batches;
use crate::params::{from_safetensors, to_safetensors, HostTensor, Trainables};
use crate::task::Objective;
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
        if let Some(m) = self.max_grad_norm {
            if !(m > 0.0 && m.is_finite()) {
                return bad(&format!(
                    "max_grad_norm = {m}: give a positive number, or leave it out for no clipping \
                     (a negative limit would flip the gradient's sign)"
                ));
            }
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(&format!(
                "weight_decay = {}: give 0 or a positive number",
                self.weight_decay
            ));
        }
        Ok(())
    }
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
    pub last: Vec<HostTensor>,
    /// Parameters with the best dev metric (the last ones without a dev set).
    pub best: Vec<HostTensor>,
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
    params: &Trainables,
    optim_bytes: &[u8],
    best: &[HostTensor],
) -> Result<()> {
    let host = params.to_host();
    if let Some(t) = host.iter().find(|t| t.data.iter().any(|v| !v.is_finite())) {
        return Err(Error::Diverged(format!(
            "`{}` holds NaN or infinite values after step {}: not saved, the previous \
             checkpoint in {} stays in force; lower the learning rate",
            t.name,
            state.step,
            checkpoint_root(out).display()
        )));
    }
    let root = checkpoint_root(out);
    let name = format!("step-{:08}", state.step);
    let dir = root.join(&name);
    write_atomic(&dir.join("params.safetensors"), &to_safetensors(&host)?)?;
    write_atomic(&dir.join("best.safetensors"), &to_safetensors(best)?)?;
    write_atomic(&dir.join("optimizer.bin"), optim_bytes)?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| Error::Serialize(e.to_string()))?;
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

/// An exclusive hold on a training output folder for one run: a second run into the same
/// folder fails at once instead of overwriting the first one's checkpoints. The operating
/// system drops the hold when the process ends, however it ends, so a killed run leaves no
/// stale lock behind.
pub(crate) struct OutputLock {
    _file: std::fs::File,
}

impl OutputLock {
    const NAME: &'static str = ".promptune.lock";

    /// Takes the hold on `out` (which must exist), or fails naming the run that has it.
    pub(crate) fn take(out: &Path) -> Result<Self> {
        let path = out.join(Self::NAME);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::InvalidInput(format!(
                "{} is in use by another training run (it holds {}): wait for it to end or \
                 choose another output_dir",
                out.display(),
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }
}

type Checkpoint = (TrainState, Vec<HostTensor>, Vec<HostTensor>, Vec<u8>);

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
    let params = from_safetensors(
        &read(dir.join("params.safetensors"))?,
        &dir.join("params.safetensors"),
    )?;
    let best = from_safetensors(
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

/// What a training run reports as it goes; every method does nothing by default.
pub trait TrainObserver {
    /// Training starts (or resumes) at optimizer step `step` of `total_steps`.
    fn started(&mut self, _step: usize, _total_steps: usize) {}
    /// Optimizer step `step` is done.
    fn stepped(&mut self, _step: usize, _loss: f64, _lr: f64, _examples_per_second: f64) {}
    /// The dev metric was computed after step `step`.
    fn evaluated(&mut self, _step: usize, _metric_name: &str, _metric: f64) {}
    /// Training is over.
    fn finished(&mut self) {}
}

/// An observer that shows nothing (library use, tests).
pub struct Quiet;

impl TrainObserver for Quiet {}

/// Trains `init` on `objective`'s training examples, evaluating its dev metric; writes
/// `metrics.jsonl` and the resumable `checkpoint/` under `out`, telling `observer` how it
/// goes. With `resume`, continues from the checkpoint there.
pub fn fit(
    objective: &dyn Objective,
    init: Vec<HostTensor>,
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<TrainOutcome> {
    cfg.validate()?;
    let lengths = objective.train_lengths();
    if lengths.is_empty() {
        return Err(Error::InvalidInput("the training set is empty".into()));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let _lock = OutputLock::take(out)?;
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

    let (mut state, mut params, mut best, mut log) = match (resume, load_checkpoint(out)?) {
        (true, Some((state, params, best, optim_bytes))) => {
            let log = MetricsLog::resume_at(&metrics_path, state.step)?;
            optim = optim
                .from_bytes(burn::tensor::Bytes::from_bytes_vec(optim_bytes))
                .map_err(|e| {
                    Error::format(checkpoint_root(out), format!("optimizer state: {e:?}"))
                })?;
            (state, Trainables::from_host(&params, &ad)?, best, log)
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
                Trainables::from_host(&init, &ad)?,
                init.clone(),
                MetricsLog::create(&metrics_path)?,
            )
        }
    };

    observer.started(state.step, total_steps);

    let has_dev = objective.has_dev();
    let metric_name = objective.metric_name();

    let mut train_seconds = 0f64;
    let mut step_started = Instant::now();
    let steps_at_start = state.step;
    let mut accumulator = GradientsAccumulator::<Trainables>::new();
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
            let loss = objective.loss(&params, idx)?;
            let loss = if cfg.grad_accum > 1 {
                loss.div_scalar(cfg.grad_accum as f64)
            } else {
                loss
            };
            let loss_value =
                crate::backbone::layers::to_vec(loss.clone())[0] as f64 * cfg.grad_accum as f64;
            if !loss_value.is_finite() {
                return Err(Error::Diverged(format!(
                    "the loss became {loss_value} at step {}: lower the learning rate or check \
                     the data",
                    state.step + 1
                )));
            }
            let grads = GradientsParams::from_grads(loss.backward(), &params);
            accumulator.accumulate(&params, grads);
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
            let grad_norm = clip(&params, &mut grads, cfg.max_grad_norm, cfg.clip);
            if !grad_norm.is_finite() {
                return Err(Error::Diverged(format!(
                    "the gradient norm became {grad_norm} at step {} (loss {loss_value}): lower \
                     the learning rate or set train.max_grad_norm",
                    state.step + 1
                )));
            }
            params = optim.step(lr, params, grads);
            state.step += 1;
            train_seconds += step_started.elapsed().as_secs_f64();
            let mean_loss = loss_sum / pending as f64;
            pending = 0;
            loss_sum = 0.0;
            let rate = examples as f64 / train_seconds.max(1e-9);
            observer.stepped(state.step, mean_loss, lr, rate);
            log.log(&json!({ "step": state.step, "epoch": epoch, "loss": mean_loss, "grad_norm": grad_norm, "lr": lr, "examples_per_second": rate }))?;

            let eval_now = has_dev
                && ((cfg.eval_every > 0 && state.step % cfg.eval_every == 0)
                    || end_of_epoch
                    || state.step == total_steps);
            if eval_now {
                if let Some(metric) = objective.dev_metric(&params)? {
                    log.log(&json!({ "step": state.step, "dev_metric": metric, "metric_name": metric_name }))?;
                    observer.evaluated(state.step, metric_name, metric);
                    if state.best_metric.is_none_or(|b| metric > b) {
                        state.best_metric = Some(metric);
                        state.best_step = Some(state.step);
                        state.bad_evals = 0;
                        best = params.to_host();
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
                    .map_err(|e| Error::Optimizer(format!("saving: {e:?}")))?;
                save_checkpoint(
                    out,
                    &state,
                    &params,
                    &bytes,
                    if has_dev { &best } else { &[] },
                )?;
            }
            // evaluation and checkpointing are not training time
            step_started = Instant::now();
        }
    }
    observer.finished();
    let last = params.to_host();
    if !has_dev {
        best = last.clone();
    }
    let bytes = optim
        .into_bytes()
        .map_err(|e| Error::Optimizer(format!("saving: {e:?}")))?;
    save_checkpoint(out, &state, &params, &bytes, &best)?;
    let steps_here = (state.step - steps_at_start).max(1);
    Ok(TrainOutcome {
        last,
        best,
        best_metric: state.best_metric,
        steps: state.step,
        seconds_per_step: train_seconds / steps_here as f64,
        metrics_path,
    })
}
