//! P-Tuning (Liu et al. 2021, "GPT Understands, Too"): the soft tokens are not trained
//! directly but produced by a small prompt encoder from a trainable input embedding, as PEFT's
//! `PromptEncoder` (`peft_type = "P_TUNING"`):
//! - `encoder_type = "mlp"` (default, PEFT's `MLP`): `Linear(h, e) → ReLU → Linear(e, e) →
//!   ReLU → Linear(e, h)`;
//! - `encoder_type = "lstm"` (the paper's): a bidirectional two-layer LSTM (`h → e` per
//!   direction) then `Linear(2e, 2e) → ReLU → Linear(2e, h)`;
//!
//! with `h` the model's hidden size and `e = encoder_hidden_size` (default `h`). The input
//! embedding starts as prompt tuning's soft prompt would (`init`), the layers as PyTorch's
//! defaults.
//!
//! The pseudo tokens are the template's `{soft}` slots, so they may stand anywhere, and real
//! words between them act as the paper's anchor tokens:
//!
//! ```toml
//! template = "{soft*3}{text_a}{soft*3} sentiment:{mask}"
//! [method]
//! kind = "p_tuning"
//! encoder_type = "lstm"
//! ```
//!
//! runs `[p1 p2 p3] review words [p4 p5 p6] sentiment: → answer`, where `p1..p6` are the
//! encoder's six output rows in template order and " sentiment:" is an anchor. Only where
//! the soft values come from differs from prompt tuning; the backbone's soft hook splices them
//! in the same way.
//!
//! Adapters and checkpoints keep the encoder's weights (so training can resume); the PEFT
//! export (`export-peft`) writes the encoder's output as `prompt_embeddings`, which is what
//! PEFT itself saves for P_TUNING and loads in inference mode.

mod encoder;

use serde::{Deserialize, Serialize};

pub use encoder::{
    from_params, initial_encoder, lstm_name, mlp_name, EncoderLinear, LstmDirection,
    PromptEncoderNet, EMBEDDING, LSTM_LAYERS, PREFIX,
};

use super::prompt_tuning::PromptInit;
use super::unfreeze::Unfreeze;
use super::{AdapterHooks, InitContext, Method};
use crate::backbone::BackboneInfo;
use crate::params::{HostTensor, Trainables};
use crate::{Error, Result};

/// The prompt encoder's architecture (PEFT's `encoder_reparameterization_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderType {
    /// Three linear layers with ReLU between them.
    #[default]
    Mlp,
    /// Bidirectional two-layer LSTM, then two linear layers.
    Lstm,
}

impl EncoderType {
    /// PEFT's name (`MLP`, `LSTM`).
    pub fn peft_name(self) -> &'static str {
        match self {
            Self::Mlp => "MLP",
            Self::Lstm => "LSTM",
        }
    }
}

/// The `[method]` settings of `kind = "p_tuning"`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PTuningConfig {
    /// How the encoder's input embedding starts (as prompt tuning's soft prompt would; its
    /// layers start as PyTorch's defaults).
    pub init: PromptInit,
    /// The prompt encoder, `mlp` (default, PEFT's default) or `lstm` (the paper's
    /// bidirectional two-layer LSTM + MLP).
    pub encoder_type: EncoderType,
    /// The encoder's width `e` (MLP layers, LSTM per direction; default: the hidden size).
    pub encoder_hidden_size: Option<usize>,
    /// Backbone weights trained beside the encoder: `none` (default), `biases` or `all`.
    pub unfreeze: Unfreeze,
}

impl PTuningConfig {
    /// The keys of this config.
    pub const FIELDS: &'static [&'static str] =
        &["init", "encoder_type", "encoder_hidden_size", "unfreeze"];

    /// A fresh encoder for the template's `{soft}` slots.
    pub fn initial_tensors(&self, ctx: &InitContext) -> Result<Vec<HostTensor>> {
        let Some((n, values)) = ctx.soft_values(&self.init)? else {
            return Err(Error::InvalidInput(format!(
                "p-tuning produces the template's {{soft}} tokens; the template `{}` has none",
                ctx.template_source()
            )));
        };
        let hidden = ctx.backbone.info().hidden_size;
        let e = self.encoder_hidden_size.unwrap_or(hidden);
        if e == 0 {
            return Err(Error::InvalidInput(
                "p-tuning needs encoder_hidden_size >= 1".into(),
            ));
        }
        Ok(initial_encoder(
            self.encoder_type,
            n,
            hidden,
            e,
            values,
            ctx.seed,
        ))
    }
}

/// The registry entry: the `p_tuning.*` encoder's output goes into the soft slots.
pub struct PTuning;

impl Method for PTuning {
    fn kind(&self) -> &'static str {
        "p_tuning"
    }

    fn owns(&self, name: &str) -> bool {
        name.starts_with(PREFIX)
    }

    fn contribute(
        &self,
        params: &Trainables,
        info: &BackboneInfo,
        hooks: &mut AdapterHooks,
    ) -> Result<()> {
        match from_params(params)? {
            Some(net) => {
                net.check(info.hidden_size)?;
                hooks.set_soft(net.output(), self.kind())
            }
            None => Ok(()),
        }
    }
}
