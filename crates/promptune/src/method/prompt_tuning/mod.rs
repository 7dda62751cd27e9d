//! Prompt Tuning (Lester et al. 2021): trainable soft tokens spliced into the embedded input
//! wherever the template puts `{soft}` slots (prepended in the paper's setting).

mod init;

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

pub use init::initial_prompt;
pub(crate) use init::{sampled_ids, tokens as text_tokens};

use crate::backbone::SoftEmbeddings;

/// How the soft tokens start.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "text")]
pub enum PromptInit {
    /// Normal noise with the spread of the embedding table.
    Random,
    /// Embeddings of tokens sampled from the 5,000 first (most frequent) vocabulary ids.
    #[default]
    SampledVocab,
    /// Embeddings of a text's tokens, repeated cyclically to the prompt length (as PEFT's TEXT).
    Text(String),
    /// Embeddings of the label words first (the paper's best), then sampled vocabulary.
    ClassLabels,
}

/// The trainable soft prompt `[n_tokens, hidden]`.
#[derive(Module, Debug)]
pub struct SoftPrompt {
    /// One row per soft token.
    pub embedding: Param<Tensor<2>>,
}

impl SoftPrompt {
    /// Wraps initial values (on an autodiff device for training).
    pub fn from_tensor(values: Tensor<2>) -> Self {
        Self {
            embedding: Param::from_tensor(values),
        }
    }

    /// Number of soft tokens.
    pub fn len(&self) -> usize {
        self.embedding.val().dims()[0]
    }

    /// True for an empty prompt.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hook input for a batch whose rows hold the soft tokens at `positions`.
    pub fn hook(&self, positions: Vec<Vec<usize>>) -> SoftEmbeddings {
        SoftEmbeddings {
            values: self.embedding.val().unsqueeze_dim(0),
            positions,
        }
    }
}
