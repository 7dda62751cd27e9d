//! promptune: adapt a frozen pretrained transformer with a few trainable prompt parameters.
//!
//! Data flows one way: [`checkpoint`] reads weights (HF folders, GGUF) → [`backbone`] holds
//! the frozen transformer families with their prompt hooks ← [`method`] fills those hooks from
//! named trainable tensors ([`params`]) ← [`prompt`] (templates, verbalizers) and [`task`]
//! (what is predicted, its objective and evaluator) ← [`train`] (the loop) ← [`pipeline`]
//! (config-driven train / eval / predict) ← the command line. [`adapter`] saves and loads what
//! training produces, in our layout and PEFT's.

#![warn(missing_docs)]

pub mod adapter;
pub mod backbone;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod generate;
pub mod method;
pub mod metrics;
pub mod model;
pub mod params;
pub mod pipeline;
pub mod prompt;
pub mod runtime;
pub mod task;
pub mod tokenizer;
pub mod train;

pub use error::{Error, Result};

/// What most library users need, in one `use promptune::prelude::*;`.
pub mod prelude {
    pub use crate::adapter::Adapter;
    pub use crate::backbone::{Backbone, BackboneInfo, ForwardInput, TokenBatch};
    pub use crate::method::{AdapterHooks, Method, MethodConfig};
    pub use crate::model::Model;
    pub use crate::params::{HostTensor, Trainables};
    pub use crate::pipeline::{run_train, Predictor, TaskConfig};
    pub use crate::task::{Objective, TaskKind};
    pub use crate::train::trainer::{fit, TrainConfig, TrainObserver};
    pub use crate::{Error, Result};
}
