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

pub(crate) use encoder::from_host;
pub use encoder::{
    initial_encoder, lstm_name, mlp_name, to_host, EncoderLinear, LstmDirection, PromptEncoderNet,
    EMBEDDING, LSTM_LAYERS, PREFIX,
};

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
