//! What `state.bin` holds besides the train state: who made the run, why this checkpoint
//! was written, and the digests that let the loader verify every other file.

use serde::{Deserialize, Serialize};

use crate::state::TrainState;

/// Describes a run for people: saved in every checkpoint so a report can be drawn from
/// a checkpoint alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run's name (the job's `name`, or the run directory's).
    pub name: String,
    /// The model, as its `Model::name` says (e.g. `mlp 64-128-10`).
    pub model: String,
    /// Scalar parameters of the model, frozen ones included.
    pub parameters: u64,
    /// The optimizer and its base learning rate, e.g. `adamw (lr 3e-3)`.
    pub optimizer: String,
    /// Where the tensors live, e.g. `Cpu`.
    pub device: String,
    /// The run's seed.
    pub seed: u64,
    /// Train epochs configured.
    pub epochs: u64,
    /// The resolved config, flattened to `section.key: value`.
    pub hyperparameters: Vec<(String, String)>,
}

/// Why a checkpoint was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaveReason {
    /// By the checkpoint policy (every N epochs / batches / steps).
    Periodic,
    /// A callback asked for it.
    Requested,
    /// Ctrl-C, SIGTERM or an `InterruptHandle`.
    Interrupt,
    /// A callback stopped the run (early stopping, health check).
    Stop,
    /// A callback failed; saved before reporting the error.
    CallbackError,
    /// The last epoch ended.
    Finish,
    /// A validation set a new best key metric (`RUN_DIR/best/`).
    Best,
}

/// Size and SHA-256 of one file of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// File name inside the checkpoint directory.
    pub name: String,
    /// Size in bytes.
    pub len: u64,
    /// SHA-256 of the contents, lowercase hex.
    pub sha256: String,
}

/// Everything in `state.bin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The whole train state at the save.
    pub state: TrainState,
    /// `Model::name` of the model saved.
    pub model_name: String,
    /// `TrainOptimizer::name` of the optimizer saved.
    pub optimizer_name: String,
    /// Who, what and how, for people and reports.
    pub run: RunInfo,
    /// Why this checkpoint was written.
    pub saved_because: SaveReason,
    /// The resolved job config as JSON, when the run was built from one.
    pub job_config: Option<String>,
    /// Saved state of callbacks, by callback name, as JSON text.
    pub callbacks: Vec<(String, String)>,
    /// Size and SHA-256 of every tensor file, checked on load.
    pub files: Vec<FileDigest>,
    /// Seconds since the Unix epoch when written.
    pub created_unix: u64,
}
