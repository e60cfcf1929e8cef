//! Job configs: a whole run (data, model, optimizer, loop) described in JSON.
//!
//! The resolved config is written to `RUN_DIR/config.json` and into every checkpoint,
//! which is what lets `Trainer::resume(path)` rebuild the run with nothing else.

mod resume;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::callbacks::{
    CsvLogger, EarlyStopping, HealthCheck, HealthPolicy, Progress, TensorBoard,
};
use crate::data_loaders::array::DType as ArrayDType;
use crate::data_loaders::csv_file::{parse_csv, read_csv, CsvOptions, LabelColumn};
use crate::data_loaders::{AutoData, DataInfo, DataLoader, InMemoryData};
use crate::error::{Error, IoContext, Result};
use crate::model::{Mlp, MlpConfig, Model};
use crate::optim::{Adam, AdamConfig, AdamW, Sgd, SgdConfig, TrainOptimizer};
use crate::rng::{RngStream, StreamId};
use crate::trainer::{TrainConfig, Trainer};

/// The UCI optical digits set (1797 x 64 pixels 0-16, label last), embedded in the binary.
pub const DIGITS_CSV_GZ: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/digits.csv.gz"));

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobConfig {
    pub name: String,
    /// `cpu`, `cuda:N` or `auto` (CUDA when built with it and present).
    pub device: String,
    /// CPU threads for candle's kernels; 0 picks the default (see `cli::default_threads`).
    pub threads: usize,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub optimizer: OptimizerConfig,
    /// Fields left out take the default job's values (see `train_over_job_defaults`).
    #[serde(deserialize_with = "train_over_job_defaults")]
    pub train: TrainConfig,
    pub logging: LoggingConfig,
    /// Stop when a validation metric stops improving.
    pub early_stopping: Option<EarlyStoppingConfig>,
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
    /// Stop on NaN/Inf loss, gradients or weights (`stop`), skip the update (`skip`) or `warn`.
    pub health: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            csv: true,
            tensorboard: true,
            histogram_every: 100,
            progress: true,
            health: "stop".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    pub monitor: String,
    pub patience: u64,
    pub min_delta: f64,
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
    pub val_file: Option<String>,
    /// Share of samples held out for validation (digits and CSV sources only).
    pub val_fraction: f64,
    pub batch_size: usize,
    pub val_batch_size: Option<usize>,
    pub shuffle: bool,
    pub drop_last: bool,
    /// Inputs are multiplied by this (digits pixels are 0-16).
    pub scale: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Only `mlp` for now.
    pub kind: String,
    pub hidden: Vec<usize>,
    pub dropout: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    /// `adamw`, `adam` or `sgd`.
    pub kind: String,
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            name: "digits-mlp".into(),
            device: "cpu".into(),
            threads: 0,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            optimizer: OptimizerConfig::default(),
            train: TrainConfig {
                epochs: 15,
                seed: 7,
                run_dir: PathBuf::from("runs/digits"),
                key_metric: "val_accuracy".into(),
                ..TrainConfig::default()
            },
            logging: LoggingConfig::default(),
            early_stopping: None,
        }
    }
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

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            kind: "mlp".into(),
            hidden: vec![128],
            dropout: 0.2,
        }
    }
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            kind: "adamw".into(),
            lr: 3e-3,
            weight_decay: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
        }
    }
}

impl JobConfig {
    /// Reads a JSON job config; fields left out take their defaults.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).at(path)?;
        Self::from_json_str(&text, path)
    }

    pub fn from_json_str(text: &str, origin: &Path) -> Result<Self> {
        let job: JobConfig = serde_json::from_str(text).map_err(|source| Error::ConfigJson {
            path: origin.to_path_buf(),
            source,
        })?;
        job.validate()?;
        Ok(job)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Rejects values that cannot work, naming the field.
    pub fn validate(&self) -> Result<()> {
        let positive = |field: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::config(
                    field,
                    format!("{v} must be a positive number"),
                ))
            }
        };
        positive("optimizer.lr", self.optimizer.lr)?;
        if self.train.epochs == 0 {
            return Err(Error::config("train.epochs", "must be at least 1"));
        }
        if self.data.batch_size == 0 {
            return Err(Error::config("data.batch_size", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.data.val_fraction) {
            return Err(Error::config(
                "data.val_fraction",
                format!("{} is not in [0, 1)", self.data.val_fraction),
            ));
        }
        if !["adamw", "adam", "sgd"].contains(&self.optimizer.kind.as_str()) {
            return Err(Error::config(
                "optimizer.kind",
                format!("{:?} is not one of adamw, adam, sgd", self.optimizer.kind),
            ));
        }
        if self.model.kind != "mlp" {
            return Err(Error::config(
                "model.kind",
                format!("{:?} is not one of: mlp", self.model.kind),
            ));
        }
        parse_device(&self.device)?;
        health_policy(&self.logging.health)?;
        Ok(())
    }

    /// The digits set or a CSV file: numeric, no header row, a class index (an integer
    /// literal) in the last column.
    fn load_data(&self) -> Result<InMemoryData> {
        let opts = CsvOptions {
            has_header: Some(false),
            label_column: LabelColumn::Last,
            delimiter: b',',
        };
        let (name, (features, labels)) = if self.data.source == "digits" {
            let origin = Path::new("assets/digits.csv.gz");
            ("digits", parse_csv(DIGITS_CSV_GZ, origin, opts)?)
        } else {
            let path = Path::new(&self.data.source);
            (self.data.source.as_str(), read_csv(path, opts)?)
        };
        let labels = match labels {
            Some(l) if l.dtype == ArrayDType::I64 => l.to_u32_labels()?,
            _ => {
                return Err(Error::Data(format!(
                    "{name}: the last column must hold class indices (integers)"
                )))
            }
        };
        let mut values = Vec::new();
        features.range_f32(0, features.num_samples(), &mut values);
        let scale = self.data.scale;
        values.iter_mut().for_each(|v| *v *= scale);
        let num_classes = labels.iter().max().map_or(0, |m| *m as usize + 1);
        InMemoryData::classification(
            name,
            values,
            features.sample_shape().to_vec(),
            labels,
            num_classes,
        )
    }

    /// Whether `data.source` is read into memory (digits, CSV) rather than by AutoData.
    fn in_memory_source(&self) -> bool {
        let s = &self.data.source;
        s == "digits" || ((s.ends_with(".csv") || s.ends_with(".csv.gz")) && Path::new(s).is_file())
    }

    /// An AutoData loader over `source` (optionally one `file` of it).
    fn auto_data(
        &self,
        source: &str,
        file: Option<&str>,
        batch_size: usize,
        shuffle: bool,
    ) -> Result<AutoData> {
        let path = Path::new(source);
        let mut b = if path.is_dir() {
            AutoData::from_dir(path)?
        } else {
            AutoData::from_file(path)?
        };
        if let Some(f) = file {
            b = b.file(f);
        }
        b = b
            .batch_size(batch_size)
            .shuffle(shuffle)
            .drop_last(self.data.drop_last)
            .seed(self.train.seed);
        let scale = self.data.scale as f64;
        if scale != 1.0 {
            b = b.preprocessor(move |x: Tensor, y: Tensor| -> Result<(Tensor, Tensor)> {
                Ok(((x.to_dtype(candle_core::DType::F32)? * scale)?, y))
            });
        }
        b.build()
    }

    /// The train and validation loaders, and what the train data looks like.
    fn loaders(&self) -> Result<Loaders> {
        if self.in_memory_source() {
            let data = self.load_data()?;
            let info = data.info();
            let (train, val) = data.split(self.data.val_fraction, self.train.seed)?;
            let val: Option<Box<dyn DataLoader>> = if val.num_samples() > 0 {
                Some(Box::new(val))
            } else {
                None
            };
            return Ok(Loaders {
                train: Box::new(train),
                val,
                info,
            });
        }
        let d = &self.data;
        let train = self.auto_data(&d.source, d.file.as_deref(), d.batch_size, d.shuffle)?;
        let info = train.info();
        let val_source = match (&self.data.val_source, &self.data.val_file) {
            (Some(s), _) => Some(s.as_str()),
            (None, Some(_)) => Some(self.data.source.as_str()),
            (None, None) if self.data.val_fraction > 0.0 => {
                return Err(Error::config(
                    "data.val_source",
                    format!(
                        "{} is read by AutoData, which does not split off validation data: \
                         set data.val_source (or data.val_file), or data.val_fraction to 0",
                        self.data.source
                    ),
                ))
            }
            (None, None) => None,
        };
        let val: Option<Box<dyn DataLoader>> = match val_source {
            Some(s) => {
                let batch = d.val_batch_size.unwrap_or(d.batch_size);
                Some(Box::new(self.auto_data(
                    s,
                    d.val_file.as_deref(),
                    batch,
                    false,
                )?))
            }
            None => None,
        };
        Ok(Loaders {
            train: Box::new(train),
            val,
            info,
        })
    }

    /// Builds the data, model, optimizer and trainer this config describes.
    pub fn build_trainer(&self) -> Result<Trainer> {
        self.validate()?;
        let device = parse_device(&self.device)?;
        let Loaders { train, val, info } = self.loaders()?;
        let mut init = RngStream::new(self.train.seed, StreamId::Init);
        let model = Mlp::new(
            MlpConfig {
                inputs: info.sample_shape.iter().product(),
                hidden: self.model.hidden.clone(),
                outputs: info.num_classes.unwrap_or(1),
                dropout: self.model.dropout as f32,
            },
            &mut init,
            &device,
        )?;
        let o = &self.optimizer;
        let adam = AdamConfig {
            lr: o.lr,
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
            weight_decay: o.weight_decay,
        };
        let optimizer: Box<dyn TrainOptimizer> = match o.kind.as_str() {
            "adam" => Box::new(Adam::from_varmap(model.varmap(), adam)),
            "sgd" => Box::new(Sgd::from_varmap(
                model.varmap(),
                SgdConfig {
                    lr: o.lr,
                    momentum: o.momentum,
                    dampening: o.dampening,
                    nesterov: o.nesterov,
                    weight_decay: o.weight_decay,
                },
            )),
            _ => Box::new(AdamW::from_varmap(model.varmap(), adam)),
        };
        let mut builder = Trainer::builder_boxed(Box::new(model), optimizer)
            .boxed_data(train, val)
            .config(self.train.clone())
            .batch_size(self.data.batch_size)
            .shuffle(self.data.shuffle)
            .drop_last(self.data.drop_last)
            .device(device)
            .init_rng(init)
            .name(self.name.clone())
            .job_config(
                serde_json::to_value(self).map_err(|e| Error::config("job", e.to_string()))?,
            );
        if let Some(n) = self.data.val_batch_size {
            builder = builder.val_batch_size(n);
        }
        let mut trainer = builder.build()?;
        self.add_callbacks(&mut trainer)?;
        Ok(trainer)
    }

    /// The built-in callbacks this job asks for, in a fixed order (their saved state is
    /// matched by name on resume).
    fn add_callbacks(&self, trainer: &mut Trainer) -> Result<()> {
        let dir = &self.train.run_dir;
        let l = &self.logging;
        trainer.add_callback(HealthCheck::new(health_policy(&l.health)?))?;
        if let Some(es) = &self.early_stopping {
            trainer.add_callback(
                EarlyStopping::new(&es.monitor)
                    .patience(es.patience)
                    .min_delta(es.min_delta)
                    .warmup(es.warmup),
            )?;
        }
        if l.csv {
            trainer.add_callback(CsvLogger::new(dir.join("logs")))?;
        }
        if l.tensorboard {
            trainer.add_callback(
                TensorBoard::new(dir.join("tensorboard"))
                    .histogram_every(l.histogram_every)
                    .text("config", self.to_json()),
            )?;
        }
        if l.progress {
            trainer.add_callback(Progress::new(self.train.epochs))?;
        }
        Ok(())
    }
}

fn health_policy(name: &str) -> Result<HealthPolicy> {
    match name {
        "stop" => Ok(HealthPolicy::Stop),
        "skip" => Ok(HealthPolicy::Skip),
        "warn" => Ok(HealthPolicy::Warn),
        other => Err(Error::config(
            "logging.health",
            format!("{other:?} is not one of stop, skip, warn"),
        )),
    }
}

/// The data a job trains and validates on.
struct Loaders {
    train: Box<dyn DataLoader>,
    val: Option<Box<dyn DataLoader>>,
    /// What the train data looks like (sizes the model).
    info: DataInfo,
}

/// `cpu`, `cuda:N`, `cuda` or `auto`.
pub fn parse_device(spec: &str) -> Result<Device> {
    match spec {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::cuda_if_available(0)?),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let n: usize = s
                .strip_prefix("cuda:")
                .unwrap_or("0")
                .parse()
                .map_err(|_| {
                    Error::config(
                        "device",
                        format!("{s:?}: expected cuda:N with N a GPU index"),
                    )
                })?;
            if !candle_core::utils::cuda_is_available() {
                return Err(Error::config(
                    "device",
                    format!("{s}: this build has no CUDA support (rebuild with --features cuda)"),
                ));
            }
            Device::new_cuda(n).map_err(|e| Error::config("device", format!("{s}: {e}")))
        }
        other => Err(Error::config(
            "device",
            format!("{other:?} is not one of cpu, cuda:N, auto"),
        )),
    }
}

/// Reads a `train` section over the default job's loop settings rather than over
/// `TrainConfig::default()`, so `{"train": {"epochs": 60}}` is the default job with 60
/// epochs (seed 7, `runs/digits`, `val_accuracy`), exactly as `--epochs 60` is.
fn train_over_job_defaults<'de, D>(deserializer: D) -> std::result::Result<TrainConfig, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error as _;
    let given = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
    let mut merged = match serde_json::to_value(JobConfig::default().train) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => {
            return Err(D::Error::custom(
                "the default train settings do not serialize",
            ))
        }
    };
    merged.extend(given);
    serde_json::from_value(serde_json::Value::Object(merged)).map_err(D::Error::custom)
}
