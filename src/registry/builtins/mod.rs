//! The built-in components and their argument types, registered through the same calls
//! a user's program makes.
//!
//! Each argument type documents every field with its default (what `deeptrain list`
//! prints) and is checked by its `validate`, whose errors name the field as a job file
//! spells it (`optimizer.beta1: 1.5 is not in [0, 1)`).
//!
//! One file per kind: [`models`], [`losses`], [`optimizers`], [`schedules`], [`callbacks`],
//! [`transforms`], [`metrics`] and [`sources`].

mod callbacks;
mod losses;
mod metrics;
mod models;
mod optimizers;
mod schedules;
mod sources;
mod transforms;

use super::Registry;

pub use callbacks::{CalibrationArgs, EarlyStoppingArgs};
pub use metrics::{ConfusionMatrixArgs, TopKAccuracyArgs};
pub use models::{MlpArgs, RecurrentArgs};
pub use optimizers::{AdagradArgs, AdamArgs, LionArgs, RmspropArgs, SgdArgs};
pub use schedules::{
    ConstantArgs, CosineArgs, ExponentialArgs, MultiStepArgs, OneCycleArgs, ReduceOnPlateauArgs,
    StepArgs,
};

/// Registers every built-in component in `r`, kind by kind.
pub(super) fn register(r: &mut Registry) {
    models::register(r);
    losses::register(r);
    optimizers::register(r);
    schedules::register(r);
    callbacks::register(r);
    transforms::register(r);
    metrics::register(r);
    sources::register(r);
}
