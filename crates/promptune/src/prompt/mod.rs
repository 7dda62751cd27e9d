//! Prompts: templates (text, fields, soft tokens, answer slot), verbalizers, and the encoder
//! that turns examples into model inputs.

pub mod encode;
pub mod template;
pub mod verbalizer;

pub use encode::{AnswerStyle, EncodedPrompt, PromptEncoder, MAX_CHARS_PER_TOKEN};
pub use template::{Part, Template};
pub use verbalizer::{Verbalizer, VerbalizerSpec};
