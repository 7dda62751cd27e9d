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
