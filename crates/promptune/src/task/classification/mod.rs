//! Classification through a prompt: a verbalizer reads label words at the answer slot of an
//! LM, or a linear head reads the pooled output of an encoder without an LM head.

mod evaluate;

use burn::tensor::{activation, Device, Int, Tensor};
use serde::{Deserialize, Serialize};

pub use evaluate::{evaluate, ClassificationObjective, ClassificationTask, Evaluation, Labelled};

use super::batch::PromptBatch;
use super::head::HeadNames;
use super::shared_prefix::SharedPrefix;
use crate::backbone::layers::{dropout, float_tensor, int_tensor};
use crate::backbone::{Backbone, ForwardInput, LogitPositions, LogitsRequest};
use crate::method::unfreeze::effective_backbone;
use crate::method::AdapterHooks;
use crate::params::{HostTensor, Trainables};
use crate::prompt::Verbalizer;
use crate::{Error, Result};

/// Host names of the classification head.
pub const CLASS_HEAD: HeadNames = HeadNames {
    weight: "head.weight",
    bias: "head.bias",
};

/// The seed salt of the classification head's initial weights.
const CLASS_HEAD_SALT: u64 = 0x5eed;

/// A linear layer on the pooled output, trained with the prompt (read from its tensors
/// [`CLASS_HEAD`]; gradients flow back to them).
#[derive(Debug, Clone)]
pub struct ClassHead {
    /// `[hidden, labels]`.
    pub weight: Tensor<2>,
    /// `[labels]`.
    pub bias: Tensor<1>,
}

impl ClassHead {
    /// The initial host tensors: small deterministic-random weights and a zero bias.
    pub fn initial(hidden: usize, labels: usize, seed: u64) -> Vec<HostTensor> {
        CLASS_HEAD.initial(hidden, labels, seed ^ CLASS_HEAD_SALT)
    }

    /// A fresh head on `device` ([`ClassHead::initial`]).
    pub fn init(hidden: usize, labels: usize, seed: u64, device: &Device) -> Self {
        let w = CLASS_HEAD.fresh(hidden, labels, seed ^ CLASS_HEAD_SALT, device);
        Self {
            weight: w.weight,
            bias: w.bias,
        }
    }

    /// The head in `params`, if any.
    pub fn from_params(params: &Trainables) -> Result<Option<Self>> {
        Ok(CLASS_HEAD.read(params)?.map(|w| Self {
            weight: w.weight,
            bias: w.bias,
        }))
    }
}

/// How label scores are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Readout {
    /// Label words at the answer slot.
    #[default]
    Verbalizer,
    /// A linear head on the pooled output.
    Head,
}

/// Which vector of the last hidden states a linear head reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The model's pooler (BERT: dense + tanh over the first token) when it has one, else
    /// `mean`.
    #[default]
    Pooled,
    /// The first token's hidden state (`[CLS]`).
    First,
    /// The mean over real tokens.
    Mean,
}

/// Computes label logits `[batch, labels]` for a batch.
pub fn label_logits(
    backbone: &Backbone,
    verbalizer: Option<&Verbalizer>,
    num_labels: usize,
    params: &Trainables,
    batch: &PromptBatch,
) -> Result<Tensor<2>> {
    label_logits_after(
        backbone,
        verbalizer,
        num_labels,
        params,
        batch,
        None,
        Pooling::default(),
    )
}

/// [`label_logits`] for a batch of prompts that continue `shared` (each row holds what
/// [`SharedPrefix::rest`] left of a prompt; `None` = whole prompts), a head reading the
/// vector `pooling` picks.
pub fn label_logits_after(
    backbone: &Backbone,
    verbalizer: Option<&Verbalizer>,
    num_labels: usize,
    params: &Trainables,
    batch: &PromptBatch,
    shared: Option<&SharedPrefix>,
    pooling: Pooling,
) -> Result<Tensor<2>> {
    let backbone = &*effective_backbone(params, backbone)?;
    let info = backbone.info();
    let device = backbone.device();
    let b = batch.tokens.batch;
    let mut input = ForwardInput::new(batch.tokens.clone());
    input.dropout = batch.dropout;
    if let Some(s) = shared {
        input.prefixes = Some(s.layers().to_vec());
    }
    let soft_in_prefix = shared.is_some_and(SharedPrefix::holds_soft_tokens);
    AdapterHooks::of(params, &info)?.apply(
        &info,
        &batch.tokens,
        &batch.soft_positions,
        !soft_in_prefix,
        &mut input,
    )?;
    if let Some(v) = verbalizer {
        let answers = batch.answer_positions.clone().ok_or_else(|| {
            Error::InvalidInput("a verbalizer needs a {mask} answer slot in the template".into())
        })?;
        input.logits = LogitsRequest {
            positions: LogitPositions::At(answers.into_iter().map(|a| vec![a]).collect()),
            rows: Some(v.rows.clone()),
        };
        let out = backbone.forward(&input, None)?;
        let r = v.rows.len();
        let word_logits = out
            .logits
            .ok_or_else(|| Error::Internal("the backbone returned no logits".into()))?
            .reshape([b, r]);
        let weights = float_tensor(v.weights(), [v.num_labels(), r], &device);
        return Ok(word_logits.matmul(weights.transpose()));
    }
    let Some(head) = ClassHead::from_params(params)? else {
        return Err(Error::InvalidInput(format!(
            "no way to read {num_labels} labels: give a verbalizer or a head"
        )));
    };
    let out = backbone.forward(&input, None)?;
    let [_, t, h] = out.last_hidden.dims();
    let mean = || {
        let mask: Vec<f32> = out.mask.iter().map(|&m| m as f32).collect();
        let mask = float_tensor(mask, [b, t, 1], &device);
        let count = mask.clone().sum_dim(1).clamp_min(1.0);
        (out.last_hidden.clone() * mask)
            .sum_dim(1)
            .div(count)
            .reshape([b, h])
    };
    let pooled = match pooling {
        Pooling::First => out
            .last_hidden
            .clone()
            .slice([0..b, 0..1, 0..h])
            .reshape([b, h]),
        Pooling::Pooled => backbone.pool(&out.last_hidden).unwrap_or_else(mean),
        Pooling::Mean => mean(),
    };
    // HF's sequence classifiers drop out the pooled vector too
    let pooled = match batch.dropout {
        Some(seed) => dropout(pooled, info.hidden_dropout, seed ^ 0xc1a5),
        None => pooled,
    };
    Ok(pooled.matmul(head.weight) + head.bias.unsqueeze())
}

/// Mean cross-entropy of `logits` `[B, L]` against `labels`.
pub fn cross_entropy(logits: Tensor<2>, labels: &[usize]) -> Tensor<1> {
    let [b, _] = logits.dims();
    let device = logits.device();
    let idx: Tensor<2, Int> =
        int_tensor(labels.iter().map(|&l| l as i64).collect(), [b, 1], &device);
    let logp = activation::log_softmax(logits, 1);
    logp.gather(1, idx).mean().neg()
}

/// Arg-max label per row and the softmax scores, read back to the host.
pub fn predictions(logits: Tensor<2>) -> (Vec<usize>, Vec<Vec<f32>>) {
    let [_, l] = logits.dims();
    let probs = crate::backbone::layers::to_vec(activation::softmax(logits, 1));
    let rows: Vec<Vec<f32>> = probs.chunks(l).map(|c| c.to_vec()).collect();
    let preds = rows
        .iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
                .0
        })
        .collect();
    (preds, rows)
}
