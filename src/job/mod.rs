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
mod notify;
mod predict;
mod resume;
mod source;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::callbacks::HealthPolicy;
use crate::error::{Error, Result};
use crate::metrics::MetricSpec;
use crate::registry::{AdamArgs, Component, EarlyStoppingArgs, MlpArgs, Registry};
use crate::trainer::TrainConfig;

pub use changes::ResumeChanges;
pub use compose::{
    config_differences, merge, parse_override, value_differences, EXTENDS_KEY, RUNS_DIR,
};
pub use data::DIGITS_CSV_GZ;
pub use device::{DeviceSpec, DEVICE_VALUES};
pub use evaluate::{ClassRow, EvalData, Evaluation};
pub use export::{export, ModelCard, TensorInfo, EXPORT_MODEL_FILE, MODEL_CARD_FILE};
pub use init::{frozen_variables, load_tensors, load_weights, read_weights, InitReport};
pub use notify::{NotifyConfig, NotifyStatus, SmtpConfig, SmtpTls};
pub use predict::{
    check_output_path, CheckpointChoice, PredictionSummary, Predictor, OUTPUT_EXTENSIONS,
};
pub use source::{DataOverview, DataSource, TransformStep};

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
    /// The model, by name with its arguments (`{"name": "mlp", "hidden": [256]}`; see
    /// `deeptrain list models`); a left-out name is `mlp`.
    #[serde(deserialize_with = "model_or_mlp")]
    pub model: Component,
    /// The optimizer, by name with its arguments (`{"name": "sgd", "lr": 0.1}`; see
    /// `deeptrain list optimizers`); a left-out name is `adamw`.
    #[serde(deserialize_with = "optimizer_or_adamw")]
    pub optimizer: Component,
    /// The loss, by name with its arguments (`{"name": "cross_entropy",
    /// "label_smoothing": 0.1}`; see `deeptrain list losses`); left out: cross-entropy for
    /// class ids, mean squared error for values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<Component>,
    /// The learning-rate schedule, by name with its arguments (`{"name": "one_cycle",
    /// "max_lr": 0.01}`; see `deeptrain list schedules`); left out: `train.schedule`
    /// (the older form, constant by default). Giving both is an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Component>,
    /// The metrics, as in the one-file form (`"metrics": ["accuracy", "f1_macro",
    /// "confusion_matrix"]`): read into `train.metrics` (see there), which is what the
    /// recorded config shows. Giving both is an error. Default: empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpec>,
    /// Fields left out take the default job's values (see `train_over_job_defaults`).
    /// `train.run_dir` left out or empty means `runs/NAME` (see [`JobConfig::resolved`]);
    /// the config saved in a run directory and its checkpoints has it filled in.
    #[serde(deserialize_with = "train_over_job_defaults")]
    pub train: TrainConfig,
    /// Built-in callbacks: logs, progress, health checks.
    pub logging: LoggingConfig,
    /// Stop when a validation metric stops improving.
    pub early_stopping: Option<EarlyStoppingConfig>,
    /// More callbacks by name with their arguments (`[{"name": "early_stopping",
    /// "monitor": "val_accuracy"}]`; see `deeptrain list callbacks`), added after the
    /// built-in ones in this order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub callbacks: Vec<Component>,
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
    /// A command to run or an e-mail to send when `train`/`resume` of this run ends,
    /// stops or fails (see [`NotifyConfig`]; sent by `crate::notify`). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyConfig>,
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

/// Early stopping on a validation metric: the `early_stopping` callback's arguments.
pub type EarlyStoppingConfig = EarlyStoppingArgs;

/// Where the data comes from and how it is batched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// `digits` (embedded), a CSV file (label in the last column; split by
    /// `val_fraction`), a directory or file read by AutoData (npy, safetensors, csv,
    /// MNIST idx; see `deeptrain data`), or a source by name with its arguments
    /// (`{"name": "series", "path": ...}`; see `deeptrain list sources`), which brings
    /// its own validation part.
    pub source: DataSource,
    /// With a directory source: which file of it to read (e.g. MNIST's `train-images`).
    pub file: Option<String>,
    /// Validation data for AutoData sources: a directory or file (default: `source`,
    /// when `val_file` is given), or a source by name (its validation part).
    pub val_source: Option<DataSource>,
    /// With a directory `val_source`: which file of it to validate on.
    pub val_file: Option<String>,
    /// Share of samples held out for validation, in [0, 1) (default 0.2; also spelt
    /// `val_split`), when no `val_source`/`val_file` is given: a seeded shuffle picks
    /// them. An AutoData source is then read into memory first.
    #[serde(alias = "val_split")]
    pub val_fraction: f64,
    /// Samples per train batch (default 32).
    pub batch_size: usize,
    /// Samples per validation batch (default 128; `null`: `batch_size`).
    pub val_batch_size: Option<usize>,
    /// Shuffle the train data every epoch (default on).
    pub shuffle: bool,
    /// Drop a last train batch smaller than `batch_size` (default off).
    pub drop_last: bool,
    /// Inputs are multiplied by this; left out (`null`), inputs are used as stored, except
    /// the embedded digits, whose job says its own 1/16 (pixels are 0-16).
    pub scale: Option<f32>,
    /// Names of the classes, by class id (a classification source's number of classes
    /// must match): in the model card, evaluation tables and predictions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
    /// Read an AutoData source into memory at the start instead of mapping it batch by
    /// batch (default off).
    pub preload: bool,
    /// A labels file for `source` (npy or csv, one label per sample in set order), instead
    /// of the one AutoData finds beside the data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// A labels file for `val_source`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_labels: Option<String>,
    /// A file of per-sample weights for `source` (npy, csv or safetensors; one number per
    /// sample in set order, any numeric type, each finite and `>= 0`): the loss and every
    /// metric weigh each sample by it (default: none, all samples weigh the same). They
    /// follow their samples through shuffling, `val_split` and windows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
    /// A weights file for `val_source` (or `val_file`), as `weights` (default: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_weights: Option<String>,
    /// With a CSV file `source`: the 0-based column holding per-sample weights, taken out
    /// of the features (default: none). The label stays the last column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_column: Option<usize>,
    /// Cut each AutoData sample (a sequence, time on its first axis) into windows fed one
    /// per iteration to a stateful model (`lstm`, `gru`), which carries its state from one
    /// window to the next of the same sequences; per-step labels follow the windows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows: Option<WindowsConfig>,
    /// Transforms by name with their arguments, applied in this order to every batch
    /// after `scale` (`[{"name": "random_crop", "padding": 1}, {"name": "random_flip"}]`;
    /// see `deeptrain list transforms`). Random ones (crop, flip, noise) draw on train
    /// batches only, from the run's seeded augmentation stream; deterministic ones
    /// (`scale`, `normalize`, `label_map`) also act on validation, evaluation and
    /// prediction. The model is sized for the batches they make.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Component>,
}

/// `data.windows`: time windows over sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowsConfig {
    /// Time steps per window, at least 1.
    pub length: usize,
    /// Steps from one window's start to the next one's (default: `length`, tiling).
    #[serde(default)]
    pub slide: Option<usize>,
    /// Offset of the first window, cycled per epoch (default `[0]`).
    #[serde(default = "first_window_at_zero")]
    pub start_increments: Vec<usize>,
}

fn first_window_at_zero() -> Vec<usize> {
    vec![0]
}

impl DataConfig {
    /// The factor inputs are multiplied by: `scale`, else 1/16 for the embedded digits,
    /// else 1 (no hidden scaling).
    pub fn input_scale(&self) -> f32 {
        match self.scale {
            Some(s) => s,
            None if self.source == "digits" => DIGITS_SCALE,
            None => 1.0,
        }
    }
}

/// The embedded digits' pixels are 0-16: the default job scales them to [0, 1].
pub const DIGITS_SCALE: f32 = 1.0 / 16.0;

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
            scale: None,
            class_names: None,
            preload: false,
            labels: None,
            val_labels: None,
            weights: None,
            val_weights: None,
            weight_column: None,
            windows: None,
            transforms: Vec::new(),
        }
    }
}

/// A built-in component with its default arguments written out.
fn builtin_default(name: &str, args: impl Serialize) -> Component {
    Component::with_args(name, args).unwrap_or_else(|_| Component::named(name))
}

/// The model section: `mlp` when its name is left out.
fn model_or_mlp<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Component, D::Error> {
    named_or(d, "mlp")
}

/// The optimizer section: `adamw` when its name is left out.
fn optimizer_or_adamw<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Component, D::Error> {
    named_or(d, "adamw")
}

/// A component whose name, when left out, is `default`.
fn named_or<'de, D: Deserializer<'de>>(
    d: D,
    default: &str,
) -> std::result::Result<Component, D::Error> {
    let mut c = Component::deserialize(d)?;
    if c.name.is_empty() {
        c.name = default.to_string();
    }
    Ok(c)
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            name: "digits".into(),
            device: DeviceSpec::Cpu,
            threads: 0,
            data: DataConfig {
                scale: Some(DIGITS_SCALE),
                ..DataConfig::default()
            },
            model: builtin_default("mlp", MlpArgs::default()),
            optimizer: builtin_default("adamw", AdamArgs::default()),
            loss: None,
            schedule: None,
            metrics: Vec::new(),
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
            callbacks: Vec::new(),
            init_from: None,
            init_map: BTreeMap::new(),
            freeze: Vec::new(),
            notify: None,
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
    /// name the field (`optimizer.beta1: 1.5 is not in [0, 1)`). Built-in components
    /// are read by their argument types; a name the built-ins lack is left for the
    /// registry the job is built with (see [`JobConfig::from_json_str_with`]).
    pub fn from_json_str(text: &str, origin: &Path) -> Result<Self> {
        Self::parse(text, origin, crate::registry::builtins(), false)
    }

    /// [`JobConfig::from_json_str`] where every component must be in `registry`.
    pub fn from_json_str_with(text: &str, origin: &Path, registry: &Registry) -> Result<Self> {
        Self::parse(text, origin, registry, true)
    }

    /// This config with every component read by `registry` (see
    /// [`JobConfig::resolve_components`]); errors name `origin`, the file it came from.
    pub fn resolve_with(&self, registry: &Registry, origin: &Path) -> Result<Self> {
        self.resolve_components(registry, true)
            .map_err(|e| in_file(e, origin))
    }

    fn parse(text: &str, origin: &Path, registry: &Registry, strict: bool) -> Result<Self> {
        let mut de = serde_json::Deserializer::from_str(text);
        let mut job: JobConfig =
            serde_path_to_error::deserialize(&mut de).map_err(|e| config_error(origin, e))?;
        de.end().map_err(|source| Error::ConfigJson {
            path: origin.to_path_buf(),
            source,
        })?;
        if !job.metrics.is_empty() {
            if !job.train.metrics.is_empty() {
                return Err(in_file(
                    Error::config("metrics", "give `metrics` or `train.metrics`, not both"),
                    origin,
                ));
            }
            job.train.metrics = std::mem::take(&mut job.metrics);
        }
        // The one source with a scale of its own says it, so the recorded config does.
        job.data.scale = Some(job.data.input_scale());
        // Built-in components are read by their types now (defaults filled in); a user's
        // are read when the job is built with the user's registry.
        job.resolve_components(registry, strict)
            .and_then(|job| job.validate().map(|()| job))
            .map_err(|e| in_file(e, origin))
    }

    /// The resolved config as pretty JSON; [`JobConfig::from_json_str`] reads it back
    /// to an equal config.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// A config error as one line naming the file it is in.
fn in_file(e: Error, origin: &Path) -> Error {
    match e {
        Error::Config { field, reason } => Error::ConfigJson {
            path: origin.to_path_buf(),
            source: serde_json::Error::custom(format!("{field}: {reason}")),
        },
        other => other,
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
