//! Learning-rate control from callbacks: any [`Schedule`] over steps, and
//! reduce-on-plateau driven by a validation metric.
//!
//! The rates they set are recorded in `TrainState::learning_rate_override`, so a resumed
//! run continues with them.

use serde::{Deserialize, Serialize};

use super::{Callback, Stage, TrainerView};
use crate::error::{Error, Result};
use crate::metrics::direction_of;
use crate::optim::Schedule;

/// Sets the rate before every update from a schedule (step, cosine with warm-up, ...).
#[derive(Debug, Clone)]
pub struct LrScheduler {
    pub schedule: Schedule,
    pub base_lr: f64,
}

impl LrScheduler {
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlateauState {
    pub best: Option<f64>,
    pub bad_validations: u64,
    pub cooldown_left: u64,
    /// The rate this callback last set, if any.
    pub lr: Option<f64>,
}

/// Multiplies the rate by `factor` after `patience` validations without improvement.
#[derive(Debug, Clone)]
pub struct ReduceLrOnPlateau {
    pub monitor: String,
    pub factor: f64,
    pub patience: u64,
    pub min_lr: f64,
    pub cooldown: u64,
    pub min_delta: f64,
    pub state: PlateauState,
}

impl ReduceLrOnPlateau {
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
    pub fn factor(mut self, f: f64) -> Self {
        self.factor = f;
        self
    }
    pub fn patience(mut self, n: u64) -> Self {
        self.patience = n;
        self
    }
    pub fn min_lr(mut self, lr: f64) -> Self {
        self.min_lr = lr;
        self
    }
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
        let improved = direction_of(&self.monitor).improves(value, s.best, self.min_delta);
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
