//! Transforms of batches, chained in the order a job lists them and applied per
//! iteration, right after a batch is loaded (`data.transforms` in a job config).
//!
//! Deterministic transforms (`scale`, `normalize`, the label transform `label_map`) act on
//! every batch: training, validation, evaluation and prediction, so a trained model always
//! sees inputs prepared as in training. Random ones (`random_crop`, `random_flip`,
//! `gaussian_noise`) draw on train batches only, from the run's own augmentation stream
//! ([`StreamId::Augment`](crate::rng::StreamId)) whose position is in every checkpoint, so
//! a run with augmentation resumes bit for bit; elsewhere they do their deterministic
//! counterpart (see [`ApplyCtx::train`]).
//!
//! Files: `base` holds the trait, the chain and the image view of a sample shape; each
//! transform has its own file with its argument type and tests.

mod base;
mod gaussian_noise;
mod label_map;
mod normalize;
mod random_crop;
mod random_flip;
mod scale;

pub use base::{arg_error, image_of, ApplyCtx, BatchSpec, Transform, Transforms};
pub use gaussian_noise::{normal_noise, GaussianNoise, GaussianNoiseArgs};
pub use label_map::{LabelMap, LabelMapArgs};
pub use normalize::{Normalize, NormalizeArgs};
pub use random_crop::{RandomCrop, RandomCropArgs};
pub use random_flip::{FlipAxis, RandomFlip, RandomFlipArgs};
pub use scale::{Scale, ScaleArgs};
