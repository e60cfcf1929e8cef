//! The built-in optimizers and their argument types.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, Lion, LionConfig, Rmsprop, RmspropConfig, Sgd,
    SgdConfig, TrainOptimizer,
};
use crate::range::{check, non_negative, positive, unit_closed, unit_open};
use crate::registry::Registry;

/// Registers the built-in optimizers.
pub(super) fn register(r: &mut Registry) {
    r.optimizer_checked("adamw", AdamArgs::validate, |a: AdamArgs, vars| {
        Ok(Box::new(AdamW::from_named(vars, a.config())) as Box<dyn TrainOptimizer>)
    });
    r.optimizer_checked("adam", AdamArgs::validate, |a: AdamArgs, vars| {
        Ok(Box::new(Adam::from_named(vars, a.config())) as Box<dyn TrainOptimizer>)
    });
    r.optimizer_checked("sgd", SgdArgs::validate, |a: SgdArgs, vars| {
        Ok(Box::new(Sgd::from_named(vars, a.config())) as Box<dyn TrainOptimizer>)
    });
    r.optimizer_checked("rmsprop", RmspropArgs::validate, |a: RmspropArgs, vars| {
        Ok(Box::new(Rmsprop::from_named(vars, a.config())) as Box<dyn TrainOptimizer>)
    });
    r.optimizer_checked("adagrad", AdagradArgs::validate, |a: AdagradArgs, vars| {
        Ok(Box::new(Adagrad::from_named(vars, a.config())) as Box<dyn TrainOptimizer>)
    });
    r.optimizer_checked("lion", LionArgs::validate, |a: LionArgs, vars| {
        Ok(Box::new(Lion::from_named(vars, a.config())) as Box<dyn TrainOptimizer>)
    });
}

/// Adam (`adam`: weight decay added to the gradient) or AdamW (`adamw`: decoupled weight
/// decay), as PyTorch's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AdamArgs {
    /// Base learning rate (default 3e-3).
    pub lr: f64,
    /// Weight decay: decoupled for `adamw`, L2 in the gradient for `adam` (default 1e-4).
    pub weight_decay: f64,
    /// First-moment decay, in [0, 1) (default 0.9).
    pub beta1: f64,
    /// Second-moment decay, in [0, 1) (default 0.999).
    pub beta2: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
}

impl Default for AdamArgs {
    fn default() -> Self {
        Self {
            lr: 3e-3,
            weight_decay: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl AdamArgs {
    /// Checks every setting of `adamw` and `adam`.
    pub fn validate(&self) -> Result<()> {
        positive("optimizer.lr", self.lr)?;
        non_negative("optimizer.weight_decay", self.weight_decay)?;
        unit_open("optimizer.beta1", self.beta1)?;
        unit_open("optimizer.beta2", self.beta2)?;
        positive("optimizer.eps", self.eps)
    }

    /// The optimizer's own config.
    pub fn config(&self) -> AdamConfig {
        AdamConfig {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
        }
    }
}

/// SGD with optional (Nesterov) momentum, as PyTorch's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SgdArgs {
    /// Learning rate (default 3e-3).
    pub lr: f64,
    /// Momentum factor, in [0, 1); 0 is plain SGD (default 0.9).
    pub momentum: f64,
    /// Dampening of the momentum, in [0, 1] (default 0).
    pub dampening: f64,
    /// Nesterov momentum (default off; needs momentum > 0 and dampening 0).
    pub nesterov: bool,
    /// L2 weight decay added to the gradient (default 1e-4).
    pub weight_decay: f64,
}

impl Default for SgdArgs {
    fn default() -> Self {
        Self {
            lr: 3e-3,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 1e-4,
        }
    }
}

impl SgdArgs {
    /// Checks every setting of `sgd`; Nesterov momentum needs `momentum > 0` and
    /// `dampening` 0 (as PyTorch's).
    pub fn validate(&self) -> Result<()> {
        positive("optimizer.lr", self.lr)?;
        unit_open("optimizer.momentum", self.momentum)?;
        check(
            (0.0..=1.0).contains(&self.dampening),
            "optimizer.dampening",
            self.dampening,
            "[0, 1]",
        )?;
        non_negative("optimizer.weight_decay", self.weight_decay)?;
        if self.nesterov {
            check(
                self.momentum > 0.0,
                "optimizer.momentum",
                self.momentum,
                "(0, 1) (nesterov needs momentum > 0)",
            )?;
            check(
                self.dampening == 0.0,
                "optimizer.dampening",
                self.dampening,
                "[0, 0] (nesterov needs dampening 0)",
            )?;
        }
        Ok(())
    }

    /// The optimizer's own config.
    pub fn config(&self) -> SgdConfig {
        SgdConfig {
            lr: self.lr,
            momentum: self.momentum,
            dampening: self.dampening,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
        }
    }
}

/// RMSprop as PyTorch's: the gradient over the root of a running mean of its squares,
/// optionally centred and with momentum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RmspropArgs {
    /// Learning rate (default 0.01).
    pub lr: f64,
    /// Decay of the mean of squared gradients, in [0, 1) (default 0.99).
    pub alpha: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// L2 weight decay added to the gradient (default 0).
    pub weight_decay: f64,
    /// Momentum factor, in [0, 1); 0 keeps no momentum buffer (default 0).
    pub momentum: f64,
    /// Divide by the centred mean square, an estimate of the variance (default off).
    pub centered: bool,
}

impl Default for RmspropArgs {
    fn default() -> Self {
        let c = RmspropConfig::default();
        Self {
            lr: c.lr,
            alpha: c.alpha,
            eps: c.eps,
            weight_decay: c.weight_decay,
            momentum: c.momentum,
            centered: c.centered,
        }
    }
}

impl RmspropArgs {
    /// Checks every setting of `rmsprop`.
    pub fn validate(&self) -> Result<()> {
        positive("optimizer.lr", self.lr)?;
        unit_open("optimizer.alpha", self.alpha)?;
        positive("optimizer.eps", self.eps)?;
        non_negative("optimizer.weight_decay", self.weight_decay)?;
        unit_open("optimizer.momentum", self.momentum)
    }

    /// The optimizer's own config.
    pub fn config(&self) -> RmspropConfig {
        RmspropConfig {
            lr: self.lr,
            alpha: self.alpha,
            eps: self.eps,
            weight_decay: self.weight_decay,
            momentum: self.momentum,
            centered: self.centered,
        }
    }
}

/// Adagrad as PyTorch's: per-element rates from the sum of all squared gradients so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AdagradArgs {
    /// Learning rate (default 0.01).
    pub lr: f64,
    /// Step t's rate is `lr / (1 + (t - 1) * lr_decay)` (default 0).
    pub lr_decay: f64,
    /// L2 weight decay added to the gradient (default 0).
    pub weight_decay: f64,
    /// Start value of the sums of squared gradients (default 0).
    pub initial_accumulator_value: f64,
    /// Added to the denominator (default 1e-10).
    pub eps: f64,
}

impl Default for AdagradArgs {
    fn default() -> Self {
        let c = AdagradConfig::default();
        Self {
            lr: c.lr,
            lr_decay: c.lr_decay,
            weight_decay: c.weight_decay,
            initial_accumulator_value: c.initial_accumulator_value,
            eps: c.eps,
        }
    }
}

impl AdagradArgs {
    /// Checks every setting of `adagrad`.
    pub fn validate(&self) -> Result<()> {
        positive("optimizer.lr", self.lr)?;
        non_negative("optimizer.lr_decay", self.lr_decay)?;
        non_negative("optimizer.weight_decay", self.weight_decay)?;
        non_negative(
            "optimizer.initial_accumulator_value",
            self.initial_accumulator_value,
        )?;
        positive("optimizer.eps", self.eps)
    }

    /// The optimizer's own config.
    pub fn config(&self) -> AdagradConfig {
        AdagradConfig {
            lr: self.lr,
            lr_decay: self.lr_decay,
            weight_decay: self.weight_decay,
            initial_accumulator_value: self.initial_accumulator_value,
            eps: self.eps,
        }
    }
}

/// Lion (EvoLved Sign Momentum): every element moves by the rate, along the sign of an
/// interpolated momentum; wants a rate 3-10x below AdamW's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LionArgs {
    /// Learning rate (default 1e-4).
    pub lr: f64,
    /// Momentum/gradient interpolation whose sign is the step, in [0, 1] (default 0.9).
    pub beta1: f64,
    /// Momentum decay, in [0, 1] (default 0.99).
    pub beta2: f64,
    /// Weights are multiplied by `1 - lr * weight_decay` each step (default 0).
    pub weight_decay: f64,
    /// Scale the decay by `lr / initial lr` instead of `lr` (default off).
    pub decoupled: bool,
}

impl Default for LionArgs {
    fn default() -> Self {
        let c = LionConfig::default();
        Self {
            lr: c.lr,
            beta1: c.beta1,
            beta2: c.beta2,
            weight_decay: c.weight_decay,
            decoupled: c.decoupled,
        }
    }
}

impl LionArgs {
    /// Checks every setting of `lion`.
    pub fn validate(&self) -> Result<()> {
        positive("optimizer.lr", self.lr)?;
        unit_closed("optimizer.beta1", self.beta1)?;
        unit_closed("optimizer.beta2", self.beta2)?;
        non_negative("optimizer.weight_decay", self.weight_decay)
    }

    /// The optimizer's own config.
    pub fn config(&self) -> LionConfig {
        LionConfig {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            weight_decay: self.weight_decay,
            decoupled: self.decoupled,
        }
    }
}
