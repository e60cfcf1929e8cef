//! The built-in learning-rate schedules and their argument types.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optim::{
    Anneal, Exponential, LrSchedule, MultiStep, OneCycle, PlateauSchedState, ReduceOnPlateau,
    Schedule, ThresholdMode,
};
use crate::range::{at_least_one, check, decay_factor, non_negative, positive};
use crate::registry::{Registry, ScheduleCtx};

/// Registers the built-in learning-rate schedules.
pub(super) fn register(r: &mut Registry) {
    fn boxed(s: impl LrSchedule + 'static) -> Result<Box<dyn LrSchedule>> {
        Ok(Box::new(s))
    }
    r.schedule("constant", |_: ConstantArgs, _| boxed(Schedule::Constant));
    r.schedule_checked("step", StepArgs::validate, |a: StepArgs, _| {
        boxed(Schedule::Step {
            step_size: a.step_size,
            gamma: a.gamma,
        })
    });
    r.schedule_checked("cosine", CosineArgs::validate, |a: CosineArgs, ctx| {
        let total_steps = a.total_steps.unwrap_or_else(|| ctx.planned_steps());
        check(
            total_steps >= a.warmup_steps,
            "schedule.total_steps",
            total_steps,
            &format!("[{}, inf) (at least warmup_steps)", a.warmup_steps),
        )?;
        boxed(Schedule::Cosine {
            warmup_steps: a.warmup_steps,
            total_steps,
            min_lr: a.min_lr,
        })
    });
    r.schedule_checked(
        "multi_step",
        MultiStepArgs::validate,
        |a: MultiStepArgs, _| {
            boxed(MultiStep {
                milestones: a.milestones,
                gamma: a.gamma,
            })
        },
    );
    r.schedule_checked(
        "exponential",
        ExponentialArgs::validate,
        |a: ExponentialArgs, _| boxed(Exponential { gamma: a.gamma }),
    );
    r.schedule_checked(
        "one_cycle",
        OneCycleArgs::validate,
        |a: OneCycleArgs, ctx| boxed(a.schedule(ctx)),
    );
    r.schedule_checked(
        "reduce_on_plateau",
        ReduceOnPlateauArgs::validate,
        |a: ReduceOnPlateauArgs, _| boxed(a.schedule()),
    );
}

/// The optimizer's rate throughout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ConstantArgs {}

/// The rate times `gamma` every `step_size` optimizer steps (PyTorch's `StepLR`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StepArgs {
    /// Optimizer steps between two drops, at least 1 (default 100).
    pub step_size: u64,
    /// Factor per drop, in (0, 1] (default 0.1).
    pub gamma: f64,
}

impl Default for StepArgs {
    fn default() -> Self {
        Self {
            step_size: 100,
            gamma: 0.1,
        }
    }
}

impl StepArgs {
    /// Checks `step_size` and `gamma`.
    pub fn validate(&self) -> Result<()> {
        at_least_one("schedule.step_size", self.step_size)?;
        decay_factor("schedule.gamma", self.gamma)
    }
}

/// Linear warm-up, then cosine decay to `min_lr` at `total_steps`, then `min_lr`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CosineArgs {
    /// Optimizer steps of linear warm-up (default 0).
    pub warmup_steps: u64,
    /// Step at which the decay reaches `min_lr`, warm-up included (default: the run's
    /// planned steps, epochs x batches / accumulate_batches or max_steps).
    pub total_steps: Option<u64>,
    /// Final rate, absolute (default 0).
    pub min_lr: f64,
}

impl CosineArgs {
    /// Checks `total_steps` against `warmup_steps`, and `min_lr`.
    pub fn validate(&self) -> Result<()> {
        if let Some(total) = self.total_steps {
            check(
                total >= self.warmup_steps,
                "schedule.total_steps",
                total,
                &format!("[{}, inf) (at least warmup_steps)", self.warmup_steps),
            )?;
        }
        non_negative("schedule.min_lr", self.min_lr)
    }
}

/// The rate times `gamma` at each milestone step passed (PyTorch's `MultiStepLR`, in
/// optimizer steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MultiStepArgs {
    /// Optimizer steps at which the rate drops, increasing (default none).
    pub milestones: Vec<u64>,
    /// Factor per milestone, in (0, 1] (default 0.1).
    pub gamma: f64,
}

impl Default for MultiStepArgs {
    fn default() -> Self {
        Self {
            milestones: Vec::new(),
            gamma: 0.1,
        }
    }
}

impl MultiStepArgs {
    /// Checks that the milestones increase, and `gamma`.
    pub fn validate(&self) -> Result<()> {
        for (i, w) in self.milestones.windows(2).enumerate() {
            check(
                w[1] > w[0],
                &format!("schedule.milestones[{}]", i + 1),
                w[1],
                &format!("({}, inf) (milestones increase)", w[0]),
            )?;
        }
        decay_factor("schedule.gamma", self.gamma)
    }
}

/// The rate times `gamma` every optimizer step (PyTorch's `ExponentialLR`, in optimizer
/// steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ExponentialArgs {
    /// Factor per step, in (0, 1] (default 0.999).
    pub gamma: f64,
}

impl Default for ExponentialArgs {
    fn default() -> Self {
        Self { gamma: 0.999 }
    }
}

impl ExponentialArgs {
    /// Checks `gamma`.
    pub fn validate(&self) -> Result<()> {
        decay_factor("schedule.gamma", self.gamma)
    }
}

/// The 1cycle policy (PyTorch's `OneCycleLR`, without momentum cycling): from
/// `max_lr / div_factor` up to `max_lr`, then down to a tiny rate at the last step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OneCycleArgs {
    /// The peak rate (default: the optimizer's `lr`).
    pub max_lr: Option<f64>,
    /// Steps of the cycle (default: the run's planned steps, epochs x batches /
    /// accumulate_batches or max_steps); later steps keep the final rate.
    pub total_steps: Option<u64>,
    /// Share of the cycle spent rising, in (0, 1) (default 0.3).
    pub pct_start: f64,
    /// The initial rate is `max_lr / div_factor` (default 25).
    pub div_factor: f64,
    /// The final rate is the initial one over `final_div_factor` (default 1e4).
    pub final_div_factor: f64,
    /// `cos` or `linear` phases (default `cos`).
    pub anneal_strategy: Anneal,
    /// Rise, fall back to the initial rate, then to the final one (default off).
    pub three_phase: bool,
}

impl Default for OneCycleArgs {
    fn default() -> Self {
        Self {
            max_lr: None,
            total_steps: None,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            anneal_strategy: Anneal::Cos,
            three_phase: false,
        }
    }
}

impl OneCycleArgs {
    /// Checks every setting of `one_cycle`.
    pub fn validate(&self) -> Result<()> {
        if let Some(lr) = self.max_lr {
            positive("schedule.max_lr", lr)?;
        }
        if let Some(n) = self.total_steps {
            at_least_one("schedule.total_steps", n)?;
        }
        check(
            self.pct_start > 0.0 && self.pct_start < 1.0,
            "schedule.pct_start",
            self.pct_start,
            "(0, 1)",
        )?;
        positive("schedule.div_factor", self.div_factor)?;
        positive("schedule.final_div_factor", self.final_div_factor)
    }

    /// The schedule for a run like `ctx`.
    pub fn schedule(&self, ctx: &ScheduleCtx) -> OneCycle {
        OneCycle {
            max_lr: self.max_lr.unwrap_or(ctx.base_lr),
            total_steps: self.total_steps.unwrap_or_else(|| ctx.planned_steps()),
            pct_start: self.pct_start,
            div_factor: self.div_factor,
            final_div_factor: self.final_div_factor,
            anneal: self.anneal_strategy,
            three_phase: self.three_phase,
        }
    }
}

/// The rate times `factor` when a validation metric stops improving (PyTorch's
/// `ReduceLROnPlateau`); its counters are saved in checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReduceOnPlateauArgs {
    /// Validation metric watched, `val_*` (default `val_loss`; min or max as the metric
    /// declares, else by its name).
    pub monitor: String,
    /// Multiplier per reduction, in (0, 1) (default 0.1).
    pub factor: f64,
    /// Validations without improvement tolerated before a reduction (default 10).
    pub patience: u64,
    /// Smallest improvement that counts (default 1e-4).
    pub threshold: f64,
    /// `rel`: threshold is a share of the best; `abs`: an amount (default `rel`).
    pub threshold_mode: ThresholdMode,
    /// Validations after a reduction in which bad ones do not count (default 0).
    pub cooldown: u64,
    /// The rate is never reduced below this (default 0).
    pub min_lr: f64,
    /// A reduction smaller than this is skipped (default 1e-8).
    pub eps: f64,
}

impl Default for ReduceOnPlateauArgs {
    fn default() -> Self {
        Self {
            monitor: "val_loss".into(),
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

impl ReduceOnPlateauArgs {
    /// Checks every setting of `reduce_on_plateau`; the monitored metric must be a
    /// validation one (`val_*`).
    pub fn validate(&self) -> Result<()> {
        if !self.monitor.starts_with("val_") {
            return Err(Error::config(
                "schedule.monitor",
                format!(
                    "`{}` is not a validation metric: name one as `val_{}`",
                    self.monitor, self.monitor
                ),
            ));
        }
        check(
            self.factor > 0.0 && self.factor < 1.0,
            "schedule.factor",
            self.factor,
            "(0, 1)",
        )?;
        non_negative("schedule.threshold", self.threshold)?;
        non_negative("schedule.min_lr", self.min_lr)?;
        non_negative("schedule.eps", self.eps)
    }

    /// The schedule; minimised or maximised as the run's metric declares (a user
    /// metric's `StreamingMetric::direction`), else by its name, resolved at the first
    /// validation.
    pub fn schedule(&self) -> ReduceOnPlateau {
        ReduceOnPlateau {
            monitor: self.monitor.clone(),
            maximize: None,
            factor: self.factor,
            patience: self.patience,
            threshold: self.threshold,
            threshold_mode: self.threshold_mode,
            cooldown: self.cooldown,
            min_lr: self.min_lr,
            eps: self.eps,
            state: PlateauSchedState::default(),
        }
    }
}
