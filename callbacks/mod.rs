//! Hooks into every stage of training, and the built-in callbacks.
//!
//! A callback sees the whole [`TrainState`] and can steer the run through [`Control`]:
//! change the learning rate, ask to stop, ask for a checkpoint, skip a batch. Callbacks
//! with memory (early-stopping counters, best values) save it into the checkpoint.

pub mod csv_logger;
pub mod early_stopping;
pub mod health;
pub mod histogram_figures;
pub mod lr_schedule;
pub mod progress;
pub mod tensorboard;

pub use csv_logger::CsvLogger;
pub use early_stopping::EarlyStopping;
pub use health::{HealthCheck, HealthPolicy};
pub use histogram_figures::HistogramFigures;
pub use lr_schedule::{LrScheduler, ReduceLrOnPlateau};
pub use progress::Progress;
pub use tensorboard::TensorBoard;

use candle_core::backprop::GradStore;

use crate::error::Result;
use crate::optim::NamedVar;
use crate::state::{StopRequest, TrainState};

/// Moments of training at which callbacks run, in the order they occur.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    TrainBegin,
    TrainEpochBegin,
    TrainIterBegin,
    /// After the backward pass, before the optimizer update: gradients are in
    /// `TrainerView::grads`; `skip_batch` here skips the update.
    BeforeStep,
    TrainBatchEnd,
    TrainIterEnd,
    TrainEpochEnd,
    ValBegin,
    ValIterEnd,
    ValBatchEnd,
    ValEnd,
    Save,
    Load,
    Interrupt,
    Exception,
    TrainEnd,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Requests a callback makes of the trainer; read after every stage.
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

/// What a callback sees: the state, the model's variables (by name) and, from
/// `BeforeStep` to `TrainIterEnd`, the gradients of the current batch; plus the controls.
pub struct TrainerView<'a> {
    pub state: &'a TrainState,
    pub vars: &'a [NamedVar],
    pub grads: Option<&'a GradStore>,
    pub control: &'a mut Control,
}

impl TrainerView<'_> {
    pub fn request_stop(&mut self, by: &str, why: impl Into<String>) {
        self.control.stop = Some(StopRequest::new(by, why));
    }
    pub fn request_checkpoint(&mut self) {
        self.control.checkpoint = true;
    }
    pub fn skip_batch(&mut self) {
        self.control.skip_batch = true;
    }
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.control.learning_rate = Some(lr);
    }
}

/// A hook into training. Every method has a no-op default.
pub trait Callback: Send {
    /// Names the callback in errors and in the checkpoint (must be unique per trainer).
    fn name(&self) -> String;
    fn on_stage(&mut self, stage: Stage, view: &mut TrainerView) -> Result<()>;
    /// State to keep across a resume, as JSON; `None` for stateless callbacks.
    fn save_state(&self) -> Option<serde_json::Value> {
        None
    }
    fn load_state(&mut self, _state: serde_json::Value) -> Result<()> {
        Ok(())
    }
}

/// A closure registered for one stage with `Trainer::on`.
pub struct StageClosure<F> {
    pub name: String,
    pub stage: Stage,
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
