//! Tasks: how a backbone, a prompt encoder, a method's hooks and a head combine into
//! predictions and a loss.

pub mod batch;
pub mod classification;
pub mod extractive_qa;
pub mod nlu;
pub mod shared_prefix;
pub mod tagging;
