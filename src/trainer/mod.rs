//! The trainer: one value that owns the model, optimizer, data and callbacks, and the
//! whole train state in its public `state`.
//!
//! - `machine.rs`: the state machine, top to bottom (`fit`, one transition per step);
//! - `builder.rs`: building a trainer from parts made in code;
//! - `config.rs`: the loop settings (`TrainConfig`, `Every`);
//! - `persist.rs`: checkpoints and reports written and read back;
//! - `streaming.rs`: the streaming metrics, fed and checkpointed;
//! - `lock.rs`: one writer per run directory (`RunLock`, held by `fit`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::callbacks::{Callback, Control, Stage, StageClosure, TrainerView};
use crate::checkpoint::RunInfo;
use crate::data_loaders::{Batch, DataLoader, SetRef};
use crate::error::{Error, Result};
use crate::interrupt::InterruptHandle;
use crate::losses::Loss;
use crate::metrics::{Direction, HostBatch, MetricSet, StreamingMetric};
use crate::model::{parameter_count, ForwardCtx, Model, Task};
use crate::optim::{grad_sq_norms, Accumulator, NamedVar, TrainOptimizer};
use crate::rng::RngStream;
use crate::state::{AfterValidation, DoneReason, Phase, StopRequest, TrainState};
use crate::transforms::{ApplyCtx, Transforms};

mod builder;
mod config;
mod lock;
mod machine;
mod persist;
mod streaming;

pub(crate) use builder::split_built_metrics;
pub use builder::{default_loss, TrainerBuilder};
pub use config::{Every, TrainConfig};
pub use lock::{LockHolder, RunLock, LOCK_FILE};
pub(crate) use machine::update_metrics;

/// How `fit` ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every epoch ran.
    Finished,
    /// A signal or `InterruptHandle::interrupt` stopped the run; resume from `checkpoint`.
    Interrupted {
        /// The checkpoint written at the stop.
        checkpoint: PathBuf,
    },
    /// A callback asked to stop (early stopping, a health check).
    Stopped {
        /// Who asked, and why.
        stop: StopRequest,
        /// The checkpoint written at the stop.
        checkpoint: PathBuf,
    },
}

/// Trains a model. All progress lives in the public `state`.
pub struct Trainer {
    /// Everything the run has done and where it stands; saved whole in every checkpoint.
    pub state: TrainState,
    /// The loop settings.
    pub config: TrainConfig,
    /// Who, what and how, as shown in reports.
    pub run: RunInfo,
    /// The job config the run was built from (JSON), when it was built from one.
    job_config: Option<String>,
    task: Task,
    /// What `fit` minimises; its value on validation batches is the `loss` metric.
    loss: Box<dyn Loss>,
    device: Device,
    model: Box<dyn Model>,
    /// Every variable of the model by name, frozen ones included: what checkpoints save.
    model_vars: Vec<NamedVar>,
    /// The optimizer, behind the gradient accumulation (`accumulate_batches`; with 1, a
    /// pass-through).
    optimizer: Accumulator,
    /// The optimizer's rate before any schedule; schedules scale from it.
    base_lr: f64,
    /// `config.max_time` in seconds, read once when the trainer is built.
    max_time_secs: Option<f64>,
    /// Empty metric set cloned for every batch and validation.
    metrics: MetricSet,
    /// Metrics beyond the fixed set (users' own, `confusion_matrix`, multi-class
    /// `roc_auc`); their state is saved in checkpoints by name.
    streaming: Vec<Box<dyn StreamingMetric>>,
    /// Which way each streaming metric improves, as it declares, by its name and the
    /// names of its values (what callbacks read through `TrainerView::metric_direction`).
    metric_directions: BTreeMap<String, Direction>,
    /// The host copy of the outputs and targets of the iteration in progress, made for
    /// the metrics and lent to callbacks at its batch-end stages.
    last_batch: Option<HostBatch>,
    train_data: Box<dyn DataLoader>,
    val_data: Option<Box<dyn DataLoader>>,
    callbacks: Vec<Box<dyn Callback>>,
    /// Callback state from a checkpoint whose callback is not registered yet.
    pending_callback_states: Vec<(String, serde_json::Value)>,
    dropout_rng: RngStream,
    interrupt: InterruptHandle,
    control: Control,
    /// The validation just ended set a new best (saved into `best/` after the transition).
    best_improved: bool,
    /// Gradients of the batch being fit, kept from `BeforeStep` to `TrainIterEnd`.
    grads: Option<candle_core::backprop::GradStore>,
    /// First callback failure of the current transition, acted on once it completes.
    callback_error: Option<Error>,
    /// Position of the last checkpoint, to not save twice at one position.
    saved_at: Option<persist::Position>,
    last_checkpoint: Option<PathBuf>,
    /// Writes periodic and `best/` checkpoints in the background (declared before
    /// `run_lock`: a dropped trainer lets its saves land before it lets the lock go).
    saves: crate::checkpoint::Writer,
    /// Time of the last wall-clock bookkeeping.
    clock: Instant,
    /// The run directory's lock, when the caller took it before building the trainer
    /// (see [`hold_run_lock`](Self::hold_run_lock)); otherwise `fit` takes its own.
    run_lock: Option<RunLock>,
    /// Applied to every batch right after it is loaded.
    transforms: Transforms,
}

impl Trainer {
    /// Starts building a trainer for `model`, updated by `optimizer`.
    pub fn builder(
        model: impl Model + 'static,
        optimizer: impl TrainOptimizer + 'static,
    ) -> TrainerBuilder {
        Self::builder_boxed(Box::new(model), Box::new(optimizer))
    }

    /// [`builder`](Self::builder) for parts already boxed.
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
            loss: None,
            config: TrainConfig::default(),
            batch_size: 32,
            val_batch_size: None,
            shuffle: true,
            drop_last: false,
            device: Device::Cpu,
            init_rng: None,
            name: None,
            job_config: None,
            interrupt: None,
            resume_from: None,
            transforms: Transforms::default(),
            built_metrics: None,
            streaming: Vec::new(),
        }
    }

    /// Registers a callback; callbacks run in registration order. Names must be unique
    /// (they key the callback's saved state); state loaded from a checkpoint before the
    /// callback was registered is handed to it now.
    pub fn add_callback(&mut self, cb: impl Callback + 'static) -> Result<&mut Self> {
        self.add_boxed_callback(Box::new(cb))
    }

    /// [`add_callback`](Self::add_callback) for a callback already boxed.
    pub fn add_boxed_callback(&mut self, mut cb: Box<dyn Callback>) -> Result<&mut Self> {
        let name = cb.name();
        if self.callbacks.iter().any(|c| c.name() == name) {
            return Err(Error::config(
                "callbacks",
                format!(
                    "two callbacks are named `{name}`: names key their saved state, give one \
                     another name"
                ),
            ));
        }
        if let Some(i) = self
            .pending_callback_states
            .iter()
            .position(|(n, _)| *n == name)
        {
            let (_, state) = self.pending_callback_states.remove(i);
            cb.load_state(state)?;
        }
        self.callbacks.push(cb);
        Ok(self)
    }

    /// Runs `f` at every `stage`.
    pub fn on<F>(&mut self, stage: Stage, f: F) -> &mut Self
    where
        F: FnMut(&mut TrainerView) -> Result<()> + Send + 'static,
    {
        let name = format!("closure#{}@{stage}", self.callbacks.len());
        self.callbacks
            .push(Box::new(StageClosure { name, stage, f }));
        self
    }

    /// Forgets the checkpointed state of callback `name` that no registered callback
    /// took (otherwise `fit` refuses to start, so that no state is dropped silently).
    pub fn discard_callback_state(&mut self, name: &str) -> bool {
        let before = self.pending_callback_states.len();
        self.pending_callback_states.retain(|(n, _)| n != name);
        before != self.pending_callback_states.len()
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

    /// Keeps `lock` (taken on this trainer's run directory before anything in it was
    /// read or written) for the trainer's lifetime: `fit` then trains under it instead of
    /// taking the lock itself. A lock on another directory is refused.
    pub fn hold_run_lock(&mut self, lock: RunLock) -> Result<&mut Self> {
        if !lock.is_for(&self.config.run_dir) {
            return Err(Error::config(
                "run_dir",
                format!(
                    "the lock {} is not of this trainer's run directory {}",
                    lock.path().display(),
                    self.config.run_dir.display()
                ),
            ));
        }
        self.run_lock = Some(lock);
        Ok(self)
    }

    /// Where a stop at this moment would leave the run.
    pub fn interrupt_status(&self) -> crate::state::InterruptStatus {
        self.state.interrupt_status()
    }

    /// The model being trained.
    pub fn model(&self) -> &dyn Model {
        self.model.as_ref()
    }

    /// The optimizer updating it (the gradient accumulation in front of it aside).
    pub fn optimizer(&self) -> &dyn TrainOptimizer {
        self.optimizer.inner()
    }

    /// Batches summed toward the next optimizer update and not applied yet (always 0
    /// unless `accumulate_batches` is above 1).
    pub fn pending_accumulation(&self) -> u64 {
        self.optimizer.pending()
    }

    /// The optimizer's configured rate: what schedules start from.
    pub fn base_learning_rate(&self) -> f64 {
        self.base_lr
    }

    /// Train batches (sets) in the next epoch, as its plan would give them, without
    /// planning it (the plan is made on a copy of the loader's state).
    pub fn batches_per_epoch(&self) -> Result<u64> {
        let mut loader = self.state.train_data.loader.clone();
        let epoch = self.state.train_data.epoch + 1;
        Ok(self.train_data.plan_epoch(epoch, &mut loader)?.len() as u64)
    }

    /// The job config (JSON) this run was built from, if it was built from one.
    pub fn job_config_json(&self) -> Option<&str> {
        self.job_config.as_deref()
    }

    /// The directory of the last checkpoint written or loaded.
    pub fn last_checkpoint(&self) -> Option<&Path> {
        self.last_checkpoint.as_deref()
    }

    /// What the outputs mean (picks the metrics and the default loss).
    pub fn task(&self) -> Task {
        self.task
    }

    /// The transforms applied to every batch, in order.
    pub fn transforms(&self) -> &Transforms {
        &self.transforms
    }

    /// `batch` as the model sees it: the transforms applied. On a train batch random ones
    /// draw from the run's augmentation stream, whose new position goes into the state;
    /// elsewhere nothing is drawn and the stream stays where it is.
    fn transformed(&mut self, batch: Batch, train: bool) -> Result<Batch> {
        if self.transforms.is_empty() {
            return Ok(batch);
        }
        let mut rng = RngStream::from_state(&self.state.rng.augment);
        let batch = transform_batch(&self.transforms, batch, train, &mut rng)?;
        if train {
            self.state.rng.augment = rng.state();
        }
        Ok(batch)
    }

    /// Which way `metric` (`val_iou`, `loss`) improves: as the run's metric of that name
    /// declares it ([`StreamingMetric::direction`]), else as its name suggests
    /// ([`crate::metrics::direction_of`]); what callbacks see as
    /// `TrainerView::metric_direction`.
    pub fn metric_direction(&self, metric: &str) -> Direction {
        crate::callbacks::declared_direction(&self.metric_directions, metric)
            .unwrap_or_else(|| crate::metrics::direction_of(metric))
    }

    /// The loss being minimised.
    pub fn loss(&self) -> &dyn Loss {
        self.loss.as_ref()
    }

    /// The loss's name with its non-default settings, for reports, e.g.
    /// `cross_entropy (label_smoothing 0.1)`.
    pub fn loss_name(&self) -> String {
        self.loss.description()
    }

    /// The rate of the next update: a callback's override, else the schedule's.
    pub fn current_learning_rate(&self) -> f64 {
        self.state.learning_rate_override.unwrap_or_else(|| {
            self.config
                .schedule
                .lr_at(self.base_lr, self.state.global_step)
        })
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
        out += &format!("phase {:?}: {}\n", s.phase, s.interrupt_status());
        out += &s.summary(self.config.epochs);
        out
    }

    /// Sets the number of epochs to run to `epochs`, as if it had been configured from
    /// the start: a run that finished its last epoch (done, or validating after it) goes
    /// on to the next epoch. Bitwise the same as the longer run when that run would also
    /// have validated at this epoch end (epoch-based validation; batch- and step-based
    /// validation also runs once after the last epoch, which then stays in the history).
    ///
    /// Refused, leaving the trainer as it was, when the run is past epoch `epochs`, or was
    /// stopped (early stopping, a health check) rather than finished.
    pub fn extend_epochs(&mut self, epochs: u64) -> Result<()> {
        let done = self.state.epoch;
        let at_end = matches!(
            self.state.phase,
            Phase::Done {
                reason: DoneReason::Finished
            } | Phase::Validate {
                then: AfterValidation::Finish
            }
        );
        if let Phase::Done {
            reason: DoneReason::Stopped(stop),
        } = &self.state.phase
        {
            return Err(Error::config(
                "epochs",
                format!("the run was stopped by {stop}, not finished: more epochs would not continue it"),
            ));
        }
        // Epochs that have begun must be allowed to end.
        let least = if at_end { done } else { done + 1 };
        if epochs < least.max(1) {
            return Err(Error::config(
                "epochs",
                format!(
                    "{epochs} is fewer than the run has already begun ({least}): give at least {least}"
                ),
            ));
        }
        self.config.epochs = epochs;
        if epochs > done {
            self.state.phase = match self.state.phase.clone() {
                Phase::Done { .. } => Phase::EpochStart,
                Phase::Validate {
                    then: AfterValidation::Finish,
                } => Phase::Validate {
                    then: AfterValidation::EpochStart,
                },
                other => other,
            };
        }
        Ok(())
    }

    /// Gradient norms over one pass of the train data, without updating anything: for
    /// choosing a clip value. Dropout and random transforms draw from copies of the run's
    /// streams, so the run itself is unchanged (its next batches are bitwise the same as without this call).
    pub fn dataset_grad_norms(&mut self) -> Result<GradNormStats> {
        let mut loader = self.state.train_data.loader.clone();
        let epoch = self.state.train_data.epoch + 1;
        let sets = self.train_data.plan_epoch(epoch, &mut loader)?;
        let mut rng = self.dropout_rng.clone();
        let mut augment = RngStream::from_state(&self.state.rng.augment);
        let mut norms = Vec::new();
        for name in &sets {
            let at = SetRef::new(name).in_epoch(epoch);
            let batch = self.train_data.load(&loader, at, &self.device)?;
            let batch = transform_batch(&self.transforms, batch, true, &mut augment)?;
            let mut ctx = ForwardCtx {
                train: true,
                dropout_rng: &mut rng,
            };
            let output = self.model.forward(&batch.x, &mut ctx)?;
            let weights = batch.weights.as_ref();
            let grads = self.loss.forward(&output, &batch.y, weights)?.backward()?;
            let sq = grad_sq_norms(self.optimizer.vars(), &grads)?;
            norms.push(sq.iter().sum::<f64>().sqrt());
        }
        Ok(GradNormStats::from_norms(norms))
    }
}

/// `batch` with `transforms` applied, random ones drawing from `rng` when `train`.
fn transform_batch(
    transforms: &Transforms,
    batch: Batch,
    train: bool,
    rng: &mut RngStream,
) -> Result<Batch> {
    let mut ctx = ApplyCtx { train, rng };
    let (x, y) = transforms.apply(batch.x, Some(batch.y), &mut ctx)?;
    let y = y.ok_or_else(|| {
        Error::Data(format!(
            "the transforms {:?} dropped the labels of batch {}",
            transforms.names(),
            batch.set_name
        ))
    })?;
    // Transforms act per sample and keep the batch's samples in order, so its per-sample
    // weights stay as they are; a transform that changed the number of samples would
    // leave them pointing at the wrong samples.
    if let Some(w) = &batch.weights {
        let samples = x.dims().first().copied().unwrap_or(0);
        if w.elem_count() != samples {
            return Err(Error::Data(format!(
                "the transforms {:?} turned batch {} of {} weighted samples into {samples}",
                transforms.names(),
                batch.set_name,
                w.elem_count()
            )));
        }
    }
    Ok(Batch { x, y, ..batch })
}

/// Global gradient norms per batch over a data set, with summary statistics (of the
/// finite ones; NaN when there is none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradNormStats {
    /// One norm per batch, in the order fit.
    pub per_batch: Vec<f64>,
    /// Their mean.
    pub mean: f64,
    /// Their median.
    pub median: f64,
    /// Their 90th percentile: a starting point for `clip_grad_norm`.
    pub p90: f64,
    /// The largest.
    pub max: f64,
}

impl GradNormStats {
    /// The statistics of `per_batch`.
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
