//! deeptrain: a training framework on candle built for control and introspection.
//!
//! The whole train state is the public, serializable [`TrainState`]; a run can be
//! stopped at any iteration and resumed to finish bit-for-bit identical to a run that
//! never stopped. Start with [`trainer`], where the state machine lives.
#![warn(missing_docs)]

pub mod checkpoint;
pub mod cli;
mod console;
pub mod error;
pub mod interrupt;
pub mod job;
pub mod losses;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod optim;
mod range;
pub mod registry;
pub mod report;
pub mod rng;
mod simd;
pub mod state;
pub mod sweep;
pub mod trainer;
pub mod transforms;

#[path = "../callbacks/mod.rs"]
pub mod callbacks;
#[path = "../data_loaders/mod.rs"]
pub mod data_loaders;

pub use callbacks::{Callback, Control, Stage, TrainerView};
pub use error::{Error, Result};
pub use job::{JobConfig, Predictor};
pub use model::{Mlp, MlpConfig, Model, Recurrent, RecurrentConfig, Task};
pub use optim::{Adam, AdamConfig, AdamW, Sgd, SgdConfig, TrainOptimizer};
pub use rng::{RngStream, StreamId};
pub use state::{Phase, TrainState};
pub use trainer::{Outcome, TrainConfig, Trainer, TrainerBuilder};
