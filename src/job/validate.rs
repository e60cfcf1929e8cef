//! Range checks of every numeric job setting, and the model-size estimate made before a
//! model is allocated.
//!
//! [`JobConfig::validate`] looks at values only, never at the machine: it runs whenever a
//! config is read, a checkpoint's included, so a run must stay readable on any machine.
//! The memory check ([`JobConfig::check_model_memory`]) is made when a run is built.

use std::fmt::Display;

use super::{
    AdamSettings, DataConfig, EarlyStoppingConfig, JobConfig, LoggingConfig, MlpSettings,
    ModelConfig, OptimizerConfig, SgdSettings,
};
use crate::error::{Error, Result};
use crate::optim::Schedule;
use crate::trainer::TrainConfig;

/// `field`: `value is not in RANGE` unless `ok`.
fn check(ok: bool, field: &str, value: impl Display, range: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::config(field, format!("{value} is not in {range}")))
    }
}

/// `value` in `[0, 1)`.
fn unit_open(field: &str, value: f64) -> Result<()> {
    check((0.0..1.0).contains(&value), field, value, "[0, 1)")
}

/// `value` finite and `> 0`.
fn positive(field: &str, value: f64) -> Result<()> {
    check(
        value.is_finite() && value > 0.0,
        field,
        value,
        "(0, inf) (a finite number > 0)",
    )
}

/// `value` finite and `>= 0`.
fn non_negative(field: &str, value: f64) -> Result<()> {
    check(
        value.is_finite() && value >= 0.0,
        field,
        value,
        "[0, inf) (a finite number >= 0)",
    )
}

/// A count at least 1.
fn at_least_one(field: &str, value: u64) -> Result<()> {
    check(value >= 1, field, value, "[1, inf) (must be at least 1)")
}

impl JobConfig {
    /// Rejects values that cannot work: every numeric setting is range-checked, and the
    /// error names the field as the JSON spells it and the valid range
    /// (`config optimizer.beta1: 1.5 is not in [0, 1)`).
    pub fn validate(&self) -> Result<()> {
        self.data.validate()?;
        match &self.model {
            ModelConfig::Mlp(m) => m.validate()?,
        }
        match &self.optimizer {
            OptimizerConfig::AdamW(a) | OptimizerConfig::Adam(a) => a.validate()?,
            OptimizerConfig::Sgd(s) => s.validate()?,
        }
        validate_train(&self.train)?;
        self.logging.validate()?;
        if let Some(e) = &self.early_stopping {
            e.validate()?;
        }
        if self.init_from.is_none() && !self.init_map.is_empty() {
            return Err(Error::config("init_map", "needs init_from"));
        }
        self.device.check()
    }

    /// Fails when the model, its gradients and the optimizer's state would not fit in the
    /// memory this machine has available, before anything is allocated (a failed
    /// allocation aborts the process). `inputs` and `outputs` are the model's sizes as
    /// the data gives them. Where the available memory cannot be read, nothing is checked.
    pub fn check_model_memory(&self, inputs: usize, outputs: usize) -> Result<()> {
        let Some(available) = available_memory_bytes() else {
            return Ok(());
        };
        self.check_model_memory_against(inputs, outputs, available)
    }

    /// [`JobConfig::check_model_memory`] against `available` bytes.
    pub fn check_model_memory_against(
        &self,
        inputs: usize,
        outputs: usize,
        available: u64,
    ) -> Result<()> {
        let ModelConfig::Mlp(m) = &self.model;
        let needed = m.parameter_count(inputs, outputs) * 4.0 * self.optimizer.copies_per_weight();
        if needed <= available as f64 {
            return Ok(());
        }
        const GIB: f64 = (1u64 << 30) as f64;
        Err(Error::config(
            "model.hidden",
            format!(
                "{:?} needs about {:.1} GiB for weights, gradients and optimizer state; \
                 this machine has {:.1} GiB available",
                m.hidden,
                needed / GIB,
                available as f64 / GIB
            ),
        ))
    }
}

impl OptimizerConfig {
    /// Model-sized f32 buffers a training step holds: weights and gradients, plus Adam's
    /// two moments or SGD's momentum buffer.
    fn copies_per_weight(&self) -> f64 {
        match self {
            OptimizerConfig::AdamW(_) | OptimizerConfig::Adam(_) => 4.0,
            OptimizerConfig::Sgd(s) if s.momentum > 0.0 => 3.0,
            OptimizerConfig::Sgd(_) => 2.0,
        }
    }
}

impl MlpSettings {
    /// Checks `dropout` and the hidden widths.
    pub fn validate(&self) -> Result<()> {
        for (i, &h) in self.hidden.iter().enumerate() {
            at_least_one(&format!("model.hidden[{i}]"), h as u64)?;
        }
        unit_open("model.dropout", self.dropout)
    }

    /// Weights and biases of the MLP between `inputs` and `outputs`, as a float so that
    /// absurd widths cannot overflow.
    pub fn parameter_count(&self, inputs: usize, outputs: usize) -> f64 {
        let mut sizes = vec![inputs as f64];
        sizes.extend(self.hidden.iter().map(|&h| h as f64));
        sizes.push(outputs as f64);
        sizes.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }
}

impl AdamSettings {
    /// Checks every setting of `adamw` and `adam`.
    pub fn validate(&self) -> Result<()> {
        positive("optimizer.lr", self.lr)?;
        non_negative("optimizer.weight_decay", self.weight_decay)?;
        unit_open("optimizer.beta1", self.beta1)?;
        unit_open("optimizer.beta2", self.beta2)?;
        positive("optimizer.eps", self.eps)
    }
}

impl SgdSettings {
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
}

impl DataConfig {
    /// Checks the split, batch sizes and input scale.
    pub fn validate(&self) -> Result<()> {
        unit_open("data.val_fraction", self.val_fraction)?;
        at_least_one("data.batch_size", self.batch_size as u64)?;
        if let Some(n) = self.val_batch_size {
            at_least_one("data.val_batch_size", n as u64)?;
        }
        positive("data.scale", f64::from(self.scale))
    }
}

impl LoggingConfig {
    /// Nothing numeric can be wrong here today (`histogram_every` 0 means none); kept so
    /// every section has its check.
    pub fn validate(&self) -> Result<()> {
        Ok(())
    }
}

impl EarlyStoppingConfig {
    /// Checks `patience` and `min_delta`.
    pub fn validate(&self) -> Result<()> {
        at_least_one("early_stopping.patience", self.patience)?;
        non_negative("early_stopping.min_delta", self.min_delta)
    }
}

/// Checks the loop settings: epochs, checkpoints kept, clipping and the schedule.
fn validate_train(t: &TrainConfig) -> Result<()> {
    at_least_one("train.epochs", t.epochs)?;
    at_least_one("train.keep_last", t.keep_last as u64)?;
    if let Some(c) = t.clip_grad_norm {
        positive("train.clip_grad_norm", c)?;
    }
    match t.schedule {
        Schedule::Constant => Ok(()),
        Schedule::Step { step_size, gamma } => {
            at_least_one("train.schedule.step_size", step_size)?;
            check(
                gamma.is_finite() && gamma > 0.0 && gamma <= 1.0,
                "train.schedule.gamma",
                gamma,
                "(0, 1]",
            )
        }
        Schedule::Cosine {
            warmup_steps,
            total_steps,
            min_lr,
        } => {
            check(
                total_steps >= warmup_steps,
                "train.schedule.total_steps",
                total_steps,
                &format!("[{warmup_steps}, inf) (at least warmup_steps)"),
            )?;
            non_negative("train.schedule.min_lr", min_lr)
        }
    }
}

/// `MemAvailable` of `/proc/meminfo` in bytes (Linux); `None` elsewhere or when it cannot
/// be read. Hand-read rather than through a system-information crate: one line of one
/// file is all that is needed.
fn available_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib * 1024)
}
