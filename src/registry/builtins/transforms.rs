//! The built-in transforms; their argument types live beside them in [`crate::transforms`].

use crate::registry::Registry;
use crate::transforms::{
    GaussianNoise, GaussianNoiseArgs, LabelMap, LabelMapArgs, Normalize, NormalizeArgs, RandomCrop,
    RandomCropArgs, RandomFlip, RandomFlipArgs, Scale, ScaleArgs, Transform,
};

/// The built-in transforms (see [`crate::transforms`]).
pub(super) fn register(r: &mut Registry) {
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
