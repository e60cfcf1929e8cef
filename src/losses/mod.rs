//! Loss functions the trainer minimises, one per file, behind the [`Loss`] trait.
//!
//! The trainer holds a `Box<dyn Loss>`, so a job (or code) picks the loss instead of the
//! task hard-wiring it. Each loss follows PyTorch's definition of the same name, so numbers
//! and settings carry over: [`CrossEntropy`] (`nn.CrossEntropyLoss`, with class weights
//! and label smoothing), [`BinaryCrossEntropy`] (`nn.BCEWithLogitsLoss`), [`Mse`], [`Mae`]
//! and [`Huber`]. Every loss also takes optional per-sample weights.
//!
//! Files: `base` holds the trait, what targets a loss takes and the shared reductions;
//! each loss has its own file with its tests (`regression` holds the three elementwise
//! regression losses, which differ only in the per-element function).

mod base;
mod binary_cross_entropy;
mod cross_entropy;
mod regression;

pub use base::{Loss, Targets};
pub use binary_cross_entropy::{BinaryCrossEntropy, BinaryCrossEntropyArgs, PosWeight};
pub use cross_entropy::{ClassWeights, CrossEntropy, CrossEntropyArgs};
pub use regression::{Huber, HuberArgs, Mae, MaeArgs, Mse, MseArgs};
