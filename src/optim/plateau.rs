//! Reduce-on-plateau as a schedule (PyTorch's `ReduceLROnPlateau`): the rate drops by a
//! factor when a validation metric has not improved for a while. Its counters, best value
//! and current rate are state, saved in checkpoints through the schedule callback.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::schedule::LrSchedule;
use crate::error::{Error, Result};

/// How much better than the best a value must be to count as an improvement.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMode {
    /// By a share of the best: below `best * (1 - threshold)` (minimised metrics) or above
    /// `best * (1 + threshold)` (maximised ones).
    #[default]
    Rel,
    /// By an amount: below `best - threshold` or above `best + threshold`.
    Abs,
}

/// What [`ReduceOnPlateau`] remembers between validations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlateauSchedState {
    /// The best value of the metric so far (`None` before the first finite one).
    pub best: Option<f64>,
    /// Validations since the last improvement (reset by a reduction and in cooldown).
    pub bad_validations: u64,
    /// Validations left in the cooldown after the last reduction.
    pub cooldown_left: u64,
    /// The current rate once reduced (`None`: the optimizer's own, not reduced yet).
    pub lr: Option<f64>,
}

/// Multiplies the rate by `factor` (never below `min_lr`) once more than `patience`
/// validations in a row have not improved `monitor`; after a reduction, `cooldown`
/// validations pass before bad ones count again. PyTorch's algorithm and defaults; a
/// non-finite value never improves.
#[derive(Debug, Clone, PartialEq)]
pub struct ReduceOnPlateau {
    /// The validation metric watched, as the run names it (`val_loss`).
    pub monitor: String,
    /// Whether larger values of `monitor` are better: `Some` as given; `None` (what a
    /// job's `reduce_on_plateau` builds) takes the direction the run declares for
    /// `monitor` (else the one its name suggests), told through
    /// [`LrSchedule::metric_directions`] at the first validation. Left `None` (used
    /// without the schedule callback) it minimises, as PyTorch's default mode `min`.
    pub maximize: Option<bool>,
    /// Multiplier per reduction, in (0, 1).
    pub factor: f64,
    /// Validations without improvement tolerated; the next one reduces.
    pub patience: u64,
    /// Smallest improvement that counts (see [`ThresholdMode`]).
    pub threshold: f64,
    /// Relative or absolute `threshold`.
    pub threshold_mode: ThresholdMode,
    /// Validations after a reduction during which bad ones are not counted.
    pub cooldown: u64,
    /// The rate is never reduced below this.
    pub min_lr: f64,
    /// A reduction smaller than this is not made.
    pub eps: f64,
    /// Counters, best value and current rate.
    pub state: PlateauSchedState,
}

impl ReduceOnPlateau {
    fn improves(&self, value: f64) -> bool {
        let Some(best) = self.state.best else {
            return value.is_finite();
        };
        if !value.is_finite() {
            return false;
        }
        let t = self.threshold;
        match (self.maximize.unwrap_or(false), self.threshold_mode) {
            (false, ThresholdMode::Rel) => value < best * (1.0 - t),
            (false, ThresholdMode::Abs) => value < best - t,
            (true, ThresholdMode::Rel) => value > best * (1.0 + t),
            (true, ThresholdMode::Abs) => value > best + t,
        }
    }
}

impl LrSchedule for ReduceOnPlateau {
    fn lr_at(&self, base_lr: f64, _step: u64) -> f64 {
        self.state.lr.unwrap_or(base_lr)
    }

    fn metric_directions(&mut self, higher_is_better: &dyn Fn(&str) -> bool) {
        if self.maximize.is_none() {
            self.maximize = Some(higher_is_better(&self.monitor));
        }
    }

    fn observe_validation(
        &mut self,
        base_lr: f64,
        _step: u64,
        metrics: &BTreeMap<String, f64>,
    ) -> Result<()> {
        let Some(&value) = metrics.get(&self.monitor) else {
            let known: Vec<&str> = metrics.keys().map(String::as_str).collect();
            return Err(Error::config(
                "schedule.monitor",
                format!(
                    "`{}` is not a validation metric of this run ({})",
                    self.monitor,
                    known.join(", ")
                ),
            ));
        };
        if self.improves(value) {
            self.state.best = Some(value);
            self.state.bad_validations = 0;
        } else {
            self.state.bad_validations += 1;
        }
        if self.state.cooldown_left > 0 {
            self.state.cooldown_left -= 1;
            self.state.bad_validations = 0;
        }
        if self.state.bad_validations > self.patience {
            let old = self.lr_at(base_lr, 0);
            let new = (old * self.factor).max(self.min_lr);
            if old - new > self.eps {
                self.state.lr = Some(new);
            }
            self.state.cooldown_left = self.cooldown;
            self.state.bad_validations = 0;
        }
        Ok(())
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.state).ok()
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.state = serde_json::from_value(state)
            .map_err(|e| Error::Data(format!("reduce_on_plateau state: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plateau(patience: u64, cooldown: u64) -> ReduceOnPlateau {
        ReduceOnPlateau {
            monitor: "val_loss".into(),
            maximize: Some(false),
            factor: 0.5,
            patience,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown,
            min_lr: 0.01,
            eps: 1e-8,
            state: PlateauSchedState::default(),
        }
    }

    /// The rate after each validation of `values`, from a base of 0.1.
    fn rates(s: &mut ReduceOnPlateau, values: &[f64]) -> Vec<f64> {
        values
            .iter()
            .map(|&v| {
                let m = BTreeMap::from([("val_loss".to_string(), v)]);
                s.observe_validation(0.1, 0, &m).unwrap();
                s.lr_at(0.1, 0)
            })
            .collect()
    }

    #[test]
    fn reduces_after_more_than_patience_bad_validations_as_pytorch() {
        // PyTorch, patience 1: bad epochs must exceed 1.
        let mut s = plateau(1, 0);
        let lrs = rates(&mut s, &[1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5]);
        assert_eq!(lrs, [0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025]);
        // Reductions stop at min_lr.
        let lrs = rates(&mut s, &[1.0; 6]);
        assert_eq!(lrs, [0.025, 0.0125, 0.0125, 0.01, 0.01, 0.01]);
    }

    #[test]
    fn cooldown_ignores_bad_validations_and_threshold_is_relative() {
        let mut s = plateau(0, 2);
        // 0.99995 is within 1e-4 of 1.0: not an improvement.
        let lrs = rates(&mut s, &[1.0, 0.99995, 1.0, 1.0, 1.0]);
        assert_eq!(lrs, [0.1, 0.05, 0.05, 0.05, 0.025]);
        // Maximised metric, absolute threshold.
        let mut s = plateau(0, 0);
        s.maximize = Some(true);
        s.threshold_mode = ThresholdMode::Abs;
        s.threshold = 0.1;
        let lrs = rates(&mut s, &[0.5, 0.65, 0.7, f64::NAN]);
        assert_eq!(lrs, [0.1, 0.1, 0.05, 0.025]);
    }

    #[test]
    fn state_round_trips_and_a_missing_metric_is_named() {
        let mut s = plateau(0, 1);
        rates(&mut s, &[1.0, 2.0]);
        let saved = s.save_state().unwrap();
        let mut t = plateau(0, 1);
        t.load_state(saved).unwrap();
        assert_eq!(t.state, s.state);
        assert_eq!(t.lr_at(0.1, 0), 0.05);
        let m = BTreeMap::from([("val_accuracy".to_string(), 1.0)]);
        let err = t.observe_validation(0.1, 0, &m).unwrap_err().to_string();
        assert!(
            err.contains("schedule.monitor") && err.contains("val_accuracy"),
            "{err}"
        );
    }
}
