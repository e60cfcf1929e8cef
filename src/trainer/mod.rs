//! The trainer and its state machine. Read this file top to bottom.
//!
//! `fit` runs `advance` in a loop; each call makes exactly one transition:
//!
//! ```text
//!            ┌──────────────┐ plan epoch  ┌───────┐ one batch per call
//!  start ──▶ │  EpochStart  │ ──────────▶ │ Train │ ◀──────────┐
//!            └──────────────┘             └───────┘ ───────────┘
//!                   ▲                      │    │ every N batches / steps
//!                   │         epoch end    │    ▼
//!                   │  ◀───────────────────┘  ┌──────────────────────┐ one batch per call
//!                   └──────────────────────── │ Validate { then }    │ ◀──────┐
//!                        then = EpochStart    └──────────────────────┘ ───────┘
//!                                               │ then = Finish      ▲ then = Train (back to
//!                                               ▼                    │ the epoch in progress)
//!                                             Done
//! ```
//! Between two transitions the whole run is described by `TrainState`, the model's
//! variables and the optimizer's buffers: that is what a checkpoint holds, and a stop
//! is checked for (and honoured) only there, so a stop anywhere resumes exactly.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::callbacks::{Callback, Control, Stage, StageClosure, TrainerView};
use crate::checkpoint::{self, CheckpointMeta, CheckpointTensors, LoadedCheckpoint};
use crate::checkpoint::{RunInfo, SaveReason};
use crate::data_loaders::{DataLoader, LoaderState};
use crate::error::{Error, Result};
use crate::interrupt::InterruptHandle;
use crate::job::JobConfig;
use crate::metrics::{higher_is_better, Direction, Metric, MetricSet};
use crate::model::{parameter_count, ForwardCtx, Model, Task};
use crate::optim::{clip_scale, grad_sq_norms, Schedule, TrainOptimizer};
use crate::report::data::{flatten_config, report_data, status_line};
use crate::report::render_report;
use crate::rng::{RngStream, StreamId};
use crate::state::{
    AfterValidation, Best, DoneReason, History, Phase, RngStates, TrainState, WallClock,
};

/// How often something happens. `Never` switches it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Every {
    Never,
    Epochs(u64),
    Batches(u64),
    Steps(u64),
}

/// Settings of the training loop itself (the model, data and optimizer are built apart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: u64,
    /// Seeds the dropout and shuffle streams.
    pub seed: u64,
    pub run_dir: PathBuf,
    /// When to validate. Epoch-based validation also runs after the last epoch.
    pub validate_every: Every,
    /// When to write a checkpoint, besides on interrupt, stop and finish.
    pub checkpoint_every: Every,
    /// Checkpoints kept in `checkpoints/`; older ones are deleted.
    pub keep_last: usize,
    /// Keep the checkpoint with the best key metric in `RUN_DIR/best/`.
    pub save_best: bool,
    /// Metrics computed per train batch and per validation (`loss`, `accuracy`,
    /// `top5_accuracy`, `f1_macro`, `roc_auc`, `mse`, `r2`, ...). Empty: `loss` and
    /// `accuracy` for classification, `loss`, `mse`, `mae`, `r2` for regression.
    pub metrics: Vec<String>,
    /// Metric deciding "best", e.g. `val_loss` or `val_accuracy`.
    pub key_metric: String,
    /// Learning-rate schedule over optimizer steps (base rate: the optimizer's own).
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value.
    pub clip_grad_norm: Option<f64>,
    /// Render `report.png` into every checkpoint and into the run directory when a
    /// session ends.
    pub report: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            seed: 0,
            run_dir: PathBuf::from("runs/default"),
            validate_every: Every::Epochs(1),
            checkpoint_every: Every::Epochs(1),
            keep_last: 3,
            save_best: true,
            metrics: Vec::new(),
            key_metric: "val_loss".into(),
            schedule: Schedule::Constant,
            clip_grad_norm: None,
            report: true,
        }
    }
}

/// How `fit` ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every epoch ran.
    Finished,
    /// A signal or `InterruptHandle::interrupt` stopped the run; resume from `checkpoint`.
    Interrupted { checkpoint: PathBuf },
    /// A callback asked to stop (early stopping, a health check).
    Stopped {
        by: String,
        why: String,
        checkpoint: PathBuf,
    },
}

/// The metric set a task computes, from the configured names.
fn metric_template(task: Task, names: &[String]) -> Result<MetricSet> {
    let (defaults, classes): (&[Metric], usize) = match task {
        Task::Classification { num_classes } => (&[Metric::Loss, Metric::Accuracy], num_classes),
        Task::Regression => (&[Metric::Loss, Metric::Mse, Metric::Mae, Metric::R2], 0),
    };
    let metrics: Vec<Metric> = if names.is_empty() {
        defaults.to_vec()
    } else {
        let mut m = vec![Metric::Loss];
        for n in names {
            let metric =
                Metric::from_name(n).map_err(|e| Error::config("train.metrics", e.to_string()))?;
            if !m.contains(&metric) {
                m.push(metric);
            }
        }
        m
    };
    MetricSet::new(&metrics, classes).map_err(|e| Error::config("train.metrics", e.to_string()))
}

/// Builds a [`Trainer`] from parts made in code.
pub struct TrainerBuilder {
    model: Box<dyn Model>,
    optimizer: Box<dyn TrainOptimizer>,
    train_data: Option<Box<dyn DataLoader>>,
    val_data: Option<Box<dyn DataLoader>>,
    task: Option<Task>,
    config: TrainConfig,
    batch_size: usize,
    val_batch_size: Option<usize>,
    shuffle: bool,
    drop_last: bool,
    device: Device,
    init_rng: Option<RngStream>,
    job: Option<JobConfig>,
}

impl TrainerBuilder {
    pub fn train_data(mut self, d: impl DataLoader + 'static) -> Self {
        self.train_data = Some(Box::new(d));
        self
    }
    pub fn val_data(mut self, d: impl DataLoader + 'static) -> Self {
        self.val_data = Some(Box::new(d));
        self
    }
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
    pub fn epochs(mut self, n: u64) -> Self {
        self.config.epochs = n;
        self
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }
    pub fn run_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.run_dir = dir.into();
        self
    }
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }
    pub fn val_batch_size(mut self, n: usize) -> Self {
        self.val_batch_size = Some(n);
        self
    }
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }
    pub fn drop_last(mut self, on: bool) -> Self {
        self.drop_last = on;
        self
    }
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }
    /// Records the position of the stream the model was initialised from.
    pub fn init_rng(mut self, rng: RngStream) -> Self {
        self.init_rng = Some(rng);
        self
    }
    pub fn config(mut self, config: TrainConfig) -> Self {
        self.config = config;
        self
    }
    pub fn configure(mut self, f: impl FnOnce(&mut TrainConfig)) -> Self {
        f(&mut self.config);
        self
    }
    pub(crate) fn job(mut self, job: JobConfig) -> Self {
        self.job = Some(job);
        self
    }

    pub fn build(self) -> Result<Trainer> {
        let train_data = self
            .train_data
            .ok_or_else(|| Error::config("train_data", "no training data was given"))?;
        if self.batch_size == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        if self.config.epochs == 0 {
            return Err(Error::config("epochs", "must be at least 1"));
        }
        let task = match self.task {
            Some(t) => t,
            None => match train_data.info().num_classes {
                Some(num_classes) => Task::Classification { num_classes },
                None => Task::Regression,
            },
        };
        let seed = self.config.seed;
        let dropout_rng = RngStream::new(seed, StreamId::Dropout);
        let init = self
            .init_rng
            .unwrap_or_else(|| RngStream::new(seed, StreamId::Init));
        let mut train_state = LoaderState::new(
            self.batch_size,
            self.shuffle,
            self.drop_last,
            &RngStream::new(seed, StreamId::TrainShuffle),
        );
        let mut val_state = LoaderState::new(
            self.val_batch_size.unwrap_or(self.batch_size),
            false,
            false,
            &RngStream::new(seed, StreamId::ValShuffle),
        );
        // Settings a loader was built with (e.g. `AutoData::batch_size`) win over ours.
        train_data.configure_state(&mut train_state);
        if let Some(val) = &self.val_data {
            val.configure_state(&mut val_state);
        }
        let key_metric = self.config.key_metric.clone();
        let metrics = metric_template(task, &self.config.metrics)?;
        let state = TrainState {
            epoch: 0,
            val_epoch: 0,
            global_step: 0,
            batches_fit: 0,
            batches_validated: 0,
            times_validated: 0,
            batch_in_epoch: 0,
            set_name: String::new(),
            set_kind: String::new(),
            phase: Phase::EpochStart,
            train_history: History::default(),
            val_history: History::default(),
            epoch_ends: Vec::new(),
            key_metric_higher_is_better: higher_is_better(&key_metric),
            key_metric,
            best: None,
            learning_rate: self.optimizer.learning_rate(),
            learning_rate_override: None,
            grad_norm: 0.0,
            layer_grad_norms: Default::default(),
            grad_norm_history: History::default(),
            rng: RngStates {
                init: init.state(),
                dropout: dropout_rng.state(),
            },
            train_data: train_state,
            val_data: val_state,
            val_metrics: metrics.clone(),
            time: WallClock::default(),
            checkpoints_saved: 0,
        };
        let base_lr = self.optimizer.learning_rate();
        let hyperparameters = match &self.job {
            Some(job) => flatten_config(&serde_json::to_value(job).unwrap_or_default(), ""),
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
            name: match &self.job {
                Some(job) => job.name.clone(),
                None => self
                    .config
                    .run_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| "run".into()),
            },
            model: self.model.name(),
            parameters: parameter_count(self.model.varmap()) as u64,
            optimizer: format!("{} (lr {base_lr:e})", self.optimizer.name()),
            device: format!("{:?}", self.device.location()),
            seed,
            epochs: self.config.epochs,
            hyperparameters,
        };
        Ok(Trainer {
            run,
            state,
            config: self.config,
            job: self.job,
            task,
            device: self.device,
            model: self.model,
            optimizer: self.optimizer,
            base_lr,
            metrics,
            train_data,
            val_data: self.val_data,
            callbacks: Vec::new(),
            dropout_rng,
            interrupt: InterruptHandle::default(),
            control: Control::default(),
            grads: None,
            best_improved: false,
            callback_error: None,
            saved_at: None,
            last_checkpoint: None,
            clock: Instant::now(),
        })
    }
}

/// Trains a model. All progress lives in the public `state`.
pub struct Trainer {
    pub state: TrainState,
    pub config: TrainConfig,
    /// Who, what and how, as shown in reports.
    pub run: RunInfo,
    job: Option<JobConfig>,
    task: Task,
    device: Device,
    model: Box<dyn Model>,
    optimizer: Box<dyn TrainOptimizer>,
    /// The optimizer's rate before any schedule; schedules scale from it.
    base_lr: f64,
    /// Empty metric set cloned for every batch and validation.
    metrics: MetricSet,
    train_data: Box<dyn DataLoader>,
    val_data: Option<Box<dyn DataLoader>>,
    callbacks: Vec<Box<dyn Callback>>,
    dropout_rng: RngStream,
    interrupt: InterruptHandle,
    control: Control,
    /// The validation just ended set a new best (saved into `best/` after the transition).
    best_improved: bool,
    /// Gradients of the batch being fit, kept from `BeforeStep` to `TrainIterEnd`.
    grads: Option<candle_core::backprop::GradStore>,
    /// First callback failure of the current transition, acted on once it completes.
    callback_error: Option<Error>,
    /// `(batches_fit, batches_validated, train window, val window, phase)` of the last
    /// checkpoint, to not save twice.
    saved_at: Option<(u64, u64, u64, u64, Phase)>,
    last_checkpoint: Option<PathBuf>,
    /// Time of the last wall-clock bookkeeping.
    clock: Instant,
}

impl Trainer {
    pub fn builder(
        model: impl Model + 'static,
        optimizer: impl TrainOptimizer + 'static,
    ) -> TrainerBuilder {
        Self::builder_boxed(Box::new(model), Box::new(optimizer))
    }

    pub fn builder_boxed(
        model: Box<dyn Model>,
        optimizer: Box<dyn TrainOptimizer>,
    ) -> TrainerBuilder {
        TrainerBuilder {
            model,
            optimizer,
            train_data: None,
            val_data: None,
            task: None,
            config: TrainConfig::default(),
            batch_size: 32,
            val_batch_size: None,
            shuffle: true,
            drop_last: false,
            device: Device::Cpu,
            init_rng: None,
            job: None,
        }
    }

    /// Loads model, optimizer, state and callback state from a checkpoint (or the newest
    /// good one of a run directory) into this trainer.
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let ckpt = checkpoint::load_latest(path.as_ref())?;
        let dir = ckpt.dir.clone();
        self.apply_checkpoint(ckpt)?;
        Ok(dir)
    }

    /// Checks everything that can be checked before changing anything, so a checkpoint
    /// that does not fit this trainer leaves it as it was.
    pub(crate) fn apply_checkpoint(&mut self, ckpt: LoadedCheckpoint) -> Result<()> {
        let corrupt = |reason: String| Error::CorruptCheckpoint {
            path: ckpt.dir.join(checkpoint::MODEL_FILE),
            reason,
        };
        let mut weights = Vec::new();
        for v in self.optimizer.vars() {
            let t = ckpt
                .model
                .get(&v.name)
                .ok_or_else(|| corrupt(format!("no weights for variable `{}`", v.name)))?;
            if t.dims() != v.var.dims() {
                return Err(corrupt(format!(
                    "`{}` has shape {:?}, the model expects {:?}",
                    v.name,
                    t.dims(),
                    v.var.dims()
                )));
            }
            weights.push(t.to_device(&self.device)?.to_dtype(v.var.dtype())?);
        }
        let mut callback_states = Vec::new();
        for (name, json) in &ckpt.meta.callbacks {
            let value: serde_json::Value =
                serde_json::from_str(json).map_err(|e| Error::CorruptCheckpoint {
                    path: ckpt.dir.join(checkpoint::STATE_FILE),
                    reason: format!("state of callback {name}: {e}"),
                })?;
            callback_states.push((name.clone(), value));
        }
        // The optimizer's import is all or nothing; it goes first of the changes.
        self.optimizer
            .load_state_tensors(&ckpt.optimizer)
            .map_err(|e| Error::CorruptCheckpoint {
                path: ckpt.dir.join(checkpoint::OPTIMIZER_FILE),
                reason: e.to_string(),
            })?;
        for (v, t) in self.optimizer.vars().iter().zip(&weights) {
            v.var.set(t)?;
        }
        self.model.load_carried_state(&ckpt.carried)?;
        self.state = ckpt.meta.state;
        self.dropout_rng = RngStream::from_state(&self.state.rng.dropout);
        for (name, value) in callback_states {
            if let Some(cb) = self.callbacks.iter_mut().find(|c| c.name() == name) {
                cb.load_state(value)?;
            }
        }
        self.saved_at = Some(self.position());
        self.last_checkpoint = Some(ckpt.dir);
        self.fire(Stage::Load);
        self.take_callback_error()
    }

    // ---- what users call -------------------------------------------------------------

    /// Registers a callback; callbacks run in registration order.
    pub fn add_callback(&mut self, cb: impl Callback + 'static) -> &mut Self {
        self.callbacks.push(Box::new(cb));
        self
    }

    /// Runs `f` at every `stage`.
    pub fn on<F>(&mut self, stage: Stage, f: F) -> &mut Self
    where
        F: FnMut(&mut TrainerView) -> Result<()> + Send + 'static,
    {
        let name = format!("closure#{}@{stage}", self.callbacks.len());
        self.add_callback(StageClosure { name, stage, f })
    }

    /// A handle that stops `fit` after the current iteration, as Ctrl-C does.
    pub fn interrupt_handle(&self) -> InterruptHandle {
        self.interrupt.clone()
    }

    /// Makes `fit` stop when `handle` is set, e.g. the one from
    /// [`install_signal_handler`](crate::interrupt::install_signal_handler) so that
    /// Ctrl-C and SIGTERM stop this run cleanly.
    pub fn set_interrupt_handle(&mut self, handle: InterruptHandle) -> &mut Self {
        self.interrupt = handle;
        self
    }

    pub fn interrupt_status(&self) -> crate::state::InterruptStatus {
        self.state.interrupt_status()
    }

    pub fn model(&self) -> &dyn Model {
        self.model.as_ref()
    }

    pub fn optimizer(&self) -> &dyn TrainOptimizer {
        self.optimizer.as_ref()
    }

    pub fn job_config(&self) -> Option<&JobConfig> {
        self.job.as_ref()
    }

    pub fn last_checkpoint(&self) -> Option<&Path> {
        self.last_checkpoint.as_deref()
    }

    pub fn task(&self) -> Task {
        self.task
    }

    /// A few lines saying where the run stands.
    pub fn info(&self) -> String {
        let s = &self.state;
        let mut out = format!(
            "run {}\nmodel {} ({} parameters), optimizer {} (lr {:.3e}), device {:?}\n",
            self.config.run_dir.display(),
            self.model.name(),
            parameter_count(self.model.varmap()),
            self.optimizer.name(),
            s.learning_rate,
            self.device.location(),
        );
        out += &format!(
            "phase {:?}: {}\nepoch {}/{}  global_step {}  batches_fit {}  batches_validated {}  times_validated {}\n",
            s.phase,
            s.interrupt_status(),
            s.epoch,
            self.config.epochs,
            s.global_step,
            s.batches_fit,
            s.batches_validated,
            s.times_validated
        );
        let metrics: Vec<String> = s
            .latest_metrics()
            .iter()
            .map(|(k, v)| format!("{k}={v:.4}"))
            .collect();
        out += &format!("latest {}\n", metrics.join(" "));
        if let Some(b) = &s.best {
            out += &format!(
                "best {} = {:.4} at epoch {}, batches_fit {}\n",
                b.metric, b.value, b.epoch, b.batches_fit
            );
        }
        out
    }

    /// Gradient norms over one pass of the train data, without updating anything: for
    /// choosing a clip value. Dropout draws from a copy of the run's stream, so the run
    /// itself is unchanged (its next batches are bitwise the same as without this call).
    pub fn dataset_grad_norms(&mut self) -> Result<GradNormStats> {
        let mut loader = self.state.train_data.clone();
        self.train_data.plan_epoch(&mut loader)?;
        let mut rng = self.dropout_rng.clone();
        let mut norms = Vec::new();
        for name in loader.set_nums_to_process.clone() {
            let batch = self.train_data.load(&loader, &name, &self.device)?;
            let mut ctx = ForwardCtx {
                train: true,
                dropout_rng: &mut rng,
            };
            let output = self.model.forward(&batch.x, &mut ctx)?;
            let grads = self.task.loss(&output, &batch.y)?.backward()?;
            let sq = grad_sq_norms(self.optimizer.vars(), &grads)?;
            norms.push(sq.iter().sum::<f64>().sqrt());
        }
        Ok(GradNormStats::from_norms(norms))
    }

    /// Trains until done, interrupted or stopped. Call again after an interrupt to go on.
    pub fn fit(&mut self) -> Result<Outcome> {
        self.interrupt.clear();
        self.state.time.sessions += 1;
        self.clock = Instant::now();
        self.fire(Stage::TrainBegin);
        self.take_callback_error_with_checkpoint()?;
        loop {
            if let Phase::Done { reason } = &self.state.phase {
                let reason = reason.clone();
                let why = match reason {
                    DoneReason::Finished => SaveReason::Finish,
                    DoneReason::Stopped { .. } => SaveReason::Stop,
                };
                let checkpoint = self.checkpoint_if_new(why)?;
                self.write_run_report(why);
                self.fire(Stage::TrainEnd);
                self.take_callback_error()?;
                return Ok(match reason {
                    DoneReason::Finished => Outcome::Finished,
                    DoneReason::Stopped { by, why } => Outcome::Stopped {
                        by,
                        why,
                        checkpoint,
                    },
                });
            }
            if self.interrupted() {
                let checkpoint = self.checkpoint_if_new(SaveReason::Interrupt)?;
                self.write_run_report(SaveReason::Interrupt);
                self.fire(Stage::Interrupt);
                self.take_callback_error()?;
                return Ok(Outcome::Interrupted { checkpoint });
            }
            self.control = Control::default();
            self.advance()?;
            self.take_callback_error_with_checkpoint()?;
            if let Some(lr) = self.control.learning_rate {
                self.state.learning_rate_override = Some(lr);
            }
            if let Some((by, why)) = self.control.stop.take() {
                self.state.phase = Phase::Done {
                    reason: DoneReason::Stopped { by, why },
                };
            }
            if self.control.checkpoint {
                self.checkpoint_if_new(SaveReason::Periodic)?;
            }
            if std::mem::take(&mut self.best_improved) && self.config.save_best {
                self.save_best()?;
            }
        }
    }

    /// The rate of the next update: a callback's override, else the schedule's.
    pub fn current_learning_rate(&self) -> f64 {
        self.state.learning_rate_override.unwrap_or_else(|| {
            self.config
                .schedule
                .lr_at(self.base_lr, self.state.global_step)
        })
    }

    fn interrupted(&self) -> bool {
        self.interrupt.is_set()
    }

    // ---- the state machine -------------------------------------------------------------

    /// Makes exactly one transition of the state machine.
    fn advance(&mut self) -> Result<()> {
        match self.state.phase.clone() {
            Phase::EpochStart => {
                self.train_data.plan_epoch(&mut self.state.train_data)?;
                self.state.batch_in_epoch = 0;
                self.state.phase = Phase::Train;
                self.fire(Stage::TrainEpochBegin);
                Ok(())
            }
            Phase::Train if self.state.train_data.set_nums_to_process.is_empty() => {
                self.end_epoch()
            }
            Phase::Train => self.train_iteration(),
            Phase::Validate { then } if self.state.val_data.set_nums_to_process.is_empty() => {
                self.end_validation(then)
            }
            Phase::Validate { .. } => self.val_iteration(),
            Phase::Done { .. } => Ok(()),
        }
    }

    fn train_iteration(&mut self) -> Result<()> {
        let started = Instant::now();
        self.fire(Stage::TrainIterBegin);
        // Windows (stateful time series): a set may be cut into several windows, one per
        // iteration. It stays first in `set_nums_to_process` until its last window is fit;
        // only then does it count as a batch. A set skipped at `TrainIterBegin` is
        // skipped whole. Sets without windows are one window, so all of this is a no-op.
        let name = self.state.train_data.set_nums_to_process[0].clone();
        self.state.set_name = name.clone();
        self.state.set_kind = "train".into();
        let mut row: Vec<(String, f64)> = Vec::new();
        let mut last_window = true;
        if !self.control.skip_batch {
            let batch = self
                .train_data
                .load(&self.state.train_data, &name, &self.device)?;
            last_window = batch.is_last_window();
            let lr = self.current_learning_rate();
            self.optimizer.set_learning_rate(lr);
            let mut ctx = ForwardCtx {
                train: true,
                dropout_rng: &mut self.dropout_rng,
            };
            let output = self.model.forward(&batch.x, &mut ctx)?;
            self.state.rng.dropout = self.dropout_rng.state();
            let loss = self.task.loss(&output, &batch.y)?;
            let loss_value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !loss_value.is_finite() {
                self.fire(Stage::Exception);
                if self.control.stop.is_none() && !self.control.skip_batch {
                    self.control.stop = Some((
                        "trainer".into(),
                        format!(
                            "loss is {loss_value} at batch {name} (step {})",
                            self.state.global_step
                        ),
                    ));
                }
            } else {
                let grads = loss.backward()?;
                let sq = grad_sq_norms(self.optimizer.vars(), &grads)?;
                let global = sq.iter().sum::<f64>().sqrt();
                // Published before `BeforeStep`, so checks can use them instead of
                // scanning the gradients again (a NaN or Inf makes its layer's norm so).
                self.state.grad_norm = global;
                self.state.layer_grad_norms = self
                    .optimizer
                    .vars()
                    .iter()
                    .zip(&sq)
                    .map(|(v, s)| (v.name.clone(), s.sqrt()))
                    .collect();
                self.grads = Some(grads);
                self.fire(Stage::BeforeStep);
                let grads = self
                    .grads
                    .as_ref()
                    .ok_or_else(|| Error::Optimizer("gradients vanished".into()))?;
                if !self.control.skip_batch {
                    let scale = clip_scale(global, self.config.clip_grad_norm);
                    self.optimizer.step_scaled(grads, scale)?;
                    self.state.global_step += 1;
                }
                self.state.learning_rate = lr;
                let mut m = self.metrics.clone();
                self.update_metrics(&mut m, loss_value, &output, &batch.y)?;
                row = m.compute();
                row.push(("lr".into(), lr));
                row.push(("grad_norm".into(), global));
            }
        }
        if !row.is_empty() {
            self.state.train_data.window_rows.push(row);
        }
        if !last_window {
            // More windows of this set follow: the carried state is kept, the set is not
            // done. Validation and batch-based checkpoints wait for the set's end.
            self.state.train_data.window += 1;
            self.state.time.train_secs += started.elapsed().as_secs_f64();
            self.tick();
            self.fire(Stage::TrainIterEnd);
            self.grads = None;
            if matches!(self.config.checkpoint_every, Every::Steps(_))
                && self.checkpoint_due_after_batch()
            {
                self.control.checkpoint = true;
            }
            return Ok(());
        }
        // The set is done: forget the recurrent state, and record one history row (the
        // mean of its windows' rows).
        self.state.train_data.set_nums_to_process.remove(0);
        self.state.train_data.window = 0;
        let row = mean_rows(std::mem::take(&mut self.state.train_data.window_rows));
        self.model.reset_states();
        self.state.batches_fit += 1;
        self.state.batch_in_epoch += 1;
        self.state.train_data.sets_done.push(name);
        if !row.is_empty() {
            self.state.train_history.push(self.state.batches_fit, &row);
            let layers: Vec<(String, f64)> = self
                .state
                .layer_grad_norms
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            self.state
                .grad_norm_history
                .push(self.state.batches_fit, &layers);
        }
        self.state.time.train_secs += started.elapsed().as_secs_f64();
        self.tick();
        self.fire(Stage::TrainBatchEnd);
        self.fire(Stage::TrainIterEnd);
        self.grads = None;
        let due = match self.config.validate_every {
            Every::Batches(n) => n > 0 && self.state.batches_fit.is_multiple_of(n),
            Every::Steps(n) => n > 0 && self.state.global_step.is_multiple_of(n) && !row.is_empty(),
            _ => false,
        };
        // A validation due exactly at an epoch end waits for the end-of-epoch check.
        if due && !self.state.train_data.set_nums_to_process.is_empty() {
            self.start_validation(AfterValidation::Train)?;
        }
        if self.checkpoint_due_after_batch() {
            self.control.checkpoint = true;
        }
        Ok(())
    }

    fn end_epoch(&mut self) -> Result<()> {
        self.state.epoch += 1;
        self.state.epoch_ends.push(self.state.batches_fit);
        self.fire(Stage::TrainEpochEnd);
        let last = self.state.epoch >= self.config.epochs;
        let then = if last {
            AfterValidation::Finish
        } else {
            AfterValidation::EpochStart
        };
        let due = match self.config.validate_every {
            Every::Never => false,
            Every::Epochs(n) => last || (n > 0 && self.state.epoch.is_multiple_of(n)),
            // Batch- and step-based validation also runs once after the last epoch.
            Every::Batches(n) => n > 0 && (last || self.state.batches_fit.is_multiple_of(n)),
            Every::Steps(n) => n > 0 && (last || self.state.global_step.is_multiple_of(n)),
        };
        if due && self.val_data.is_some() {
            self.start_validation(then)?;
        } else {
            self.state.phase = if last {
                Phase::Done {
                    reason: DoneReason::Finished,
                }
            } else {
                Phase::EpochStart
            };
        }
        if let Every::Epochs(n) = self.config.checkpoint_every {
            if n > 0 && self.state.epoch.is_multiple_of(n) {
                self.control.checkpoint = true;
            }
        }
        Ok(())
    }

    fn start_validation(&mut self, then: AfterValidation) -> Result<()> {
        let Some(val) = &self.val_data else {
            return Ok(());
        };
        val.plan_epoch(&mut self.state.val_data)?;
        self.state.val_metrics = self.metrics.clone();
        self.state.phase = Phase::Validate { then };
        self.fire(Stage::ValBegin);
        Ok(())
    }

    fn val_iteration(&mut self) -> Result<()> {
        let started = Instant::now();
        let Some(val) = &self.val_data else {
            return Err(Error::Data(
                "validation phase without validation data".into(),
            ));
        };
        // Windows: as in `train_iteration`, the set stays first until its last window.
        let name = self.state.val_data.set_nums_to_process[0].clone();
        let batch = val.load(&self.state.val_data, &name, &self.device)?;
        self.state.set_name = name.clone();
        self.state.set_kind = "val".into();
        let mut ctx = ForwardCtx {
            train: false,
            dropout_rng: &mut self.dropout_rng,
        };
        let output = self.model.forward(&batch.x, &mut ctx)?;
        let loss = self.task.loss(&output, &batch.y)?;
        let loss_value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let mut m = std::mem::take(&mut self.state.val_metrics);
        self.update_metrics(&mut m, loss_value, &output, &batch.y)?;
        self.state.val_metrics = m;
        let last_window = batch.is_last_window();
        if last_window {
            self.state.val_data.set_nums_to_process.remove(0);
            self.state.val_data.window = 0;
            self.model.reset_states();
            self.state.batches_validated += 1;
            self.state.val_data.sets_done.push(name);
        } else {
            self.state.val_data.window += 1;
        }
        self.state.time.validation_secs += started.elapsed().as_secs_f64();
        self.tick();
        if last_window {
            self.fire(Stage::ValBatchEnd);
        }
        self.fire(Stage::ValIterEnd);
        Ok(())
    }

    fn end_validation(&mut self, then: AfterValidation) -> Result<()> {
        let values: Vec<(String, f64)> = self
            .state
            .val_metrics
            .compute()
            .into_iter()
            .map(|(k, v)| (format!("val_{k}"), v))
            .collect();
        self.state.val_history.push(self.state.batches_fit, &values);
        self.state.times_validated += 1;
        self.state.val_epoch += 1;
        self.state.val_metrics.reset();
        self.update_best(&values);
        self.state.phase = match then {
            AfterValidation::Train => Phase::Train,
            AfterValidation::EpochStart => Phase::EpochStart,
            AfterValidation::Finish => Phase::Done {
                reason: DoneReason::Finished,
            },
        };
        self.fire(Stage::ValEnd);
        Ok(())
    }

    fn update_best(&mut self, values: &[(String, f64)]) {
        let s = &mut self.state;
        let Some((_, value)) = values.iter().find(|(k, _)| *k == s.key_metric) else {
            return;
        };
        let direction = if s.key_metric_higher_is_better {
            Direction::Max
        } else {
            Direction::Min
        };
        if direction.improves(*value, s.best.as_ref().map(|b| b.value), 0.0) {
            self.best_improved = true;
            s.best = Some(Best {
                metric: s.key_metric.clone(),
                value: *value,
                epoch: s.epoch,
                batches_fit: s.batches_fit,
                global_step: s.global_step,
                validation: s.times_validated - 1,
            });
        }
    }

    fn update_metrics(
        &self,
        m: &mut MetricSet,
        mean_loss: f64,
        output: &Tensor,
        y: &Tensor,
    ) -> Result<()> {
        let n = output.dims().first().copied().unwrap_or(0);
        let mut scores = output
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        // A diverged model still gets metrics (its loss is NaN); non-finite scores rank last.
        for x in scores.iter_mut().filter(|x| !x.is_finite()) {
            *x = f32::MIN;
        }
        match self.task {
            Task::Classification { num_classes } => {
                let targets = y.to_dtype(DType::U32)?.to_vec1::<u32>()?;
                m.update_classification(mean_loss * n as f64, &scores, num_classes, &targets)?;
            }
            Task::Regression => {
                let targets = y.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                // The regression loss is a mean over every predicted value (several per
                // sample for per-step time-series outputs), and so is the metric.
                m.update_regression(mean_loss * scores.len() as f64, &scores, &targets)?;
            }
        }
        Ok(())
    }

    fn checkpoint_due_after_batch(&self) -> bool {
        match self.config.checkpoint_every {
            Every::Batches(n) => n > 0 && self.state.batches_fit.is_multiple_of(n),
            Every::Steps(n) => n > 0 && self.state.global_step.is_multiple_of(n),
            _ => false,
        }
    }

    /// Adds the time since the last call to the run's wall-clock total.
    fn tick(&mut self) {
        self.state.time.total_secs += self.clock.elapsed().as_secs_f64();
        self.clock = Instant::now();
    }

    // ---- callbacks ----------------------------------------------------------------------

    /// Runs every callback for `stage`; the first failure is kept for `fit` to act on
    /// once the transition is complete (so the state stays consistent for the checkpoint).
    fn fire(&mut self, stage: Stage) {
        for cb in self.callbacks.iter_mut() {
            let mut view = TrainerView {
                state: &self.state,
                vars: self.optimizer.vars(),
                grads: self.grads.as_ref(),
                control: &mut self.control,
            };
            if let Err(e) = cb.on_stage(stage, &mut view) {
                if self.callback_error.is_none() {
                    self.callback_error = Some(Error::Callback {
                        callback: cb.name(),
                        stage: stage.to_string(),
                        message: e.to_string(),
                    });
                }
            }
        }
    }

    fn take_callback_error(&mut self) -> Result<()> {
        match self.callback_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn take_callback_error_with_checkpoint(&mut self) -> Result<()> {
        if let Some(e) = self.callback_error.take() {
            match self.checkpoint_if_new(SaveReason::CallbackError) {
                Ok(path) => eprintln!("checkpoint saved to {} before stopping", path.display()),
                Err(save) => eprintln!("could not save a checkpoint after the error: {save}"),
            }
            self.callback_error = None;
            return Err(e);
        }
        Ok(())
    }

    // ---- checkpoints ----------------------------------------------------------------------

    fn position(&self) -> (u64, u64, u64, u64, Phase) {
        (
            self.state.batches_fit,
            self.state.batches_validated,
            self.state.train_data.window,
            self.state.val_data.window,
            self.state.phase.clone(),
        )
    }

    /// Saves a checkpoint unless one was already written at exactly this position.
    fn checkpoint_if_new(&mut self, reason: SaveReason) -> Result<PathBuf> {
        match (&self.saved_at, &self.last_checkpoint) {
            (Some(at), Some(path)) if *at == self.position() && path.exists() => Ok(path.clone()),
            _ => self.save_checkpoint_because(reason),
        }
    }

    /// Renders the state as it is now into `RUN_DIR/report.png` (a failure only warns:
    /// a report must never cost a run).
    fn write_run_report(&self, reason: SaveReason) {
        if !self.config.report {
            return;
        }
        let status = status_line(&self.state, Some(reason));
        let data = report_data(&self.state, &self.run, &status);
        if let Err(e) = render_report(&data, &self.config.run_dir.join("report.png")) {
            eprintln!("warning: {e}");
        }
    }

    /// Renders the report of the run as it stands now into `path`.
    pub fn render_report(&self, path: &Path) -> Result<()> {
        let data = report_data(&self.state, &self.run, &status_line(&self.state, None));
        Ok(render_report(&data, path)?)
    }

    /// Writes a checkpoint of the run as it stands now and returns its directory.
    pub fn save_checkpoint(&mut self) -> Result<PathBuf> {
        self.save_checkpoint_because(SaveReason::Requested)
    }

    /// Everything a checkpoint holds, as of now.
    fn checkpoint_contents(
        &mut self,
        reason: SaveReason,
    ) -> Result<(CheckpointMeta, CheckpointTensors)> {
        self.tick();
        self.state.rng.dropout = self.dropout_rng.state();
        let model: Vec<(String, Tensor)> = self
            .optimizer
            .vars()
            .iter()
            .map(|v| (v.name.clone(), v.var.as_tensor().clone()))
            .collect();
        let tensors = CheckpointTensors {
            model,
            optimizer: self.optimizer.state_tensors()?,
            carried: self.model.carried_state()?,
        };
        let callbacks = self
            .callbacks
            .iter()
            .filter_map(|c| c.save_state().map(|v| (c.name(), v.to_string())))
            .collect();
        let meta = CheckpointMeta {
            state: self.state.clone(),
            model_name: self.model.name(),
            optimizer_name: self.optimizer.name().into(),
            run: self.run.clone(),
            saved_because: reason,
            job_config: self.job.as_ref().map(|j| j.to_json()),
            callbacks,
            files: Vec::new(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        Ok((meta, tensors))
    }

    /// Writes `report.png` into a checkpoint directory before it is renamed into place.
    fn report_extras(&self) -> impl Fn(&Path, &CheckpointMeta) -> Result<()> {
        let with_report = self.config.report;
        move |dir: &Path, meta: &CheckpointMeta| -> Result<()> {
            if with_report {
                let status = status_line(&meta.state, Some(meta.saved_because));
                let data = report_data(&meta.state, &meta.run, &status);
                render_report(&data, &dir.join("report.png"))?;
            }
            Ok(())
        }
    }

    fn save_checkpoint_because(&mut self, reason: SaveReason) -> Result<PathBuf> {
        let started = Instant::now();
        let sequence = self.state.checkpoints_saved + 1;
        self.state.checkpoints_saved = sequence;
        let saved = self
            .checkpoint_contents(reason)
            .and_then(|(meta, tensors)| {
                checkpoint::save(
                    &self.config.run_dir,
                    sequence,
                    meta,
                    &tensors,
                    &self.report_extras(),
                )
            });
        let dir = match saved {
            Ok(dir) => dir,
            Err(e) => {
                self.state.checkpoints_saved -= 1;
                return Err(e);
            }
        };
        checkpoint::prune(&self.config.run_dir, self.config.keep_last)?;
        self.saved_at = Some(self.position());
        self.last_checkpoint = Some(dir.clone());
        self.state.time.checkpoint_secs += started.elapsed().as_secs_f64();
        self.fire(Stage::Save);
        Ok(dir)
    }

    /// Replaces `RUN_DIR/best/` with the run as it stands now (after a new best).
    fn save_best(&mut self) -> Result<PathBuf> {
        let started = Instant::now();
        let (meta, tensors) = self.checkpoint_contents(SaveReason::Best)?;
        let dir = checkpoint::save_as(
            &self.config.run_dir,
            checkpoint::BEST_DIR,
            meta,
            &tensors,
            &self.report_extras(),
        )?;
        self.state.time.checkpoint_secs += started.elapsed().as_secs_f64();
        Ok(dir)
    }
}

/// One history row for a set fit in several windows: the mean of the windows' rows
/// (a set of one window keeps its row as it is).
fn mean_rows(mut rows: Vec<Vec<(String, f64)>>) -> Vec<(String, f64)> {
    if rows.len() <= 1 {
        return rows.pop().unwrap_or_default();
    }
    let n = rows.len() as f64;
    let mut sums: Vec<(String, f64)> = Vec::new();
    for row in &rows {
        for (k, v) in row {
            match sums.iter_mut().find(|(name, _)| name == k) {
                Some((_, s)) => *s += v,
                None => sums.push((k.clone(), *v)),
            }
        }
    }
    sums.into_iter().map(|(k, s)| (k, s / n)).collect()
}

/// Global gradient norms per batch over a data set, with summary statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradNormStats {
    pub per_batch: Vec<f64>,
    pub mean: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

impl GradNormStats {
    pub fn from_norms(per_batch: Vec<f64>) -> Self {
        let mut sorted: Vec<f64> = per_batch
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        sorted.sort_by(f64::total_cmp);
        let pick = |q: f64| -> f64 {
            if sorted.is_empty() {
                return f64::NAN;
            }
            sorted[((sorted.len() - 1) as f64 * q).round() as usize]
        };
        let mean = if sorted.is_empty() {
            f64::NAN
        } else {
            sorted.iter().sum::<f64>() / sorted.len() as f64
        };
        Self {
            mean,
            median: pick(0.5),
            p90: pick(0.9),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            per_batch,
        }
    }
}

/// The run directory a checkpoint directory belongs to (`RUN/checkpoints/ckpt-N` or
/// `RUN/best`).
pub fn run_dir_of(ckpt_dir: &Path) -> PathBuf {
    match ckpt_dir.parent() {
        Some(p)
            if p.file_name()
                .is_some_and(|n| n == checkpoint::CHECKPOINTS_DIR) =>
        {
            p.parent().map(Path::to_path_buf).unwrap_or_default()
        }
        Some(p)
            if ckpt_dir
                .file_name()
                .is_some_and(|n| n == checkpoint::BEST_DIR) =>
        {
            p.to_path_buf()
        }
        _ => ckpt_dir.to_path_buf(),
    }
}
