//! Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), as the
//! reference PyTorch implementation (lucidrains/lion-pytorch) defines it: the sign of an
//! interpolated momentum is the step; one buffer per variable, saved by name.

use candle_core::backprop::GradStore;
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::{flush_subnormal, named_vars, update_in_place, NamedVar, Slots};
use crate::error::Result;

/// Hyper-parameters of [`Lion`] (the reference implementation's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LionConfig {
    /// Learning rate (default 1e-4; Lion wants 3-10x less than AdamW); a trainer sets the
    /// scheduled rate here before every batch.
    pub lr: f64,
    /// Interpolation between momentum and gradient whose sign is the step (default 0.9).
    pub beta1: f64,
    /// Decay of the momentum `exp_avg` (default 0.99).
    pub beta2: f64,
    /// Weight decay: the weights are multiplied by `1 - lr * weight_decay` each step
    /// (default 0.0).
    pub weight_decay: f64,
    /// Decouple the decay from the rate's size: multiply by `1 - (lr / initial_lr) *
    /// weight_decay` instead, so only the schedule's shape scales it (default false).
    pub decoupled: bool,
}

impl Default for LionConfig {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.99,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}

const SLOTS: &[&str] = &["exp_avg"];

/// Lion: each element moves by exactly the rate, in the direction of the sign of
/// `beta1 * exp_avg + (1 - beta1) * g`; `exp_avg` is saved in checkpoints.
#[derive(Debug, Clone)]
pub struct Lion {
    vars: Vec<NamedVar>,
    config: LionConfig,
    /// The rate it was made with: the reference of decoupled weight decay.
    initial_lr: f64,
    slots: Slots,
    step: u64,
}

impl Lion {
    /// Takes every float variable of `varmap`, keyed by name.
    pub fn from_varmap(varmap: &VarMap, config: LionConfig) -> Self {
        Self::from_named(named_vars(varmap), config)
    }

    /// Takes `vars` as given; their names key the momentum buffers in checkpoints.
    pub fn from_named(vars: Vec<NamedVar>, config: LionConfig) -> Self {
        let slots = Slots::new(SLOTS, &vars);
        Self {
            vars,
            initial_lr: config.lr,
            config,
            slots,
            step: 0,
        }
    }

    /// The hyper-parameters, with the learning rate last set.
    pub fn config(&self) -> &LionConfig {
        &self.config
    }

    fn apply(&mut self, grads: &GradStore, scale: f32) -> Result<()> {
        let c = &self.config;
        let wd = if c.decoupled {
            c.weight_decay / self.initial_lr
        } else {
            c.weight_decay
        };
        let decay = (1.0 - c.lr * wd) as f32;
        let (lr, b1, b2) = (c.lr as f32, c.beta1 as f32, c.beta2 as f32);
        let (one_minus_b1, one_minus_b2) = ((1.0 - c.beta1) as f32, (1.0 - c.beta2) as f32);
        for (v, bufs) in self.vars.iter().zip(self.slots.buffers.iter_mut()) {
            let Some(g) = grads.get(v.var.as_tensor()) else {
                continue;
            };
            update_in_place(
                &v.var,
                g,
                bufs,
                #[inline(always)]
                move |p, g, bufs| {
                    let [m] = bufs else { return };
                    for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
                        let gi = g * scale;
                        let c = b1 * *m + one_minus_b1 * gi;
                        // `torch.sign`: 0 stays 0 (`f32::signum` would give +-1).
                        let sign = if c > 0.0 {
                            1.0
                        } else if c < 0.0 {
                            -1.0
                        } else {
                            c
                        };
                        *p = *p * decay - lr * sign;
                        *m = flush_subnormal(b2 * *m + one_minus_b2 * gi);
                    }
                },
            )?;
        }
        self.step += 1;
        Ok(())
    }
}

slot_optimizer!(Lion, "lion");

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_close, grads_of, one_var, values};
    use super::*;
    use crate::optim::TrainOptimizer;

    /// Updates of p0 = [1, -2, 0.5] under the gradient `2 * p` (loss `sum(p^2)`), one
    /// per rate in `rates`.
    fn run(config: LionConfig, rates: &[f64]) -> Vec<f32> {
        let (v, named) = one_var(&[1.0, -2.0, 0.5]);
        let mut opt = Lion::from_named(vec![named], config);
        for &lr in rates {
            opt.set_learning_rate(lr);
            opt.step_scaled(&grads_of(&v, |p| (p * 2.0).unwrap()), 1.0)
                .unwrap();
        }
        values(&v)
    }

    const LR: f64 = 0.1;

    #[test]
    fn steps_are_the_rate_times_a_sign() {
        let config = LionConfig {
            lr: LR,
            ..LionConfig::default()
        };
        assert_close(&run(config, &[LR; 3]), &[0.7, -1.7, 0.2]);
        // A zero gradient and zero momentum: sign 0, no move.
        let (v, named) = one_var(&[0.0, 1.0]);
        let mut opt = Lion::from_named(vec![named], LionConfig::default());
        opt.step_scaled(&grads_of(&v, |p| (p * 2.0).unwrap()), 1.0)
            .unwrap();
        assert_eq!(values(&v), [0.0, 1.0 - 1e-4]);
    }

    #[test]
    fn weight_decay_matches_the_reference() {
        // python: p *= 1 - lr*wd; c = b1*m + (1-b1)*g; p -= lr*sign(c); m = b2*m + (1-b2)*g
        let config = LionConfig {
            lr: LR,
            weight_decay: 0.5,
            ..LionConfig::default()
        };
        assert_close(&run(config, &[LR; 3]), &[0.572125, -1.4295, 0.1434375]);
    }

    #[test]
    fn decoupled_decay_follows_the_schedule_not_the_rate() {
        // python: as above with wd / initial_lr: rates 0.1, 0.05, 0.02, wd 0.05
        let config = LionConfig {
            lr: LR,
            weight_decay: 0.05,
            decoupled: true,
            ..LionConfig::default()
        };
        let p = run(config, &[0.1, 0.05, 0.02]);
        assert_close(&p, &[0.7509625, -1.66795, 0.29246875]);
    }
}
