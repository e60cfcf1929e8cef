//! The built-in components and their argument types, registered through the same calls
//! a user's program makes.
//!
//! Each argument type documents every field with its default (what `deeptrain list`
//! prints) and is checked by its `validate`, whose errors name the field as a job file
//! spells it (`optimizer.beta1: 1.5 is not in [0, 1)`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ModelCtx, Registry, ScheduleCtx};
use crate::callbacks::EarlyStopping;
use crate::error::{Error, Result};
use crate::losses::{
    BinaryCrossEntropy, BinaryCrossEntropyArgs, CrossEntropy, CrossEntropyArgs, Huber, HuberArgs,
    Loss, Mae, MaeArgs, Mse, MseArgs,
};
use crate::metrics::higher_is_better;
use crate::model::recurrent::Cell;
use crate::model::{
    Cnn, CnnArgs, Mlp, MlpConfig, Model, Recurrent, RecurrentConfig, ResNet, ResNetArgs,
};
use crate::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, Anneal, Exponential, Lion, LionConfig,
    LrSchedule, MultiStep, OneCycle, PlateauSchedState, ReduceOnPlateau, Rmsprop, RmspropConfig,
    Schedule, Sgd, SgdConfig, ThresholdMode, TrainOptimizer,
};
use crate::range::{at_least_one, check, non_negative, positive, unit_open};
use crate::transforms::{
    GaussianNoise, GaussianNoiseArgs, LabelMap, LabelMapArgs, Normalize, NormalizeArgs, RandomCrop,
    RandomCropArgs, RandomFlip, RandomFlipArgs, Scale, ScaleArgs, Transform,
};

/// Registers every built-in component in `r`.
pub(super) fn register(r: &mut Registry) {
    r.model_checked(
        "mlp",
        MlpArgs::validate,
        |a: MlpArgs, ctx: &mut ModelCtx| Ok(Box::new(a.build(ctx)?) as Box<dyn Model>),
    );
    r.model_checked(
        "cnn",
        CnnArgs::validate,
        |a: CnnArgs, ctx: &mut ModelCtx| {
            let m = Cnn::new(a, ctx.sample_shape, ctx.outputs, ctx.init, ctx.device)?;
            Ok(Box::new(m) as Box<dyn Model>)
        },
    );
    r.model_checked(
        "resnet",
        ResNetArgs::validate,
        |a: ResNetArgs, ctx: &mut ModelCtx| {
            let m = ResNet::new(a, ctx.sample_shape, ctx.outputs, ctx.init, ctx.device)?;
            Ok(Box::new(m) as Box<dyn Model>)
        },
    );
    r.model_checked(
        "lstm",
        RecurrentArgs::validate,
        |a: RecurrentArgs, ctx: &mut ModelCtx| {
            Ok(Box::new(a.build(Cell::Lstm, ctx)?) as Box<dyn Model>)
        },
    );
    r.model_checked(
        "gru",
        RecurrentArgs::validate,
        |a: RecurrentArgs, ctx: &mut ModelCtx| {
            Ok(Box::new(a.build(Cell::Gru, ctx)?) as Box<dyn Model>)
        },
    );
    r.loss("cross_entropy", |a: CrossEntropyArgs, ctx| {
        let classes = ctx.num_classes.unwrap_or(ctx.outputs);
        let loss = CrossEntropy::new(a, classes, ctx.class_counts)?;
        Ok(Box::new(loss) as Box<dyn Loss>)
    });
    r.loss("binary_cross_entropy", |a: BinaryCrossEntropyArgs, ctx| {
        Ok(Box::new(BinaryCrossEntropy::new(a, ctx.outputs)?) as Box<dyn Loss>)
    });
    r.loss("mse", |a: MseArgs, _| {
        Ok(Box::new(Mse::new(a)) as Box<dyn Loss>)
    });
    r.loss("mae", |a: MaeArgs, _| {
        Ok(Box::new(Mae::new(a)) as Box<dyn Loss>)
    });
    r.loss("huber", |a: HuberArgs, _| {
        Ok(Box::new(Huber::new(a)?) as Box<dyn Loss>)
    });
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
    register_schedules(r);
    r.callback_checked(
        "early_stopping",
        EarlyStoppingArgs::validate,
        |a: EarlyStoppingArgs, _| Ok(Box::new(a.callback())),
    );
    register_transforms(r);
}

/// The built-in transforms (see [`crate::transforms`]).
fn register_transforms(r: &mut Registry) {
    r.transform_checked("scale", ScaleArgs::validate, |a: ScaleArgs, _| {
        Ok(Box::new(Scale::new(a)?) as Box<dyn Transform>)
    });
    r.transform_checked(
        "normalize",
        NormalizeArgs::validate,
        |a: NormalizeArgs, _| Ok(Box::new(Normalize::new(a)?) as Box<dyn Transform>),
    );
    r.transform_checked(
        "random_crop",
        RandomCropArgs::validate,
        |a: RandomCropArgs, ctx| {
            let t = RandomCrop::new(a, &ctx.input.sample_shape)?;
            Ok(Box::new(t) as Box<dyn Transform>)
        },
    );
    r.transform_checked(
        "random_flip",
        RandomFlipArgs::validate,
        |a: RandomFlipArgs, ctx| {
            let t = RandomFlip::new(a, &ctx.input.sample_shape)?;
            Ok(Box::new(t) as Box<dyn Transform>)
        },
    );
    r.transform_checked(
        "gaussian_noise",
        GaussianNoiseArgs::validate,
        |a: GaussianNoiseArgs, _| Ok(Box::new(GaussianNoise::new(a)?) as Box<dyn Transform>),
    );
    r.transform_checked(
        "label_map",
        LabelMapArgs::validate,
        |a: LabelMapArgs, ctx| {
            let t = LabelMap::new(a, ctx.input.num_classes)?;
            Ok(Box::new(t) as Box<dyn Transform>)
        },
    );
}

/// A multi-layer perceptron: linear layers with ReLU and dropout between them; inputs
/// and outputs are sized from the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MlpArgs {
    /// Widths of the hidden layers, in order (default `[128]`; `[]`: one linear layer).
    pub hidden: Vec<usize>,
    /// Dropout probability after each hidden activation, in [0, 1) (default 0.2).
    pub dropout: f64,
}

impl Default for MlpArgs {
    fn default() -> Self {
        Self {
            hidden: vec![128],
            dropout: 0.2,
        }
    }
}

impl MlpArgs {
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

    /// The MLP for the data `ctx` describes.
    pub fn build(&self, ctx: &mut ModelCtx) -> Result<Mlp> {
        Mlp::new(
            MlpConfig {
                inputs: ctx.sample_shape.iter().product(),
                hidden: self.hidden.clone(),
                outputs: ctx.outputs,
                dropout: self.dropout as f32,
            },
            ctx.init,
            ctx.device,
        )
    }
}

/// A recurrent network (`lstm` or `gru`) with a linear head, stateful across the time
/// windows of a sequence (`data.windows`); samples are `[time, features]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RecurrentArgs {
    /// Size of the hidden state, at least 1 (default 32).
    pub hidden: usize,
    /// An output at every time step (forecasting, per-step targets) instead of one after
    /// the last step (sequence classification) (default false).
    pub per_step: bool,
}

impl Default for RecurrentArgs {
    fn default() -> Self {
        Self {
            hidden: 32,
            per_step: false,
        }
    }
}

impl RecurrentArgs {
    /// Checks `hidden`.
    pub fn validate(&self) -> Result<()> {
        at_least_one("model.hidden", self.hidden as u64)
    }

    /// The network for the data `ctx` describes: features per step from the sample's last
    /// axis.
    pub fn build(&self, cell: Cell, ctx: &mut ModelCtx) -> Result<Recurrent> {
        let inputs = match ctx.sample_shape {
            [_, features] => *features,
            [_] => 1,
            other => {
                return Err(crate::error::Error::config(
                    "model",
                    format!("a recurrent model takes samples [time, features], not {other:?}"),
                ))
            }
        };
        Recurrent::new(
            RecurrentConfig {
                cell,
                inputs,
                hidden: self.hidden,
                outputs: ctx.outputs,
                per_step: self.per_step,
            },
            ctx.init,
            ctx.device,
        )
    }
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

/// Stops the run when a validation metric stops improving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EarlyStoppingArgs {
    /// The metric watched (default `val_loss`; its direction is known by name).
    pub monitor: String,
    /// Validations without improvement before stopping, at least 1 (default 5).
    pub patience: u64,
    /// Smallest change that counts as an improvement (default 0).
    pub min_delta: f64,
    /// Validations ignored at the start (default 0).
    pub warmup: u64,
}

impl Default for EarlyStoppingArgs {
    fn default() -> Self {
        Self {
            monitor: "val_loss".into(),
            patience: 5,
            min_delta: 0.0,
            warmup: 0,
        }
    }
}

impl EarlyStoppingArgs {
    /// Checks `patience` and `min_delta`.
    pub fn validate(&self) -> Result<()> {
        at_least_one("early_stopping.patience", self.patience)?;
        non_negative("early_stopping.min_delta", self.min_delta)
    }

    /// The callback these settings describe.
    pub fn callback(&self) -> EarlyStopping {
        EarlyStopping::new(&self.monitor)
            .patience(self.patience)
            .min_delta(self.min_delta)
            .warmup(self.warmup)
    }
}

/// Registers the built-in learning-rate schedules.
fn register_schedules(r: &mut Registry) {
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

/// `value` in `[0, 1]`.
fn unit_closed(field: &str, value: f64) -> Result<()> {
    check((0.0..=1.0).contains(&value), field, value, "[0, 1]")
}

/// `value` in `(0, 1]`: a factor that never raises the rate.
fn decay_factor(field: &str, value: f64) -> Result<()> {
    check(value > 0.0 && value <= 1.0, field, value, "(0, 1]")
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
    /// Validation metric watched, `val_*` (default `val_loss`; min or max by its name).
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

    /// The schedule; minimised or maximised by the metric's name.
    pub fn schedule(&self) -> ReduceOnPlateau {
        ReduceOnPlateau {
            monitor: self.monitor.clone(),
            maximize: higher_is_better(&self.monitor),
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
