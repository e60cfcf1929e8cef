//! deeptrain: a training framework on candle built for control and introspection.
//!
//! The whole train state is the public, serializable [`TrainState`]; a run can be
//! stopped at any iteration and resumed to finish bit-for-bit identical to a run that
//! never stopped. Start with [`trainer`], where the state machine lives.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod console;
pub mod error;
pub mod histograms;
pub mod interrupt;
pub mod model;
pub mod optim;
pub mod recurrent;
pub mod report;
pub mod report_data;
pub mod rng;
pub mod state;
pub mod trainer;

#[path = "../callbacks/mod.rs"]
pub mod callbacks;
#[path = "../data_loaders/mod.rs"]
pub mod data_loaders;

pub use callbacks::{Callback, Control, Stage, TrainerView};
pub use config::JobConfig;
pub use error::{Error, Result};
pub use model::{Mlp, MlpConfig, Model, Task};
pub use optim::{Adam, AdamConfig, AdamW, Sgd, SgdConfig, TrainOptimizer};
pub use recurrent::{Recurrent, RecurrentConfig};
pub use rng::{RngStream, StreamId};
pub use state::{Phase, TrainState};
pub use trainer::{Outcome, TrainConfig, Trainer};
