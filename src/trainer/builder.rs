//! Building a [`Trainer`] from parts made in code: model, optimizer, data, loop settings.
//!
//! `build` lays out the initial [`TrainState`] (every counter at zero, every random
//! stream at its seeded start); `resume_from` then loads a checkpoint over it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;

use super::{TrainConfig, Trainer};
use crate::checkpoint::RunInfo;
use crate::data_loaders::{DataLoader, LoaderState};
use crate::error::{Error, Result};
use crate::interrupt::InterruptHandle;
use crate::losses::{CrossEntropy, Loss, Mse, Targets};
use crate::metrics::{
    higher_is_better, BuiltMetric, Direction, Metric, MetricSet, MetricSpec, StreamingMetric,
};
use crate::model::{parameter_count, Model, Task};
use crate::optim::{named_vars, Accumulator, TrainOptimizer};
use crate::report::data::flatten_config;
use crate::rng::{RngStream, StreamId};
use crate::state::{DataCursor, History, Phase, RngStates, TrainState, WallClock};
use crate::transforms::Transforms;

/// Builds a [`Trainer`] from parts made in code; see `Trainer::builder`.
pub struct TrainerBuilder {
    pub(super) model: Box<dyn Model>,
    pub(super) optimizer: Box<dyn TrainOptimizer>,
    pub(super) train_data: Option<Box<dyn DataLoader>>,
    pub(super) val_data: Option<Box<dyn DataLoader>>,
    pub(super) task: Option<Task>,
    pub(super) loss: Option<Box<dyn Loss>>,
    pub(super) config: TrainConfig,
    pub(super) batch_size: usize,
    pub(super) val_batch_size: Option<usize>,
    pub(super) shuffle: bool,
    pub(super) drop_last: bool,
    pub(super) device: Device,
    pub(super) init_rng: Option<RngStream>,
    pub(super) name: Option<String>,
    pub(super) job_config: Option<serde_json::Value>,
    pub(super) interrupt: Option<InterruptHandle>,
    pub(super) resume_from: Option<PathBuf>,
    pub(super) transforms: Transforms,
    /// The job's metrics as the registry built them (replaces reading `config.metrics`).
    pub(super) built_metrics: Option<Vec<BuiltMetric>>,
    /// Streaming metrics added in code.
    pub(super) streaming: Vec<Box<dyn StreamingMetric>>,
}

impl TrainerBuilder {
    /// The training data (required).
    pub fn train_data(mut self, d: impl DataLoader + 'static) -> Self {
        self.train_data = Some(Box::new(d));
        self
    }
    /// The validation data (default: none, and no validation).
    pub fn val_data(mut self, d: impl DataLoader + 'static) -> Self {
        self.val_data = Some(Box::new(d));
        self
    }
    /// Both loaders, already boxed.
    pub fn boxed_data(
        mut self,
        train: Box<dyn DataLoader>,
        val: Option<Box<dyn DataLoader>>,
    ) -> Self {
        self.train_data = Some(train);
        self.val_data = val;
        self
    }
    /// What the outputs mean; inferred as classification from the train data otherwise.
    pub fn task(mut self, task: Task) -> Self {
        self.task = Some(task);
        self
    }
    /// The loss to minimise (default: [`default_loss`] of the task).
    pub fn loss(mut self, loss: impl Loss + 'static) -> Self {
        self.loss = Some(Box::new(loss));
        self
    }
    /// [`loss`](Self::loss) for a loss already boxed.
    pub fn boxed_loss(mut self, loss: Box<dyn Loss>) -> Self {
        self.loss = Some(loss);
        self
    }
    /// Train epochs to run.
    pub fn epochs(mut self, n: u64) -> Self {
        self.config.epochs = n;
        self
    }
    /// Seeds the dropout and shuffle streams.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }
    /// Where checkpoints, logs and reports go.
    pub fn run_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.run_dir = dir.into();
        self
    }
    /// Samples per batch (default 32; a loader built with its own size wins).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }
    /// Samples per validation batch (default: the train batch size).
    pub fn val_batch_size(mut self, n: usize) -> Self {
        self.val_batch_size = Some(n);
        self
    }
    /// Shuffle the train data every epoch (default on).
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }
    /// Drop a last train batch smaller than the batch size (default off).
    pub fn drop_last(mut self, on: bool) -> Self {
        self.drop_last = on;
        self
    }
    /// Where tensors live (default CPU).
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }
    /// Records the position of the stream the model was initialised from.
    pub fn init_rng(mut self, rng: RngStream) -> Self {
        self.init_rng = Some(rng);
        self
    }
    /// All loop settings at once.
    pub fn config(mut self, config: TrainConfig) -> Self {
        self.config = config;
        self
    }
    /// Edits the loop settings in place.
    pub fn configure(mut self, f: impl FnOnce(&mut TrainConfig)) -> Self {
        f(&mut self.config);
        self
    }
    /// The run's name in reports (default: the run directory's name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// The job config this run was built from, as JSON: shown in reports and saved in
    /// every checkpoint, so that `Trainer::resume` can rebuild the run from it.
    pub fn job_config(mut self, config: serde_json::Value) -> Self {
        self.job_config = Some(config);
        self
    }
    /// Stops `fit` when `handle` is set (e.g. from `interrupt::install_signal_handler`).
    pub fn interrupt_handle(mut self, handle: InterruptHandle) -> Self {
        self.interrupt = Some(handle);
        self
    }
    /// Transforms applied in order to every batch right after it is loaded (default:
    /// none); random ones draw on train batches only, from the run's augmentation stream
    /// (see [`crate::transforms`]). The model must fit the batches they make.
    pub fn transforms(mut self, transforms: Transforms) -> Self {
        self.transforms = transforms;
        self
    }
    /// Adds a streaming metric (a user's own, or a built-in one from the registry's
    /// `metrics`): fed every validation batch (and each train batch on its own, unless it
    /// says otherwise), its values logged as `NAME` and `val_NAME`, its state saved in
    /// every checkpoint. Names must be unique.
    pub fn metric(mut self, metric: impl StreamingMetric + 'static) -> Self {
        self.streaming.push(Box::new(metric));
        self
    }
    /// The run's metrics as a registry built them from `config.metrics` (the job
    /// builder's way): the fixed-set ones go into the checkpointed [`MetricSet`], the rest
    /// are streaming metrics. Without it the builder reads `config.metrics` itself, fixed-
    /// set names only.
    pub fn built_metrics(mut self, metrics: Vec<BuiltMetric>) -> Self {
        self.built_metrics = Some(metrics);
        self
    }
    /// Continues the run saved at `path` (a run directory: its newest good checkpoint;
    /// or one checkpoint directory) instead of starting fresh. The trainer must be built
    /// the same way as the one that saved it. A path without a loadable checkpoint is an
    /// error, never a silent fresh start: build without `resume_from` for that.
    pub fn resume_from(mut self, path: impl Into<PathBuf>) -> Self {
        self.resume_from = Some(path.into());
        self
    }

    /// Builds the trainer (and loads the checkpoint given to `resume_from`).
    pub fn build(self) -> Result<Trainer> {
        let resume_from = self.resume_from.clone();
        let mut trainer = self.build_fresh()?;
        if let Some(path) = resume_from {
            trainer.load_checkpoint(path)?;
        }
        Ok(trainer)
    }

    fn build_fresh(self) -> Result<Trainer> {
        let train_data = self
            .train_data
            .ok_or_else(|| Error::config("train_data", "no training data was given"))?;
        if self.batch_size == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        if self.config.epochs == 0 {
            return Err(Error::config("epochs", "must be at least 1"));
        }
        if self.config.accumulate_batches == 0 {
            return Err(Error::config("accumulate_batches", "must be at least 1"));
        }
        let max_time_secs = self.config.max_time_secs()?;
        let accumulate = self.config.accumulate_batches;
        let task = match self.task {
            Some(t) => t,
            None => match train_data.info().num_classes {
                Some(num_classes) => Task::Classification { num_classes },
                None => Task::Regression,
            },
        };
        let loss = self.loss.unwrap_or_else(|| default_loss(task));
        check_loss_fits(loss.as_ref(), task)?;
        let seed = self.config.seed;
        let dropout_rng = RngStream::new(seed, StreamId::Dropout);
        let init = self
            .init_rng
            .unwrap_or_else(|| RngStream::new(seed, StreamId::Init));
        let mut train_loader = LoaderState::new(
            self.batch_size,
            self.shuffle,
            self.drop_last,
            &RngStream::new(seed, StreamId::TrainShuffle),
        );
        let mut val_loader = LoaderState::new(
            self.val_batch_size.unwrap_or(self.batch_size),
            false,
            false,
            &RngStream::new(seed, StreamId::ValShuffle),
        );
        // Settings a loader was built with (e.g. `AutoData::batch_size`) win over ours.
        train_data.configure_state(&mut train_loader);
        if let Some(val) = &self.val_data {
            val.configure_state(&mut val_loader);
        }
        let key_metric = self.config.key_metric.clone();
        let (metrics, mut streaming) = match self.built_metrics {
            Some(built) => split_metrics(task, !self.config.metrics.is_empty(), built)?,
            None => (metric_template(task, &self.config.metrics)?, Vec::new()),
        };
        streaming.extend(self.streaming);
        check_metric_names(&metrics, &streaming)?;
        let metric_directions = declared_directions(&streaming);
        let key_direction = crate::callbacks::declared_direction(&metric_directions, &key_metric)
            .map(|d| d == Direction::Max);
        let base_lr = self.optimizer.learning_rate();
        let state = TrainState {
            epoch: 0,
            global_step: 0,
            batches_fit: 0,
            batches_validated: 0,
            times_validated: 0,
            batch_in_epoch: 0,
            set_name: String::new(),
            set_kind: None,
            phase: Phase::EpochStart,
            train_history: History::default(),
            val_history: History::default(),
            epoch_ends: Vec::new(),
            key_metric_higher_is_better: key_direction
                .unwrap_or_else(|| higher_is_better(&key_metric)),
            key_metric,
            best: None,
            learning_rate: base_lr,
            learning_rate_override: None,
            grad_norm: 0.0,
            layer_grad_norms: Default::default(),
            grad_norm_history: History::default(),
            rng: RngStates {
                init: init.state(),
                dropout: dropout_rng.state(),
                augment: RngStates::augment_start(seed),
            },
            train_data: DataCursor::new(train_loader),
            val_data: DataCursor::new(val_loader),
            window_rows: Vec::new(),
            val_metrics: metrics.clone(),
            time: WallClock::default(),
            checkpoints_saved: 0,
        };
        let hyperparameters = match &self.job_config {
            Some(job) => flatten_config(job, ""),
            None => {
                let mut h = vec![("optimizer.lr".to_string(), base_lr.to_string())];
                h.extend(flatten_config(
                    &serde_json::to_value(&self.config).unwrap_or_default(),
                    "train",
                ));
                h
            }
        };
        let run = RunInfo {
            name: self.name.unwrap_or_else(|| {
                self.config
                    .run_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| "run".into())
            }),
            model: self.model.name(),
            parameters: parameter_count(self.model.varmap()) as u64,
            optimizer: format!("{} (lr {base_lr:e})", self.optimizer.name()),
            device: format!("{:?}", self.device.location()),
            seed,
            epochs: self.config.epochs,
            hyperparameters,
        };
        let model_vars = named_vars(self.model.varmap());
        Ok(Trainer {
            run,
            state,
            config: self.config,
            job_config: self
                .job_config
                .map(|j| serde_json::to_string_pretty(&j).unwrap_or_default()),
            task,
            loss,
            device: self.device,
            model: self.model,
            model_vars,
            optimizer: Accumulator::new(self.optimizer, accumulate),
            base_lr,
            max_time_secs,
            metrics,
            streaming,
            metric_directions,
            last_batch: None,
            train_data,
            val_data: self.val_data,
            callbacks: Vec::new(),
            pending_callback_states: Vec::new(),
            dropout_rng,
            interrupt: self.interrupt.unwrap_or_default(),
            control: Default::default(),
            grads: None,
            best_improved: false,
            callback_error: None,
            saved_at: None,
            last_checkpoint: None,
            saves: Default::default(),
            clock: Instant::now(),
            run_lock: None,
            transforms: self.transforms,
        })
    }
}

/// The loss a trainer minimises when none is given: cross-entropy with default settings
/// for classification, mean squared error for regression.
pub fn default_loss(task: Task) -> Box<dyn Loss> {
    match task {
        Task::Classification { .. } => Box::new(CrossEntropy::default()),
        Task::Regression => Box::new(Mse),
    }
}

/// Refuses a loss whose targets are not the task's (class ids against values).
fn check_loss_fits(loss: &dyn Loss, task: Task) -> Result<()> {
    let (data, wanted) = match task {
        Task::Classification { .. } => ("class ids", Targets::ClassIds),
        Task::Regression => ("values", Targets::Values),
    };
    if loss.targets() == wanted {
        return Ok(());
    }
    let takes = match loss.targets() {
        Targets::ClassIds => "class ids",
        Targets::Values => "values",
    };
    Err(Error::config(
        "loss",
        format!(
            "{} takes {takes} as targets, but the task ({task:?}) has {data}",
            loss.name()
        ),
    ))
}

/// The metric set a task computes, from the configured names: fixed-set names only
/// (`accuracy`, `top5_accuracy`, ...), for trainers built without a registry.
fn metric_template(task: Task, specs: &[MetricSpec]) -> Result<MetricSet> {
    let mut metrics = Vec::new();
    for spec in specs {
        let metric = match Metric::from_name(&spec.name) {
            Ok(m) if spec.args.is_empty() => m,
            Ok(_) => {
                return Err(Error::config(
                    "train.metrics",
                    format!(
                        "`{}` with arguments: build the run from a job config (its metrics \
                         are read through the registry) or add the metric in code",
                        spec.name
                    ),
                ))
            }
            Err(e) => return Err(Error::config("train.metrics", e.to_string())),
        };
        metrics.push(metric);
    }
    standard_set(task, specs.is_empty(), metrics)
}

/// The fixed set of `metrics` (loss first, each once), or the task's defaults when the
/// config named no metric at all.
fn standard_set(task: Task, use_defaults: bool, metrics: Vec<Metric>) -> Result<MetricSet> {
    let (defaults, classes): (&[Metric], usize) = match task {
        Task::Classification { num_classes } => (&[Metric::Loss, Metric::Accuracy], num_classes),
        Task::Regression => (&[Metric::Loss, Metric::Mse, Metric::Mae, Metric::R2], 0),
    };
    let metrics: Vec<Metric> = if use_defaults {
        defaults.to_vec()
    } else {
        let mut m = vec![Metric::Loss];
        for metric in metrics {
            if !m.contains(&metric) {
                m.push(metric);
            }
        }
        m
    };
    MetricSet::new(&metrics, classes).map_err(|e| Error::config("train.metrics", e.to_string()))
}

/// Metrics a registry built, split into the fixed set and the streaming ones.
fn split_metrics(
    task: Task,
    configured: bool,
    built: Vec<BuiltMetric>,
) -> Result<(MetricSet, Vec<Box<dyn StreamingMetric>>)> {
    let mut standard = Vec::new();
    let mut streaming = Vec::new();
    for m in built {
        match m {
            BuiltMetric::Standard(m) => standard.push(m),
            BuiltMetric::Streaming(m) => streaming.push(m),
        }
    }
    Ok((standard_set(task, !configured, standard)?, streaming))
}

/// Which way each streaming metric improves, as it declares it: by the metric's name and
/// by the name of each value it reports.
fn declared_directions(streaming: &[Box<dyn StreamingMetric>]) -> BTreeMap<String, Direction> {
    let mut directions = BTreeMap::new();
    for m in streaming {
        let d = m.direction();
        directions.insert(m.name(), d);
        for (name, _) in m.values() {
            directions.insert(name, d);
        }
    }
    directions
}

/// The run's metrics as a registry built them, split into the fixed set (the task's
/// defaults when `configured` is false) and the streaming ones, their names checked as
/// the trainer checks them: what `evaluate` computes, exactly as validation does.
pub(crate) fn split_built_metrics(
    task: Task,
    configured: bool,
    built: Vec<BuiltMetric>,
) -> Result<(MetricSet, Vec<Box<dyn StreamingMetric>>)> {
    let (set, streaming) = split_metrics(task, configured, built)?;
    check_metric_names(&set, &streaming)?;
    Ok((set, streaming))
}

/// Streaming metrics key their saved state by name: no two alike, none named like a
/// metric of the fixed set (whose values they would shadow).
fn check_metric_names(set: &MetricSet, streaming: &[Box<dyn StreamingMetric>]) -> Result<()> {
    for (i, m) in streaming.iter().enumerate() {
        let name = m.name();
        if streaming[..i].iter().any(|o| o.name() == name)
            || set.metrics().iter().any(|s| s.name() == name)
        {
            return Err(Error::config(
                "train.metrics",
                format!("`{name}` is listed twice: each metric once"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_loaders::InMemoryData;
    use crate::losses::{CrossEntropyArgs, Huber};
    use crate::model::{Mlp, MlpConfig};
    use crate::optim::{AdamConfig, AdamW};
    use crate::trainer::Trainer;

    /// A seeded 2-class problem and a small MLP for it.
    fn builder(dir: &std::path::Path) -> TrainerBuilder {
        let mut rng = RngStream::new(7, StreamId::Init);
        let n = 24;
        let x: Vec<f32> = (0..n * 3).map(|_| rng.uniform_f32() * 2.0 - 1.0).collect();
        let y: Vec<u32> = (0..n).map(|i| (x[i * 3] > 0.0) as u32).collect();
        let data = InMemoryData::classification("toy", x, vec![3], y, 2).unwrap();
        let config = MlpConfig {
            inputs: 3,
            hidden: vec![4],
            outputs: 2,
            dropout: 0.0,
        };
        let model = Mlp::new(config, &mut RngStream::new(1, StreamId::Init), &Device::Cpu).unwrap();
        let opt = AdamW::from_varmap(model.varmap(), AdamConfig::default());
        Trainer::builder(model, opt)
            .train_data(data)
            .batch_size(8)
            .run_dir(dir)
    }

    fn norms(t: &mut Trainer) -> Vec<u64> {
        let stats = t.dataset_grad_norms().unwrap();
        stats.per_batch.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn the_trainer_minimises_the_loss_it_is_given() {
        let tmp = tempfile::tempdir().unwrap();
        let mut default = builder(tmp.path()).build().unwrap();
        assert_eq!(default.loss().name(), "cross_entropy");
        assert_eq!(default.loss_name(), "cross_entropy");
        let mut explicit = builder(tmp.path())
            .loss(CrossEntropy::default())
            .build()
            .unwrap();
        let smoothing = CrossEntropyArgs {
            label_smoothing: 0.2,
            ..Default::default()
        };
        let mut smoothed = builder(tmp.path())
            .boxed_loss(Box::new(CrossEntropy::new(smoothing, 2, None).unwrap()))
            .build()
            .unwrap();
        assert_eq!(smoothed.loss_name(), "cross_entropy (label_smoothing 0.2)");
        let base = norms(&mut default);
        assert_eq!(base.len(), 3);
        assert_eq!(norms(&mut explicit), base);
        assert_ne!(norms(&mut smoothed), base);
    }

    #[test]
    fn a_loss_for_other_targets_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let err = builder(tmp.path())
            .loss(Huber::default())
            .build()
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("config loss: huber takes values as targets")
                && err.contains("has class ids"),
            "{err}"
        );
        assert_eq!(default_loss(Task::Regression).name(), "mse");
        assert_eq!(
            default_loss(Task::Classification { num_classes: 3 }).name(),
            "cross_entropy"
        );
        let err = builder(tmp.path())
            .task(Task::Regression)
            .loss(CrossEntropy::default())
            .build()
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("cross_entropy takes class ids as targets") && err.contains("values"),
            "{err}"
        );
    }
}
