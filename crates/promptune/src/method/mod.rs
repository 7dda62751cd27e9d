//! Prompt methods: each owns its trainable parameters and fills the backbone's hooks.

pub mod p_tuning;
pub mod prefix_tuning;
pub mod prompt_tuning;
pub mod unfreeze;
