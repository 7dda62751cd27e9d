//! Tasks: what is predicted from a backbone run under a method's hooks, with its objective
//! (the loss the trainer minimises and the dev metric it selects by) and its evaluator.
//!
//! - [`classification`]: a label per input through a template, read by a verbalizer or a
//!   linear head;
//! - [`tagging`] and [`extractive_qa`] (P-Tuning v2's NLU tasks, run by [`nlu`]): a tag per
//!   word, an answer span per question, read by linear heads on the plain text.

pub mod batch;
pub mod classification;
pub mod extractive_qa;
pub mod generation;
pub mod head;
pub mod nlu;
pub mod shared_prefix;
pub mod tagging;

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::params::Trainables;
use crate::Result;

/// What a task predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// A label per input, through a template (verbalizer or head).
    #[default]
    Classification,
    /// A tag per word (BIO tagging, first sub-token labelled), from CoNLL files.
    TokenClassification,
    /// An answer span in a context, from SQuAD files.
    QuestionAnswering,
    /// A target text from a source text (table-to-text, summarisation).
    Generation,
}

/// The `[qa]` table: windows over long contexts and span decoding (HF `run_qa`'s defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QaConfig {
    /// Context tokens two consecutive windows share.
    pub doc_stride: usize,
    /// Longest answer in tokens.
    pub max_answer_len: usize,
    /// Candidate start and end positions per window.
    pub n_best: usize,
}

impl Default for QaConfig {
    fn default() -> Self {
        Self {
            doc_stride: 128,
            max_answer_len: 30,
            n_best: 20,
        }
    }
}

impl QaConfig {
    /// Rejects settings under which no answer could ever be found.
    pub fn validate(&self) -> crate::Result<()> {
        if self.max_answer_len == 0 || self.n_best == 0 {
            return Err(crate::Error::InvalidInput(format!(
                "qa: max_answer_len ({}) and n_best ({}) must be at least 1: no span could be \
                 an answer",
                self.max_answer_len, self.n_best
            )));
        }
        Ok(())
    }

    /// The span-decoding options.
    pub fn decode(&self) -> extractive_qa::DecodeOptions {
        extractive_qa::DecodeOptions {
            n_best: self.n_best,
            max_answer_len: self.max_answer_len,
        }
    }
}

/// What the training loop needs from a task: a loss over chosen training examples and a dev
/// metric. Classification, token tagging and extractive QA implement it.
pub trait Objective {
    /// Length in tokens of each training example (for length-bucketed batches).
    fn train_lengths(&self) -> Vec<usize>;
    /// Mean loss over the training examples `idx` (gradients reach `params`).
    fn loss(&self, params: &Trainables, idx: &[usize]) -> Result<Tensor<1>>;
    /// Whether there is a dev set.
    fn has_dev(&self) -> bool;
    /// The dev metric of `params` (higher is better), `None` without a dev set.
    fn dev_metric(&self, params: &Trainables) -> Result<Option<f64>>;
    /// Name of the dev metric in logs.
    fn metric_name(&self) -> &'static str;
}

/// Several objectives trained with one optimiser: the training examples of all of them in one
/// pool (indices in order: the first objective's, then the second's, ...), each batch's loss
/// the example-weighted mean of its parts' losses, the dev metric the mean of theirs.
pub struct MultiTask<'a> {
    objectives: Vec<&'a dyn Objective>,
    /// First pool index of each objective, and the total at the end.
    offsets: Vec<usize>,
}

impl<'a> MultiTask<'a> {
    /// Pools the training examples of `objectives`.
    pub fn new(objectives: Vec<&'a dyn Objective>) -> Self {
        let mut offsets = vec![0];
        for o in &objectives {
            offsets.push(offsets.last().copied().unwrap_or(0) + o.train_lengths().len());
        }
        Self {
            objectives,
            offsets,
        }
    }

    /// The objective of pool index `i` and its index there.
    fn locate(&self, i: usize) -> Option<(usize, usize)> {
        let k = self
            .offsets
            .windows(2)
            .position(|w| i >= w[0] && i < w[1])?;
        Some((k, i - self.offsets[k]))
    }
}

impl Objective for MultiTask<'_> {
    fn train_lengths(&self) -> Vec<usize> {
        self.objectives
            .iter()
            .flat_map(|o| o.train_lengths())
            .collect()
    }

    fn loss(&self, params: &Trainables, idx: &[usize]) -> Result<Tensor<1>> {
        let mut parts: Vec<Vec<usize>> = vec![Vec::new(); self.objectives.len()];
        for &i in idx {
            let (k, j) = self.locate(i).ok_or_else(|| {
                crate::Error::InvalidInput(format!(
                    "training example {i} is outside the {} pooled examples",
                    self.offsets.last().copied().unwrap_or(0)
                ))
            })?;
            parts[k].push(j);
        }
        let mut total: Option<Tensor<1>> = None;
        for (objective, own) in self.objectives.iter().zip(&parts) {
            if own.is_empty() {
                continue;
            }
            let weight = own.len() as f64 / idx.len() as f64;
            let part = objective.loss(params, own)?.mul_scalar(weight);
            total = Some(match total {
                Some(t) => t + part,
                None => part,
            });
        }
        total.ok_or_else(|| crate::Error::InvalidInput("an empty training batch".into()))
    }

    fn has_dev(&self) -> bool {
        self.objectives.iter().any(|o| o.has_dev())
    }

    fn dev_metric(&self, params: &Trainables) -> Result<Option<f64>> {
        let mut metrics = Vec::new();
        for o in &self.objectives {
            if let Some(m) = o.dev_metric(params)? {
                metrics.push(m);
            }
        }
        Ok((!metrics.is_empty()).then(|| metrics.iter().sum::<f64>() / metrics.len() as f64))
    }

    fn metric_name(&self) -> &'static str {
        "mean_dev_metric"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::layers::{float_tensor, to_vec};
    use crate::params::HostTensor;
    use burn::tensor::Device;

    /// A toy objective: the loss of example `i` is `w * value[i]` for the trainable scalar `w`.
    struct Toy {
        values: Vec<f32>,
        metric: f64,
    }

    impl Objective for Toy {
        fn train_lengths(&self) -> Vec<usize> {
            vec![1; self.values.len()]
        }
        fn loss(&self, params: &Trainables, idx: &[usize]) -> Result<Tensor<1>> {
            let w = params.vector("w").unwrap();
            let v: Vec<f32> = idx.iter().map(|&i| self.values[i]).collect();
            let n = v.len();
            Ok((w * float_tensor(v, [n], &Device::flex())).mean())
        }
        fn has_dev(&self) -> bool {
            true
        }
        fn dev_metric(&self, _params: &Trainables) -> Result<Option<f64>> {
            Ok(Some(self.metric))
        }
        fn metric_name(&self) -> &'static str {
            "toy"
        }
    }

    #[test]
    fn pools_examples_and_weights_each_part_by_its_examples() {
        let a = Toy {
            values: vec![1.0, 2.0],
            metric: 0.5,
        };
        let b = Toy {
            values: vec![10.0, 20.0, 30.0],
            metric: 0.7,
        };
        let multi = MultiTask::new(vec![&a, &b]);
        assert_eq!(multi.train_lengths().len(), 5);
        let params =
            Trainables::from_host(&[HostTensor::new("w", vec![1], vec![1.0])], &Device::flex())
                .unwrap();
        // examples 1 (a: 2.0) and 3, 4 (b: 20.0, 30.0): the mean over the three
        let loss = to_vec(multi.loss(&params, &[1, 3, 4]).unwrap())[0];
        assert!((loss - (2.0 + 20.0 + 30.0) / 3.0).abs() < 1e-5, "{loss}");
        assert!(multi.loss(&params, &[5]).is_err());
        let m = multi.dev_metric(&params).unwrap().unwrap();
        assert!((m - 0.6).abs() < 1e-12);
    }
}
