//! Evaluation metrics by task kind: entity-span F1 for sequence labelling ([`span`]), exact
//! match and token F1 for extractive question answering ([`squad`]), accuracy and macro-F1 for
//! classification ([`classification`]).

pub mod classification;
pub mod generation;
pub mod span;
pub mod squad;

pub use classification::{accuracy, macro_f1};
pub use span::{entities, span_scores, Entity, Prf, SpanScores};
pub use squad::{evaluate_squad, normalize_answer, score_prediction, QaScore, SquadScores};
