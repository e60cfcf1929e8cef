//! Hooks into every stage of training, and the built-in callbacks.
//!
//! A callback sees the whole [`TrainState`] and can steer the run through [`Control`]:
//! change the learning rate, ask to stop, ask for a checkpoint, skip a batch. Callbacks
//! with memory (early-stopping counters, best values) save it into the checkpoint.

mod calibration;
mod csv_logger;
mod early_stopping;
mod health;
mod histogram_figures;
mod lr_schedule;
mod progress;
pub mod tensorboard;

pub use calibration::{Calibration, CalibrationState};
pub use csv_logger::CsvLogger;
pub use early_stopping::{EarlyStopping, EarlyStoppingState};
pub use health::{HealthCheck, HealthPolicy};
pub use histogram_figures::HistogramFigures;
pub use lr_schedule::{LrScheduler, PlateauState, ReduceLrOnPlateau, ScheduleCallback};
pub use progress::Progress;
pub use tensorboard::TensorBoard;

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;

use crate::error::Result;
use crate::metrics::{direction_of, BatchView, Direction};
use crate::optim::NamedVar;
use crate::state::{StopRequest, TrainState};

/// Moments of training at which callbacks run, listed in the order they occur (except
/// that `ValBatchEnd` fires just before `ValIterEnd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// At the start of every `fit` call (so again when a run goes on after an interrupt or
    /// a resume), before the first transition.
    TrainBegin,
    /// A new epoch's sets were just planned (and shuffled): `state.train_data` lists them
    /// and `batch_in_epoch` is 0. Not fired again when a run resumes mid-epoch.
    TrainEpochBegin,
    /// Before each train iteration loads its batch (one iteration per window of a windowed
    /// set); `skip_batch` here skips the whole set unfit.
    TrainIterBegin,
    /// After the backward pass, before the optimizer update: gradients are in
    /// `TrainerView::grads`; `skip_batch` here skips the update.
    BeforeStep,
    /// After the last window of a train set: `batches_fit` and `batch_in_epoch` count it,
    /// and its metrics row (the mean over its windows; none if skipped) is in
    /// `train_history`. Fires just before that iteration's `TrainIterEnd`.
    TrainBatchEnd,
    /// After every train iteration, including windows that do not end a set and skipped
    /// batches; the batch's gradients are still in `TrainerView::grads` if it made them.
    TrainIterEnd,
    /// All sets of the epoch are done and `state.epoch` already counts it; comes before the
    /// end-of-epoch validation, if one is due.
    TrainEpochEnd,
    /// A validation pass was just planned; its first batch comes next.
    ValBegin,
    /// After every validation iteration (one per window); the metrics so far are in
    /// `state.val_metrics`.
    ValIterEnd,
    /// After the last window of a validation set (`batches_validated` counts it); fires just
    /// before that iteration's `ValIterEnd`.
    ValBatchEnd,
    /// A validation pass is complete: its `val_*` row is the latest in `state.val_history`,
    /// `times_validated` counts it and `state.best` is updated. Early stopping and
    /// reduce-on-plateau decide here.
    ValEnd,
    /// A numbered checkpoint was just written under `RUN_DIR/checkpoints/` (not fired for
    /// the `best/` copy).
    Save,
    /// A checkpoint was just loaded (resume); only callbacks registered by then see it, after
    /// their `load_state`. An error here fails the load.
    Load,
    /// The run was interrupted (Ctrl-C), after its checkpoint and run report were written;
    /// `fit` returns `Outcome::Interrupted` next.
    Interrupt,
    /// A train batch's loss is NaN or ±Inf (no backward pass, no update). The trainer then
    /// stops the run, unless a callback requested a stop itself or called `skip_batch`, which
    /// goes on with the next batch.
    Exception,
    /// Training is done (finished or stopped), after the final checkpoint and run report;
    /// the last stage `fit` fires before it returns.
    TrainEnd,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Requests a callback makes of the trainer. Reset before every transition of the state
/// machine and acted on once it completes (`skip_batch` right after the stage that sets it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Control {
    /// Stop training (with a checkpoint) and record who and why.
    pub stop: Option<StopRequest>,
    /// Write a checkpoint after this stage.
    pub checkpoint: bool,
    /// At `TrainIterBegin`: do not fit the upcoming batch; at `BeforeStep` or
    /// `Exception`: do not apply its update. The batch still counts as processed.
    pub skip_batch: bool,
    /// Use this learning rate from the next update on (overrides the schedule).
    pub learning_rate: Option<f64>,
}

/// What a callback sees: the state, the model's variables (by name), from `BeforeStep` to
/// `TrainIterEnd` the gradients of the current batch, at the batch- and iteration-end
/// stages the batch's outputs and targets; plus the controls.
pub struct TrainerView<'a> {
    /// The whole train state as it stands at this stage (read-only).
    pub state: &'a TrainState,
    /// The model's float variables sorted by name (the names checkpoints use).
    pub vars: &'a [NamedVar],
    /// Gradients of the current train batch from `BeforeStep` through `TrainIterEnd` (look
    /// one up with `grads.get(var.as_tensor())`); `None` at other stages and for a batch
    /// skipped or whose loss was not finite.
    pub grads: Option<&'a GradStore>,
    /// The requests made so far in this transition (by this and earlier callbacks); the
    /// methods below set them.
    pub control: &'a mut Control,
    /// The outputs and targets of the iteration just done (read-only), at
    /// `TrainBatchEnd`, `TrainIterEnd`, `ValBatchEnd` and `ValIterEnd`; which set they
    /// are from is `state.set_kind`. They are the host copy the metrics were fed (scores
    /// as `f32` rows, non-finite ones replaced by `f32::MIN`), lent without another copy.
    /// `None` at other stages, and for a train batch skipped or whose loss was not
    /// finite.
    pub outputs: Option<BatchView<'a>>,
    /// Which way the run's metrics improve where they declare it (streaming metrics,
    /// users' own included: [`StreamingMetric::direction`](crate::metrics::StreamingMetric)),
    /// by value name without `val_` (`iou`); read it through
    /// [`metric_direction`](Self::metric_direction), which guesses the rest by name.
    pub metric_directions: &'a BTreeMap<String, Direction>,
}

impl TrainerView<'_> {
    /// Which way `metric` improves (`val_iou`, `iou`, `val_loss`): the direction the
    /// run's metric of that name declares, else the one its name suggests
    /// ([`direction_of`]: the built-in metrics by their own, other names with `loss` or
    /// `error` minimised, the rest maximised). Early stopping and reduce-on-plateau
    /// watch by it.
    pub fn metric_direction(&self, metric: &str) -> Direction {
        declared_direction(self.metric_directions, metric).unwrap_or_else(|| direction_of(metric))
    }
    /// Asks to stop, with a checkpoint, once the current transition completes; `by` (usually
    /// the callback's name) and `why` are kept in the `StopRequest`. A later request in the
    /// same transition replaces this one.
    pub fn request_stop(&mut self, by: &str, why: impl Into<String>) {
        self.control.stop = Some(StopRequest::new(by, why));
    }
    /// Asks for a numbered checkpoint once the current transition completes (none is written
    /// if one already exists at exactly this position).
    pub fn request_checkpoint(&mut self) {
        self.control.checkpoint = true;
    }
    /// Skips the current batch or its update; see [`Control::skip_batch`]. Only acted on at
    /// `TrainIterBegin`, `BeforeStep` and `Exception`; ignored at other stages.
    pub fn skip_batch(&mut self) {
        self.control.skip_batch = true;
    }
    /// Uses `lr` for every update from the next iteration on, replacing the configured
    /// schedule; kept in `TrainState::learning_rate_override`, so a resumed run keeps it.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.control.learning_rate = Some(lr);
    }
}

/// The direction `directions` declares for `metric` (`val_` prefix or not), if any.
pub(crate) fn declared_direction(
    directions: &BTreeMap<String, Direction>,
    metric: &str,
) -> Option<Direction> {
    directions
        .get(metric)
        .or_else(|| directions.get(metric.strip_prefix("val_")?))
        .copied()
}

/// A hook into training. Every method has a no-op default.
pub trait Callback: Send {
    /// Names the callback in errors and in the checkpoint (must be unique per trainer).
    fn name(&self) -> String;
    /// Runs at every stage (match on `stage` and ignore the rest). An error ends `fit` with
    /// `Error::Callback` once the current transition completes and a checkpoint is saved.
    fn on_stage(&mut self, stage: Stage, view: &mut TrainerView) -> Result<()>;
    /// State to keep across a resume, as JSON; `None` for stateless callbacks.
    fn save_state(&self) -> Option<serde_json::Value> {
        None
    }
    /// Restores what `save_state` returned, when a checkpoint is loaded (or at registration,
    /// if the callback is added after the load). An error fails that load or registration.
    fn load_state(&mut self, _state: serde_json::Value) -> Result<()> {
        Ok(())
    }
}

/// A closure registered for one stage with `Trainer::on`.
pub struct StageClosure<F> {
    /// Callback name, `closure#{index}@{stage}` when made by `Trainer::on`.
    pub name: String,
    /// The only stage at which `f` runs.
    pub stage: Stage,
    /// The closure, given the view of that stage.
    pub f: F,
}

impl<F> Callback for StageClosure<F>
where
    F: FnMut(&mut TrainerView) -> Result<()> + Send,
{
    fn name(&self) -> String {
        self.name.clone()
    }
    fn on_stage(&mut self, stage: Stage, view: &mut TrainerView) -> Result<()> {
        if stage == self.stage {
            (self.f)(view)
        } else {
            Ok(())
        }
    }
}
