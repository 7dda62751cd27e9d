//! promptune: adapt a frozen pretrained transformer with a few trainable prompt parameters.
//!
//! Layout: [`checkpoint`] reads weights (HF folders, GGUF), [`tokenizer`] builds tokenizers,
//! [`backbone`] holds the frozen transformer families with their prompt hooks.

pub mod adapter;
pub mod backbone;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod generate;
pub mod method;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod prompt;
pub mod runtime;
pub mod task;
pub mod tokenizer;
pub mod train;

pub use error::{Error, Result};
