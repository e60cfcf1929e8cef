//! Adam and AdamW (PyTorch semantics), one fused pass per parameter.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::{flush_subnormal, named_vars, update_in_place, NamedVar, Slots, TrainOptimizer};
use crate::error::Result;

/// Hyper-parameters of [`Adam`] and [`AdamW`] (PyTorch's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate (default 1e-3); a trainer takes it as the base rate of its schedule and
    /// sets the scheduled rate here before every batch.
    pub lr: f64,
    /// Decay rate of the first-moment (mean) estimate (default 0.9).
    pub beta1: f64,
    /// Decay rate of the second-moment (uncentred variance) estimate (default 0.999).
    pub beta2: f64,
    /// Added to the bias-corrected `sqrt` of the second moment for stability (default 1e-8).
    pub eps: f64,
    /// Adam adds `weight_decay * p` to the gradient (L2); AdamW multiplies the weights by
    /// `1 - lr * weight_decay` each step (decoupled). Default 0.0.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

const SLOTS: &[&str] = &["exp_avg", "exp_avg_sq"];

/// Shared body of Adam and AdamW; `decoupled` selects AdamW's weight decay.
#[derive(Debug, Clone)]
struct AdamCore {
    vars: Vec<NamedVar>,
    config: AdamConfig,
    slots: Slots,
    step: u64,
    decoupled: bool,
}

impl AdamCore {
    fn new(vars: Vec<NamedVar>, config: AdamConfig, decoupled: bool) -> Self {
        let slots = Slots::new(SLOTS, &vars);
        Self {
            vars,
            config,
            slots,
            step: 0,
            decoupled,
        }
    }

    fn step_scaled(&mut self, grads: &GradStore, scale: f32) -> Result<()> {
        self.step += 1;
        let c = &self.config;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        let step_size = (c.lr / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        let (b1, b2, eps) = (c.beta1 as f32, c.beta2 as f32, c.eps as f32);
        // 1 - beta in f64: in f32, 1 - 0.999f32 is off by 1.3e-5 relative.
        let (one_minus_b1, one_minus_b2) = ((1.0 - c.beta1) as f32, (1.0 - c.beta2) as f32);
        let decay = if self.decoupled {
            (1.0 - c.lr * c.weight_decay) as f32
        } else {
            1.0
        };
        let l2 = if self.decoupled {
            0.0
        } else {
            c.weight_decay as f32
        };
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
                    let [m, s] = bufs else { return };
                    // Zipped iterators carry no bounds checks, so the loop vectorizes.
                    let moments = m.iter_mut().zip(s.iter_mut());
                    for ((p, &g), (m, s)) in p.iter_mut().zip(g).zip(moments) {
                        let gi = g * scale + l2 * *p;
                        let mi = flush_subnormal(b1 * *m + one_minus_b1 * gi);
                        let si = flush_subnormal(b2 * *s + one_minus_b2 * gi * gi);
                        *m = mi;
                        *s = si;
                        *p = *p * decay - step_size * mi / (si.sqrt() * inv_sqrt_bc2 + eps);
                    }
                },
            )?;
        }
        Ok(())
    }
}

macro_rules! adam_type {
    ($name:ident, $label:literal, $decoupled:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone)]
        pub struct $name(AdamCore);

        impl $name {
            /// Takes every float variable of `varmap`, keyed by name.
            pub fn from_varmap(varmap: &VarMap, config: AdamConfig) -> Self {
                Self(AdamCore::new(named_vars(varmap), config, $decoupled))
            }

            /// Takes `vars` as given; their names key the state buffers in checkpoints.
            pub fn from_named(vars: Vec<NamedVar>, config: AdamConfig) -> Self {
                Self(AdamCore::new(vars, config, $decoupled))
            }

            /// The hyper-parameters, with the learning rate last set.
            pub fn config(&self) -> &AdamConfig {
                &self.0.config
            }
        }

        impl TrainOptimizer for $name {
            fn name(&self) -> &'static str {
                $label
            }
            fn step_scaled(&mut self, grads: &GradStore, grad_scale: f32) -> Result<()> {
                self.0.step_scaled(grads, grad_scale)
            }
            fn learning_rate(&self) -> f64 {
                self.0.config.lr
            }
            fn set_learning_rate(&mut self, lr: f64) {
                self.0.config.lr = lr
            }
            fn steps(&self) -> u64 {
                self.0.step
            }
            fn vars(&self) -> &[NamedVar] {
                &self.0.vars
            }
            fn state_tensors(&self) -> Result<Vec<(String, Tensor)>> {
                self.0.slots.export(&self.0.vars, self.0.step)
            }
            fn load_state_tensors(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
                self.0.step = self.0.slots.import(&self.0.vars, tensors)?;
                Ok(())
            }
        }

        impl candle_nn::Optimizer for $name {
            type Config = AdamConfig;

            /// Variables are named `param.NNNN` by position; use `from_varmap` to key by name.
            fn new(vars: Vec<Var>, config: AdamConfig) -> candle_core::Result<Self> {
                Ok(Self::from_named(super::name_by_position(vars), config))
            }
            fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
                self.0
                    .step_scaled(grads, 1.0)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))
            }
            fn learning_rate(&self) -> f64 {
                self.0.config.lr
            }
            fn set_learning_rate(&mut self, lr: f64) {
                self.0.config.lr = lr
            }
        }
    };
}

adam_type!(
    Adam,
    "adam",
    false,
    "Adam with L2 weight decay added to the gradient."
);
adam_type!(
    AdamW,
    "adamw",
    true,
    "AdamW: Adam with decoupled weight decay."
);
