//! Prompt Tuning (Lester et al. 2021): trainable soft tokens spliced into the embedded input
//! wherever the template puts `{soft}` slots (prepended in the paper's setting).

mod init;

use serde::{Deserialize, Serialize};

pub use init::initial_prompt;
pub(crate) use init::{sampled_ids, tokens as text_tokens};

use super::unfreeze::Unfreeze;
use super::{AdapterHooks, InitContext, Method};
use crate::backbone::BackboneInfo;
use crate::params::{HostTensor, Trainables};
use crate::{Error, Result};

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

/// The `[method]` settings of `kind = "prompt_tuning"`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptTuningConfig {
    /// How the soft tokens start (default `sampled_vocab`).
    pub init: PromptInit,
    /// Backbone weights trained beside the prompt: `none` (default), `biases` or `all`.
    pub unfreeze: Unfreeze,
}

impl PromptTuningConfig {
    /// The keys of this config.
    pub const FIELDS: &'static [&'static str] = &["init", "unfreeze"];

    /// The initial soft prompt `[slots, hidden]` for the template's `{soft}` slots (none
    /// without slots: then only a head or unfrozen weights train).
    pub fn initial_tensors(&self, ctx: &InitContext) -> Result<Vec<HostTensor>> {
        let Some((n, values)) = ctx.soft_values(&self.init)? else {
            return Ok(Vec::new());
        };
        let shape = vec![n, ctx.backbone.info().hidden_size];
        Ok(vec![HostTensor::new(PROMPT, shape, values)])
    }
}

/// Host name of the soft prompt `[n_tokens, hidden]`.
pub const PROMPT: &str = "prompt";

/// The registry entry: the `prompt` tensor goes into the soft slots as it is.
pub struct PromptTuning;

impl Method for PromptTuning {
    fn kind(&self) -> &'static str {
        "prompt_tuning"
    }

    fn owns(&self, name: &str) -> bool {
        name == PROMPT
    }

    fn contribute(
        &self,
        params: &Trainables,
        info: &BackboneInfo,
        hooks: &mut AdapterHooks,
    ) -> Result<()> {
        let Some(values) = params.matrix(PROMPT) else {
            return match params.dims(PROMPT) {
                Some(d) => Err(Error::Shape(format!("adapter prompt is {d:?}, not 2-D"))),
                None => Ok(()),
            };
        };
        if values.dims()[1] != info.hidden_size {
            return Err(Error::Shape(format!(
                "adapter prompt is {:?}, model hidden size {}",
                values.dims(),
                info.hidden_size
            )));
        }
        hooks.set_soft(values, self.kind())
    }
}
