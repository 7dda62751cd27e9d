//! Scoring prompts with trained parameters, and classification as a training objective.

use std::time::Instant;

use burn::tensor::Tensor;

use super::{cross_entropy, label_logits_after, predictions, Pooling};
use crate::backbone::{Backbone, PaddingSide};
use crate::data::batching::length_sorted_batches;
use crate::metrics::{accuracy, macro_f1};
use crate::params::Trainables;
use crate::prompt::{EncodedPrompt, Verbalizer};
use crate::task::batch::{batch_seed, collate};
use crate::task::shared_prefix::SharedPrefix;
use crate::task::Objective;
use crate::{Error, Result};

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

/// Scores `prompts` with `params` (no gradients are recorded).
pub fn evaluate(
    task: &ClassificationTask,
    params: &Trainables,
    prompts: &[EncodedPrompt],
    gold: Option<&[usize]>,
    batch_size: usize,
) -> Result<Evaluation> {
    if prompts.is_empty() {
        return Err(Error::InvalidInput(
            "nothing to evaluate: no examples".into(),
        ));
    }
    let params = burn::module::Module::valid(params);
    let start = Instant::now();
    // The parameters are fixed here, so the shared prefix of the whole set is run once.
    let all: Vec<&EncodedPrompt> = prompts.iter().collect();
    let shared = shared_prefix(task, &params, &all)?;
    let lengths: Vec<usize> = prompts.iter().map(|p| p.ids.len()).collect();
    let mut preds = vec![0; prompts.len()];
    let mut scores = vec![Vec::new(); prompts.len()];
    for idx in length_sorted_batches(&lengths, batch_size) {
        let refs: Vec<&EncodedPrompt> = idx.iter().map(|&i| &prompts[i]).collect();
        let logits = batch_logits(task, &params, &refs, shared.as_ref(), None)?;
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
    params: &Trainables,
    prompts: &[&EncodedPrompt],
) -> Result<Option<SharedPrefix>> {
    match task.verbalizer {
        Some(_) => SharedPrefix::compute(task.backbone, params, prompts),
        None => Ok(None),
    }
}

/// Label logits `[prompts, labels]` for prompts that all start with `shared` (their rest is
/// padded on the right after it), or for whole prompts; `dropout`: training-mode dropout seed.
fn batch_logits(
    task: &ClassificationTask,
    params: &Trainables,
    prompts: &[&EncodedPrompt],
    shared: Option<&SharedPrefix>,
    dropout: Option<u64>,
) -> Result<Tensor<2>> {
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
        params,
        &batch,
        shared,
        task.pooling,
    )
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

    fn loss(&self, params: &Trainables, idx: &[usize]) -> Result<Tensor<1>> {
        let refs: Vec<&EncodedPrompt> = idx.iter().map(|&i| &self.train.prompts[i]).collect();
        let gold: Vec<usize> = idx.iter().map(|&i| self.train.labels[i]).collect();
        // recomputed per batch: the prefix states carry this step's gradient
        let shared = shared_prefix(self.task, params, &refs)?;
        let seed = self.dropout.then(|| batch_seed(idx));
        let logits = batch_logits(self.task, params, &refs, shared.as_ref(), seed)?;
        Ok(cross_entropy(logits, &gold))
    }

    fn has_dev(&self) -> bool {
        self.dev.is_some()
    }

    fn dev_metric(&self, params: &Trainables) -> Result<Option<f64>> {
        match self.dev {
            Some(d) => Ok(evaluate(
                self.task,
                params,
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
