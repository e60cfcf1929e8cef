//! Job configs: a whole run (data, model, optimizer, loop) described in JSON.
//!
//! This file holds the config types and their reading and checking; every choice among
//! named alternatives (device, optimizer, model, health policy, schedule) is an enum, so
//! a wrong name is an error naming the field and the valid values when the file is read.
//! Building the run is in `build.rs` and `data.rs`, rebuilding it from a checkpoint in
//! `resume.rs`. Using a trained run (predict, evaluate, export) is in `predict.rs`,
//! `evaluate.rs` and `export.rs`.
//!
//! The resolved config is written to `RUN_DIR/config.json` and into every checkpoint,
//! which is what lets `Trainer::resume(path)` rebuild the run with nothing else.

mod build;
mod changes;
mod compose;
mod data;
mod defaults;
mod device;
mod evaluate;
mod export;
mod init;
mod predict;
mod resume;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::callbacks::HealthPolicy;
use crate::error::{Error, Result};
use crate::trainer::TrainConfig;

pub use changes::ResumeChanges;
pub use compose::{config_differences, merge, parse_override, EXTENDS_KEY, RUNS_DIR};
pub use data::DIGITS_CSV_GZ;
pub use device::{DeviceSpec, DEVICE_VALUES};
pub use evaluate::{ClassRow, EvalData, Evaluation};
pub use export::{export, ModelCard, TensorInfo, EXPORT_MODEL_FILE, MODEL_CARD_FILE};
pub use init::{frozen_variables, load_tensors, load_weights, read_weights, InitReport};
pub use predict::{
    check_output_path, CheckpointChoice, PredictionSummary, Predictor, OUTPUT_EXTENSIONS,
};

/// A whole run described in JSON: data, model, optimizer, loop, logging. Every field is
/// optional (the default job: an MLP on the embedded digits); unknown fields are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobConfig {
    /// The run's name in reports and, unless `train.run_dir` is given, its directory
    /// `runs/NAME` (default `digits`). Empty: a descriptive name from the settings, e.g.
    /// `mlp-256_adamw-1e-3_b128_s7` (see [`JobConfig::resolved`]).
    pub name: String,
    /// `cpu`, `cuda:N` (`cuda`: `cuda:0`) or `auto` (CUDA when built with it and present).
    pub device: DeviceSpec,
    /// CPU threads for candle's kernels; 0 picks the default (see `cli::default_threads`).
    pub threads: usize,
    /// What to train and validate on.
    pub data: DataConfig,
    /// The model, by `kind`.
    pub model: ModelConfig,
    /// The optimizer, by `kind`.
    pub optimizer: OptimizerConfig,
    /// Fields left out take the default job's values (see `train_over_job_defaults`).
    /// `train.run_dir` left out or empty means `runs/NAME` (see [`JobConfig::resolved`]);
    /// the config saved in a run directory and its checkpoints has it filled in.
    #[serde(deserialize_with = "train_over_job_defaults")]
    pub train: TrainConfig,
    /// Built-in callbacks: logs, progress, health checks.
    pub logging: LoggingConfig,
    /// Stop when a validation metric stops improving.
    pub early_stopping: Option<EarlyStoppingConfig>,
    /// Start from trained weights: a run directory (its newest good checkpoint), a
    /// checkpoint directory (`runs/x/best`), a directory with a `model.safetensors` (an
    /// exported model) or a `.safetensors` file. Every model variable whose name (after
    /// `init_map`) is in the source with the same shape is overwritten before training;
    /// a shape mismatch or no match at all is an error. Not applied again on resume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// Renames of the source's tensors before matching: `{"source.name": "model.name"}`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub init_map: BTreeMap<String, String>,
    /// Variables the optimizer leaves alone, by name pattern (`layers.0.*`; `*` is any
    /// run of characters, `?` one character); a pattern matching nothing is an error.
    /// Frozen variables are saved in checkpoints all the same.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
}

/// Built-in callbacks a job gets; logs go into the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// `RUN_DIR/logs/train.csv` and `val.csv`.
    pub csv: bool,
    /// TensorBoard event files in `RUN_DIR/tensorboard`.
    pub tensorboard: bool,
    /// Weight and gradient histograms every this many steps (0: none).
    pub histogram_every: u64,
    /// Progress bar / lines and one line per validation.
    pub progress: bool,
    /// On NaN/Inf loss, gradients or weights: `stop` with a checkpoint, `skip` the
    /// update, or `warn`.
    pub health: HealthPolicy,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            csv: true,
            tensorboard: true,
            histogram_every: 100,
            progress: true,
            health: HealthPolicy::Stop,
        }
    }
}

/// Early stopping on a validation metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    /// The metric watched (default `val_loss`; its direction is known by name).
    pub monitor: String,
    /// Validations without improvement before stopping (default 5).
    pub patience: u64,
    /// Smallest change that counts as an improvement (default 0).
    pub min_delta: f64,
    /// Validations ignored at the start (default 0).
    pub warmup: u64,
}

impl Default for EarlyStoppingConfig {
    fn default() -> Self {
        Self {
            monitor: "val_loss".into(),
            patience: 5,
            min_delta: 0.0,
            warmup: 0,
        }
    }
}

/// Where the data comes from and how it is batched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// `digits` (embedded), a CSV file (label in the last column; split by
    /// `val_fraction`), or a directory or file read by AutoData (npy, safetensors, csv,
    /// MNIST idx; see `deeptrain data`).
    pub source: String,
    /// With a directory source: which file of it to read (e.g. MNIST's `train-images`).
    pub file: Option<String>,
    /// Validation data for AutoData sources: a directory or file (default: `source`,
    /// when `val_file` is given).
    pub val_source: Option<String>,
    /// With a directory `val_source`: which file of it to validate on.
    pub val_file: Option<String>,
    /// Share of samples held out for validation (digits and CSV sources only).
    pub val_fraction: f64,
    /// Samples per train batch (default 32).
    pub batch_size: usize,
    /// Samples per validation batch (default 128; `null`: `batch_size`).
    pub val_batch_size: Option<usize>,
    /// Shuffle the train data every epoch (default on).
    pub shuffle: bool,
    /// Drop a last train batch smaller than `batch_size` (default off).
    pub drop_last: bool,
    /// Inputs are multiplied by this (digits pixels are 0-16).
    pub scale: f32,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            source: "digits".into(),
            file: None,
            val_source: None,
            val_file: None,
            val_fraction: 0.2,
            batch_size: 32,
            val_batch_size: Some(128),
            shuffle: true,
            drop_last: false,
            scale: 1.0 / 16.0,
        }
    }
}

/// The model, by `kind`; a left-out `kind` is `mlp`.
// `remote = "Self"`: the derives become inherent functions, which the trait impls below
// wrap to default the tag (serde has no default for an internally tagged enum's tag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", remote = "Self")]
pub enum ModelConfig {
    /// `"kind": "mlp"`: the built-in multi-layer perceptron.
    Mlp(MlpSettings),
}

/// A multi-layer perceptron; inputs and outputs are sized from the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpSettings {
    /// Widths of the hidden layers.
    pub hidden: Vec<usize>,
    /// Dropout probability after each hidden activation, in [0, 1) (default 0.2).
    pub dropout: f64,
}

impl Default for MlpSettings {
    fn default() -> Self {
        Self {
            hidden: vec![128],
            dropout: 0.2,
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Mlp(MlpSettings::default())
    }
}

/// The optimizer, by `kind`, with the settings of that kind only (`momentum` under
/// `adamw` is an error); a left-out `kind` is `adamw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", remote = "Self")]
pub enum OptimizerConfig {
    /// Adam with decoupled weight decay.
    #[serde(rename = "adamw")]
    AdamW(AdamSettings),
    /// Adam; `weight_decay` is added to the gradient (L2).
    #[serde(rename = "adam")]
    Adam(AdamSettings),
    /// SGD with optional (Nesterov) momentum, as PyTorch's.
    #[serde(rename = "sgd")]
    Sgd(SgdSettings),
}

/// Settings of `adamw` and `adam`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamSettings {
    /// Base learning rate (default 3e-3).
    pub lr: f64,
    /// Weight decay: decoupled for `adamw`, L2 in the gradient for `adam` (default 1e-4).
    pub weight_decay: f64,
    /// First-moment decay (default 0.9).
    pub beta1: f64,
    /// Second-moment decay (default 0.999).
    pub beta2: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
}

impl Default for AdamSettings {
    fn default() -> Self {
        Self {
            lr: 3e-3,
            weight_decay: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Settings of `sgd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdSettings {
    /// Learning rate (default 3e-3).
    pub lr: f64,
    /// Momentum factor; 0 is plain SGD (default 0.9).
    pub momentum: f64,
    /// Dampening of the momentum (default 0).
    pub dampening: f64,
    /// Nesterov momentum (default off).
    pub nesterov: bool,
    /// L2 weight decay added to the gradient (default 1e-4).
    pub weight_decay: f64,
}

impl Default for SgdSettings {
    fn default() -> Self {
        Self {
            lr: 3e-3,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 1e-4,
        }
    }
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::AdamW(AdamSettings::default())
    }
}

impl OptimizerConfig {
    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::AdamW(a) | OptimizerConfig::Adam(a) => a.lr,
            OptimizerConfig::Sgd(s) => s.lr,
        }
    }

    /// Sets the base learning rate, whatever the kind.
    pub fn set_lr(&mut self, lr: f64) {
        match self {
            OptimizerConfig::AdamW(a) | OptimizerConfig::Adam(a) => a.lr = lr,
            OptimizerConfig::Sgd(s) => s.lr = lr,
        }
    }
}

/// `{"kind": KIND}`: the tag a tagged section takes when it is left out.
fn default_kind(kind: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::Map::from_iter([("kind".to_string(), kind.into())])
}

/// Forwards a trait impl to the inherent functions that `remote = "Self"` derives.
macro_rules! tagged_with_default_kind {
    ($ty:ident, $kind:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                $ty::serialize(self, s)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                /// The derived deserializer, which wants the tag.
                struct Derived($ty);
                impl<'de> Deserialize<'de> for Derived {
                    fn deserialize<D: Deserializer<'de>>(
                        d: D,
                    ) -> std::result::Result<Self, D::Error> {
                        $ty::deserialize(d).map(Derived)
                    }
                }
                defaults::with_defaults::<D, Derived>(d, default_kind($kind)).map(|d| d.0)
            }
        }
    };
}
tagged_with_default_kind!(ModelConfig, "mlp");
tagged_with_default_kind!(OptimizerConfig, "adamw");

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            name: "digits".into(),
            device: DeviceSpec::Cpu,
            threads: 0,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            optimizer: OptimizerConfig::default(),
            train: TrainConfig {
                epochs: 15,
                seed: 7,
                // Derived: `runs/NAME`, i.e. `runs/digits`.
                run_dir: PathBuf::new(),
                key_metric: "val_accuracy".into(),
                ..TrainConfig::default()
            },
            logging: LoggingConfig::default(),
            early_stopping: None,
            init_from: None,
            init_map: BTreeMap::new(),
            freeze: Vec::new(),
        }
    }
}

impl JobConfig {
    /// Reads a JSON job config, with its `extends` chain (see
    /// [`JobConfig::from_file_with_overrides`]); fields left out take their defaults.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_file_with_overrides(path, &[])
    }

    /// Parses and checks a JSON job config; `origin` names it in errors, which also
    /// name the field (`optimizer.kind: unknown variant ...`).
    pub fn from_json_str(text: &str, origin: &Path) -> Result<Self> {
        let mut de = serde_json::Deserializer::from_str(text);
        let job: JobConfig =
            serde_path_to_error::deserialize(&mut de).map_err(|e| config_error(origin, e))?;
        de.end().map_err(|source| Error::ConfigJson {
            path: origin.to_path_buf(),
            source,
        })?;
        job.validate().map_err(|e| match e {
            Error::Config { field, reason } => Error::ConfigJson {
                path: origin.to_path_buf(),
                source: serde_json::Error::custom(format!("{field}: {reason}")),
            },
            other => other,
        })?;
        Ok(job)
    }

    /// The resolved config as pretty JSON; [`JobConfig::from_json_str`] reads it back
    /// to an equal config.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// A deserialization error as one line: the file, the field path, serde's message
/// (which lists the valid values of an enum) and the position.
fn config_error(origin: &Path, e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let source = if path == "." {
        inner
    } else {
        serde_json::Error::custom(format!("{path}: {inner}"))
    };
    Error::ConfigJson {
        path: origin.to_path_buf(),
        source,
    }
}

/// Reads a `train` section over the default job's loop settings rather than over
/// `TrainConfig::default()`, so `{"train": {"epochs": 60}}` is the default job with 60
/// epochs (seed 7, run directory `runs/NAME`, `val_accuracy`), exactly as `--epochs 60` is.
fn train_over_job_defaults<'de, D>(deserializer: D) -> std::result::Result<TrainConfig, D::Error>
where
    D: Deserializer<'de>,
{
    let defaults = match serde_json::to_value(JobConfig::default().train) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => {
            return Err(D::Error::custom(
                "the default train settings do not serialize",
            ))
        }
    };
    defaults::with_defaults(deserializer, defaults)
}
