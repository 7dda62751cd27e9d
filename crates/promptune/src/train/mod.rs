//! Training support: the trainer (the loop only: objective, optimiser, schedule, clipping,
//! accumulation, checkpoints and resume), learning-rate schedules, gradient clipping, atomic
//! writes and the JSONL metrics log.

pub mod atomic;
pub mod clip;
pub mod metrics;
pub mod schedule;
pub mod trainer;
