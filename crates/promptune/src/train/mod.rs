//! Training support: the trainer, learning-rate schedules, gradient clipping, atomic
//! checkpoints, evaluation metrics, the JSONL metrics log and its plots.

pub mod atomic;
pub mod clip;
pub mod metrics;
pub mod plot;
pub mod schedule;
pub mod trainer;
