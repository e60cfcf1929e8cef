//! The built-in components and their argument types, registered through the same calls
//! a user's program makes.
//!
//! Each argument type documents every field with its default (what `deeptrain list`
//! prints) and is checked by its `validate`, whose errors name the field as a job file
//! spells it (`optimizer.beta1: 1.5 is not in [0, 1)`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ModelCtx, Registry};
use crate::callbacks::EarlyStopping;
use crate::error::Result;
use crate::losses::{
    BinaryCrossEntropy, BinaryCrossEntropyArgs, CrossEntropy, CrossEntropyArgs, Huber, HuberArgs,
    Loss, Mae, MaeArgs, Mse, MseArgs,
};
use crate::model::{Cnn, CnnArgs, Mlp, MlpConfig, Model, ResNet, ResNetArgs};
use crate::optim::{Adam, AdamConfig, AdamW, Sgd, SgdConfig, TrainOptimizer};
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
