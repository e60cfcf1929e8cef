//! Learning-rate control from callbacks: any [`LrSchedule`] (what a job's `schedule`
//! section builds), any [`Schedule`] over steps, and reduce-on-plateau driven by a
//! validation metric.
//!
//! The rates they set are recorded in `TrainState::learning_rate_override`, so a resumed
//! run continues with them.

use serde::{Deserialize, Serialize};

use super::{Callback, Stage, TrainerView};
use crate::error::{Error, Result};
use crate::metrics::Direction;
use crate::optim::{LrSchedule, Schedule};

/// Drives an [`LrSchedule`]: sets the rate of the next update whenever the step or the
/// schedule's state may have changed (a new epoch, the end of every train iteration, the
/// end of every validation, after the schedule has seen its results), and saves the
/// schedule's state in checkpoints. What a job's `schedule` section adds, named
/// `schedule`.
pub struct ScheduleCallback {
    schedule: Box<dyn LrSchedule>,
    base_lr: f64,
}

impl ScheduleCallback {
    /// Follows `schedule` from the optimizer's configured rate `base_lr`.
    pub fn new(schedule: Box<dyn LrSchedule>, base_lr: f64) -> Self {
        Self { schedule, base_lr }
    }

    /// The schedule driven.
    pub fn schedule(&self) -> &dyn LrSchedule {
        self.schedule.as_ref()
    }
}

impl Callback for ScheduleCallback {
    fn name(&self) -> String {
        "schedule".into()
    }

    fn on_stage(&mut self, stage: Stage, view: &mut TrainerView) -> Result<()> {
        let step = view.state.global_step;
        match stage {
            // The first epoch's begin sets the rate of the very first update.
            Stage::TrainEpochBegin | Stage::TrainIterEnd => {}
            Stage::ValEnd => {
                let metrics = view.state.val_history.latest();
                let higher_is_better =
                    |metric: &str| view.metric_direction(metric) == Direction::Max;
                self.schedule.metric_directions(&higher_is_better);
                self.schedule
                    .observe_validation(self.base_lr, step, &metrics)?;
            }
            _ => return Ok(()),
        }
        view.set_learning_rate(self.schedule.lr_at(self.base_lr, step));
        Ok(())
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        self.schedule.save_state()
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.schedule.load_state(state)
    }
}

/// Sets the rate before every update from a schedule (step, cosine with warm-up, ...),
/// evaluated at `global_step` at `TrainBegin` and after every train iteration. The rate
/// becomes `TrainState::learning_rate_override`, replacing the trainer's own schedule.
/// Registered as `lr_scheduler`.
#[derive(Debug, Clone)]
pub struct LrScheduler {
    /// Rate as a function of the optimizer step.
    pub schedule: Schedule,
    /// Rate the schedule starts from (for `Cosine`, the peak reached after the warm-up).
    pub base_lr: f64,
}

impl LrScheduler {
    /// Follows `schedule` from `base_lr`.
    pub fn new(schedule: Schedule, base_lr: f64) -> Self {
        Self { schedule, base_lr }
    }
}

impl Callback for LrScheduler {
    fn name(&self) -> String {
        "lr_scheduler".into()
    }
    fn on_stage(&mut self, stage: Stage, view: &mut TrainerView) -> Result<()> {
        // Set after each iteration (and at the start) so the *next* update uses it.
        if matches!(stage, Stage::TrainBegin | Stage::TrainIterEnd) {
            let lr = self.schedule.lr_at(self.base_lr, view.state.global_step);
            view.set_learning_rate(lr);
        }
        Ok(())
    }
}

/// What reduce-on-plateau remembers; saved in checkpoints so a resumed run decides the same.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlateauState {
    /// Best `monitor` value so far; `None` until a finite one is seen.
    pub best: Option<f64>,
    /// Validations since the last improvement or reduction.
    pub bad_validations: u64,
    /// Validations left in the cooldown after the last reduction.
    pub cooldown_left: u64,
    /// The rate this callback last set, if any.
    pub lr: Option<f64>,
}

/// Multiplies the rate by `factor` (never going below `min_lr`) at the `ValEnd` that makes
/// `patience` validations without improvement. It scales the rate it last set, else the
/// rate of the latest update, and the new rate overrides the schedule from then on.
#[derive(Debug, Clone)]
pub struct ReduceLrOnPlateau {
    /// Validation metric to watch, as named in `val_history` (e.g. `val_loss`); its direction
    /// is the one the run's metric declares, else the one its name suggests
    /// (`TrainerView::metric_direction`). An unknown name fails at the first `ValEnd`.
    pub monitor: String,
    /// Multiplier applied to the rate at each reduction (default 0.1).
    pub factor: f64,
    /// Validations without improvement before a reduction (default 3; 0 acts as 1).
    pub patience: u64,
    /// The rate is never reduced below this (default 0.0).
    pub min_lr: f64,
    /// After a reduction, the counter `cooldown_left` is set to this and drops by one at
    /// every validation; no reduction happens while it is above 0, so the next
    /// `cooldown - 1` validations cannot reduce (default 0). Bad validations still count.
    pub cooldown: u64,
    /// An improvement must beat the best by more than `|min_delta|` (default 0.0).
    pub min_delta: f64,
    /// Counters, best value and last rate, saved in checkpoints.
    pub state: PlateauState,
}

impl ReduceLrOnPlateau {
    /// Watches `monitor` (e.g. `"val_loss"`) with factor 0.1, patience 3, no minimum rate,
    /// no cooldown and `min_delta` 0. Registered as `reduce_lr_on_plateau({monitor})`.
    pub fn new(monitor: &str) -> Self {
        Self {
            monitor: monitor.into(),
            factor: 0.1,
            patience: 3,
            min_lr: 0.0,
            cooldown: 0,
            min_delta: 0.0,
            state: PlateauState::default(),
        }
    }
    /// Multiplier per reduction (default 0.1).
    pub fn factor(mut self, f: f64) -> Self {
        self.factor = f;
        self
    }
    /// Validations without improvement before a reduction (default 3).
    pub fn patience(mut self, n: u64) -> Self {
        self.patience = n;
        self
    }
    /// Floor for the rate (default 0.0).
    pub fn min_lr(mut self, lr: f64) -> Self {
        self.min_lr = lr;
        self
    }
    /// Cooldown after a reduction, in validations (default 0; see the `cooldown` field).
    pub fn cooldown(mut self, n: u64) -> Self {
        self.cooldown = n;
        self
    }
}

impl Callback for ReduceLrOnPlateau {
    fn name(&self) -> String {
        format!("reduce_lr_on_plateau({})", self.monitor)
    }

    fn on_stage(&mut self, stage: Stage, view: &mut TrainerView) -> Result<()> {
        if stage != Stage::ValEnd {
            return Ok(());
        }
        let Some(&value) = view.state.val_history.latest().get(&self.monitor) else {
            return Err(Error::config(
                "reduce_lr_on_plateau.monitor",
                format!("{:?} is not a validation metric", self.monitor),
            ));
        };
        let s = &mut self.state;
        let improved = view
            .metric_direction(&self.monitor)
            .improves(value, s.best, self.min_delta);
        if s.cooldown_left > 0 {
            s.cooldown_left -= 1;
        }
        if improved {
            s.best = Some(value);
            s.bad_validations = 0;
            return Ok(());
        }
        s.bad_validations += 1;
        if s.bad_validations >= self.patience && s.cooldown_left == 0 {
            let current = s.lr.unwrap_or(view.state.learning_rate);
            let new = (current * self.factor).max(self.min_lr);
            if new < current {
                s.lr = Some(new);
                view.set_learning_rate(new);
            }
            s.bad_validations = 0;
            s.cooldown_left = self.cooldown;
        }
        Ok(())
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.state).ok()
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.state = serde_json::from_value(state)
            .map_err(|e| Error::Data(format!("plateau state: {e}")))?;
        Ok(())
    }
}
