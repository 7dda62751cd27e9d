//! Prompt methods: each owns its trainable parameters and fills the backbone's hooks.

pub mod prompt_tuning;
