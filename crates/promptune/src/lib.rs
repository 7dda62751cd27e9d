//! promptune: adapt a frozen pretrained transformer with a few trainable prompt parameters.
//!
//! Layout: [`checkpoint`] reads weights (HF folders, GGUF), [`tokenizer`] builds tokenizers,
//! [`backbone`] holds the frozen transformer families with their prompt hooks.

pub mod backbone;
pub mod checkpoint;
pub mod error;
pub mod tokenizer;

pub use error::{Error, Result};
// pub mod generate; (enabled once the tokenizer module lands)
// pub mod model;
