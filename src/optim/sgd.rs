//! SGD with momentum, dampening, Nesterov and weight decay (PyTorch semantics).

use candle_core::backprop::GradStore;
use candle_core::Var;
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::{flush_subnormal, named_vars, update_in_place, NamedVar, Slots};
use crate::error::Result;

/// Hyper-parameters of [`Sgd`] (PyTorch's names and semantics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Learning rate (default 0.01); a trainer takes it as the base rate of its schedule and
    /// sets the scheduled rate here before every batch.
    pub lr: f64,
    /// Momentum factor (default 0.0: plain SGD, no buffer used).
    pub momentum: f64,
    /// Share of the gradient left out of the momentum buffer, `buf = momentum * buf +
    /// (1 - dampening) * g` (default 0.0); not applied at the first step.
    pub dampening: f64,
    /// Nesterov momentum: step along `g + momentum * buf` instead of `buf` (default false).
    pub nesterov: bool,
    /// L2 penalty: `weight_decay * p` is added to the gradient (default 0.0).
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            lr: 0.01,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

const SLOTS: &[&str] = &["momentum_buffer"];

/// Stochastic gradient descent with optional momentum, dampening, Nesterov and L2 weight
/// decay; its one buffer per variable, `momentum_buffer`, is saved in checkpoints.
#[derive(Debug, Clone)]
pub struct Sgd {
    vars: Vec<NamedVar>,
    config: SgdConfig,
    slots: Slots,
    step: u64,
}

impl Sgd {
    /// Takes every float variable of `varmap`, keyed by name.
    pub fn from_varmap(varmap: &VarMap, config: SgdConfig) -> Self {
        Self::from_named(named_vars(varmap), config)
    }

    /// Takes `vars` as given; their names key the momentum buffers in checkpoints.
    pub fn from_named(vars: Vec<NamedVar>, config: SgdConfig) -> Self {
        let slots = Slots::new(SLOTS, &vars);
        Self {
            vars,
            config,
            slots,
            step: 0,
        }
    }

    /// The hyper-parameters, with the learning rate last set.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    fn apply(&mut self, grads: &GradStore, scale: f32) -> Result<()> {
        let c = &self.config;
        let (lr, mom, damp, wd) = (
            c.lr as f32,
            c.momentum as f32,
            c.dampening as f32,
            c.weight_decay as f32,
        );
        let (nesterov, first) = (c.nesterov, self.step == 0);
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
                    let [buf] = bufs else { return };
                    for ((p, &g), buf) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
                        let mut d = g * scale + wd * *p;
                        if mom != 0.0 {
                            // PyTorch starts the buffer at the first gradient, undamped.
                            let b = if first {
                                d
                            } else {
                                mom * *buf + (1.0 - damp) * d
                            };
                            *buf = flush_subnormal(b);
                            d = if nesterov { d + mom * b } else { b };
                        }
                        *p -= lr * d;
                    }
                },
            )?;
        }
        self.step += 1;
        Ok(())
    }
}

slot_optimizer!(Sgd, "sgd");

impl candle_nn::Optimizer for Sgd {
    type Config = SgdConfig;

    /// Variables are named `param.NNNN` by position; use `from_varmap` to key by name.
    fn new(vars: Vec<Var>, config: SgdConfig) -> candle_core::Result<Self> {
        Ok(Self::from_named(super::name_by_position(vars), config))
    }
    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.apply(grads, 1.0)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
    fn learning_rate(&self) -> f64 {
        self.config.lr
    }
    fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr
    }
}
