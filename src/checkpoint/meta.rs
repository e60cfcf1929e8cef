//! What `state.bin` holds besides the train state: who made the run, why this checkpoint
//! was written, and the digests that let the loader verify every other file.

use serde::{Deserialize, Serialize};

use crate::state::TrainState;

/// Describes a run for people: saved in every checkpoint so a report can be drawn from
/// a checkpoint alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub name: String,
    pub model: String,
    pub parameters: u64,
    pub optimizer: String,
    pub device: String,
    pub seed: u64,
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
    pub name: String,
    pub len: u64,
    pub sha256: String,
}

/// Everything in `state.bin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub state: TrainState,
    pub model_name: String,
    pub optimizer_name: String,
    /// Who, what and how, for people and reports.
    pub run: RunInfo,
    pub saved_because: SaveReason,
    /// The resolved job config as JSON, when the run was built from one.
    pub job_config: Option<String>,
    /// Saved state of callbacks, by callback name, as JSON text.
    pub callbacks: Vec<(String, String)>,
    pub files: Vec<FileDigest>,
    /// Seconds since the Unix epoch when written.
    pub created_unix: u64,
}
