//! Adagrad (PyTorch semantics): per-element rates from the sum of squared gradients, one
//! fused pass per parameter; the sums are saved by variable name.

use candle_core::backprop::GradStore;
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::{named_vars, update_in_place, NamedVar, Slots};
use crate::error::Result;

/// Hyper-parameters of [`Adagrad`] (PyTorch's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdagradConfig {
    /// Learning rate (default 0.01); a trainer sets the scheduled rate here before every
    /// batch.
    pub lr: f64,
    /// The rate of step `t` (1-based) is `lr / (1 + (t - 1) * lr_decay)` (default 0.0).
    pub lr_decay: f64,
    /// L2 penalty: `weight_decay * p` is added to the gradient (default 0.0).
    pub weight_decay: f64,
    /// Start value of every element's sum of squared gradients (default 0.0).
    pub initial_accumulator_value: f64,
    /// Added to the root of the sum (default 1e-10).
    pub eps: f64,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        Self {
            lr: 0.01,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
        }
    }
}

const SLOTS: &[&str] = &["sum"];

/// Adagrad: every element's step is the rate over the root of the sum of its squared
/// gradients so far; the sums (`sum`) are saved in checkpoints.
#[derive(Debug, Clone)]
pub struct Adagrad {
    vars: Vec<NamedVar>,
    config: AdagradConfig,
    slots: Slots,
    step: u64,
}

impl Adagrad {
    /// Takes every float variable of `varmap`, keyed by name.
    pub fn from_varmap(varmap: &VarMap, config: AdagradConfig) -> Self {
        Self::from_named(named_vars(varmap), config)
    }

    /// Takes `vars` as given; their names key the sums in checkpoints.
    pub fn from_named(vars: Vec<NamedVar>, config: AdagradConfig) -> Self {
        let mut slots = Slots::new(SLOTS, &vars);
        let start = config.initial_accumulator_value as f32;
        for buf in slots.buffers.iter_mut().flatten() {
            buf.fill(start);
        }
        Self {
            vars,
            config,
            slots,
            step: 0,
        }
    }

    /// The hyper-parameters, with the learning rate last set.
    pub fn config(&self) -> &AdagradConfig {
        &self.config
    }

    fn apply(&mut self, grads: &GradStore, scale: f32) -> Result<()> {
        self.step += 1;
        let c = &self.config;
        let clr = (c.lr / (1.0 + (self.step - 1) as f64 * c.lr_decay)) as f32;
        let (wd, eps) = (c.weight_decay as f32, c.eps as f32);
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
                    let [sum] = bufs else { return };
                    for ((p, &g), s) in p.iter_mut().zip(g).zip(sum.iter_mut()) {
                        let gi = g * scale + wd * *p;
                        *s += gi * gi;
                        *p -= clr * gi / (s.sqrt() + eps);
                    }
                },
            )?;
        }
        Ok(())
    }
}

slot_optimizer!(Adagrad, "adagrad");

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::Tensor;

    use super::super::testing::{assert_close, grads_of, one_var, values};
    use super::*;
    use crate::optim::TrainOptimizer;

    /// `steps` updates of p0 = [1, -2, 0.5] under the gradient `2 * p` (loss `sum(p^2)`).
    fn run(config: AdagradConfig, steps: usize) -> Vec<f32> {
        let (v, named) = one_var(&[1.0, -2.0, 0.5]);
        let mut opt = Adagrad::from_named(vec![named], config);
        for _ in 0..steps {
            opt.step_scaled(&grads_of(&v, |p| (p * 2.0).unwrap()), 1.0)
                .unwrap();
        }
        values(&v)
    }

    #[test]
    fn plain_adagrad_matches_pytorch() {
        // python: s += g*g; p -= 0.01 * g / (sqrt(s) + 1e-10)
        let p = run(AdagradConfig::default(), 3);
        assert_close(&p, &[0.9772379395, -1.9771965108, 0.4773218483]);
    }

    #[test]
    fn decay_weight_decay_and_initial_sum_match_pytorch() {
        let config = AdagradConfig {
            lr: 0.1,
            lr_decay: 0.5,
            weight_decay: 0.1,
            initial_accumulator_value: 0.2,
            ..AdagradConfig::default()
        };
        // python: clr = 0.1 / (1 + (t-1) * 0.5); g = 2p + 0.1p; s (from 0.2) += g*g;
        // p -= clr * g / (sqrt(s) + 1e-10)
        let p = run(config, 3);
        assert_close(&p, &[0.8314531238, -1.8269360888, 0.3441644063]);
    }

    #[test]
    fn the_initial_sum_is_state_and_round_trips() {
        let config = AdagradConfig {
            initial_accumulator_value: 0.5,
            ..AdagradConfig::default()
        };
        let (_, named) = one_var(&[1.0, 2.0]);
        let opt = Adagrad::from_named(vec![named.clone()], config.clone());
        let saved: HashMap<String, Tensor> = opt.state_tensors().unwrap().into_iter().collect();
        let sum = saved["sum.w"].to_vec1::<f32>().unwrap();
        assert_eq!(sum, [0.5, 0.5]);
        let mut other = Adagrad::from_named(vec![named], AdagradConfig::default());
        other.load_state_tensors(&saved).unwrap();
        assert_eq!(other.slots.buffers[0][0], [0.5, 0.5]);
    }
}
