//! What `state.bin` holds besides the train state: who made the run, why this checkpoint
//! was written, and the digests that let the loader verify every other file.

use serde::{Deserialize, Serialize};

use crate::state::{History, TrainState};

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
    /// Saved state of callbacks, by callback name, and of streaming metrics (as
    /// `metric:NAME`), as JSON text.
    pub callbacks: Vec<(String, String)>,
    /// Size and SHA-256 of every tensor file, checked on load.
    pub files: Vec<FileDigest>,
    /// Seconds since the Unix epoch when written.
    pub created_unix: u64,
}

/// Names of the tensor files every checkpoint lists, once each.
const TENSOR_FILES: [&str; 3] = [
    super::MODEL_FILE,
    super::OPTIMIZER_FILE,
    super::CARRIED_FILE,
];

/// Checks one history: a value per row in every column, rows in `batches_fit` order,
/// none after `batches_fit`.
fn check_history(what: &str, h: &History, batches_fit: u64) -> Result<(), String> {
    let rows = h.at_batches_fit.len();
    for (name, column) in &h.metrics {
        if column.len() != rows {
            return Err(format!(
                "{what}: column `{name}` has {} values for {rows} rows",
                column.len()
            ));
        }
    }
    if let Some(w) = h.at_batches_fit.windows(2).find(|w| w[1] < w[0]) {
        return Err(format!(
            "{what}: rows out of order (at_batches_fit {} after {})",
            w[1], w[0]
        ));
    }
    match h.at_batches_fit.last() {
        Some(&last) if last > batches_fit => Err(format!(
            "{what}: a row at batches_fit {last}, but batches_fit is {batches_fit}"
        )),
        _ => Ok(()),
    }
}

impl CheckpointMeta {
    /// Checks that what `state.bin` holds is consistent: every tensor file listed once,
    /// histories of equal column lengths and in order, counters that agree with them,
    /// the best validation one that exists, callback states and the job config as JSON.
    /// [`load`](super::load) calls it, so every command that reads a checkpoint (`resume`,
    /// `inspect`, `report`, ...) accepts and refuses the same ones. The error says what
    /// does not agree.
    pub fn validate(&self) -> Result<(), String> {
        for file in TENSOR_FILES {
            let n = self.files.iter().filter(|d| d.name == file).count();
            if n != 1 {
                return Err(format!("files: {file} is listed {n} times, expected once"));
            }
        }
        if let Some(d) = self
            .files
            .iter()
            .find(|d| !TENSOR_FILES.contains(&d.name.as_str()))
        {
            return Err(format!("files: unexpected entry `{}`", d.name));
        }
        let s = &self.state;
        check_history("train_history", &s.train_history, s.batches_fit)?;
        check_history("val_history", &s.val_history, s.batches_fit)?;
        check_history("grad_norm_history", &s.grad_norm_history, s.batches_fit)?;
        if let Some(w) = s
            .train_history
            .at_batches_fit
            .windows(2)
            .find(|w| w[1] == w[0])
        {
            return Err(format!(
                "train_history: two rows at batches_fit {} (one row per batch)",
                w[0]
            ));
        }
        if s.val_history.len() as u64 != s.times_validated {
            return Err(format!(
                "times_validated is {} but val_history has {} rows",
                s.times_validated,
                s.val_history.len()
            ));
        }
        if s.epoch_ends.len() as u64 != s.epoch {
            return Err(format!(
                "epoch is {} but epoch_ends has {} entries",
                s.epoch,
                s.epoch_ends.len()
            ));
        }
        if let Some(w) = s.epoch_ends.windows(2).find(|w| w[1] < w[0]) {
            return Err(format!("epoch_ends out of order ({} after {})", w[1], w[0]));
        }
        if let Some(&last) = s.epoch_ends.last() {
            if last > s.batches_fit {
                return Err(format!(
                    "epoch_ends: an epoch ended at batches_fit {last}, but batches_fit is {}",
                    s.batches_fit
                ));
            }
        }
        if s.batch_in_epoch > s.batches_fit {
            return Err(format!(
                "batch_in_epoch {} exceeds batches_fit {}",
                s.batch_in_epoch, s.batches_fit
            ));
        }
        if let Some(best) = &s.best {
            if best.validation >= s.val_history.len() as u64 {
                return Err(format!(
                    "best: validation {} of {} validations",
                    best.validation,
                    s.val_history.len()
                ));
            }
            if best.batches_fit > s.batches_fit {
                return Err(format!(
                    "best: at batches_fit {}, but batches_fit is {}",
                    best.batches_fit, s.batches_fit
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (name, json) in &self.callbacks {
            if !seen.insert(name.as_str()) {
                return Err(format!("callbacks: the state of `{name}` is saved twice"));
            }
            serde_json::from_str::<serde_json::Value>(json)
                .map_err(|e| format!("state of callback {name}: {e}"))?;
        }
        if let Some(json) = &self.job_config {
            serde_json::from_str::<serde_json::Value>(json)
                .map_err(|e| format!("job_config: {e}"))?;
        }
        Ok(())
    }
}
