//! Learning-rate schedules: the rate of every optimizer step.
//!
//! [`LrSchedule`] is what the trainer's schedule callback drives: a rate per step,
//! optionally moved by validation results (reduce-on-plateau), with its state saved in
//! checkpoints. Most schedules are pure functions of `(base_lr, step)`, so resuming needs
//! nothing beyond the step count already in the checkpoint, and the rate at any step can
//! be shown in reports. [`Schedule`] is the older closed set (`train.schedule`), still
//! read and applied by the trainer itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A learning-rate schedule: the rate of every optimizer step, from the optimizer's
/// configured rate (`base_lr`) and the step, and for stateful ones the validations seen.
///
/// The trainer asks for the rate after every change of the step and every validation
/// (see `callbacks::ScheduleCallback`), so a schedule must answer the same for the same
/// step and state: that is what makes a resumed run exact.
pub trait LrSchedule: Send {
    /// The rate for the update that makes optimizer step `step` (0-based).
    fn lr_at(&self, base_lr: f64, step: u64) -> f64;
    /// A validation ended at optimizer step `step`, with `metrics` its values by name
    /// (`val_loss`, `val_accuracy`, ...). Schedules driven by a metric decide here; an
    /// error (a metric that is not there) ends the run. Default: nothing.
    fn observe_validation(
        &mut self,
        _base_lr: f64,
        _step: u64,
        _metrics: &BTreeMap<String, f64>,
    ) -> Result<()> {
        Ok(())
    }
    /// Told, before every `observe_validation`, which way the run's validation metrics
    /// improve: `higher_is_better(name)` is the direction the run's metric of that name
    /// declares (a user metric's own), else the one its name suggests. Schedules
    /// watching a metric without a direction of their own take it from here. Default:
    /// ignored.
    fn metric_directions(&mut self, _higher_is_better: &dyn Fn(&str) -> bool) {}
    /// What it remembers, for checkpoints (`None`: nothing, a pure function of the step).
    fn save_state(&self) -> Option<serde_json::Value> {
        None
    }
    /// Restores what `save_state` returned.
    fn load_state(&mut self, _state: serde_json::Value) -> Result<()> {
        Ok(())
    }
}

/// A learning rate as a function of the optimizer step. In JSON, tagged by `kind`:
/// `{"kind": "constant"}`, `{"kind": "step", "step_size": 10, "gamma": 0.5}`,
/// `{"kind": "cosine", "warmup_steps": 100, "total_steps": 1000, "min_lr": 0.0}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// Multiply by `gamma` every `step_size` steps: `base_lr * gamma^(step / step_size)`.
    Step {
        /// Steps between two decays, at least 1 (a job config refuses 0; here 0 acts as 1).
        step_size: u64,
        /// Factor per decay, in (0, 1], e.g. 0.1.
        gamma: f64,
    },
    /// Linear warm-up over `warmup_steps` (step `s < warmup_steps` uses
    /// `base_lr * (s + 1) / warmup_steps`), then cosine decay from `base_lr` to `min_lr` at
    /// `total_steps`, and `min_lr` after.
    Cosine {
        /// Steps of linear warm-up (0: none).
        warmup_steps: u64,
        /// Step at which the decay reaches `min_lr` (counted from step 0, warm-up included).
        total_steps: u64,
        /// Final rate (absolute, not a fraction of `base_lr`).
        min_lr: f64,
    },
}

impl Schedule {
    /// The rate to use for the update that makes the optimizer's `step`-th step (0-based).
    pub fn lr_at(&self, base_lr: f64, step: u64) -> f64 {
        match *self {
            Schedule::Constant => base_lr,
            Schedule::Step { step_size, gamma } => {
                base_lr * gamma.powi((step / step_size.max(1)) as i32)
            }
            Schedule::Cosine {
                warmup_steps,
                total_steps,
                min_lr,
            } => {
                if step < warmup_steps {
                    return base_lr * (step + 1) as f64 / warmup_steps as f64;
                }
                let span = total_steps.saturating_sub(warmup_steps).max(1);
                let progress = ((step - warmup_steps) as f64 / span as f64).min(1.0);
                min_lr + 0.5 * (base_lr - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

impl LrSchedule for Schedule {
    fn lr_at(&self, base_lr: f64, step: u64) -> f64 {
        Schedule::lr_at(self, base_lr, step)
    }
}

/// `gamma^k`, with `k` saturated to what `powi` takes.
fn pow_steps(gamma: f64, k: u64) -> f64 {
    gamma.powi(k.min(i32::MAX as u64) as i32)
}

/// The base rate multiplied by `gamma` at every milestone step passed: `base_lr *
/// gamma^(number of milestones <= step)` (PyTorch's `MultiStepLR`, counted in optimizer
/// steps).
#[derive(Debug, Clone, PartialEq)]
pub struct MultiStep {
    /// Steps at which the rate drops, increasing.
    pub milestones: Vec<u64>,
    /// Factor per milestone.
    pub gamma: f64,
}

impl LrSchedule for MultiStep {
    fn lr_at(&self, base_lr: f64, step: u64) -> f64 {
        let passed = self.milestones.iter().filter(|&&m| m <= step).count();
        base_lr * pow_steps(self.gamma, passed as u64)
    }
}

/// The base rate multiplied by `gamma` every step: `base_lr * gamma^step` (PyTorch's
/// `ExponentialLR`, counted in optimizer steps).
#[derive(Debug, Clone, PartialEq)]
pub struct Exponential {
    /// Factor per step.
    pub gamma: f64,
}

impl LrSchedule for Exponential {
    fn lr_at(&self, base_lr: f64, step: u64) -> f64 {
        base_lr * pow_steps(self.gamma, step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_schedule_decays_at_boundaries() {
        let s = Schedule::Step {
            step_size: 10,
            gamma: 0.5,
        };
        assert_eq!(s.lr_at(1.0, 0), 1.0);
        assert_eq!(s.lr_at(1.0, 9), 1.0);
        assert_eq!(s.lr_at(1.0, 10), 0.5);
        assert_eq!(s.lr_at(1.0, 25), 0.25);
    }

    #[test]
    fn cosine_warms_up_then_reaches_min() {
        let s = Schedule::Cosine {
            warmup_steps: 4,
            total_steps: 14,
            min_lr: 0.1,
        };
        assert_eq!(s.lr_at(1.0, 0), 0.25);
        assert_eq!(s.lr_at(1.0, 3), 1.0);
        assert_eq!(s.lr_at(1.0, 4), 1.0);
        assert!((s.lr_at(1.0, 9) - 0.55).abs() < 1e-12);
        assert_eq!(s.lr_at(1.0, 14), 0.1);
        assert_eq!(s.lr_at(1.0, 100), 0.1);
    }

    #[test]
    fn multi_step_drops_at_each_milestone_passed() {
        let s = MultiStep {
            milestones: vec![3, 5],
            gamma: 0.1,
        };
        let lrs: Vec<f64> = (0..7).map(|k| s.lr_at(2.0, k)).collect();
        assert_eq!(lrs[..3], [2.0; 3]);
        assert_eq!(lrs[3..5], [2.0 * 0.1; 2]);
        assert_eq!(lrs[5..], [2.0 * 0.1 * 0.1; 2]);
    }

    #[test]
    fn exponential_multiplies_every_step() {
        let s = Exponential { gamma: 0.5 };
        let lrs: Vec<f64> = (0..4).map(|k| s.lr_at(1.0, k)).collect();
        assert_eq!(lrs, [1.0, 0.5, 0.25, 0.125]);
    }
}
