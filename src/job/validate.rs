//! Range checks of every numeric job setting, and the model-size estimate made before a
//! model is allocated.
//!
//! [`JobConfig::validate`] looks at values only, never at the machine: it runs whenever a
//! config is read, a checkpoint's included, so a run must stay readable on any machine.
//! The memory check ([`JobConfig::check_model_memory`]) is made when a run is built.

use super::{DataConfig, JobConfig, LoggingConfig};
use crate::error::{Error, Result};
use crate::optim::Schedule;
use crate::range::{at_least_one, check, non_negative, positive, unit_open};
use crate::registry::{self, parse_args, MlpArgs, Registry, RmspropArgs, SgdArgs};
use crate::trainer::TrainConfig;

impl JobConfig {
    /// Rejects values that cannot work: every numeric setting is range-checked, and the
    /// error names the field as the JSON spells it and the valid range
    /// (`config optimizer.beta1: 1.5 is not in [0, 1)`).
    pub fn validate(&self) -> Result<()> {
        self.data.validate()?;
        self.check_components(registry::builtins(), false)?;
        validate_train(&self.train)?;
        if self.schedule.is_some() && self.train.schedule != Schedule::Constant {
            return Err(Error::config(
                "schedule",
                "give the schedule once: in the `schedule` section or (the older form) in \
                 `train.schedule`, not both",
            ));
        }
        self.logging.validate()?;
        if let Some(e) = &self.early_stopping {
            e.validate()?;
        }
        if self.init_from.is_none() && !self.init_map.is_empty() {
            return Err(Error::config("init_map", "needs init_from"));
        }
        if let Some(n) = &self.notify {
            n.validate("notify")?;
        }
        self.device.check()
    }

    /// Checks every component's name and arguments against `registry` (`strict` false:
    /// only the components it knows, as when a config is read before the user's registry
    /// is at hand).
    pub fn check_components(&self, registry: &Registry, strict: bool) -> Result<()> {
        self.resolve_components(registry, strict).map(drop)
    }

    /// This config with every component's arguments read by its type and written back
    /// with their defaults filled in (`strict` false: components `registry` does not know
    /// are kept as they are).
    pub fn resolve_components(&self, registry: &Registry, strict: bool) -> Result<JobConfig> {
        let mut job = self.clone();
        if strict || registry.models.contains(&job.model.name) {
            job.model = registry.models.resolve(&job.model)?;
        }
        if strict || registry.optimizers.contains(&job.optimizer.name) {
            job.optimizer = registry.optimizers.resolve(&job.optimizer)?;
        }
        if let Some(loss) = &mut job.loss {
            if strict || registry.losses.contains(&loss.name) {
                *loss = registry.losses.resolve(loss)?;
            }
        }
        if let Some(schedule) = &mut job.schedule {
            if strict || registry.schedules.contains(&schedule.name) {
                *schedule = registry.schedules.resolve(schedule)?;
            }
        }
        for c in &mut job.callbacks {
            if strict || registry.callbacks.contains(&c.name) {
                *c = registry.callbacks.resolve(c)?;
            }
        }
        for m in &mut job.train.metrics {
            *m = registry.resolve_metric(m, strict)?;
        }
        for (i, t) in job.data.transforms.iter_mut().enumerate() {
            if strict || registry.transforms.contains(&t.name) {
                *t = registry
                    .transforms
                    .resolve(t)
                    .map_err(|e| at_transform(i, e))?;
            }
        }
        super::source::resolve_sources(&mut job, registry, strict)?;
        Ok(job)
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
        // Only the MLP's size is known before it is built.
        if self.model.name != "mlp" {
            return Ok(());
        }
        let m: MlpArgs = parse_args("model", "mlp", &self.model.args)?;
        let needed = m.parameter_count(inputs, outputs) * 4.0 * self.copies_per_weight();
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

/// An error of transform `i` of `data.transforms` (the registry's and the transforms'
/// own say `transform`) as the job file spells the place: `data.transforms[1]`.
pub(super) fn at_transform(i: usize, e: Error) -> Error {
    match e {
        Error::Config { field, reason } if field.starts_with("transform") => Error::Config {
            field: field.replacen("transform", &format!("data.transforms[{i}]"), 1),
            reason,
        },
        other => other,
    }
}

impl JobConfig {
    /// Model-sized f32 buffers a training step holds: weights and gradients, plus the
    /// optimizer's buffers (Adam's two moments, SGD's momentum, RMSprop's one to three,
    /// Adagrad's and Lion's one; 2 for an optimizer of unknown state), plus the sums of
    /// gradient accumulation.
    fn copies_per_weight(&self) -> f64 {
        let args = &self.optimizer.args;
        let buffers = match self.optimizer.name.as_str() {
            "sgd" => match parse_args::<SgdArgs>("optimizer", "sgd", args) {
                Ok(s) if s.momentum == 0.0 => 0.0,
                _ => 1.0,
            },
            "rmsprop" => match parse_args::<RmspropArgs>("optimizer", "rmsprop", args) {
                Ok(r) => 1.0 + f64::from(r.momentum != 0.0) + f64::from(r.centered),
                _ => 3.0,
            },
            "adagrad" | "lion" => 1.0,
            _ => 2.0,
        };
        let sums = f64::from(self.train.accumulate_batches > 1);
        2.0 + buffers + sums
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
        if let Some(w) = &self.windows {
            at_least_one("data.windows.length", w.length as u64)?;
            if let Some(s) = w.slide {
                at_least_one("data.windows.slide", s as u64)?;
            }
        }
        if let Some(scale) = self.scale {
            positive("data.scale", f64::from(scale))?;
        }
        if let Some(names) = &self.class_names {
            check(
                !names.is_empty(),
                "data.class_names",
                "[]",
                "lists of at least one name",
            )?;
            let mut seen = std::collections::BTreeSet::new();
            for n in names {
                if !seen.insert(n) {
                    return Err(Error::config(
                        "data.class_names",
                        format!("`{n}` is given twice; each class needs its own name"),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl LoggingConfig {
    /// Nothing numeric can be wrong here today (`histogram_every` 0 means none); kept so
    /// every section has its check.
    pub fn validate(&self) -> Result<()> {
        Ok(())
    }
}

/// Checks the loop settings: epochs, checkpoints kept, clipping, accumulation, the
/// limits and the schedule.
fn validate_train(t: &TrainConfig) -> Result<()> {
    at_least_one("train.epochs", t.epochs)?;
    at_least_one("train.keep_last", t.keep_last as u64)?;
    if let Some(c) = t.clip_grad_norm {
        positive("train.clip_grad_norm", c)?;
    }
    at_least_one("train.accumulate_batches", t.accumulate_batches)?;
    if let Some(n) = t.max_steps {
        at_least_one("train.max_steps", n)?;
    }
    t.max_time_secs()?;
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
