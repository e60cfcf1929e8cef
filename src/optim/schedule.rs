//! Learning-rate schedules as pure functions of the optimizer step.
//!
//! Because the rate depends only on `(base_lr, step)`, resuming needs nothing beyond the
//! step count already in the checkpoint, and the rate at any step can be shown in reports.

use serde::{Deserialize, Serialize};

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
}
